"""Automatic prompt-following check: what does a generated clip actually show?

:func:`analyse` finds the background colour (the median of the border pixels), the object
(pixels far from the background), its colour (the median of the object's pixels, matched to the
nearest named colour), its shape (how much of its bounding box it fills) and the path of its
centroid and size over time (the size only while the object is clear of the frame's edge: a
shape moving out of the frame is not shrinking), then names the motion. :func:`score` compares
that with the prompt's slots. The same code judges the training data (where it must be right)
and the model's samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from generator.embedded.vocab import COLOURS

_NAMES = tuple(COLOURS)
_PALETTE = np.array([COLOURS[n] for n in _NAMES], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ClipAnalysis:
    """What a clip shows (``None`` where no object was found)."""

    background: str
    colour: str | None
    shape: str | None
    motion: str | None
    object_frames: int


def nearest_colour(rgb: npt.NDArray[np.float64]) -> str:
    """The named colour closest to ``rgb`` (Euclidean in RGB)."""
    return _NAMES[int(np.argmin(((_PALETTE - rgb) ** 2).sum(axis=1)))]


def _shape(mask: npt.NDArray[np.bool_]) -> str | None:
    ys, xs = np.nonzero(mask)
    if len(xs) < 12:
        return None
    h = ys.max() - ys.min() + 1
    w = xs.max() - xs.min() + 1
    fill = len(xs) / float(h * w)
    # Squares fill their box (~1.0), circles ~0.79, triangles ~0.5.
    if fill > 0.88:
        return "square"
    if fill > 0.64:
        return "circle"
    return "triangle"


BOUNCE_SWING = 5.0
"""Pixels the centroid must move back before a change of vertical direction counts."""


def _reversals(values: npt.NDArray[np.float64], swing: float) -> int:
    """How often ``values`` change direction by at least ``swing`` (a zigzag filter)."""
    turns = 0
    direction = 0
    extreme = float(values[0])
    for v in map(float, values[1:]):
        if direction >= 0 and v > extreme:
            extreme, direction = v, max(direction, 0) or 1
        elif direction <= 0 and v < extreme:
            extreme, direction = v, min(direction, 0) or -1
        elif abs(v - extreme) >= swing:
            turns += direction != 0
            direction = 1 if v > extreme else -1
            extreme = v
    return turns


def _motion(
    xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64], areas: npt.NDArray[np.float64]
) -> str | None:
    """``areas`` holds only the frames where the object is whole (clear of the frame's edge):
    a shape leaving the frame loses area without shrinking."""
    if len(xs) < 4:
        return None
    dx, dy = xs[-1] - xs[0], ys[-1] - ys[0]
    ratio = (areas[-3:].mean() + 1) / (areas[:3].mean() + 1) if len(areas) >= 2 else 1.0
    if ratio > 2.0:
        return "grow"
    if ratio < 0.5:
        return "shrink"
    # A bounce rises and falls: the vertical path reverses at least twice by a real swing while
    # x stays put. A reversal only counts past BOUNCE_SWING pixels, so a straight move up or down
    # with a pixel or two of wobble in the centroid is not mistaken for a bounce.
    if _reversals(ys, BOUNCE_SWING) >= 2 and np.ptp(ys) > 10 and abs(dx) < 8:
        return "bounce"
    if max(abs(dx), abs(dy)) < 10:
        return None
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def analyse(frames: npt.NDArray[np.uint8]) -> ClipAnalysis:
    """Analyse a clip (T, H, W, 3) uint8 of one shape over a plain background."""
    f = frames.astype(np.float64)
    border = np.concatenate(
        [f[:, 0].reshape(-1, 3), f[:, -1].reshape(-1, 3), f[:, :, 0].reshape(-1, 3),
         f[:, :, -1].reshape(-1, 3)]
    )  # fmt: skip
    bg_rgb = np.median(border, axis=0)
    background = nearest_colour(bg_rgb)
    far = np.sqrt(((f - bg_rgb) ** 2).sum(axis=-1)) > 60.0  # (T, H, W)
    xs, ys, areas, shapes, pixels = [], [], [], [], []
    yy, xx = np.mgrid[0 : f.shape[1], 0 : f.shape[2]]
    for t in range(f.shape[0]):
        m = far[t]
        n = int(m.sum())
        if n < 6:
            continue
        xs.append(float(xx[m].mean()))
        ys.append(float(yy[m].mean()))
        if not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()):
            areas.append(float(n))
        shapes.append(_shape(m))
        pixels.append(f[t][m])
    if not xs:
        return ClipAnalysis(background, None, None, None, 0)
    colour = nearest_colour(np.median(np.concatenate(pixels), axis=0))
    known = [s for s in shapes if s is not None]
    shape = max(set(known), key=known.count) if known else None
    motion = _motion(np.array(xs), np.array(ys), np.array(areas))
    return ClipAnalysis(background, colour, shape, motion, len(xs))


@dataclass(frozen=True, slots=True)
class ClipScore:
    """Which of the prompt's slots the clip got right."""

    background: bool
    colour: bool
    shape: bool
    motion: bool


def score(
    analysis: ClipAnalysis, colour: str, shape: str, motion: str, background: str
) -> ClipScore:
    """Compare an analysis with the prompt's slots."""
    return ClipScore(
        background=analysis.background == background,
        colour=analysis.colour == colour,
        shape=analysis.shape == shape,
        motion=analysis.motion == motion,
    )
