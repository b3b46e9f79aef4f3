"""The backend contract: request checks, output validation, resizing/retiming, the registry."""

from __future__ import annotations

import numpy as np
import pytest

from config.settings import Settings
from generator.base import (
    BackendUnavailable,
    InvalidVideoRequest,
    VideoOutput,
    VideoRequest,
    check_common,
    resize_frames,
    retime_frames,
)
from generator.registry import BACKENDS, get_backend

OK = VideoRequest("a red circle", 2.0, 256, 256)

# (request, field named in the error or None when valid, why)
GOLDEN = [
    (OK, None, "a plain request"),
    (VideoRequest("x", 10.0, 16, 1024, seed=0, fps=60), None, "every bound inclusive"),
    (VideoRequest("   ", 2.0, 256, 256), "prompt", "blank prompt"),
    (VideoRequest("x", 0.0, 256, 256), "seconds", "zero length"),
    (VideoRequest("x", 10.5, 256, 256), "seconds", "longer than the backend allows"),
    (VideoRequest("x", 2.0, 255, 256), "width", "odd width (yuv420p needs even sides)"),
    (VideoRequest("x", 2.0, 256, 2048), "height", "too tall"),
    (VideoRequest("x", 2.0, 8, 256), "width", "too small"),
    (VideoRequest("x", 2.0, 256, 256, fps=0), "fps", "zero fps"),
    (VideoRequest("x", 2.0, 256, 256, seed=-1), "seed", "negative seed"),
    (VideoRequest("x", 2.0, 256, 256, seed=2**32), "seed", "seed past 32 bits"),
]


@pytest.mark.parametrize(("request_", "field", "why"), GOLDEN, ids=[g[2] for g in GOLDEN])
def test_check_common(request_: VideoRequest, field: str | None, why: str) -> None:
    if field is None:
        check_common(request_, max_seconds=10, max_side=1024)
        return
    with pytest.raises(InvalidVideoRequest) as info:
        check_common(request_, max_seconds=10, max_side=1024)
    assert info.value.field == field, why
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((4, 8, 8, 3), dtype=np.float32),
        np.zeros((4, 8, 8), dtype=np.uint8),
        np.zeros((0, 8, 8, 3), dtype=np.uint8),
    ],
)
def test_output_rejects_bad_frames(frames: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        VideoOutput(frames=frames, fps=8, seed=0, backend="b", model_id="m")


def test_output_duration() -> None:
    out = VideoOutput(np.zeros((16, 4, 4, 3), np.uint8), fps=8, seed=1, backend="b", model_id="m")
    assert out.duration_s == 2.0 and out.understood == () and out.ignored == ()


def test_resize_and_retime() -> None:
    frames = np.zeros((16, 64, 64, 3), dtype=np.uint8)
    frames[:, :32] = 200
    big = resize_frames(frames, 128, 96)
    assert big.shape == (16, 96, 128, 3)
    assert big[0, 10, 10, 0] == 200 and big[0, 80, 10, 0] == 0
    assert resize_frames(frames, 64, 64) is frames
    indexed = np.arange(16, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    slow = retime_frames(indexed, 8.0, 8.0, 4.0)  # stretch 2 s to 4 s: each frame twice
    assert slow.shape[0] == 32 and list(slow[:4, 0, 0, 0]) == [0, 0, 1, 1]
    fast = retime_frames(indexed, 8.0, 24.0, 2.0)  # 24 fps: each frame three times
    assert fast.shape[0] == 48 and fast[-1, 0, 0, 0] == 15


def test_registry_is_explicit_and_errors_name_the_choices() -> None:
    assert set(BACKENDS) == {"embedded", "diffusers", "remote"}
    with pytest.raises(KeyError, match="choose one of: diffusers, embedded, remote"):
        get_backend(Settings(), "nope")


def test_unconfigured_backends_say_what_to_set() -> None:
    with pytest.raises(BackendUnavailable, match="REELGUARD_DIFFUSERS_MODEL"):
        get_backend(Settings(diffusers_model=None), "diffusers")
    with pytest.raises(BackendUnavailable, match="REELGUARD_REMOTE_URL"):
        get_backend(Settings(remote_url=None), "remote")
