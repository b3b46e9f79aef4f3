"""What the policy engine returns: a :class:`Decision` with its reasons and policy version."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from classifiers.base import Category, Evidence, Stage


class Action(StrEnum):
    """What happens to a prompt (or a video, at the frame stage)."""

    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"

    @property
    def severity(self) -> int:
        """Order for combining actions: block > review > allow."""
        return _SEVERITY[self]


_SEVERITY = {Action.ALLOW: 0, Action.REVIEW: 1, Action.BLOCK: 2}


@dataclass(frozen=True, slots=True)
class Reason:
    """One cause of a review/block: which category, which classifier or list, and the evidence.

    ``source`` is ``"classifier"`` for a score over a threshold, ``"blocklist"`` for a policy
    blocklist hit, ``"rule"`` for a built-in rule (e.g. sexual content with a minor), and
    ``"error"`` for a classifier that failed (fail closed).
    """

    category: Category
    action: Action
    stage: Stage
    source: str
    classifier: str
    score: float
    threshold: float | None
    evidence: tuple[Evidence, ...] = ()
    message: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of applying a resolved policy to a set of verdicts."""

    action: Action
    reasons: tuple[Reason, ...]
    policy_version: str
    category_scores: dict[Category, float] = field(default_factory=dict)
    """Per category, the highest score the decision used: a hit an allowlist excused does not
    count (its raw score is in :attr:`allowlisted`); a failed classifier counts as 1.0."""
    allowlisted: tuple[Reason, ...] = ()
    """Hits the policy let through, for the audit log: ignored by an allowlist (action
    ``allow``, source ``"allowlist"``) or depicted violence under ``violence.depicted: allow``
    (source ``"depicted"``); they never affect :attr:`action`, :attr:`flagged` or
    :attr:`categories`."""

    @property
    def flagged(self) -> bool:
        """True unless the action is allow (the OpenAI moderation ``flagged`` field)."""
        return self.action is not Action.ALLOW

    @property
    def categories(self) -> dict[Category, bool]:
        """Per category: did any reason for it review or block."""
        hit = {r.category for r in self.reasons}
        return {c: c in hit for c in self.category_scores} | {c: True for c in hit}

    def as_json(self) -> dict[str, Any]:
        """The decision as plain JSON, as a video job stores it (``prompt_moderation``,
        ``frame_moderation``): action, policy version, reasons (the allowlisted ones too) with
        their evidence, and the category scores. Empty and ``None`` members are left out."""
        return {
            "action": str(self.action),
            "policy_version": self.policy_version,
            "reasons": [_drop_empty(asdict(r)) for r in (*self.reasons, *self.allowlisted)],
            "category_scores": dict(self.category_scores),
        }


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_empty(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list | tuple):
        return [_drop_empty(v) for v in value]
    return str(value) if isinstance(value, str) else value
