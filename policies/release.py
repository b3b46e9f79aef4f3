"""The frame-stage decision: release a generated video, or withhold it (review or block).

Input: the frame verdicts of every frame classifier over the sampled frames, and the resolved
policy (per-category ``frame`` thresholds, ``frame_audit.k_of_n``). The rule, per category whose
frame stage is enabled, on the *highest* score any classifier gave each sampled frame:

============  ===============================================================================
action        when
============  ===============================================================================
``block``     some window of ``n`` consecutive sampled frames holds ``k`` or more frames
              scoring at or above ``block_at`` (``sexual/minors``: ``k = 1``, one frame
              suffices). With fewer than ``n`` sampled frames, the window is the whole clip and
              ``k`` is capped at the number of sampled frames.
``review``    no block, but at least one frame scores at or above ``review_at`` -- this
              includes isolated frames at or above ``block_at`` that do not make ``k`` of ``n``
              (one odd frame is a reviewer's call, not a block).
``allow``     otherwise.
============  ===============================================================================

A classifier that failed (an error verdict, see :func:`classifiers.base.error_verdicts`)
blocks with a reason of source ``"error"`` for each category it covers, whether or not that
category is enabled: a video is never released on a partial audit.

Both ``review`` and ``block`` withhold the video; ``block`` tells the reviewer the policy rule
fired, ``review`` that a score was only suspicious. Evidence lists every contributing frame
(index, exact timestamp, classifier and score).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from classifiers.base import CATEGORIES, Category, Evidence, Verdict, is_error_verdict
from policies.decision import Action, Decision, Reason
from policies.resolved import ResolvedPolicy
from policies.schema import MINORS_CATEGORY

VideoStage = Literal["frame", "input"]
"""The stages this rule decides: generated videos, and uploaded videos."""

MAX_REVIEW_EVIDENCE = 16
"""At most this many frames (the highest-scoring) back a review reason, to keep rows small."""


class FrameRef(Protocol):
    """A sampled frame as the decision needs it: index and exact timestamp."""

    @property
    def index(self) -> int:
        """Frame index in the clip."""
        ...

    @property
    def timestamp_s(self) -> float:
        """``index / fps``."""
        ...


@dataclass(frozen=True, slots=True)
class _FrameScore:
    position: int
    index: int
    timestamp_s: float
    score: float
    verdict: Verdict

    def evidence(self) -> Evidence:
        own = next((e.detail for e in self.verdict.evidence if e.detail), None)
        detail = f"{self.verdict.classifier} score {self.score:.3f}"
        return Evidence(
            frame_index=self.index,
            timestamp_s=self.timestamp_s,
            detail=f"{detail}; {own}" if own else detail,
        )


def _best_per_frame(
    verdicts: Sequence[Verdict], frames: Sequence[FrameRef]
) -> dict[Category, list[_FrameScore]]:
    """Per category, the highest-scoring verdict for each sampled frame, in frame order."""
    position = {f.index: p for p, f in enumerate(frames)}
    best: dict[Category, dict[int, _FrameScore]] = defaultdict(dict)
    for verdict in verdicts:
        if is_error_verdict(verdict):
            continue
        indices = {e.frame_index for e in verdict.evidence if e.frame_index is not None}
        if len(indices) != 1 or next(iter(indices)) not in position:
            raise ValueError(
                f"frame verdict from {verdict.classifier!r} for {verdict.category!r} must name "
                f"exactly one sampled frame, got frame indices {sorted(indices)}"
            )
        index = indices.pop()
        frame = frames[position[index]]
        current = best[verdict.category].get(index)
        if current is None or verdict.score > current.score:
            best[verdict.category][index] = _FrameScore(
                position[index], index, frame.timestamp_s, verdict.score, verdict
            )
    return {c: sorted(per.values(), key=lambda s: s.position) for c, per in best.items()}


def first_k_of_n(hits: Sequence[int], k: int, n: int) -> list[int] | None:
    """The first window of ``n`` consecutive positions holding ``k`` hit positions, or ``None``.

    ``hits`` are sorted sampled-frame positions whose score reached ``block_at``. Returns the
    hit positions inside the earliest qualifying window.
    """
    for i in range(len(hits) - k + 1):
        if hits[i + k - 1] - hits[i] < n:
            end = hits[i] + n
            return [h for h in hits[i:] if h < end]
    return None


def _span(scores: Sequence[_FrameScore]) -> str:
    first, last = scores[0], scores[-1]
    return (
        f"frames {first.index}-{last.index} ({first.timestamp_s:.2f}s-{last.timestamp_s:.2f}s)"
        if len(scores) > 1
        else f"frame {first.index} ({first.timestamp_s:.2f}s)"
    )


def _reason(
    category: Category,
    action: Action,
    threshold: float | None,
    contributing: Sequence[_FrameScore],
    message: str,
    stage: VideoStage = "frame",
) -> Reason:
    top = max(contributing, key=lambda s: s.score)
    return Reason(
        category=category,
        action=action,
        stage=stage,
        source="classifier",
        classifier=top.verdict.classifier,
        score=top.score,
        threshold=threshold,
        evidence=tuple(s.evidence() for s in contributing),
        message=message,
    )


def _category_reason(
    policy: ResolvedPolicy,
    category: Category,
    scores: Sequence[_FrameScore],
    n_frames: int,
    stage_name: VideoStage = "frame",
) -> Reason | None:
    stage = policy.stage(category, stage_name)
    k_of_n = policy.policy.frame_audit.k_of_n
    k = 1 if category == MINORS_CATEGORY else k_of_n.k
    n = min(k_of_n.n, n_frames)
    k = min(k, n)
    hits = [s for s in scores if s.score >= stage.block_at]
    window = first_k_of_n([s.position for s in hits], k, n) if hits else None
    if window is not None:
        in_window = set(window)
        contributing = [s for s in hits if s.position in in_window]
        return _reason(
            category,
            Action.BLOCK,
            stage.block_at,
            contributing,
            f"{len(contributing)} of {n} consecutive sampled frames scored at or above block_at "
            f"{stage.block_at} ({_span(contributing)}; rule: {k} of {n})",
            stage_name,
        )
    suspicious = [s for s in scores if s.score >= stage.review_at]
    if not suspicious:
        return None
    top = sorted(suspicious, key=lambda s: -s.score)[:MAX_REVIEW_EVIDENCE]
    top.sort(key=lambda s: s.position)
    why = (
        f"{len(hits)} frame(s) at or above block_at {stage.block_at} but fewer than {k} of {n} "
        "consecutive"
        if hits
        else f"{len(suspicious)} frame(s) at or above review_at {stage.review_at}"
    )
    return _reason(
        category, Action.REVIEW, stage.review_at, top, f"{why} ({_span(top)})", stage_name
    )


def _face_reason(
    policy: ResolvedPolicy, category: Category, scores: Sequence[_FrameScore]
) -> Reason | None:
    """Input stage: a face in any sampled frame of an uploaded video takes ``inputs.faces``
    (one frame suffices: whose face it is cannot be checked, however briefly it shows)."""
    action = Action(policy.policy.inputs.faces)
    review_at = policy.stage(category, "input").review_at
    hits = [s for s in scores if s.score >= review_at]
    if not hits or action is Action.ALLOW:
        return None
    shown = hits[:MAX_REVIEW_EVIDENCE]
    return _reason(
        category,
        action,
        None,
        shown,
        f"{shown[0].verdict.classifier}: a face in {len(hits)} sampled frame(s) of the uploaded "
        f"video ({_span(shown)}); inputs.faces is {action.value}",
        "input",
    )


def _face_reasons(
    policy: ResolvedPolicy, verdicts: Sequence[Verdict], frames: Sequence[FrameRef], stage: str
) -> list[Reason]:
    """The ``inputs.faces`` reasons for face verdicts (input stage only)."""
    faces = [v for v in verdicts if v.mention == "face"]
    if faces and stage != "input":
        raise ValueError("face verdicts are an input-stage signal; the frame stage has none")
    reasons = []
    for category, face_scores in _best_per_frame(faces, frames).items():
        face = _face_reason(policy, category, face_scores)
        if face is not None and policy.stage(category, "input").enabled:
            reasons.append(face)
    return reasons


def _error_reasons(verdicts: Sequence[Verdict], stage: VideoStage = "frame") -> list[Reason]:
    seen: set[tuple[str, Category]] = set()
    out = []
    for verdict in verdicts:
        key = (verdict.classifier, verdict.category)
        if not is_error_verdict(verdict) or key in seen:
            continue
        seen.add(key)
        detail = next(e.detail for e in verdict.evidence if e.detail)
        out.append(
            Reason(
                category=verdict.category,
                action=Action.BLOCK,
                stage=stage,
                source="error",
                classifier=verdict.classifier,
                score=1.0,
                threshold=None,
                evidence=verdict.evidence,
                message=f"frame classifier {verdict.classifier} failed, video withheld: {detail}",
            )
        )
    return out


def decide_release(
    policy: ResolvedPolicy,
    verdicts: Sequence[Verdict],
    sampled_frames: Sequence[FrameRef],
    *,
    minor_mentions: Sequence[Evidence] = (),
    stage: VideoStage = "frame",
) -> Decision:
    """Apply the frame-stage rule (module docstring) to the verdicts of one audited video.

    ``stage="input"`` decides an *uploaded* video (a video to extend or edit) the same way,
    with the categories' ``input`` thresholds; there a face (a verdict with
    ``mention == "face"``) in any sampled frame takes the policy's ``inputs.faces`` action.

    ``sampled_frames`` are the frames the classifiers saw (any order; deduplicated by index).
    ``minor_mentions`` is the prompt's evidence that it mentions a child (from the prompt
    stage); with any, :func:`policies.engine.sexual_minors_rule` also applies: a sexual frame
    score at the lower ``review_at`` of ``sexual`` and ``sexual/minors`` blocks as
    ``sexual/minors`` (source ``"rule"``).
    Returns a :class:`Decision` with stage-``frame`` reasons; ``allow`` means the video may be
    released, anything else withholds it. Raises ``ValueError`` when there are no sampled frames
    or a verdict names a frame that was not sampled (a bug, never a silent allow).
    """
    frames = sorted({f.index: f for f in sampled_frames}.values(), key=lambda f: f.index)
    if not frames:
        raise ValueError("decide_release needs at least one sampled frame")
    reasons: list[Reason] = _error_reasons(verdicts, stage)
    reasons += _face_reasons(policy, verdicts, frames, stage)
    verdicts = [v for v in verdicts if v.mention != "face"]
    per_category = _best_per_frame(verdicts, frames)
    scores: dict[Category, float] = {}
    for category in CATEGORIES:
        category_scores = per_category.get(category, [])
        if category_scores:
            scores[category] = max(s.score for s in category_scores)
        if not category_scores or not policy.stage(category, stage).enabled:
            continue
        reason = _category_reason(policy, category, category_scores, len(frames), stage)
        if reason is not None:
            reasons.append(reason)
    if minor_mentions:
        from policies.engine import sexual_minors_rule

        sexual = [v for v in verdicts if v.category == "sexual" and not is_error_verdict(v)]
        rule = sexual_minors_rule(policy, stage, sexual, minor_mentions)
        if rule is not None:
            reasons.append(rule)
    for reason in reasons:
        if reason.source == "error":
            scores[reason.category] = 1.0
    action = max((r.action for r in reasons), key=lambda a: a.severity, default=Action.ALLOW)
    reasons.sort(key=lambda r: (-r.action.severity, CATEGORIES.index(r.category), r.classifier))
    return Decision(
        action=action, reasons=tuple(reasons), policy_version=policy.version, category_scores=scores
    )
