"""Frame sampler: uniform grid, every shot seen, first/last frames, exact timestamps."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from classifiers.frame.sampler import (
    SamplingParams,
    cut_distances,
    sample_frames,
    scene_cut_indices,
    uniform_indices,
)

FPS = 12.0


def _shot(n: int, background: tuple[int, int, int], colour: tuple[int, int, int], size: int = 64):
    """``n`` frames of a square moving right over a plain background (motion, no cut)."""
    frames = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        frames[i] = background
        x = 4 + i * 2
        cv2.rectangle(frames[i], (x, 20), (x + 12, 32), colour, -1)
    return frames


def three_shot_clip() -> npt.NDArray[np.uint8]:
    """48 frames at 12 fps: cuts at frames 17 and 19 (a 2-frame middle shot) and 30."""
    return np.concatenate(
        [
            _shot(17, (200, 40, 40), (250, 250, 250)),
            _shot(2, (30, 30, 200), (250, 200, 0)),
            _shot(11, (20, 160, 40), (0, 0, 0)),
            _shot(18, (230, 230, 230), (120, 0, 120)),
        ]
    )


def test_cuts_found_exactly_and_motion_is_not_a_cut() -> None:
    clip = three_shot_clip()
    assert scene_cut_indices(clip, 0.35) == [17, 19, 30]
    distances = cut_distances(clip)
    within_shot = np.delete(distances, [0, 17, 19, 30])
    assert within_shot.max() < 0.2  # a moving square changes the histogram a little


def test_every_shot_is_sampled_even_between_uniform_samples() -> None:
    clip = three_shot_clip()
    # One uniform sample every 2 s = every 24 frames: frames 0 and 24 only.
    params = SamplingParams(sample_every_s=2.0, scene_cut_threshold=0.35)
    picked = [f.index for f in sample_frames(clip, FPS, params)]
    assert picked == [0, 17, 19, 24, 30, 47]
    shots = [(0, 17), (17, 19), (19, 30), (30, 48)]
    for start, end in shots:
        assert any(start <= i < end for i in picked), f"shot {start}-{end} not sampled"


def test_timestamps_are_exact_and_images_are_the_frames() -> None:
    clip = three_shot_clip()
    sampled = sample_frames(clip, FPS, SamplingParams(sample_every_s=0.5))
    for frame in sampled:
        assert frame.timestamp_s == frame.index / FPS
        assert frame.image.shape == (64, 64, 3)
        assert np.array_equal(frame.image, clip[frame.index])
    indices = [f.index for f in sampled]
    assert indices == sorted(set(indices))
    assert indices[0] == 0 and indices[-1] == 47


@pytest.mark.parametrize(
    ("n", "step", "expected", "why"),
    [
        (10, 1.0, list(range(10)), "a step of one frame takes every frame"),
        (10, 0.4, list(range(10)), "a step below one frame still takes each frame once"),
        (10, 3.0, [0, 3, 6, 9], "whole-frame step"),
        (10, 2.5, [0, 2, 5, 7], "fractional step floors each sample time"),
        (1, 4.0, [0], "a one-frame clip"),
    ],
)
def test_uniform_grid(n: int, step: float, expected: list[int], why: str) -> None:
    assert uniform_indices(n, step) == expected, why


def test_sample_every_frames_and_first_last_switch() -> None:
    clip = _shot(10, (100, 100, 100), (250, 0, 0))
    every_4 = SamplingParams(sample_every_s=None, sample_every_frames=4)
    assert [f.index for f in sample_frames(clip, FPS, every_4)] == [0, 4, 8, 9]
    no_ends = SamplingParams(sample_every_s=None, sample_every_frames=4, always_first_last=False)
    assert [f.index for f in sample_frames(clip, FPS, no_ends)] == [0, 4, 8]


def test_policy_frame_audit_section_is_a_sampling_config() -> None:
    from config.settings import PACKAGE_POLICY
    from policies.loader import load_policy

    audit = load_policy(PACKAGE_POLICY).policy.frame_audit
    sampled = sample_frames(three_shot_clip(), FPS, audit)
    step = round(audit.sample_every_s * FPS)  # type: ignore[operator]
    expected = set(range(0, 48, step)) | {17, 19, 30, 47}
    assert [f.index for f in sampled] == sorted(expected)


@pytest.mark.parametrize(
    ("frames", "fps", "message"),
    [
        (np.zeros((4, 8, 8), np.uint8), 12.0, "shape"),
        (np.zeros((4, 8, 8, 4), np.uint8), 12.0, "shape"),
        (np.zeros((4, 8, 8, 3), np.float32), 12.0, "uint8"),
        (np.zeros((0, 8, 8, 3), np.uint8), 12.0, "at least one"),
        (np.zeros((4, 8, 8, 3), np.uint8), 0.0, "fps"),
        (np.zeros((4, 8, 8, 3), np.uint8), float("nan"), "fps"),
    ],
)
def test_bad_input_is_a_clear_error(frames: np.ndarray, fps: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_frames(frames, fps, SamplingParams())
