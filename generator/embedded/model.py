"""The embedded text-to-video model: a per-frame conv autoencoder and a diffusion transformer.

* :class:`FrameAutoencoder` maps each 64x64 RGB frame to an 8x8x8 latent (and back).
* :class:`SlotTextEncoder` embeds the prompt's four slot words (object colour, shape, motion,
  background; see :mod:`generator.embedded.vocab`) into tokens plus a pooled vector.
* :class:`VideoDiT` denoises the clip's latent (8 channels x 16 frames x 8 x 8) split into
  2x2x2 spacetime patches (128 tokens). Each block has adaLN-Zero modulation from the timestep
  and the pooled text, self-attention over all spacetime tokens, and cross-attention to the
  word tokens. It predicts the clean latent (x-prediction); training and sampling use the
  velocity derived from it (rectified flow). With ``frame_conditioning`` it also reads known
  frames (frame conditioning, as LTX-Video and Wan do it): the known frames' clean latents and
  a known-frame mask, patchified like the clip and added to the patch embedding through a
  zero-initialised projection, so that a model fine-tuned from a text-only one starts out
  exactly equal to it, and a call without known frames is still plain text-to-video.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from generator.embedded.vocab import SLOT_VALUES, SLOTS


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Sizes of the autoencoder and the transformer (stored with the weights)."""

    latent_channels: int = 8
    frames: int = 16
    size: int = 64
    patch_t: int = 2
    patch_s: int = 2
    width: int = 192
    depth: int = 8
    heads: int = 6
    text_layers: int = 1
    frame_conditioning: bool = False

    @property
    def latent_size(self) -> int:
        return self.size // 8

    @property
    def grid(self) -> tuple[int, int, int]:
        return (
            self.frames // self.patch_t,
            self.latent_size // self.patch_s,
            self.latent_size // self.patch_s,
        )

    @property
    def patch_dim(self) -> int:
        return self.latent_channels * self.patch_t * self.patch_s * self.patch_s

    @property
    def known_patch_dim(self) -> int:
        """Values per patch of the frame conditioning: known latents plus the mask channel."""
        return (self.latent_channels + 1) * self.patch_t * self.patch_s * self.patch_s

    def to_dict(self) -> dict[str, int | bool]:
        return asdict(self)


class FrameAutoencoder(nn.Module):
    """64x64x3 frames in [-1, 1] <-> 8x8xC latents in [-1, 1] (tanh-bounded)."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 24, 2, stride=2),
            nn.GELU(),
            nn.Conv2d(24, 32, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(32, 64, 2, stride=2),
            nn.GELU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(64, channels, 2, stride=2),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(channels, 64, 3, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(64, 64, 2, stride=2),
            nn.GELU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(64, 32, 2, stride=2),
            nn.GELU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(32, 16, 2, stride=2),
            nn.GELU(),
            nn.Conv2d(16, 3, 3, padding=1),
        )

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, 64, 64) in [-1, 1] -> (N, C, 8, 8) in [-1, 1]."""
        return torch.tanh(self.encoder(frames))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(N, C, 8, 8) -> (N, 3, 64, 64), roughly in [-1, 1]."""
        out: torch.Tensor = self.decoder(latents)
        return out


class SlotTextEncoder(nn.Module):
    """Four word tokens, one per slot, each a known word or that slot's 'unspecified' token."""

    def __init__(self, width: int, layers: int) -> None:
        super().__init__()
        # Per slot: index 0 = unspecified, then the slot's words in SLOT_VALUES order.
        self.words = nn.ModuleList(nn.Embedding(len(SLOT_VALUES[s]) + 1, width) for s in SLOTS)
        self.role = nn.Parameter(torch.zeros(len(SLOTS), width))
        layer = nn.TransformerEncoderLayer(
            width, nhead=4, dim_feedforward=2 * width, dropout=0.0, batch_first=True,
            norm_first=True, activation="gelu",
        )  # fmt: skip
        self.mix = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, 4) -> tokens (B, 4, width), pooled (B, width)."""
        x = torch.stack([emb(ids[:, i]) for i, emb in enumerate(self.words)], dim=1) + self.role
        x = self.norm(self.mix(x))
        return x, x.mean(dim=1)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1] (scaled to [0, 1000] like DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Block(nn.Module):
    """adaLN-Zero transformer block with self-attention, cross-attention and an MLP."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.q_x = nn.Linear(width, width)
        self.kv_x = nn.Linear(width, 2 * width)
        self.proj_x = nn.Linear(width, width)
        self.norm3 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width)
        )
        self.ada = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, n, d = x.shape
        return x.transpose(1, 2).reshape(b, n, h * d)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(F.silu(cond))[:, None].chunk(6, -1)
        h = self.norm1(x) * (1 + scale1) + shift1
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        h = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v))
        x = x + gate1 * self.proj(self._merge(h))
        kt, vt = self.kv_x(text).chunk(2, dim=-1)
        h = F.scaled_dot_product_attention(
            self._heads(self.q_x(self.norm2(x))), self._heads(kt), self._heads(vt)
        )
        x = x + self.proj_x(self._merge(h))
        h = self.norm3(x) * (1 + scale2) + shift2
        return x + gate2 * self.mlp(h)


class VideoDiT(nn.Module):
    """Text-conditioned diffusion transformer over spacetime patches of the clip latent."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        gt, gh, gw = config.grid
        self.embed = nn.Linear(config.patch_dim, w)
        self.pos_t = nn.Parameter(torch.randn(gt, 1, 1, w) * 0.02)
        self.pos_h = nn.Parameter(torch.randn(1, gh, 1, w) * 0.02)
        self.pos_w = nn.Parameter(torch.randn(1, 1, gw, w) * 0.02)
        self.time = nn.Sequential(nn.Linear(256, w), nn.SiLU(), nn.Linear(w, w))
        self.text = SlotTextEncoder(w, config.text_layers)
        self.pooled = nn.Sequential(nn.Linear(w, w), nn.SiLU(), nn.Linear(w, w))
        self.blocks = nn.ModuleList(Block(w, config.heads) for _ in range(config.depth))
        self.norm_out = nn.LayerNorm(w, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(w, 2 * w)
        self.out = nn.Linear(w, config.patch_dim)
        nn.init.zeros_(self.ada_out.weight)
        nn.init.zeros_(self.ada_out.bias)
        if config.frame_conditioning:
            self.known_embed = nn.Linear(config.known_patch_dim, w, bias=False)
            nn.init.zeros_(self.known_embed.weight)

    def patchify(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, tokens, patch_dim)."""
        c = self.config
        b, ch, t, h, w = z.shape
        pt, ps = c.patch_t, c.patch_s
        z = z.reshape(b, ch, t // pt, pt, h // ps, ps, w // ps, ps)
        z = z.permute(0, 2, 4, 6, 1, 3, 5, 7)
        return z.reshape(b, (t // pt) * (h // ps) * (w // ps), ch * pt * ps * ps)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, tokens, patch_dim) -> (B, C, T, H, W)."""
        c = self.config
        gt, gh, gw = c.grid
        pt, ps = c.patch_t, c.patch_s
        b = x.shape[0]
        x = x.reshape(b, gt, gh, gw, c.latent_channels, pt, ps, ps)
        x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)
        return x.reshape(b, c.latent_channels, gt * pt, gh * ps, gw * ps)

    def forward(
        self,
        z_t: torch.Tensor,
        t: torch.Tensor,
        ids: torch.Tensor,
        known: torch.Tensor | None = None,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the clean latent from ``z_t`` at noise level ``t`` (B,) given slot ``ids``;
        with frame conditioning, also given the clean latents ``known`` (B, C, T, h, w) of the
        frames ``keep`` (B, T) marks (a model without it refuses them)."""
        x = self.embed(self.patchify(z_t))
        if known is not None and keep is not None:
            if not self.config.frame_conditioning:
                raise ValueError("this model was not trained with frame conditioning")
            m = keep.to(z_t.dtype)[:, None, :, None, None].expand(-1, 1, -1, *z_t.shape[-2:])
            x = x + self.known_embed(self.patchify(torch.cat([known * m, m], dim=1)))
        pos = (self.pos_t + self.pos_h + self.pos_w).reshape(1, -1, x.shape[-1])
        x = x + pos
        text, pooled = self.text(ids)
        cond = self.time(timestep_embedding(t, 256)) + self.pooled(pooled)
        for block in self.blocks:
            x = block(x, cond, text)
        shift, scale = self.ada_out(F.silu(cond))[:, None].chunk(2, -1)
        x = self.norm_out(x) * (1 + scale) + shift
        return self.unpatchify(self.out(x))
