"""Pick the frames the frame classifiers look at: uniform samples, every shot, first and last.

A generated clip is short, but a shot can be shorter than the uniform sampling step, so a
uniform grid alone could step over a whole shot. The sampler therefore adds the first frame of
every shot, found by comparing HSV colour histograms of consecutive frames (OpenCV), plus the
first and the last frame. Timestamps are exact: ``index / fps``.

Rule, in full:

1. uniform: frame ``floor(k * step)`` for ``k = 0, 1, ...``, where ``step`` is
   ``sample_every_frames`` or ``sample_every_s * fps`` (every frame when the step is below 1);
2. scene cuts: frame ``i`` when the Bhattacharyya distance between the HSV histograms of frames
   ``i - 1`` and ``i`` is at least ``scene_cut_threshold`` (0 identical, 1 disjoint colours);
3. first and last frames when ``always_first_last`` (on by default);
4. the union, without duplicates, sorted by index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from classifiers.base import SampledFrame

# Histograms are computed on a small copy of each frame: cuts are a global colour change, and
# this keeps a 512x512 clip as cheap as a 64x64 one.
_HIST_SIDE = 64
_HIST_BINS = (16, 8, 8)  # hue, saturation, value
_HIST_RANGES = [0, 180, 0, 256, 0, 256]


class SamplingConfig(Protocol):
    """What the sampler reads from the policy's ``frame_audit`` section (``policies.schema``)."""

    @property
    def sample_every_s(self) -> float | None:
        """One uniform sample every this many seconds (or ``None``: use frames)."""
        ...

    @property
    def sample_every_frames(self) -> int | None:
        """One uniform sample every this many frames (or ``None``: use seconds)."""
        ...

    @property
    def scene_cut_threshold(self) -> float:
        """Histogram distance in [0, 1] at or above which a frame starts a new shot."""
        ...

    @property
    def always_first_last(self) -> bool:
        """Always sample the first and the last frame."""
        ...


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """A plain :class:`SamplingConfig`, for benchmarks and tools that have no policy at hand."""

    sample_every_s: float | None = 0.25
    sample_every_frames: int | None = None
    scene_cut_threshold: float = 0.35
    always_first_last: bool = True

    def __post_init__(self) -> None:
        if (self.sample_every_s is None) == (self.sample_every_frames is None):
            raise ValueError("set exactly one of sample_every_s and sample_every_frames")
        if self.sample_every_s is not None and not self.sample_every_s > 0:
            raise ValueError(f"sample_every_s must be > 0, got {self.sample_every_s}")
        if self.sample_every_frames is not None and self.sample_every_frames < 1:
            raise ValueError(f"sample_every_frames must be >= 1, got {self.sample_every_frames}")
        if not 0.0 < self.scene_cut_threshold <= 1.0:
            raise ValueError(
                f"scene_cut_threshold must be in (0, 1], got {self.scene_cut_threshold}"
            )


def sampling_step(config: SamplingConfig, fps: float) -> float:
    """The uniform sampling step in frames (may be fractional, at least 1)."""
    if config.sample_every_frames is not None:
        return float(max(1, config.sample_every_frames))
    if config.sample_every_s is None:
        raise ValueError("frame_audit: set one of sample_every_s and sample_every_frames")
    return max(1.0, config.sample_every_s * fps)


def check_frames(frames: npt.NDArray[np.uint8], fps: float) -> None:
    """Raise ``ValueError`` naming the problem unless ``frames`` is ``(T>=1, H, W, 3) uint8``."""
    if not isinstance(frames, np.ndarray):
        raise ValueError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3) RGB, got {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {frames.dtype}")
    if frames.shape[0] < 1 or frames.shape[1] < 1 or frames.shape[2] < 1:
        raise ValueError(f"frames must hold at least one non-empty frame, got {frames.shape}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")


def uniform_indices(n_frames: int, step: float) -> list[int]:
    """Frame indices ``floor(k * step)`` for ``k = 0, 1, ...`` below ``n_frames``."""
    if step <= 1.0:
        return list(range(n_frames))
    count = int(np.ceil(n_frames / step))
    picked = np.floor(np.arange(count) * step).astype(np.int64)
    return sorted({int(i) for i in picked if i < n_frames})


def _histogram(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    small = cv2.resize(frame, (_HIST_SIDE, _HIST_SIDE), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(_HIST_BINS), _HIST_RANGES)
    cv2.normalize(hist, hist, alpha=1.0, norm_type=cv2.NORM_L1)
    return np.asarray(hist, dtype=np.float32)


def cut_distances(frames: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """Bhattacharyya distance between HSV histograms of frames ``i - 1`` and ``i``.

    Entry ``i`` compares frame ``i`` with its predecessor; entry 0 is 0.
    """
    out = np.zeros(frames.shape[0], dtype=np.float64)
    previous = _histogram(frames[0])
    for i in range(1, frames.shape[0]):
        current = _histogram(frames[i])
        out[i] = cv2.compareHist(previous, current, cv2.HISTCMP_BHATTACHARYYA)
        previous = current
    return out


def scene_cut_indices(frames: npt.NDArray[np.uint8], threshold: float) -> list[int]:
    """Indices of frames that start a new shot (never 0: the first shot starts at 0)."""
    distances = cut_distances(frames)
    return [int(i) for i in np.flatnonzero(distances >= threshold) if i > 0]


def sample_frames(
    frames: npt.NDArray[np.uint8], fps: float, config: SamplingConfig
) -> list[SampledFrame]:
    """Sample a clip for the frame audit (see the module docstring for the exact rule).

    ``frames`` is ``(T, H, W, 3)`` uint8 RGB; ``fps`` its frame rate. Returns sampled frames
    sorted by index, without duplicates, each with ``timestamp_s = index / fps``. The images are
    views into ``frames`` (no copy).
    """
    check_frames(frames, fps)
    n = int(frames.shape[0])
    picked = set(uniform_indices(n, sampling_step(config, fps)))
    picked.update(scene_cut_indices(frames, config.scene_cut_threshold))
    if config.always_first_last:
        picked.update((0, n - 1))
    return [SampledFrame(index=i, timestamp_s=i / fps, image=frames[i]) for i in sorted(picked)]
