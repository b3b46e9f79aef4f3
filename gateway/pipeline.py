"""The text check, in one readable place: normalise -> text classifiers -> policy decision.

:class:`TextModerator` is what ``POST /v1/moderations``, ``POST /v1/videos`` and
``reelguard moderate`` call. For each prompt it

1. normalises the text (:func:`classifiers.text.normalize.normalize`), keeping the original;
2. runs every text classifier the tenant's resolved policy names (built once from
   :data:`classifiers.registry.TEXT_CLASSIFIERS` and reused);
3. finds mentions of minors (:func:`classifiers.text.lexicon.find_minor_mentions`), which the
   engine needs for the sexual/minors rule;
4. asks the policy engine (:func:`policies.engine.decide`) for the decision;

and returns a :class:`ModerationOutcome`; callers write it to the audit log with
:func:`moderation_record` (they know the request id and, for videos, the job).

Fail closed: a classifier that cannot be built, raises, returns something that is not a valid
verdict, or runs past its time budget contributes an *error verdict* (score 1.0, evidence
``"error: <ExcType>: <message>"``) for every category it covers; the engine turns that into a
block with source ``"error"``.

Python threads cannot be killed, so budgets are enforced twice: a classifier that returns late
has its result discarded (error verdicts); and each check runs on a daemon worker thread with a
hard deadline, so a classifier that hangs still yields a block on time. The gateway gives a
request one deadline whatever its item count (``deadline_ms``, ``REELGUARD_CHECK_TIMEOUT_MS``);
offline tools leave it unset and get the sum of the classifiers' budgets per prompt plus
:data:`DEADLINE_SLACK_S`. A check that misses its deadline blocks at once, without running
anything expensive again (no blocklist scan, no normaliser); the abandoned thread stops at its
next step (between prompts and classifiers), so it cannot keep burning CPU for long.

Admission control (:class:`Admission`, ``REELGUARD_MAX_PENDING_CHECKS``): the gateway admits at
most that many moderation requests per process at once (``gateway.limits.admission_middleware``,
from the first byte of the request to the last of the answer) and answers one more with 503 and
``Retry-After`` at once; a check abandoned at its deadline keeps a place until its thread
really ends. Under overload the gateway sheds load instead of queueing it without bound, and
never allows anything it did not check.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from audit.records import Endpoint, ModerationRecord
from classifiers.base import (
    CATEGORIES,
    ERROR_MODEL_VERSION,
    Category,
    Evidence,
    PromptText,
    TextClassifier,
    Verdict,
    error_text,
    error_verdicts,
)
from classifiers.registry import TEXT_CLASSIFIERS
from classifiers.text.lexicon import find_minor_mentions
from classifiers.text.normalize import normalize
from gateway import metrics
from policies.decision import Decision
from policies.engine import decide
from policies.resolved import ResolvedPolicy

log = logging.getLogger("reelguard.pipeline")
T = TypeVar("T")

DEADLINE_SLACK_S = 0.5
"""Hard deadline of a check beyond the sum of its classifiers' budgets (normalise, decide)."""
WORKERS = 16
"""Daemon threads that run checks (so a hung classifier cannot block the caller)."""
NORMALIZER = "normalizer"
MINOR_MENTIONS = "minor_mentions"


@dataclass(frozen=True, slots=True)
class ModerationOutcome:
    """The result of checking one prompt.

    ``model_versions`` maps each classifier that ran to ``"<model_id>@<model_version>"``;
    ``latency_ms`` is this prompt's share of the check (normalising to decision).
    """

    tenant: str
    prompt: PromptText
    verdicts: tuple[Verdict, ...]
    decision: Decision
    model_versions: dict[str, str]
    latency_ms: float


def moderation_record(
    outcome: ModerationOutcome,
    *,
    request_id: str,
    created_at: float,
    endpoint: Endpoint = "moderations",
    job_id: str | None = None,
) -> ModerationRecord:
    """The audit record for one outcome (``created_at``: request time, epoch seconds)."""
    return ModerationRecord(
        request_id=request_id,
        tenant=outcome.tenant,
        endpoint=endpoint,
        created_at=created_at,
        original=outcome.prompt.original,
        normalized=outcome.prompt.normalized,
        verdicts=outcome.verdicts,
        decision=outcome.decision,
        model_versions=outcome.model_versions,
        latency_ms=outcome.latency_ms,
        job_id=job_id,
    )


ClassifierFactory = Callable[[], TextClassifier]


class PolicySource(Protocol):
    """Where the moderator gets a tenant's policy (:class:`policies.store.PolicyStore`)."""

    def get(self, tenant: str) -> ResolvedPolicy:
        """The resolved policy ``tenant`` is served (the base policy without an overlay)."""
        ...


class ClassifierTimeout(Exception):
    """A classifier finished, but later than its time budget allows."""


class ChecksOverloaded(Exception):
    """Too many text checks are running or waiting in this process; retry after a moment.

    ``pending`` checks hold the ``limit`` places; ``retry_after_s`` is a hint for clients.
    """

    def __init__(self, pending: int, limit: int, retry_after_s: int = 1) -> None:
        super().__init__(
            f"{pending} text checks are running or waiting (the limit is {limit}, "
            f"REELGUARD_MAX_PENDING_CHECKS); retry after {retry_after_s} s"
        )
        self.pending, self.limit, self.retry_after_s = pending, limit, retry_after_s


class _DeadlinePassed(Exception):
    """Raised inside an abandoned check to stop it at its next step (nobody waits for it)."""


class Admission:
    """A bounded count of moderation work in flight in one process; thread-safe.

    :meth:`enter` takes a place or raises :class:`ChecksOverloaded`; :meth:`leave` gives it
    back. :meth:`hold` takes one regardless of the limit: for a check abandoned at its
    deadline whose thread still runs (its request has left), so hung work still counts.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Places taken now."""
        return self._pending

    def enter(self) -> None:
        """Take a place, or raise :class:`ChecksOverloaded` when all are taken."""
        with self._lock:
            if self._pending >= self.limit:
                raise ChecksOverloaded(self._pending, self.limit)
            self._pending += 1

    def hold(self) -> None:
        """Take a place even past the limit (abandoned work that still runs)."""
        with self._lock:
            self._pending += 1

    def leave(self) -> None:
        """Give a place back."""
        with self._lock:
            self._pending -= 1


class InvalidVerdict(Exception):
    """A classifier returned something that is not a valid :class:`Verdict`."""


def _check_verdicts(name: str, verdicts: object) -> list[Verdict]:
    if not isinstance(verdicts, list):
        raise InvalidVerdict(f"{name} returned {type(verdicts).__name__}, not a list of verdicts")
    for v in verdicts:
        if not isinstance(v, Verdict):
            raise InvalidVerdict(f"{name} returned {type(v).__name__}, not a Verdict")
        if v.category not in CATEGORIES:
            raise InvalidVerdict(f"{name} returned unknown category {v.category!r}")
        if not (isinstance(v.score, int | float) and math.isfinite(v.score) and 0 <= v.score <= 1):
            raise InvalidVerdict(f"{name} returned score {v.score!r} for {v.category}")
    return verdicts


def _covered(classifier: object) -> tuple[Category, ...]:
    cats = getattr(classifier, "categories", None)
    if isinstance(cats, tuple | list | frozenset | set) and cats and set(cats) <= set(CATEGORIES):
        return tuple(c for c in CATEGORIES if c in cats)
    return CATEGORIES


class TextModerator:
    """Checks prompts against a tenant's policy. Thread-safe; build one per process.

    ``policies`` is a :class:`policies.store.PolicyStore`.
    ``classifiers`` defaults to :data:`classifiers.registry.TEXT_CLASSIFIERS`; each is built on
    first use and kept. ``time_budget_ms`` is per classifier per prompt. ``deadline_ms`` is the
    hard deadline of one :meth:`check_many` call whatever its size (``None``: the classifiers'
    budgets per prompt plus :data:`DEADLINE_SLACK_S`, for offline tools). ``admission`` (the
    gateway's) is given a place for every check abandoned at its deadline until its thread
    ends. Callers write each outcome to the audit log (:func:`moderation_record`), since only
    they know the request.
    """

    def __init__(
        self,
        policies: PolicySource,
        *,
        classifiers: Mapping[str, ClassifierFactory] | None = None,
        time_budget_ms: float = 1000.0,
        deadline_ms: float | None = None,
        admission: Admission | None = None,
        warm_tenants: Sequence[str] = ("default",),
    ) -> None:
        self._policies = policies
        self._factories = dict(TEXT_CLASSIFIERS if classifiers is None else classifiers)
        self._budget_s = time_budget_ms / 1000.0
        self._deadline_s = None if deadline_ms is None else deadline_ms / 1000.0
        self.admission = admission
        self._built: dict[str, TextClassifier | BaseException] = {}
        self._build_lock = threading.Lock()
        for tenant in warm_tenants:
            for name in self.classifier_names(tenant):
                self._classifier(name)

    # -- public API ------------------------------------------------------------------------

    def check(self, text: str, tenant: str) -> ModerationOutcome:
        """Check one prompt for ``tenant``; a block is a normal outcome, not an exception."""
        return self.check_many([text], tenant)[0]

    def check_many(self, texts: Sequence[str], tenant: str) -> list[ModerationOutcome]:
        """Check several prompts under one policy snapshot; outcomes are in input order.

        Classifiers that define ``classify_many`` score the whole batch in one call. A check
        that misses its hard deadline blocks every prompt in it (see the module docstring).
        """
        if not texts:
            return []
        policy = self._policies.get(tenant)
        names = _prompt_classifiers(policy)
        deadline = self._deadline_s
        if deadline is None:
            deadline = self._budget_s * len(names) * len(texts) + DEADLINE_SLACK_S
        stop_at = time.monotonic() + deadline
        future = _pool().submit(self._check_many, list(texts), tenant, policy, stop_at)
        try:
            outcomes = future.result(timeout=deadline)
        except (concurrent.futures.TimeoutError, _DeadlinePassed):
            admission = self.admission
            if admission is not None:  # the thread may run on: it keeps a place till it ends
                admission.hold()
                future.add_done_callback(lambda _: admission.leave())
            future.cancel()
            log.error(
                "text check for tenant %s missed its %.1f s deadline; blocking", tenant, deadline
            )
            metrics.count_classifier_error("prompt", "pipeline", "timeout")
            outcomes = self._abandoned(list(texts), tenant, policy, names, deadline)
        for outcome in outcomes:
            metrics.count_decision(tenant, "prompt", outcome.decision)
        return outcomes

    def _abandoned(
        self,
        texts: list[str],
        tenant: str,
        policy: ResolvedPolicy,
        names: tuple[str, ...],
        deadline: float,
    ) -> list[ModerationOutcome]:
        """Outcomes for a check that did not finish: every classifier counts as failed.

        Nothing here may cost more than a few microseconds per prompt: the work that missed the
        deadline (normaliser, classifiers, the policy's list scans) is not run again, so the
        decision is taken from the error verdicts alone (without the prompt, ``decide`` scans
        no blocklist). Every category blocks, whatever the lists would have said.
        """
        reason = f"TimeoutError: the text check missed its deadline of {deadline * 1000:.0f} ms"
        verdicts = [v for name in names or ("pipeline",) for v in error_verdicts(name, reason)]
        decision = decide(policy, "prompt", verdicts)
        outcomes = []
        for text in texts:
            outcomes.append(
                ModerationOutcome(
                    tenant=tenant,
                    prompt=_identity(text),  # the normaliser may be what hangs
                    verdicts=tuple(verdicts),
                    decision=decision,
                    model_versions={name: f"{name}@{ERROR_MODEL_VERSION}" for name in names},
                    latency_ms=deadline * 1000.0,
                )
            )
        return outcomes

    def _check_many(
        self,
        texts: list[str],
        tenant: str,
        policy: ResolvedPolicy,
        stop_at: float = math.inf,
    ) -> list[ModerationOutcome]:
        """The check itself; past ``stop_at`` it stops at the next step (the caller has
        already answered with a block)."""

        def on_time() -> None:
            if time.monotonic() > stop_at:
                raise _DeadlinePassed

        n = len(texts)
        spent = [0.0] * n
        prompts: list[PromptText] = []
        verdicts: list[list[Verdict]] = [[] for _ in range(n)]
        for i, text in enumerate(texts):
            on_time()
            t0 = time.perf_counter()
            prompt, errors = _normalize(text)
            prompts.append(prompt)
            verdicts[i].extend(errors)
            spent[i] += time.perf_counter() - t0

        model_versions: dict[str, str] = {}
        for name in _prompt_classifiers(policy):
            on_time()
            clf = self._classifier(name)
            if isinstance(clf, BaseException):
                metrics.count_classifier_error("prompt", name, "unavailable")
                model_versions[name] = f"{name}@{ERROR_MODEL_VERSION}"
                for i in range(n):
                    verdicts[i].extend(error_verdicts(name, clf))
                continue
            model_versions[name] = f"{clf.model_id}@{clf.model_version}"
            for i, (found, took) in enumerate(self._run(name, clf, prompts, on_time)):
                verdicts[i].extend(found)
                spent[i] += took

        outcomes = []
        for i, prompt in enumerate(prompts):
            on_time()
            t0 = time.perf_counter()
            mentions, errors = _minor_mentions(prompt)
            verdicts[i].extend(errors)
            decision = _decide(policy, verdicts[i], prompt, mentions)
            spent[i] += time.perf_counter() - t0
            outcomes.append(
                ModerationOutcome(
                    tenant=tenant,
                    prompt=prompt,
                    verdicts=tuple(verdicts[i]),
                    decision=decision,
                    model_versions=model_versions,
                    latency_ms=spent[i] * 1000.0,
                )
            )
        return outcomes

    def classifier_names(self, tenant: str) -> tuple[str, ...]:
        """The text classifiers ``tenant``'s policy runs, in order."""
        return _prompt_classifiers(self._policies.get(tenant))

    def models(self) -> dict[str, str]:
        """Every classifier built so far: name -> ``model_id@model_version`` or the build error."""
        with self._build_lock:
            built = dict(self._built)
        return {
            name: (
                error_text(c) if isinstance(c, BaseException) else f"{c.model_id}@{c.model_version}"
            )
            for name, c in built.items()
        }

    # -- internals -------------------------------------------------------------------------

    def _classifier(self, name: str) -> TextClassifier | BaseException:
        with self._build_lock:
            found = self._built.get(name)
            if found is not None:
                return found
            factory = self._factories.get(name)
            built: TextClassifier | BaseException
            if factory is None:
                built = LookupError(
                    f"no text classifier named {name!r}; registered: {sorted(self._factories)}"
                )
            else:
                try:
                    built = factory()
                except Exception as exc:  # fail closed: every prompt it should check is blocked
                    log.exception("text classifier %s failed to load", name)
                    built = exc
            self._built[name] = built
            return built

    def _run(
        self,
        name: str,
        clf: TextClassifier,
        prompts: list[PromptText],
        on_time: Callable[[], None] = lambda: None,
    ) -> list[tuple[list[Verdict], float]]:
        """``(verdicts, seconds)`` per prompt; errors and overruns become error verdicts."""
        covered = _covered(clf)
        classify_many = getattr(clf, "classify_many", None)
        if len(prompts) > 1 and callable(classify_many):
            t0 = time.perf_counter()
            try:
                raw = classify_many(prompts)
                if not isinstance(raw, list) or len(raw) != len(prompts):
                    raise InvalidVerdict(f"{name}.classify_many returned the wrong number of lists")
                results = [_check_verdicts(name, r) for r in raw]
                took = time.perf_counter() - t0
                if took > self._budget_s * len(prompts):
                    raise ClassifierTimeout(_overrun(took, self._budget_s * len(prompts)))
            except Exception as exc:
                _log_failure(name, exc)
                took = time.perf_counter() - t0
                results = [error_verdicts(name, exc, covered) for _ in prompts]
            share = took / len(prompts)
            for _ in prompts:
                metrics.observe_classifier("prompt", name, share)
            return [(r, share) for r in results]
        each = []
        for p in prompts:
            on_time()
            each.append(self._run_one(name, clf, p, covered))
        return each

    def _run_one(
        self, name: str, clf: TextClassifier, prompt: PromptText, covered: tuple[Category, ...]
    ) -> tuple[list[Verdict], float]:
        t0 = time.perf_counter()
        try:
            found = _check_verdicts(name, clf.classify(prompt))
            took = time.perf_counter() - t0
            if took > self._budget_s:
                raise ClassifierTimeout(_overrun(took, self._budget_s))
        except Exception as exc:
            _log_failure(name, exc)
            took = time.perf_counter() - t0
            metrics.observe_classifier("prompt", name, took)
            return error_verdicts(name, exc, covered), took
        metrics.observe_classifier("prompt", name, took)
        return found, took


class _DaemonPool:
    """A fixed set of daemon threads running submitted calls.

    Unlike ``ThreadPoolExecutor`` (whose threads the interpreter joins at exit), a thread stuck
    in a hung classifier never keeps the process from exiting.
    """

    def __init__(self, workers: int) -> None:
        self.pid = os.getpid()
        self._queue: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]]
        self._queue = queue.SimpleQueue()
        for i in range(workers):
            threading.Thread(target=self._work, name=f"text-check-{i}", daemon=True).start()

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((future, functools.partial(fn, *args)))
        return future

    def _work(self) -> None:
        while True:
            future, call = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call())
            except BaseException as exc:
                future.set_exception(exc)


_POOL: _DaemonPool | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> _DaemonPool:
    """The process-wide check pool, started on first use (and again in a forked child)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.pid != os.getpid():
            _POOL = _DaemonPool(WORKERS)
        return _POOL


def _overrun(took: float, budget: float) -> str:
    return f"took {took * 1000:.1f} ms, over its budget of {budget * 1000:.1f} ms"


def _log_failure(name: str, exc: Exception) -> None:
    kind = "timeout" if isinstance(exc, ClassifierTimeout) else "error"
    metrics.count_classifier_error("prompt", name, kind)
    if isinstance(exc, ClassifierTimeout | InvalidVerdict):
        log.warning("text classifier %s failed closed: %s", name, exc)
    else:
        log.error("text classifier %s raised; failing closed", name, exc_info=exc)


def _prompt_classifiers(policy: ResolvedPolicy) -> tuple[str, ...]:
    return tuple(policy.policy.classifiers.prompt)


def _normalize(text: str) -> tuple[PromptText, list[Verdict]]:
    try:
        return normalize(text), []
    except Exception as exc:
        log.error("normaliser raised; failing closed", exc_info=exc)
        return _identity(text), error_verdicts(NORMALIZER, exc)


def _identity(text: str) -> PromptText:
    """``text`` as its own normalised form (when the normaliser cannot be used)."""
    return PromptText(original=text, normalized=text, offsets=tuple(range(len(text) + 1)))


def _minor_mentions(prompt: PromptText) -> tuple[tuple[Evidence, ...], list[Verdict]]:
    try:
        return tuple(find_minor_mentions(prompt)), []
    except Exception as exc:
        log.error("minor-mention finder raised; failing closed", exc_info=exc)
        return (), error_verdicts(MINOR_MENTIONS, exc, ("sexual/minors",))


def _decide(
    policy: ResolvedPolicy,
    verdicts: list[Verdict],
    prompt: PromptText,
    mentions: tuple[Evidence, ...],
) -> Decision:
    return decide(policy, "prompt", verdicts, prompt=prompt, minor_mentions=mentions)
