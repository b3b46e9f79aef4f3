"""What the gateway and the video workers hand to the audit log, and what its read API returns.

Writers build a :class:`ModerationRecord` (one per moderation or video request, prompt stage)
or a :class:`FrameAuditRecord` (one per video job, frame stage) and pass it to
:class:`audit.log.AuditLog`. Every record carries the policy version and the model ids and
versions that decided it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from classifiers.base import Verdict
from policies.decision import Decision

Endpoint = Literal["moderations", "videos"]
ENDPOINTS: tuple[Endpoint, ...] = ("moderations", "videos")

ReleaseAction = Literal["released", "withheld", "cancelled", "deleted"]
RELEASE_ACTIONS: tuple[ReleaseAction, ...] = ("released", "withheld", "cancelled", "deleted")
"""What became of a job's video: the worker ``released`` or ``withheld`` it; its owner
``cancelled`` it before it finished or ``deleted`` it after (the record names who, and when)."""
ENDED_BY_OWNER: tuple[ReleaseAction, ...] = ("cancelled", "deleted")
"""Release actions after which nothing is left to review: a video or character its owner
cancelled or deleted leaves the review queue (its records stay in the chain)."""

ReviewVerdict = Literal["approve", "reject"]
REVIEW_VERDICTS: tuple[ReviewVerdict, ...] = ("approve", "reject")

PromptRetention = Literal["keep", "hash", "drop"]
PROMPT_RETENTIONS: tuple[PromptRetention, ...] = ("keep", "hash", "drop")
"""Per-tenant handling of prompt text: ``keep`` it; ``hash``: store only a salted SHA-256 and
its salt (a candidate text can still be checked against it); ``drop``: store only the digest,
without the salt, so nothing about the text can be recovered."""


@dataclass(frozen=True, slots=True)
class InputCheck:
    """An uploaded image's or video's ``input``-stage story (``POST /v1/videos`` with
    ``input_reference``; ``/v1/videos/extensions`` and ``/v1/videos/edits`` with a ``video``).

    ``sha256``, ``media_type``, ``width``, ``height`` and ``bytes`` describe the upload as
    received (the image itself is not kept in the log); ``verdicts`` are the frame
    classifiers' scores for it (frame 0), ``decision`` the input-stage decision.
    """

    field: str
    sha256: str
    media_type: str
    width: int
    height: int
    bytes: int
    verdicts: Sequence[Verdict]
    decision: Decision
    model_versions: Mapping[str, str]
    latency_ms: float
    video: Mapping[str, float | int] | None = None
    """For an uploaded video (a video to extend or edit): ``frames``, ``fps``, ``duration_s``
    and ``sampled_frames`` (the verdicts name each sampled frame); ``None`` for an image."""


@dataclass(frozen=True, slots=True)
class ModerationRecord:
    """One request's prompt-stage story: what was sent, every verdict, and the decision.

    ``endpoint`` is ``"moderations"`` for ``POST /v1/moderations`` (one record per input item)
    and ``"videos"`` for ``POST /v1/videos`` (then ``job_id`` names the job, or is ``None``
    when the prompt was blocked and no job was created). ``created_at`` is the request time
    (epoch seconds); ``latency_ms`` the time the text check took.
    """

    request_id: str
    tenant: str
    endpoint: Endpoint
    created_at: float
    original: str
    normalized: str
    verdicts: Sequence[Verdict]
    decision: Decision
    model_versions: Mapping[str, str]
    latency_ms: float
    job_id: str | None = None
    input: InputCheck | None = None
    """The uploaded image's check, when the request carried one. The request's ``action`` is
    then the more severe of the prompt's and the image's decisions (each decision is recorded
    with its own stage)."""


@dataclass(frozen=True, slots=True)
class FrameRef:
    """A frame the sampler picked: its index in the video and its timestamp (seconds)."""

    index: int
    timestamp_s: float


@dataclass(frozen=True, slots=True)
class StoredEvidence:
    """An evidence thumbnail as written to the object store (:func:`audit.evidence.
    put_thumbnail`): its key (``evidence/<job id>/frame_000016.jpg``, what the log stores as
    its path), the SHA-256 of the bytes written, and their count."""

    key: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class FrameAuditRecord:
    """One video job's frame-stage story.

    ``frames`` lists every sampled frame (index and timestamp); ``verdicts`` holds one verdict per
    (frame, category, classifier), each with frame evidence (``frame_index``, ``timestamp_s``).
    ``decision`` is the frame-stage decision (its ``policy_version`` is recorded).
    ``thumbnails`` maps a flagged frame's index to its evidence thumbnail: a
    :class:`StoredEvidence` (:func:`audit.evidence.flagged_thumbnails`), or a file path (hashed
    where it lies, see ``data_dir``); ``latency_ms`` is the per-stage breakdown
    (e.g. ``{"generate": ..., "sample": ..., "classify": ...}``).
    """

    job_id: str
    tenant: str
    frames: Sequence[FrameRef]
    verdicts: Sequence[Verdict]
    decision: Decision
    model_versions: Mapping[str, str]
    thumbnails: Mapping[int, Path | StoredEvidence] = field(default_factory=dict)
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    created_at: float | None = None
    """When the frame audit finished (epoch seconds); ``None`` means now."""
    data_dir: Path | None = None
    """The data folder the thumbnails lie in: their paths are stored relative to it (the
    files are hashed where they are). ``None`` stores the paths as given."""


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Filters for :meth:`AuditLog.list_requests` (all optional, combined with AND).

    ``action`` matches a request whose decision at any stage (prompt or frame) had that action;
    ``stage`` pins it to one stage. ``category`` matches a request with a review/block reason in
    that category. ``since``/``until`` bound the request time (epoch seconds, until exclusive).
    """

    action: str | None = None
    stage: str | None = None
    category: str | None = None
    tenant: str | None = None
    since: float | None = None
    until: float | None = None
    policy_version: str | None = None
    needs_review: bool = False


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """One line of ``audit list``: a request and where it stands now."""

    seq: int
    request_id: str
    job_id: str | None
    tenant: str
    endpoint: str
    created_at: float
    action: str
    frame_action: str | None
    release: str | None
    review: str | None
    categories: tuple[str, ...]
    policy_version: str
    latency_ms: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "seq": self.seq,
            "request_id": self.request_id,
            "job_id": self.job_id,
            "tenant": self.tenant,
            "endpoint": self.endpoint,
            "created_at": self.created_at,
            "action": self.action,
            "frame_action": self.frame_action,
            "release": self.release,
            "review": self.review,
            "categories": list(self.categories),
            "policy_version": self.policy_version,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True, slots=True)
class QueueItem:
    """Something awaiting a human: a withheld video, or a prompt the policy sent to review."""

    ref: str
    kind: Literal["withheld_video", "prompt_review"]
    tenant: str
    since: float
    request_id: str | None
    job_id: str | None
    categories: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "ref": self.ref,
            "kind": self.kind,
            "tenant": self.tenant,
            "since": self.since,
            "request_id": self.request_id,
            "job_id": self.job_id,
            "categories": list(self.categories),
        }


@dataclass(frozen=True, slots=True)
class StatRow:
    """``audit stats``: for one day and category, how many requests were reviewed or blocked."""

    day: str
    category: str
    review: int
    block: int
    requests: int

    @property
    def rate(self) -> float:
        """Share of that day's requests flagged (review or block) in this category."""
        return (self.review + self.block) / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "day": self.day,
            "category": self.category,
            "review": self.review,
            "block": self.block,
            "requests": self.requests,
            "rate": round(self.rate, 6),
        }


@dataclass(frozen=True, slots=True)
class Story:
    """Everything recorded about one request or job (``audit show``), oldest first per part.

    Each part is a list of rows as stored, with JSON columns decoded; prompt text and evidence
    quotes are ``None`` where the tenant's retention or a redaction removed them.
    """

    request: dict[str, Any] | None
    verdicts: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    reasons: list[dict[str, Any]]
    frame_scores: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    releases: list[dict[str, Any]]
    reviews: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "request": self.request,
            "verdicts": self.verdicts,
            "decisions": self.decisions,
            "reasons": self.reasons,
            "frame_scores": self.frame_scores,
            "evidence": self.evidence,
            "releases": self.releases,
            "reviews": self.reviews,
        }


@dataclass(frozen=True, slots=True)
class VerifyProblem:
    """One place the chain does not hold, naming the row (table and sequence number)."""

    seq: int
    table: str
    kind: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {"seq": self.seq, "table": self.table, "kind": self.kind, "message": self.message}


@dataclass(frozen=True, slots=True)
class Anchor:
    """A chain head noted outside the database: row ``seq`` had hash ``hash`` at ``at``.

    Checked by :meth:`AuditLog.verify` (``anchors=``): it catches what the database alone cannot,
    a tail cut together with a rewritten head, or the whole chain recomputed after an edit.
    """

    seq: int
    hash: str
    at: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (one line of an anchors file)."""
        return {"seq": self.seq, "hash": self.hash, "at": self.at}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :meth:`AuditLog.verify`. ``ok`` when ``problems`` is empty."""

    rows: int
    base_seq: int
    head_seq: int
    head_hash: str
    problems: tuple[VerifyProblem, ...]
    seconds: float
    anchors_checked: int = 0

    @property
    def ok(self) -> bool:
        """True when every row's hash and every redaction checked out."""
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "ok": self.ok,
            "rows": self.rows,
            "base_seq": self.base_seq,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problems": [p.as_dict() for p in self.problems],
            "seconds": round(self.seconds, 3),
            "anchors_checked": self.anchors_checked,
        }


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What :meth:`AuditLog.purge` removed: every row up to ``through_seq``."""

    cutoff: float
    through_seq: int
    rows: int
    files: int
    kept: tuple[str, ...] = ()
    """Evidence files of removed rows that were *not* deleted, each with the reason (a path
    outside the data folder, no data folder given)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "cutoff": self.cutoff,
            "through_seq": self.through_seq,
            "rows": self.rows,
            "files": self.files,
            "kept": list(self.kept),
        }


@dataclass(frozen=True, slots=True)
class RedactReport:
    """What :meth:`AuditLog.redact` changed."""

    tenant: str
    mode: PromptRetention
    through_seq: int
    rows: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``--json``)."""
        return {
            "tenant": self.tenant,
            "mode": self.mode,
            "through_seq": self.through_seq,
            "rows": self.rows,
        }


def evidence_text(items: Sequence[Mapping[str, Any]] | None) -> str:
    """A stored reason's evidence on one line, as ``audit show`` and the review console print it:
    frames as ``frame 16 @ 2.00s``, text spans as ``'word' [4:8]`` (or their offsets when the
    text was not stored), each with its detail."""
    parts = []
    for e in items or ():
        if e.get("frame_index") is not None:
            parts.append(f"frame {e['frame_index']} @ {e.get('timestamp_s', 0):.2f}s")
        elif e.get("text") is not None:
            parts.append(f"{e['text']!r} [{e.get('start')}:{e.get('end')}]")
        elif "start" in e:
            parts.append(f"[{e['start']}:{e.get('end')}] (text not stored)")
        if e.get("detail"):
            parts.append(str(e["detail"]))
    return "; ".join(parts)
