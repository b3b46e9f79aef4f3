"""The decision engine: a resolved policy plus classifier verdicts in, a :class:`Decision` out.

The rules, in the order they are applied (each review/block becomes a :class:`Reason`):

1. **Errors fail closed.** A verdict whose score is NaN, infinite or outside [0, 1], or whose
   evidence detail starts with ``"error:"`` (how the pipeline reports a classifier that raised or
   timed out) blocks, with source ``"error"``, whatever the policy says about its category.
2. **Sexual content with a minor** blocks as ``sexual/minors`` (source ``"rule"``) whenever any
   minor is mentioned and the highest ``sexual`` score reaches the lower of the ``sexual`` and
   ``sexual/minors`` ``review_at`` for the stage. The rule ignores ``enabled`` and allowlists.
3. **Disabled** categories (``enabled: false`` at this stage) are ignored from here on.
4. **Allowlists** (prompt stage): a classifier hit is ignored when every evidence span it
   quotes lies inside an allowlisted match (so "kill" inside "kill a python process" is
   ignored, but "kill" elsewhere in the same prompt is not). A hit that quotes no span (a
   whole-prompt model score) is ignored when the prompt contains an allowlisted match for the
   category and no other classifier located a hit for it outside the allowlisted matches
   (so prefixing "kill a python process" does not excuse "...then stab him"). Ignored hits
   that would have reviewed or blocked are kept in :attr:`Decision.allowlisted`, and
   :attr:`Decision.category_scores` reports the highest score the allowlist left standing (the
   score the decision used), not the raw one.
   ``violence.depicted`` then applies to the ``violence`` threshold reasons of the prompt
   stage (step 6): ``allow`` turns them into notes in :attr:`Decision.allowlisted` (source
   ``"depicted"``), ``review`` caps them at review; blocklists are not affected.
5. **Blocklists** (prompt stage): a match in the original or the normalised text blocks with
   source ``"blocklist"``, unless the match lies inside an allowlisted match of the same
   category (the longer, more specific phrase wins).
6. **Thresholds**: a score at or above ``block_at`` blocks, at or above ``review_at`` reviews.
   At the frame stage a category blocks only when ``k`` of ``n`` consecutive sampled frames
   reach ``block_at`` (``frame_audit.k_of_n``; always ``k = 1`` for ``sexual/minors``); frames
   over a threshold that do not make k-of-n send the video to review (it is withheld). That
   rule lives in :func:`policies.release.decide_release` (what the video path calls with the
   full list of sampled frames); here the frames are the ones the verdicts name.
7. **Name mentions** (prompt stage): a ``celebrity``/``ip`` verdict whose ``mention`` is
   ``brand`` or ``credit`` (see :data:`classifiers.base.Mention`) skips the thresholds and
   takes the action of ``names.brands`` / ``names.artist_credits``, when its score reaches
   the category's ``review_at`` (weak list tiers never count). Allowlists apply first.
8. **Uploaded images** (``input`` stage): each verdict is compared with the category's
   ``input`` thresholds on its own (one image: no k-of-n), and a face (a ``celebrity``
   verdict whose ``mention`` is ``face``, from the ``faces`` detector) whose score reaches
   ``celebrity.input.review_at`` takes the action of ``inputs.faces`` (default review).
   Errors (rule 1) and the sexual/minors rule (rule 2, with the prompt's mentions of a
   child) apply as at every stage.

The action is the most severe reason's (block > review > allow). Reasons come most severe
first; among equals: rule, blocklist, classifier, error, then category order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from classifiers.base import (
    CATEGORIES,
    Category,
    Evidence,
    PromptText,
    Stage,
    Verdict,
    error_message,
)
from policies.decision import Action, Decision, Reason
from policies.resolved import Match, ResolvedPolicy
from policies.schema import MINORS_CATEGORY, StagePolicy

RULE_CLASSIFIER = "rule:sexual+minor"
LIST_CLASSIFIER = "policy"
_ORDER = {c: i for i, c in enumerate(CATEGORIES)}
_SOURCE_ORDER = {"rule": 0, "blocklist": 1, "classifier": 2, "error": 3}


def decide(
    policy: ResolvedPolicy,
    stage: Stage,
    verdicts: Sequence[Verdict],
    *,
    prompt: PromptText | None = None,
    minor_mentions: Sequence[Evidence] = (),
) -> Decision:
    """Apply ``policy`` at ``stage`` to ``verdicts`` (see the module docstring for the rules).

    ``prompt`` enables the blocklists and allowlists (prompt stage only). ``minor_mentions``
    is evidence that the prompt mentions a child (from the text pipeline), for the
    sexual/minors rule. Raises ``ValueError`` for a verdict whose category is unknown, and at
    the frame stage for a verdict that names more than one frame.
    """
    scores: dict[Category, float] = dict.fromkeys(CATEGORIES, 0.0)
    reasons: list[Reason] = []
    by_category: dict[Category, list[Verdict]] = defaultdict(list)
    for verdict in verdicts:
        if verdict.category not in _ORDER:
            raise ValueError(
                f"verdict from {verdict.classifier!r} has unknown category {verdict.category!r}; "
                f"expected one of {', '.join(CATEGORIES)}"
            )
        error = error_detail(verdict)
        if error is not None:
            scores[verdict.category] = 1.0
            reasons.append(_error_reason(verdict, stage, error))
            continue
        scores[verdict.category] = max(scores[verdict.category], verdict.score)
        by_category[verdict.category].append(verdict)

    if minor_mentions:
        rule = sexual_minors_rule(policy, stage, by_category.get("sexual", []), minor_mentions)
        if rule is not None:
            reasons.append(rule)

    allowlisted: list[Reason] = []
    if stage == "frame":
        reasons += _frame_stage(policy, by_category)
    elif stage == "input":
        reasons += _input_stage(policy, by_category)
    else:
        found, allowlisted, excused = _prompt_stage(policy, by_category, scores, prompt)
        reasons += found
        # Report the score the decision used: hits an allowlist excused no longer count (their
        # raw scores stay in ``allowlisted``), so a client applying its own thresholds to
        # category_scores agrees with the action. A failed classifier's 1.0 always counts.
        for category, ignored in excused.items():
            if any(r.category == category and r.source == "error" for r in reasons):
                continue
            kept = [v.score for v in by_category[category] if v not in ignored]
            scores[category] = max(kept, default=0.0)

    # Most severe first; among equals the built-in rule, then explicit lists, then scores, so
    # the first reason is the most telling one to show a user or reviewer.
    reasons.sort(
        key=lambda r: (-r.action.severity, _SOURCE_ORDER.get(r.source, 9), _ORDER[r.category])
    )
    action = reasons[0].action if reasons else Action.ALLOW
    return Decision(
        action=action,
        reasons=tuple(reasons),
        policy_version=policy.version,
        category_scores=scores,
        allowlisted=tuple(allowlisted),
    )


def error_detail(verdict: Verdict) -> str | None:
    """Why ``verdict`` must fail closed (NaN/out-of-range score or an error), else ``None``."""
    message = error_message(verdict)
    if message is not None:
        return message
    if not (isinstance(verdict.score, int | float) and math.isfinite(verdict.score)):
        return f"score is {verdict.score!r}, not a number"
    if not 0.0 <= verdict.score <= 1.0:
        return f"score {verdict.score!r} is outside [0, 1]"
    return None


def with_thresholds(
    policy: ResolvedPolicy, stage: Stage, verdicts: Iterable[Verdict]
) -> list[Verdict]:
    """Copies of ``verdicts`` with ``threshold`` set (for the audit log).

    The threshold is the one the score reached (``block_at``, else ``review_at``); for a score
    under both, ``review_at``, the one it would have needed.
    """
    out = []
    for v in verdicts:
        if v.category not in _ORDER:
            out.append(v)
            continue
        t = policy.stage(v.category, stage)
        out.append(replace(v, threshold=t.block_at if v.score >= t.block_at else t.review_at))
    return out


def _prompt_stage(
    policy: ResolvedPolicy,
    by_category: dict[Category, list[Verdict]],
    scores: dict[Category, float],
    prompt: PromptText | None,
) -> tuple[list[Reason], list[Reason], dict[Category, list[Verdict]]]:
    """Lists and thresholds per enabled category: (reasons, allowlisted notes, the verdicts
    each category's allowlist excused)."""
    reasons: list[Reason] = []
    allowlisted: list[Reason] = []
    excused: dict[Category, list[Verdict]] = {}
    for category in CATEGORIES:
        thresholds = policy.stage(category, "prompt")
        if not thresholds.enabled:
            continue
        found, lists = _prompt_lists(
            policy, category, thresholds, by_category.get(category, []), prompt, scores[category]
        )
        reasons += lists.blocked
        allowlisted += _allowlisted_reasons(
            category, "prompt", thresholds, lists.verdicts, lists.matches
        )
        if lists.verdicts:
            excused[category] = lists.verdicts
        depicted = [v for v in found if v.mention == "depicted"]
        found_reasons = _threshold_reasons(category, "prompt", thresholds, depicted)
        if category == "violence":
            found_reasons, noted = _depicted(policy, found_reasons)
            allowlisted += noted
        reasons += found_reasons
        reasons += _mention_reasons(policy, category, thresholds, found)
    return reasons, allowlisted, excused


def _depicted(policy: ResolvedPolicy, found: list[Reason]) -> tuple[list[Reason], list[Reason]]:
    """Apply ``violence.depicted`` to the violence classifier reasons of the prompt stage:
    (reasons that stand, notes of the ones the policy let through for the audit log)."""
    depicted = policy.policy.categories.violence.depicted
    if depicted == "block" or not found:
        return found, []
    if depicted == "review":
        return [
            replace(r, action=Action.REVIEW, message=f"{r.message} (violence.depicted: review)")
            if r.action is Action.BLOCK
            else r
            for r in found
        ], []
    notes = [
        replace(
            r,
            action=Action.ALLOW,
            source="depicted",
            message=f"{r.message}; allowed: depicted violence (violence.depicted: allow; graphic "
            "violence is violence/graphic)",
        )
        for r in found
    ]
    return [], notes


_MENTION_SETTING = {"brand": "brands", "credit": "artist_credits"}


def _mention_reasons(
    policy: ResolvedPolicy, category: Category, thresholds: StagePolicy, verdicts: list[Verdict]
) -> list[Reason]:
    """Brand and artist-credit name verdicts take the policy's ``names:`` action (rule 7)."""
    out = []
    for v in verdicts:
        setting = _MENTION_SETTING.get(v.mention)
        if setting is None or v.score < thresholds.review_at:
            continue
        action = Action(getattr(policy.policy.names, setting))
        if action is Action.ALLOW:
            continue
        out.append(
            Reason(
                category=category,
                action=action,
                stage="prompt",
                source="classifier",
                classifier=v.classifier,
                score=v.score,
                threshold=None,
                evidence=v.evidence,
                message=f"{v.classifier} {category} {v.mention} mention {v.score:.2f}: "
                f"names.{setting} is {action.value}",
            )
        )
    return out


def _error_reason(verdict: Verdict, stage: Stage, error: str) -> Reason:
    return Reason(
        category=verdict.category,
        action=Action.BLOCK,
        stage=stage,
        source="error",
        classifier=verdict.classifier,
        score=1.0,
        threshold=None,
        evidence=verdict.evidence,
        message=f"{verdict.classifier} failed ({error}); blocked to fail closed",
    )


def sexual_minors_rule(
    policy: ResolvedPolicy,
    stage: Stage,
    sexual: Sequence[Verdict],
    minor_mentions: Sequence[Evidence],
) -> Reason | None:
    """The built-in rule: sexual content together with a minor blocks as ``sexual/minors``.

    ``sexual`` are the (non-error) ``sexual`` verdicts of the stage; ``minor_mentions`` the
    evidence that the prompt mentions a child. Returns a block reason (source ``"rule"``) when
    there is a mention and the top sexual score reaches the lower of the ``sexual`` and
    ``sexual/minors`` ``review_at``; ``None`` otherwise. The video path can call it with frame
    verdicts and the prompt's mentions.
    """
    if not sexual:
        return None
    top = max(sexual, key=lambda v: v.score)
    threshold = min(
        policy.stage("sexual", stage).review_at, policy.stage(MINORS_CATEGORY, stage).review_at
    )
    if top.score < threshold:
        return None
    return Reason(
        category=MINORS_CATEGORY,
        action=Action.BLOCK,
        stage=stage,
        source="rule",
        classifier=RULE_CLASSIFIER,
        score=top.score,
        threshold=threshold,
        evidence=tuple(minor_mentions) + top.evidence,
        message=(
            f"sexual score {top.score:.2f} (from {top.classifier}) >= {threshold:g} together "
            f"with a mention of a minor"
        ),
    )


@dataclass(frozen=True, slots=True)
class _ListOutcome:
    verdicts: list[Verdict]
    """Verdicts the allowlist suppressed."""
    matches: list[Match]
    """Allowlist matches in the prompt."""
    blocked: list[Reason]
    """A blocklist reason, if any entry matched."""


def _prompt_lists(
    policy: ResolvedPolicy,
    category: Category,
    thresholds: StagePolicy,
    verdicts: list[Verdict],
    prompt: PromptText | None,
    score: float,
) -> tuple[list[Verdict], _ListOutcome]:
    """Apply the category's allowlist to ``verdicts`` and its blocklist to ``prompt``."""
    if prompt is None:
        return verdicts, _ListOutcome([], [], [])
    blocklist = policy.blocklists[category]
    hits = blocklist.find(prompt) if blocklist else []
    allowlist = policy.allowlists[category]
    # The allowlist can only change the outcome when something would review or block, so the
    # common clean prompt is never scanned for it.
    relevant = hits or any(v.score >= thresholds.review_at for v in verdicts)
    allowed = allowlist.find(prompt) if allowlist and relevant else []
    kept, ignored = _apply_allowlist(verdicts, allowed) if allowed else (verdicts, [])
    hits = [m for m in hits if not _inside(m.start, m.end, allowed)]
    blocked = [_blocklist_reason(category, "prompt", hits, score)] if hits else []
    return kept, _ListOutcome(ignored, allowed, blocked)


def _spans(verdict: Verdict) -> list[tuple[int, int]]:
    return [(e.start, e.end) for e in verdict.evidence if e.start is not None and e.end is not None]


def _inside(start: int, end: int, allowed: Sequence[Match]) -> bool:
    return any(a.start <= start and end <= a.end for a in allowed)


def _apply_allowlist(
    verdicts: Sequence[Verdict], allowed: Sequence[Match]
) -> tuple[list[Verdict], list[Verdict]]:
    """Split ``verdicts`` into (kept, ignored) by the allowlist rule (module docstring, 4)."""
    located = [(v, _spans(v)) for v in verdicts]
    outside = any(
        spans and v.score > 0 and not all(_inside(s, e, allowed) for s, e in spans)
        for v, spans in located
    )
    kept: list[Verdict] = []
    ignored: list[Verdict] = []
    for v, spans in located:
        covered = all(_inside(s, e, allowed) for s, e in spans) if spans else not outside
        (ignored if covered else kept).append(v)
    return kept, ignored


def _allowlisted_reasons(
    category: Category,
    stage: Stage,
    thresholds: StagePolicy,
    ignored: Sequence[Verdict],
    allowed: Sequence[Match],
) -> list[Reason]:
    evidence = tuple(
        Evidence(text=m.text, start=m.start, end=m.end, detail=f"allowlist: {m.entry}")
        for m in allowed
    )
    return [
        Reason(
            category=category,
            action=Action.ALLOW,
            stage=stage,
            source="allowlist",
            classifier=v.classifier,
            score=v.score,
            threshold=thresholds.review_at,
            evidence=evidence,
            message=(
                f"{v.classifier} {category} {v.score:.2f} ignored: inside an allowlisted phrase"
            ),
        )
        for v in ignored
        if v.score >= thresholds.review_at
    ]


def _blocklist_reason(
    category: Category, stage: Stage, hits: Sequence[Match], score: float
) -> Reason:
    return Reason(
        category=category,
        action=Action.BLOCK,
        stage=stage,
        source="blocklist",
        classifier=LIST_CLASSIFIER,
        score=score,
        threshold=None,
        evidence=tuple(
            Evidence(text=m.text, start=m.start, end=m.end, detail=f"blocklist: {m.entry}")
            for m in hits
        ),
        message=f"{category} blocklist matched " + ", ".join(repr(m.text) for m in hits),
    )


def _action_for(score: float, thresholds: StagePolicy) -> tuple[Action, float]:
    if score >= thresholds.block_at:
        return Action.BLOCK, thresholds.block_at
    if score >= thresholds.review_at:
        return Action.REVIEW, thresholds.review_at
    return Action.ALLOW, thresholds.review_at


def _threshold_reasons(
    category: Category, stage: Stage, thresholds: StagePolicy, verdicts: Sequence[Verdict]
) -> list[Reason]:
    out = []
    for v in verdicts:
        action, threshold = _action_for(v.score, thresholds)
        if action is Action.ALLOW:
            continue
        name = "block_at" if action is Action.BLOCK else "review_at"
        out.append(
            Reason(
                category=category,
                action=action,
                stage=stage,
                source="classifier",
                classifier=v.classifier,
                score=v.score,
                threshold=threshold,
                evidence=v.evidence,
                message=f"{v.classifier} {category} {v.score:.2f} >= {name} {threshold:g}",
            )
        )
    return out


def _input_stage(
    policy: ResolvedPolicy, by_category: dict[Category, list[Verdict]]
) -> list[Reason]:
    """Uploaded images (rule 8): every verdict against the ``input`` thresholds (one image is
    one frame: no k-of-n); a face (``mention == "face"``) takes ``inputs.faces``."""
    reasons: list[Reason] = []
    for category, verdicts in by_category.items():
        thresholds = policy.stage(category, "input")
        if not thresholds.enabled:
            continue
        faces = [v for v in verdicts if v.mention == "face"]
        reasons += _threshold_reasons(
            category, "input", thresholds, [v for v in verdicts if v.mention != "face"]
        )
        action = Action(policy.policy.inputs.faces)
        for v in faces:
            if v.score < thresholds.review_at or action is Action.ALLOW:
                continue
            reasons.append(
                Reason(
                    category=category,
                    action=action,
                    stage="input",
                    source="classifier",
                    classifier=v.classifier,
                    score=v.score,
                    threshold=None,
                    evidence=v.evidence,
                    message=f"{v.classifier}: a face in the uploaded image ({v.score:.2f}); "
                    f"inputs.faces is {action.value}",
                )
            )
    return reasons


@dataclass(frozen=True, slots=True)
class _Frame:
    index: int
    timestamp_s: float


def _frame_stage(
    policy: ResolvedPolicy, by_category: dict[Category, list[Verdict]]
) -> list[Reason]:
    """Frame verdicts go through :func:`policies.release.decide_release` (k-of-n); verdicts
    naming no frame (whole-video scores) are compared with the thresholds directly."""
    from policies.release import decide_release

    indexed: list[Verdict] = []
    frames: dict[int, _Frame] = {}
    reasons: list[Reason] = []
    for category, verdicts in by_category.items():
        thresholds = policy.stage(category, "frame")
        for v in verdicts:
            seen = [(e.frame_index, e.timestamp_s) for e in v.evidence if e.frame_index is not None]
            if not seen:
                if thresholds.enabled:
                    reasons += _threshold_reasons(category, "frame", thresholds, [v])
                continue
            indexed.append(v)
            for index, timestamp_s in seen:
                frames.setdefault(index, _Frame(index, timestamp_s or 0.0))
    if indexed:
        reasons += decide_release(policy, indexed, list(frames.values())).reasons
    return reasons
