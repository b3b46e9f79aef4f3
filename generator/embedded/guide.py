"""How the embedded model follows a source clip without retraining: kept frames re-imposed at
every denoising step (RePaint, for extension) and a noised start (SDEdit, for editing).

In rectified flow the noised latent at noise level ``sigma`` is ``(1 - sigma) * x0 + sigma *
noise``. RePaint replaces the kept frames' positions with that mixture of their known clean
latents before every step, so the model denoises the new frames in the context of the known
ones and the seam matches. SDEdit starts the sampler at ``sigma = strength`` from the source's
noised latents instead of from pure noise: low strength keeps the source's layout and colours,
high strength follows the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LatentGuide:
    """``known`` (1, C, T, h, w) normalised latents whose frames ``keep`` (T bools) are re-imposed
    at every step; ``start`` the same-shaped source latents an SDEdit run starts from at
    ``strength``. Either or both may be set."""

    known: torch.Tensor | None = None
    keep: torch.Tensor | None = None
    start: torch.Tensor | None = None
    strength: float = 1.0

    def impose(self, z: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
        """``z`` with the kept frames set to their known latents noised to ``sigma``."""
        if self.known is None or self.keep is None:
            return z
        noised = (1.0 - sigma) * self.known + sigma * noise
        mask = self.keep.view(1, 1, -1, 1, 1).to(z.dtype)
        return mask * noised + (1.0 - mask) * z
