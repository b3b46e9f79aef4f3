"""Procedural training clips: one coloured shape moving over a plain named background.

Every clip is 16 frames of 64x64 RGB. A clip is fully described by a :class:`ClipSpec`, drawn
from a seeded ``numpy`` generator, so training data is reproducible step by step. A fixed set
of slot combinations is held out of training (:func:`is_held_out`) to measure generalisation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from generator.embedded.vocab import COLOUR_NAMES, COLOURS, MOTIONS, SHAPES

FRAMES = 16
SIZE = 64
FPS = 8.0
"""Native frame rate: a clip lasts two seconds."""


@dataclass(frozen=True, slots=True)
class ClipSpec:
    """Everything that determines a clip: slots, plus path and size parameters."""

    colour: str
    shape: str
    motion: str
    background: str
    x0: float
    y0: float
    x1: float
    y1: float
    r0: float
    r1: float
    phase: float = 0.0


def is_held_out(colour: str, shape: str, motion: str, background: str) -> bool:
    """About one slot combination in eight never appears in training (a stable hash)."""
    key = f"{colour}|{shape}|{motion}|{background}".encode()
    return hashlib.sha256(key).digest()[0] < 32


def all_combinations() -> list[tuple[str, str, str, str]]:
    """Every (colour, shape, motion, background) with colour != background."""
    return [
        (c, s, m, b)
        for c in COLOUR_NAMES
        for s in SHAPES
        for m in MOTIONS
        for b in COLOUR_NAMES
        if c != b
    ]


def random_spec(rng: np.random.Generator, *, held_out: bool = False) -> ClipSpec:
    """A random clip from the training split (or from the held-out split)."""
    while True:
        colour, background = rng.choice(len(COLOUR_NAMES), size=2, replace=False)
        c, b = COLOUR_NAMES[colour], COLOUR_NAMES[background]
        s = SHAPES[rng.integers(len(SHAPES))]
        m = MOTIONS[rng.integers(len(MOTIONS))]
        if is_held_out(c, s, m, b) == held_out:
            return spec_for(c, s, m, b, rng)


def spec_for(
    colour: str, shape: str, motion: str, background: str, rng: np.random.Generator
) -> ClipSpec:
    """Random path and size parameters for a given slot combination."""
    r = float(rng.uniform(8.0, 11.0))
    across = float(rng.uniform(18.0, 46.0))
    start = float(rng.uniform(48.0, 53.0))
    end = float(rng.uniform(11.0, 16.0))
    mid = float(rng.uniform(22.0, 42.0))
    if motion == "left":
        return ClipSpec(colour, shape, motion, background, start, across, end, across, r, r)
    if motion == "right":
        return ClipSpec(
            colour, shape, motion, background, 64 - start, across, 64 - end, across, r, r
        )
    if motion == "up":
        return ClipSpec(colour, shape, motion, background, across, start, across, end, r, r)
    if motion == "down":
        return ClipSpec(
            colour, shape, motion, background, across, 64 - start, across, 64 - end, r, r
        )
    if motion == "bounce":
        floor = 64 - r - float(rng.uniform(2.0, 5.0))
        top = float(rng.uniform(14.0, 20.0))
        phase = float(rng.uniform(0.0, 0.25))
        return ClipSpec(colour, shape, motion, background, across, top, across, floor, r, r, phase)
    small, big = float(rng.uniform(4.0, 6.0)), float(rng.uniform(15.0, 19.0))
    r0, r1 = (small, big) if motion == "grow" else (big, small)
    return ClipSpec(colour, shape, motion, background, mid, mid, mid, mid, r0, r1)


MAX_RADIUS = 30.0
"""A shape that keeps growing past the clip stops at this radius (it nearly fills the frame)."""


def trajectory(spec: ClipSpec, start: int = 0) -> tuple[npt.NDArray[np.float64], ...]:
    """Per-frame centre x, centre y and size r of the shape, for frames ``start`` to ``start +
    FRAMES - 1`` of its path. Frames past the clip's own 16 continue the same motion (a moving
    shape goes on and leaves the frame, a shrinking one vanishes, a bouncing one bounces on):
    what an extension of the clip should show."""
    u = (np.arange(FRAMES) + start) / (FRAMES - 1)
    r = np.clip(spec.r0 + (spec.r1 - spec.r0) * u, 0.0, MAX_RADIUS)
    if spec.motion == "bounce":
        # Two bounces: |cos| keeps the shape above the floor (y1) and peaks at y0.
        height = np.abs(np.cos(np.pi * (2.0 * u + spec.phase)))
        y = spec.y1 - (spec.y1 - spec.y0) * height
        x = np.full(FRAMES, spec.x0)
        return x, y, r
    return spec.x0 + (spec.x1 - spec.x0) * u, spec.y0 + (spec.y1 - spec.y0) * u, r


def _coverage(
    shape: str, dx: npt.NDArray[np.float64], dy: npt.NDArray[np.float64], r: float
) -> npt.NDArray[np.float64]:
    if shape == "circle":
        d = np.hypot(dx, dy) - r
    elif shape == "square":
        d = np.maximum(np.abs(dx), np.abs(dy)) - r * 0.9
    else:
        # Upward equilateral triangle with circumradius 1.5 r (similar area to the others).
        R = 1.5 * r
        n = np.array([[0.0, 1.0], [0.866, -0.5], [-0.866, -0.5]])
        # Edges at distance R/2 from the centre along each outward normal (y points down).
        d = np.max([n[i, 0] * dx + n[i, 1] * dy for i in range(3)], axis=0) - R / 2
    return np.clip(0.5 - d, 0.0, 1.0)


_GRID = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64) + 0.5


def render(spec: ClipSpec, start: int = 0) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """Render ``spec`` (frames ``start`` on of its path, see :func:`trajectory`) to frames
    (16, 64, 64, 3) uint8 and the shape's coverage (16, 64, 64)."""
    xs, ys, rs = trajectory(spec, start)
    yy, xx = _GRID
    fg = np.array(COLOURS[spec.colour], dtype=np.float64)
    bg = np.array(COLOURS[spec.background], dtype=np.float64)
    mask = np.empty((FRAMES, SIZE, SIZE), dtype=np.float32)
    for t in range(FRAMES):
        # Image y points down, so the (0, 1) edge normal is the flat base: the apex is on top.
        mask[t] = _coverage(spec.shape, xx - xs[t], yy - ys[t], float(rs[t]))
    frames = bg + (fg - bg) * mask[..., None]
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8), mask


def batch(
    rng: np.random.Generator, n: int, starts: list[int] | None = None
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32], list[ClipSpec]]:
    """``n`` training clips: frames (n, 16, 64, 64, 3), masks (n, 16, 64, 64), specs; with
    ``starts``, clip ``i`` shows frames ``starts[i]`` on of its path."""
    specs = [random_spec(rng) for _ in range(n)]
    rendered = [render(s, 0 if starts is None else starts[i]) for i, s in enumerate(specs)]
    return (
        np.stack([f for f, _ in rendered]),
        np.stack([m for _, m in rendered]),
        specs,
    )
