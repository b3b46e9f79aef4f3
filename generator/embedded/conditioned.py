"""Extension and editing with the embedded model (see :mod:`generator.embedded.guide`).

* :func:`extend_native`: the last second of the source (at most :data:`CONTEXT_FRAMES` native
  frames) is encoded to latents and kept at the start of each 16-frame window, both as frame
  conditioning (a model fine-tuned with it, :mod:`generator.embedded.finetune`, reads the
  known frames' clean latents and continues the shape along its path) and RePaint-style
  (their noised latents re-imposed every step, so the kept frames stay exact); the rest of
  the window is new. Longer extensions slide the window: the last kept
  latents of one window open the next, so each second continues the one before.
* :func:`edit_native`: the source, resampled to the model's 16 frames, is inverted and noised
  to ``strength``, and sampling starts there (SDEdit).

Both work on the model's native clips (64x64 at :data:`~generator.embedded.data.FPS`); the
backend retimes and resizes the result to the source's frame rate and size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import torch

from generator.base import resize_frames, retime_frames
from generator.embedded.data import FPS
from generator.embedded.guide import LatentGuide

CONTEXT_FRAMES = 8
"""Native frames of the source kept at the start of each extension window (1 s at 8 fps);
even, because the transformer's patches span two frames."""

Sampler = Callable[..., torch.Tensor]


def to_native(
    frames: npt.NDArray[np.uint8], fps: float, count: int, size: int
) -> npt.NDArray[np.uint8]:
    """``frames`` at ``fps`` resampled (nearest in time) to ``count`` frames over the same
    duration, at ``size`` x ``size``."""
    seconds = len(frames) / fps
    native = retime_frames(frames, fps, count / seconds, seconds)[:count]
    return resize_frames(native, size, size)


def extend_native(
    model: object,
    ids: torch.Tensor,
    seed: int,
    keep: npt.NDArray[np.uint8],
    fps: float,
    new_seconds: float,
    *,
    steps: int,
    progress: Callable[[float], None],
    context_frames: int = CONTEXT_FRAMES,
) -> npt.NDArray[np.uint8]:
    """New native frames continuing ``keep`` (at ``fps``) for ``new_seconds``, each window
    opening with (up to) ``context_frames`` known native frames."""
    from generator.embedded.backend import TinyDiT

    assert isinstance(model, TinyDiT)
    c = model.config
    available = math.floor(len(keep) / fps * FPS)
    k = max(2, min(context_frames, available - available % 2, c.frames - 2))
    tail = keep[-max(1, round(k / FPS * fps)) :]
    context = to_native(tail, fps, k, c.size)
    known = torch.zeros(1, c.latent_channels, c.frames, c.latent_size, c.latent_size)
    known[:, :, :k] = model.invert(context)
    mask = torch.zeros(c.frames, dtype=torch.bool)
    mask[:k] = True
    wanted = max(1, round(new_seconds * FPS))
    windows = math.ceil(wanted / (c.frames - k))
    out = []
    for w in range(windows):

        def step(f: float, w: int = w) -> None:
            progress((w + f) / windows)

        z = model.sample_latents(
            ids, seed + w, steps=steps, progress=step, guide=LatentGuide(known=known, keep=mask)
        )
        out.append(model.decode(z[:, :, k:])[0])
        known = torch.zeros_like(known)
        known[:, :, :k] = z[:, :, c.frames - k :]
    return np.concatenate(out)[:wanted]


def edit_native(
    model: object,
    ids: torch.Tensor,
    seed: int,
    clip: npt.NDArray[np.uint8],
    fps: float,
    strength: float,
    *,
    steps: int,
    progress: Callable[[float], None],
) -> npt.NDArray[np.uint8]:
    """The model's 16 native frames, sampled from ``clip`` (at ``fps``) noised to
    ``strength``."""
    from generator.embedded.backend import TinyDiT

    assert isinstance(model, TinyDiT)
    c = model.config
    start = model.invert(to_native(clip, fps, c.frames, c.size))
    z = model.sample_latents(
        ids, seed, steps=steps, progress=progress, guide=LatentGuide(start=start, strength=strength)
    )
    return model.decode(z)[0]
