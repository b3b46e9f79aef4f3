"""The whole frame audit of one generated video, in one call: sample, classify, decide.

::

    frames (T, H, W, 3) uint8 RGB, fps
      -> sample_frames            uniform + scene cuts + first/last, exact timestamps
      -> every frame classifier   on one thread per core (small pieces of frames, the
                                  costliest first), within the budget
      -> decide_release           per category k-of-n consecutive frames, review band
      -> FrameAuditResult         sampled frames, verdicts, decision, model versions, timings

Fail closed: a classifier that raises, times out, or answers with the wrong shape contributes
error verdicts (score 1.0, ``"error: ..."`` evidence) for the categories it covers, and the
decision withholds the video with a reason of source ``"error"``. A timed-out classifier's
threads cannot be killed in Python; they are abandoned (results ignored) and the next audit
starts fresh threads, so one slow call cannot stall later audits. A classifier with
:data:`MAX_ABANDONED_CALLS` such calls still running gets no new work: it fails closed at once
until they return.

Classifiers are built once per process by :class:`~gateway.frame_classifiers.FrameClassifierCache`
(the CLIP concept classifier once per set of policy concepts).
"""

from __future__ import annotations

import collections
import functools
import math
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from audit.records import FrameRef
from classifiers.base import (
    CATEGORIES,
    Category,
    Evidence,
    FrameClassifier,
    SampledFrame,
    Verdict,
    error_text,
    error_verdicts,
    is_error_verdict,
)
from classifiers.frame.sampler import sample_frames
from gateway import metrics
from gateway.frame_classifiers import (
    FrameClassifierCache,
    covered_categories,
    load_frame_classifiers,
)
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
    """Threads an audit runs its model calls on: one per CPU core this process may use."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


MAX_PIECE = 4
"""Most frames in one classifier call of an audit (the models batch up to this well)."""


def _pieces(frames: Sequence[SampledFrame], threads: int) -> list[Sequence[SampledFrame]]:
    """``frames`` in consecutive slices of 1..:data:`MAX_PIECE` frames, about two per thread:
    small enough that the threads finish together, big enough for the models' batches."""
    size = max(1, min(MAX_PIECE, math.ceil(len(frames) / (2 * max(1, threads)))))
    return [frames[i : i + size] for i in range(0, len(frames), size)]


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
        took = max(r.end for r in runs) - min(r.start for r in runs)
        metrics.observe_classifier("frame", clf.name, took)
        return verdicts, took * 1000.0
    except FutureTimeout:
        metrics.count_classifier_error("frame", clf.name, "timeout")
        if any(f.running() or f.done() for f in futures):
            message = f"{clf.name} timed out: no answer within the {budget_s:g}s frame-audit budget"
        else:
            message = (
                f"{clf.name} did not start within the {budget_s:g}s frame-audit budget: "
                "every audit thread was busy with another classifier"
            )
        _ABANDONED.add(clf, futures)
    except Exception as exc:  # any failure withholds the video; the message says which and why
        metrics.count_classifier_error("frame", clf.name, "error")
        message = f"{clf.name} failed: {type(exc).__name__}: {exc}"
    waited_ms = (time.perf_counter() - started) * 1000.0
    return error_verdicts(
        clf.name, message, categories, model_id=clf.model_id, model_version=clf.model_version
    ), waited_ms


def _stuck(clf: FrameClassifier) -> bool:
    return _ABANDONED.running(clf) >= MAX_ABANDONED_CALLS


def _stuck_verdicts(clf: FrameClassifier, policy: ResolvedPolicy) -> list[Verdict]:
    message = (
        f"{clf.name} is still stuck in {_ABANDONED.running(clf)} calls that timed out earlier; "
        "not started again (restart the worker if it does not recover)"
    )
    categories = _categories_of(clf, policy)
    metrics.count_classifier_error("frame", clf.name, "timeout")
    return error_verdicts(
        clf.name, message, categories, model_id=clf.model_id, model_version=clf.model_version
    )


class _FrameCosts:
    """Per classifier name, a running estimate of the wall seconds one frame takes."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float, frames: int) -> None:
        """Fold in one call of ``frames`` frames that took ``seconds``."""
        if frames <= 0:
            return
        per_frame = seconds / frames
        with self._lock:
            old = self._seconds.get(name)
            self._seconds[name] = per_frame if old is None else 0.8 * old + 0.2 * per_frame

    def get(self, name: str) -> float | None:
        """The estimate, or None before the first call."""
        with self._lock:
            return self._seconds.get(name)


_COSTS = _FrameCosts()


STARVED_S = 0.25
"""A classifier with pieces waiting and no call running this long while every audit thread is
busy (a hung call elsewhere) gets one more thread."""


class _Scheduler:
    """Runs every ``(classifier, pieces)`` call on ``threads`` daemon threads, started here.

    A free thread takes the first piece of a classifier that has not started yet, else the
    costliest waiting piece (frames x the model's cost per frame from earlier calls), so every
    model starts at once, the small pieces come last and the cores finish together. A hung
    call cannot starve the other classifiers: :meth:`wait` starts one more thread when a
    classifier has waited :data:`STARVED_S` with no call running and no thread free.
    :attr:`futures` holds, per classifier in the order given, one future per piece.
    """

    def __init__(
        self, work: Sequence[tuple[FrameClassifier, Sequence[Sequence[SampledFrame]]]], threads: int
    ) -> None:
        self._lock = threading.Lock()
        self._queues = [
            (clf, collections.deque((piece, Future[_Run]()) for piece in pieces))
            for clf, pieces in work
        ]
        self.futures: list[list[Future[_Run]]] = [[f for _, f in q] for _, q in self._queues]
        self._running = [0] * len(work)
        self._started = [0] * len(work)
        self._idle_since = [time.perf_counter()] * len(work)
        self._workers = 0
        self._in_call = 0
        total = sum(len(q) for _, q in self._queues)
        with self._lock:
            for _ in range(min(total, max(1, threads))):
                self._spawn()

    def _spawn(self) -> None:
        """Start one more worker thread (call with the lock held)."""
        self._workers += 1
        name = f"frame-audit-{self._workers}"
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def _next(self) -> tuple[int, Sequence[SampledFrame], Future[_Run]] | None:
        with self._lock:
            ready = [i for i, (_, queue) in enumerate(self._queues) if queue]
            if not ready:
                self._workers -= 1
                return None
            fresh = [i for i in ready if self._started[i] == 0]
            known = [c for c in (_COSTS.get(clf.name) for clf, _ in self._queues) if c]
            default = max(known, default=1.0)

            def cost(k: int) -> float:
                clf, queue = self._queues[k]
                return len(queue[0][0]) * (_COSTS.get(clf.name) or default)

            i = max(fresh or ready, key=lambda k: (cost(k), -k))
            piece, future = self._queues[i][1].popleft()
            self._running[i] += 1
            self._started[i] += 1
            self._in_call += 1
            return i, piece, future

    def _work(self) -> None:
        while (item := self._next()) is not None:
            i, piece, future = item
            clf = self._queues[i][0]
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        run = _timed(clf, piece)
                    except BaseException as exc:  # handed to the audit through the future
                        future.set_exception(exc)
                    else:
                        _COSTS.add(clf.name, run.end - run.start, len(piece))
                        future.set_result(run)
            finally:
                with self._lock:
                    self._running[i] -= 1
                    self._in_call -= 1
                    if self._running[i] == 0:
                        self._idle_since[i] = time.perf_counter()

    def wait(self, deadline: float) -> None:
        """Return when every call is done or at ``deadline`` (``time.perf_counter``), starting
        a thread for a starved classifier meanwhile (see the class docstring)."""
        pending: set[Future[_Run]] = {f for futures in self.futures for f in futures}
        while pending:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            _, pending = futures_wait(pending, timeout=min(remaining, STARVED_S / 2))
            with self._lock:
                now = time.perf_counter()
                starved = any(
                    queue and self._running[i] == 0 and now - self._idle_since[i] > STARVED_S
                    for i, (_, queue) in enumerate(self._queues)
                )
                if starved and self._in_call >= self._workers:
                    self._spawn()

    def cancel_pending(self) -> None:
        """Cancel every call that has not started (running ones finish on their own)."""
        for futures in self.futures:
            for future in futures:
                future.cancel()


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
    classifier that has not answered by then is a fail-closed error. The model calls run on
    ``threads`` threads (default: one per CPU core, so the audit does not oversubscribe the
    cores; the MP4 encoder runs beside it): every classifier's frames are cut into small pieces
    (:func:`_pieces`) and a free thread takes the next one (see :class:`_Scheduler`), so the
    cores finish together whatever the models cost. A classifier starved by a hung one gets a
    thread of its own after :data:`STARVED_S`; one still starved at the deadline fails closed
    with a message saying it never started. ``minor_mentions`` (the prompt's evidence that it
    mentions a child) turns on the sexual-with-a-minor rule (see
    :func:`policies.release.decide_release`).
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
            "no frame classifiers configured; list some under the policy's classifiers.frame",
            [c for c in CATEGORIES if policy.stage(c, "frame").enabled],
            model_version="none",
        )
    n_threads = max(1, threads if threads is not None else default_audit_threads())
    verdicts += _run_classifiers(
        classifiers,
        _pieces(sampled, n_threads),
        sampled,
        policy,
        deadline=deadline,
        budget_s=budget_s,
        threads=n_threads,
        timings=timings,
        model_versions=model_versions,
    )
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


@dataclass(frozen=True, slots=True)
class ImageScores:
    """The frame classifiers' verdicts on one uploaded image (frame 0), with their versions and
    per-classifier wall times (ms); error verdicts for a classifier that failed or timed out."""

    verdicts: tuple[Verdict, ...]
    model_versions: dict[str, str]
    timings_ms: dict[str, float]


def classify_image(
    image: npt.NDArray[np.uint8],
    policy: ResolvedPolicy,
    classifiers: Sequence[FrameClassifier],
    *,
    timeout_s: float,
    threads: int | None = None,
) -> ImageScores:
    """Run every classifier on one image (``(H, W, 3)`` uint8 RGB) within ``timeout_s``: the
    one-frame case of :func:`classify_frames`."""
    frames = [SampledFrame(index=0, timestamp_s=0.0, image=image)]
    return classify_frames(frames, policy, classifiers, timeout_s=timeout_s, threads=threads)


def classify_frames(
    frames: Sequence[SampledFrame],
    policy: ResolvedPolicy,
    classifiers: Sequence[FrameClassifier],
    *,
    timeout_s: float,
    threads: int | None = None,
) -> ImageScores:
    """Run every classifier on uploaded ``frames`` (an image, or an uploaded video's sampled
    frames) within ``timeout_s``.

    The same threads, checks and fail-closed rules as :func:`audit_frames` (a classifier that
    raises, times out or answers with the wrong shape yields error verdicts); the caller
    decides with the ``input`` stage (:func:`policies.engine.decide` for an image,
    :func:`policies.release.decide_release` with ``stage="input"`` for a video).
    """
    deadline = time.perf_counter() + timeout_s
    verdicts: list[Verdict] = []
    model_versions: dict[str, str] = {}
    timings: dict[str, float] = {}
    if not classifiers:
        verdicts += error_verdicts(
            "input-check",
            "no classifiers configured for uploads; list some under the policy's classifiers.input",
            [c for c in CATEGORIES if policy.stage(c, "input").enabled],
            model_version="none",
        )
    n_threads = max(1, threads if threads is not None else default_audit_threads())
    verdicts += _run_classifiers(
        classifiers,
        _pieces(frames, n_threads) if len(frames) > 1 else [frames],
        frames,
        policy,
        deadline=deadline,
        budget_s=timeout_s,
        threads=n_threads if len(frames) > 1 else max(1, threads or len(classifiers)),
        timings=timings,
        model_versions=model_versions,
    )
    return ImageScores(tuple(verdicts), model_versions, timings)


def _run_classifiers(
    classifiers: Sequence[FrameClassifier],
    pieces: Sequence[Sequence[SampledFrame]],
    frames: Sequence[SampledFrame],
    policy: ResolvedPolicy,
    *,
    deadline: float,
    budget_s: float,
    threads: int,
    timings: dict[str, float],
    model_versions: dict[str, str],
) -> list[Verdict]:
    """Every classifier on every piece of ``frames`` on ``threads`` threads (see
    :class:`_Scheduler`) until ``deadline``; a classifier stuck from an earlier call, or one
    that fails or times out, yields fail-closed error verdicts. Fills in ``timings``
    (``classify:<name>``, ms) and ``model_versions``."""
    verdicts: list[Verdict] = []
    stuck = [_stuck(clf) for clf in classifiers]
    work = [(clf, [] if dead else pieces) for clf, dead in zip(classifiers, stuck, strict=True)]
    scheduler = _Scheduler(work, threads)
    try:
        scheduler.wait(deadline)
        for clf, parts, dead in zip(classifiers, scheduler.futures, stuck, strict=True):
            if not dead:
                got, elapsed_ms = _collect(clf, parts, frames, policy, deadline, budget_s)
            else:
                got, elapsed_ms = _stuck_verdicts(clf, policy), 0.0
            verdicts += got
            timings[f"classify:{clf.name}"] = elapsed_ms
            model_versions[clf.name] = f"{clf.model_id}@{clf.model_version}"
    finally:
        # A hung classifier keeps its threads; don't wait for them, start nothing more.
        scheduler.cancel_pending()
    return verdicts


def failed_audit(policy: ResolvedPolicy, message: str) -> FrameAuditResult:
    """A fail-closed result for an audit that could not run at all (e.g. malformed frames).

    The decision blocks with one ``"error"`` reason per category enabled at the frame stage
    (none of them was checked), each carrying ``message``.
    """
    evidence = (Evidence(detail=error_text(message)),)
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


__all__ = [
    "FrameAuditResult",
    "FrameClassifierCache",
    "audit_frames",
    "classify_frames",
    "classify_image",
    "failed_audit",
    "is_error_verdict",
    "load_frame_classifiers",
]
