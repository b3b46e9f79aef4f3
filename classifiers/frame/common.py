"""Helpers shared by the frame classifiers: frame evidence, model hashing, output checks.

Error verdicts (a classifier that failed) are :func:`classifiers.base.error_verdicts`, the same
for text and frames.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from classifiers.base import Evidence, SampledFrame
from classifiers.frame.errors import FrameClassifierOutputError


def frame_evidence(frame: SampledFrame, detail: str | None = None) -> Evidence:
    """Evidence naming a sampled frame by index and exact timestamp."""
    return Evidence(frame_index=frame.index, timestamp_s=frame.timestamp_s, detail=detail)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, cached per (path, size, mtime) so a process hashes a model once."""
    stat = path.stat()
    return _sha256_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_probabilities(
    probs: npt.NDArray[np.float32], batch: int, width: int, model: str
) -> npt.NDArray[np.float32]:
    """Return ``probs`` as ``(batch, width)`` float32, or raise if the shape or range is wrong."""
    arr = np.asarray(probs, dtype=np.float32)
    if arr.shape != (batch, width):
        raise FrameClassifierOutputError(
            f"{model}: expected output shape ({batch}, {width}), got {arr.shape}"
        )
    if not np.all(np.isfinite(arr)) or arr.min() < -1e-4 or arr.max() > 1.0 + 1e-4:
        raise FrameClassifierOutputError(
            f"{model}: output outside [0, 1]: {arr.min()}..{arr.max()}"
        )
    return np.clip(arr, 0.0, 1.0)


def batches(frames: Sequence[SampledFrame], size: int) -> Iterable[Sequence[SampledFrame]]:
    """Consecutive slices of at most ``size`` frames."""
    for start in range(0, len(frames), size):
        yield frames[start : start + size]
