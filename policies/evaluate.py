"""Policy impact tools: run a policy over a file of prompts, score it, and diff two policies.

Input is JSONL, one object per line::

    {"id": "p1", "text": "a knight kills a dragon", "labels": ["violence"]}
    {"id": "p2", "text": "a cat on a sofa", "labels": []}
    {"id": "p3", "text": "...", "labels": {"hate": true, "harassment": false}, "expected": "block"}

``text`` is required; ``id`` defaults to the line number. ``labels`` is optional: a list names
the categories the prompt *should* be flagged for (every other category should not be), a
mapping labels only the categories it names. ``expected`` (optional) is the expected action.

A category counts as *flagged* when the decision has a review or block reason for it
(``--positive block`` counts only blocks). Precision, recall and F1 are computed per category
over the rows labelled for that category.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from classifiers.base import CATEGORIES, Category, Evidence, PromptText, Verdict
from policies.decision import Action, Decision
from policies.engine import decide
from policies.jsonl import read_jsonl
from policies.resolved import ResolvedPolicy

MAX_TEXT_CHARS = 10_000


class PromptFileError(Exception):
    """A prompts file that cannot be read; the message names the line and the fix."""


@dataclass(frozen=True, slots=True)
class PromptRow:
    """One prompt to check, with its optional labels (category -> should be flagged)."""

    id: str
    text: str
    labels: Mapping[Category, bool] | None = None
    expected: Action | None = None


@dataclass(frozen=True, slots=True)
class RowResult:
    """A prompt and the decision the policy gave it."""

    row: PromptRow
    decision: Decision
    verdicts: tuple[Verdict, ...] = ()
    prompt: PromptText | None = None

    @property
    def failed_closed(self) -> bool:
        """True when a classifier error (not the policy) decided the block."""
        return any(r.source == "error" for r in self.decision.reasons)


class CheckMany(Protocol):
    """What the tools need from :class:`gateway.pipeline.TextModerator`."""

    def check_many(self, texts: Sequence[str], tenant: str) -> list[Any]:
        """One outcome (with ``.decision`` and ``.verdicts``) per text, in order."""
        ...


class StaticPolicies:
    """A one-policy stand-in for :class:`policies.store.PolicyStore` (every tenant gets it)."""

    def __init__(self, policy: ResolvedPolicy) -> None:
        self.base = policy
        self.last_error: str | None = None

    def get(self, tenant: str) -> ResolvedPolicy:
        """The policy, whatever the tenant."""
        return self.base


# --- reading ------------------------------------------------------------------------------------


def read_prompts(path: Path) -> list[PromptRow]:
    """Parse a prompts JSONL file; raises :class:`PromptFileError` naming the line and fix."""
    rows = read_jsonl(path, _row, id_of=lambda row: row.id, error=PromptFileError, example=_EXAMPLE)
    if not rows:
        raise PromptFileError(f"{path}: no prompts; write one JSON object per line")
    return rows


_EXAMPLE = '{"id": "p1", "text": "...", "labels": ["violence"]}'


def _row(obj: Any, number: int, where: str) -> PromptRow:
    if not isinstance(obj, dict):
        raise PromptFileError(f'{where}: expected an object like {{"id": "p1", "text": "..."}}')
    unknown = sorted(set(obj) - {"id", "text", "labels", "expected"})
    if unknown:
        raise PromptFileError(
            f"{where}: unknown field(s) {', '.join(unknown)}; allowed: id, text, labels, expected"
        )
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise PromptFileError(f'{where}: "text" must be a non-empty string')
    if len(text) > MAX_TEXT_CHARS:
        raise PromptFileError(f"{where}: text longer than {MAX_TEXT_CHARS} characters; shorten it")
    raw_id = obj.get("id", number)
    if not isinstance(raw_id, str | int) or isinstance(raw_id, bool):
        raise PromptFileError(f'{where}: "id" must be a string or an integer')
    expected = obj.get("expected")
    if expected is not None and expected not in {a.value for a in Action}:
        raise PromptFileError(
            f'{where}: "expected" must be allow, review or block (got {expected!r})'
        )
    return PromptRow(
        id=str(raw_id),
        text=text,
        labels=_labels(obj.get("labels"), where),
        expected=Action(expected) if expected is not None else None,
    )


def _category(name: Any, where: str) -> Category:
    if name not in CATEGORIES:
        raise PromptFileError(
            f"{where}: unknown category {name!r} in labels; use one of {', '.join(CATEGORIES)}"
        )
    category: Category = name
    return category


def _labels(raw: Any, where: str) -> dict[Category, bool] | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        named = {_category(n, where) for n in raw}
        return {c: c in named for c in CATEGORIES}
    if isinstance(raw, dict):
        out: dict[Category, bool] = {}
        for name, value in raw.items():
            if not isinstance(value, bool):
                raise PromptFileError(f"{where}: label {name!r} must be true or false")
            out[_category(name, where)] = value
        return out
    raise PromptFileError(
        f'{where}: "labels" must be a list of categories or a mapping category -> true/false'
    )


# --- running ------------------------------------------------------------------------------------


def run(
    moderator: CheckMany,
    rows: Sequence[PromptRow],
    *,
    batch_size: int = 32,
    on_progress: Callable[[int], None] | None = None,
) -> list[RowResult]:
    """Check every row (in batches) and pair it with its decision."""
    results: list[RowResult] = []
    for chunk in _chunks(rows, batch_size):
        outcomes = moderator.check_many([r.text for r in chunk], "default")
        results += [
            RowResult(row, o.decision, tuple(o.verdicts), getattr(o, "prompt", None))
            for row, o in zip(chunk, outcomes, strict=True)
        ]
        if on_progress is not None:
            on_progress(len(chunk))
    return results


def redecide(
    results: Sequence[RowResult],
    policy: ResolvedPolicy,
    minor_mentions: Callable[[PromptText], Sequence[Evidence]],
) -> list[RowResult]:
    """The decisions ``policy`` gives the same verdicts (no classifier runs again).

    Only valid when ``policy`` runs the same prompt classifiers as the policy that produced
    ``results``; ``minor_mentions`` is the pipeline's finder
    (:func:`classifiers.text.lexicon.find_minor_mentions`).
    """
    out = []
    for res in results:
        if res.prompt is None:
            raise ValueError(f"row {res.row.id!r} has no prompt text to decide again")
        decision = decide(
            policy,
            "prompt",
            res.verdicts,
            prompt=res.prompt,
            minor_mentions=tuple(minor_mentions(res.prompt)),
        )
        out.append(RowResult(res.row, decision, res.verdicts, res.prompt))
    return out


def _chunks(rows: Sequence[PromptRow], size: int) -> Iterator[Sequence[PromptRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def flagged_categories(decision: Decision, positive: Action = Action.REVIEW) -> set[Category]:
    """Categories with a reason at least as severe as ``positive``."""
    return {r.category for r in decision.reasons if r.action.severity >= positive.severity}


# --- scoring ------------------------------------------------------------------------------------


@dataclass
class CategoryStats:
    """Confusion counts for one category over the rows labelled for it."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def support(self) -> int:
        """Rows labelled positive."""
        return self.tp + self.fn

    @property
    def labelled(self) -> int:
        """Rows labelled for this category at all."""
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP); ``None`` when nothing was flagged."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN); ``None`` when no row is labelled positive."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p is not None and r is not None and p + r else None


@dataclass
class Report:
    """What ``reelguard policy test`` prints: action counts, per-category metrics, failures."""

    policy_version: str
    rows: int
    positive: Action
    actions: Counter[str] = field(default_factory=Counter)
    categories_flagged: Counter[str] = field(default_factory=Counter)
    per_category: dict[Category, CategoryStats] = field(default_factory=dict)
    expected_total: int = 0
    expected_correct: int = 0
    action_confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    failed_closed: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "policy_version": self.policy_version,
            "rows": self.rows,
            "positive": self.positive.value,
            "actions": {a.value: self.actions.get(a.value, 0) for a in Action},
            "categories_flagged": {c: self.categories_flagged.get(c, 0) for c in CATEGORIES},
            "metrics": {
                c: {
                    "tp": s.tp,
                    "fp": s.fp,
                    "fn": s.fn,
                    "tn": s.tn,
                    "support": s.support,
                    "precision": s.precision,
                    "recall": s.recall,
                    "f1": s.f1,
                }
                for c, s in self.per_category.items()
            },
            "expected_action": (
                {
                    "rows": self.expected_total,
                    "correct": self.expected_correct,
                    "confusion": [
                        {"expected": e, "got": g, "count": n}
                        for (e, g), n in sorted(self.action_confusion.items())
                    ],
                }
                if self.expected_total
                else None
            ),
            "failed_closed": self.failed_closed,
        }


def score(
    results: Iterable[RowResult], policy_version: str, positive: Action = Action.REVIEW
) -> Report:
    """Count actions and, where rows carry labels, per-category confusion counts."""
    if positive is Action.ALLOW:
        raise ValueError("positive must be review or block")
    report = Report(policy_version=policy_version, rows=0, positive=positive)
    for res in results:
        report.rows += 1
        report.actions[res.decision.action.value] += 1
        report.failed_closed += res.failed_closed
        flagged = flagged_categories(res.decision, positive)
        for c in flagged:
            report.categories_flagged[c] += 1
        for c, truth in (res.row.labels or {}).items():
            stats = report.per_category.setdefault(c, CategoryStats())
            got = c in flagged
            if truth and got:
                stats.tp += 1
            elif truth:
                stats.fn += 1
            elif got:
                stats.fp += 1
            else:
                stats.tn += 1
        if res.row.expected is not None:
            report.expected_total += 1
            report.expected_correct += res.row.expected is res.decision.action
            report.action_confusion[(res.row.expected.value, res.decision.action.value)] += 1
    report.per_category = {
        c: report.per_category[c] for c in CATEGORIES if c in report.per_category
    }
    return report


@dataclass(frozen=True, slots=True)
class Miss:
    """A prompt the policy decided wrongly by its own labels or expected action."""

    result: RowResult
    missed: tuple[Category, ...]
    """Labelled categories the decision did not flag (false negatives)."""
    extra: tuple[Category, ...]
    """Categories the decision flagged that the row labels as clean (false positives)."""
    wrong_action: bool
    """The row's ``expected`` action differs from the decision's."""

    def why(self) -> list[str]:
        """One line per cause: what was expected, what happened, and the deciding reasons."""
        d, row = self.result.decision, self.result.row
        lines = []
        if self.wrong_action and row.expected is not None:
            lines.append(f"expected {row.expected.value}, got {d.action.value}")
        for c in self.missed:
            excused = [r.message for r in d.allowlisted if r.category == c]
            detail = excused[0] if excused else f"score {d.category_scores.get(c, 0.0):.2f}"
            lines.append(f"missed {c}: {detail}")
        for c in self.extra:
            reason = next(r for r in d.reasons if r.category == c)
            lines.append(f"flagged {c}, labelled clean: {reason.message}")
        if self.wrong_action and not self.missed and not self.extra and d.reasons:
            lines.append(f"because: {d.reasons[0].message}")
        return lines


def misses(results: Iterable[RowResult], positive: Action = Action.REVIEW) -> list[Miss]:
    """Rows whose decision disagrees with their labels or expected action, in input order."""
    out = []
    for res in results:
        flagged = flagged_categories(res.decision, positive)
        labels = res.row.labels or {}
        missed = tuple(c for c in CATEGORIES if labels.get(c) is True and c not in flagged)
        extra = tuple(c for c in CATEGORIES if labels.get(c) is False and c in flagged)
        expected = res.row.expected
        wrong = expected is not None and expected is not res.decision.action
        if missed or extra or wrong:
            out.append(Miss(res, missed, extra, wrong))
    return out


def result_json(res: RowResult) -> dict[str, Any]:
    """One output row of ``policy test --output``."""
    d = res.decision
    return {
        "id": res.row.id,
        "action": d.action.value,
        "flagged": d.flagged,
        "categories": sorted({r.category for r in d.reasons}, key=CATEGORIES.index),
        "category_scores": {c: round(s, 4) for c, s in d.category_scores.items()},
        "reasons": [
            {
                "category": r.category,
                "action": r.action.value,
                "source": r.source,
                "classifier": r.classifier,
                "score": round(r.score, 4),
                "threshold": r.threshold,
                "message": r.message,
            }
            for r in d.reasons
        ],
        "policy_version": d.policy_version,
        **({"labels": dict(res.row.labels)} if res.row.labels is not None else {}),
        **({"expected": res.row.expected.value} if res.row.expected is not None else {}),
    }


# --- diff ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """A prompt whose decision differs between two policies."""

    row: PromptRow
    old: Decision
    new: Decision

    @property
    def kind(self) -> str:
        """``"allow -> block"``, or ``"block -> block"`` when only the categories changed."""
        return f"{self.old.action.value} -> {self.new.action.value}"

    @property
    def stricter(self) -> bool:
        """True when the new policy is stricter for this prompt."""
        return self.new.action.severity > self.old.action.severity

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record of the change."""
        return {
            "id": self.row.id,
            "text": self.row.text,
            "old": _side(self.old),
            "new": _side(self.new),
            "change": self.kind,
        }


def _side(d: Decision) -> dict[str, Any]:
    return {
        "action": d.action.value,
        "categories": sorted({r.category for r in d.reasons}, key=CATEGORIES.index),
        "reasons": [r.message for r in d.reasons],
        "policy_version": d.policy_version,
    }


def compare(old: Sequence[RowResult], new: Sequence[RowResult]) -> list[Change]:
    """Rows whose action, or set of flagged categories, differs (input order kept)."""
    changes = []
    for a, b in zip(old, new, strict=True):
        if a.row.id != b.row.id:
            raise ValueError(f"results out of order: {a.row.id!r} vs {b.row.id!r}")
        same_action = a.decision.action is b.decision.action
        cats_a = {r.category for r in a.decision.reasons}
        cats_b = {r.category for r in b.decision.reasons}
        if not same_action or cats_a != cats_b:
            changes.append(Change(a.row, a.decision, b.decision))
    return changes
