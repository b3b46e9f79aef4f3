"""The whole frame audit of one generated video, in one call: sample, classify, decide.

::

    frames (T, H, W, 3) uint8 RGB, fps
      -> sample_frames            uniform + scene cuts + first/last, exact timestamps
      -> every frame classifier   concurrently (frames split across cores), within the budget
      -> decide_release           per category k-of-n consecutive frames, review band
      -> FrameAuditResult         sampled frames, verdicts, decision, model versions, timings

Fail closed: a classifier that raises, times out, or answers with the wrong shape contributes
error verdicts (score 1.0, ``"error: ..."`` evidence) for the categories it covers, and the
decision withholds the video with a reason of source ``"error"``. A timed-out classifier's
threads cannot be killed in Python; they are abandoned (results ignored) and the next audit
starts fresh threads, so one slow call cannot stall later audits. A classifier with
:data:`MAX_ABANDONED_CALLS` such calls still running gets no new work: it fails closed at once
until they return.

Classifiers are built once per process by :class:`FrameClassifierCache` (the CLIP concept
classifier once per set of policy concepts); see :func:`load_frame_classifiers`.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from audit.records import FrameRef
from classifiers.base import CATEGORIES, Category, Evidence, FrameClassifier, SampledFrame, Verdict
from classifiers.frame.common import error_verdicts, is_error_verdict
from classifiers.frame.registry import (
    FRAME_CLASSIFIERS,
    FailedFrameClassifier,
    covered_categories,
    policy_cache_key,
)
from classifiers.frame.sampler import sample_frames
from gateway.settings import Settings
from policies.decision import Action, Decision, Reason
from policies.engine import with_thresholds
from policies.release import decide_release
from policies.resolved import ResolvedPolicy


@dataclass(frozen=True, slots=True)
class FrameAuditResult:
    """The outcome of one video's frame audit.

    ``sampled`` lists every frame the classifiers saw (index, exact timestamp), sorted.
    ``verdicts`` holds one verdict per (frame, category, classifier), plus error verdicts for a
    classifier that failed, each with ``threshold`` set to the policy threshold its score
    reached (``block_at``, else ``review_at``) for the audit log. ``model_versions`` maps each
    classifier name to ``"<model_id>@<model_version>"``. ``timings_ms`` has ``sample``,
    ``classify:<name>`` per classifier, ``decide`` and ``total`` (milliseconds).
    """

    sampled: tuple[FrameRef, ...]
    verdicts: tuple[Verdict, ...]
    decision: Decision
    model_versions: dict[str, str] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def released(self) -> bool:
        """True only when the decision is ``allow``: the video may be served."""
        return self.decision.action is Action.ALLOW

    @property
    def policy_version(self) -> str:
        """The policy version the decision was made under."""
        return self.decision.policy_version


def _categories_of(clf: FrameClassifier, policy: ResolvedPolicy) -> tuple[Category, ...]:
    declared = getattr(clf, "categories", None)
    if declared is not None:
        return tuple(declared)
    return covered_categories(clf.name, policy)


def _check_output(
    clf: FrameClassifier,
    verdicts: list[Verdict],
    frames: Sequence[SampledFrame],
    categories: tuple[Category, ...],
) -> None:
    """Raise ``ValueError`` unless there is exactly one in-range verdict per (frame, category)."""
    expected = {(f.index, c) for f in frames for c in categories}
    seen: set[tuple[int, Category]] = set()
    for v in verdicts:
        index = next((e.frame_index for e in v.evidence if e.frame_index is not None), None)
        key = (index if index is not None else -1, v.category)
        if v.classifier != clf.name or key not in expected or key in seen:
            raise ValueError(
                f"{clf.name} returned an unexpected verdict ({v.classifier}, {v.category}, "
                f"frame {index}); expected one per sampled frame and covered category"
            )
        if not (math.isfinite(v.score) and 0.0 <= v.score <= 1.0):
            raise ValueError(f"{clf.name} returned score {v.score} outside [0, 1]")
        seen.add(key)
    if seen != expected:
        raise ValueError(f"{clf.name} left {len(expected - seen)} (frame, category) pairs unscored")


def default_audit_threads() -> int:
    """Chunks each classifier's frames are split into: one per CPU core this process may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _split(frames: Sequence[SampledFrame], parts: int) -> list[Sequence[SampledFrame]]:
    """``frames`` in at most ``parts`` contiguous, near-equal, non-empty slices."""
    parts = max(1, min(parts, len(frames)))
    bounds = [round(i * len(frames) / parts) for i in range(parts + 1)]
    return [frames[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@dataclass(frozen=True, slots=True)
class _Run:
    verdicts: list[Verdict]
    start: float
    end: float


MAX_ABANDONED_CALLS = 8
"""A classifier with this many timed-out calls still running gets no new work (fails closed)."""


class _AbandonedCalls:
    """Timed-out classifier calls still running, per classifier (Python cannot kill them).

    Without this, a classifier that hangs forever would strand more threads on every audit.
    """

    def __init__(self) -> None:
        # id -> (classifier, count); holding the classifier keeps its id from being reused.
        self._running: dict[int, tuple[FrameClassifier, int]] = {}
        self._lock = threading.Lock()

    def add(self, clf: FrameClassifier, futures: Sequence[Future[_Run]]) -> None:
        """Count ``futures`` that are still running; each is uncounted when it returns."""
        for future in futures:
            if future.cancel() or future.done():
                continue
            with self._lock:
                _, count = self._running.get(id(clf), (clf, 0))
                self._running[id(clf)] = (clf, count + 1)
            future.add_done_callback(functools.partial(self._finished, id(clf)))

    def _finished(self, key: int, _future: Future[_Run]) -> None:
        with self._lock:
            clf, count = self._running.pop(key)
            if count > 1:
                self._running[key] = (clf, count - 1)

    def running(self, clf: FrameClassifier) -> int:
        """How many of ``clf``'s timed-out calls have not returned yet."""
        with self._lock:
            held, count = self._running.get(id(clf), (clf, 0))
            return count if held is clf else 0


_ABANDONED = _AbandonedCalls()


def _timed(clf: FrameClassifier, frames: Sequence[SampledFrame]) -> _Run:
    start = time.perf_counter()
    verdicts = clf.classify(frames)
    return _Run(verdicts, start, time.perf_counter())


def _collect(
    clf: FrameClassifier,
    futures: Sequence[Future[_Run]],
    frames: Sequence[SampledFrame],
    policy: ResolvedPolicy,
    deadline: float,
    budget_s: float,
) -> tuple[list[Verdict], float]:
    """The classifier's verdicts and wall time (ms), or error verdicts when it failed."""
    categories = _categories_of(clf, policy)
    started = time.perf_counter()
    try:
        runs = [f.result(timeout=max(0.0, deadline - time.perf_counter())) for f in futures]
        verdicts = [v for run in runs for v in run.verdicts]
        _check_output(clf, verdicts, frames, categories)
        if not runs:
            return verdicts, 0.0
        return verdicts, (max(r.end for r in runs) - min(r.start for r in runs)) * 1000.0
    except FutureTimeout:
        _ABANDONED.add(clf, futures)
        message = f"{clf.name} timed out: no answer within the {budget_s:g}s frame-audit budget"
    except Exception as exc:  # any failure withholds the video; the message says which and why
        message = f"{clf.name} failed: {type(exc).__name__}: {exc}"
    waited_ms = (time.perf_counter() - started) * 1000.0
    return error_verdicts(clf.name, clf.model_id, clf.model_version, categories, message), waited_ms


def _stuck(clf: FrameClassifier) -> bool:
    return _ABANDONED.running(clf) >= MAX_ABANDONED_CALLS


def _stuck_verdicts(clf: FrameClassifier, policy: ResolvedPolicy) -> list[Verdict]:
    message = (
        f"{clf.name} is still stuck in {_ABANDONED.running(clf)} calls that timed out earlier; "
        "not started again (restart the worker if it does not recover)"
    )
    categories = _categories_of(clf, policy)
    return error_verdicts(clf.name, clf.model_id, clf.model_version, categories, message)


def audit_frames(
    frames: npt.NDArray[np.uint8],
    fps: float,
    policy: ResolvedPolicy,
    classifiers: Sequence[FrameClassifier],
    *,
    timeout_s: float,
    threads: int | None = None,
    minor_mentions: Sequence[Evidence] = (),
) -> FrameAuditResult:
    """Sample ``frames``, run every classifier on the samples, and decide release or withhold.

    ``frames`` is ``(T, H, W, 3)`` uint8 RGB at ``fps``. The time budget is the smaller of
    ``timeout_s`` and the policy's ``frame_audit.timeout_s``, counted from the call; a
    classifier that has not answered by then is a fail-closed error. Each classifier's frames
    are split into ``threads`` chunks (default: one per CPU core), every chunk in its own
    thread, so a fast model's idle core takes on a slow model's work and a hung classifier only
    holds its own threads. ``minor_mentions`` (the prompt's evidence that it mentions a child)
    turns on the sexual-with-a-minor rule (see :func:`policies.release.decide_release`).
    Raises ``ValueError`` for malformed frames or fps (the caller withholds, see
    :func:`failed_audit`).
    """
    t0 = time.perf_counter()
    budget_s = min(timeout_s, policy.policy.frame_audit.timeout_s)
    deadline = t0 + budget_s
    sampled = sample_frames(frames, fps, policy.policy.frame_audit)
    timings: dict[str, float] = {"sample": (time.perf_counter() - t0) * 1000.0}
    verdicts: list[Verdict] = []
    model_versions: dict[str, str] = {}
    if not classifiers:
        verdicts += error_verdicts(
            "frame-audit",
            "frame-audit",
            "none",
            [c for c in CATEGORIES if policy.stage(c, "frame").enabled],
            "no frame classifiers configured; list some under the policy's classifiers.frame",
        )
    chunks = _split(sampled, threads if threads is not None else default_audit_threads())
    pool = ThreadPoolExecutor(
        max_workers=max(1, len(classifiers) * len(chunks)), thread_name_prefix="frame-audit"
    )
    try:
        futures = [
            (clf, [] if _stuck(clf) else [pool.submit(_timed, clf, c) for c in chunks])
            for clf in classifiers
        ]
        for clf, parts in futures:
            if parts:
                got, elapsed_ms = _collect(clf, parts, sampled, policy, deadline, budget_s)
            else:
                got, elapsed_ms = _stuck_verdicts(clf, policy), 0.0
            verdicts += got
            timings[f"classify:{clf.name}"] = elapsed_ms
            model_versions[clf.name] = f"{clf.model_id}@{clf.model_version}"
    finally:
        # A hung classifier keeps its threads; don't wait for them.
        pool.shutdown(wait=False, cancel_futures=True)
    t_decide = time.perf_counter()
    decision = decide_release(policy, verdicts, sampled, minor_mentions=minor_mentions)
    now = time.perf_counter()
    timings["decide"] = (now - t_decide) * 1000.0
    timings["total"] = (now - t0) * 1000.0
    return FrameAuditResult(
        sampled=tuple(FrameRef(f.index, f.timestamp_s) for f in sampled),
        verdicts=tuple(with_thresholds(policy, "frame", verdicts)),
        decision=decision,
        model_versions=model_versions,
        timings_ms=timings,
    )


def failed_audit(policy: ResolvedPolicy, message: str) -> FrameAuditResult:
    """A fail-closed result for an audit that could not run at all (e.g. malformed frames).

    The decision blocks with one ``"error"`` reason per category enabled at the frame stage
    (none of them was checked), each carrying ``message``.
    """
    evidence = (Evidence(detail=f"error: {message}"),)
    reasons = tuple(
        Reason(
            category=c,
            action=Action.BLOCK,
            stage="frame",
            source="error",
            classifier="frame-audit",
            score=1.0,
            threshold=None,
            evidence=evidence,
            message=f"frame audit did not run, video withheld: {message}",
        )
        for c in CATEGORIES
        if policy.stage(c, "frame").enabled
    )
    decision = Decision(
        action=Action.BLOCK,
        reasons=reasons,
        policy_version=policy.version,
        category_scores={r.category: 1.0 for r in reasons},
    )
    return FrameAuditResult(sampled=(), verdicts=(), decision=decision)


_MAX_VARIANTS = 8
"""Policy-dependent instances (CLIP concept sets) kept per classifier name."""


class FrameClassifierCache:
    """Builds each frame classifier once per process and hands out the set a policy names.

    Call it with a resolved policy: returns the classifiers listed in the policy's
    ``classifiers.frame``, in that order. A classifier whose construction fails (unknown name,
    missing CLIP weights) is returned as a :class:`FailedFrameClassifier`, which fails every
    audit closed; it is not cached, so fixing the file takes effect on the next audit.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._built: dict[tuple[str, str], FrameClassifier] = {}
        self._lock = threading.Lock()

    def __call__(self, policy: ResolvedPolicy) -> list[FrameClassifier]:
        return [self.get(name, policy) for name in policy.policy.classifiers.frame]

    def get(self, name: str, policy: ResolvedPolicy) -> FrameClassifier:
        """The classifier ``name`` for ``policy`` (built on first use)."""
        factory = FRAME_CLASSIFIERS.get(name)
        if factory is None:
            known = ", ".join(sorted(FRAME_CLASSIFIERS))
            return FailedFrameClassifier(
                name,
                covered_categories(name, policy),
                f"unknown frame classifier {name!r} in the policy's classifiers.frame; "
                f"use one of: {known}",
            )
        key = (name, policy_cache_key(name, policy))
        with self._lock:
            cached = self._built.get(key)
            if cached is not None:
                return cached
            try:
                built = factory(self.settings, policy)
            except Exception as exc:  # fail closed with the cause, retry on the next audit
                return FailedFrameClassifier(
                    name, covered_categories(name, policy), f"{type(exc).__name__}: {exc}"
                )
            # Tenants may use different concept lists; keep the most recent few per name.
            same_name = [k for k in self._built if k[0] == name]
            for old in same_name[: max(0, len(same_name) - _MAX_VARIANTS + 1)]:
                del self._built[old]
            self._built[key] = built
            return built

    def load_errors(self, policy: ResolvedPolicy) -> dict[str, str]:
        """Per classifier the policy names, why it cannot run (empty when all loaded)."""
        errors = {}
        for clf in self(policy):
            message = getattr(clf, "message", None) or getattr(clf, "load_error", None)
            if message:
                errors[clf.name] = str(message)
        return errors


def load_frame_classifiers(settings: Settings) -> FrameClassifierCache:
    """A process-wide classifier cache: ``cache(policy) -> list[FrameClassifier]``."""
    return FrameClassifierCache(settings)


__all__ = [
    "FrameAuditResult",
    "FrameClassifierCache",
    "audit_frames",
    "failed_audit",
    "is_error_verdict",
    "load_frame_classifiers",
]
