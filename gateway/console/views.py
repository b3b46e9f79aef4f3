"""What the console's pages show, computed from the audit records (no HTTP, no HTML framework):
the queue with its filters, counts and pages; a prompt with its evidence spans marked; the frame
timeline of a video; and an item's audit trail in the sections ``reelguard audit show`` prints.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from audit.records import ENDED_BY_OWNER, QueueItem, Story

AGES: dict[str, tuple[str, float]] = {
    "": ("any age", 0.0),
    "1h": ("waiting over 1 hour", 3600.0),
    "24h": ("waiting over 24 hours", 86400.0),
    "7d": ("waiting over 7 days", 7 * 86400.0),
}
"""The queue's age filter: value -> (label, minimum seconds waiting)."""

STAGES = ("prompt", "input", "frame")
KINDS = {"withheld_video": "withheld video", "prompt_review": "prompt sent to review"}


# -- the queue ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """The queue's filters (empty string: no filter) and the page asked for (1-based)."""

    tenant: str = ""
    category: str = ""
    stage: str = ""
    age: str = ""
    page: int = 1

    def query(self, **change: Any) -> str:
        """This filter as a query string, with ``change`` applied (page resets to 1 unless
        given), leaving out empty values."""
        values = {
            "tenant": self.tenant,
            "category": self.category,
            "stage": self.stage,
            "age": self.age,
            "page": 1,
        }
        values.update(change)
        from urllib.parse import urlencode

        kept = {k: v for k, v in values.items() if v not in ("", None) and (k != "page" or v != 1)}
        return ("?" + urlencode(kept)) if kept else "?"


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One line of the queue page."""

    item: QueueItem
    stages: tuple[str, ...]
    waiting_s: float
    excerpt: str | None

    @property
    def kind_label(self) -> str:
        """``withheld video`` or ``prompt sent to review``."""
        return KINDS.get(self.item.kind, self.item.kind)


@dataclass(frozen=True, slots=True)
class Facet:
    """One option of one filter, with how many items it would show (the other filters kept)."""

    value: str
    label: str
    count: int
    selected: bool


@dataclass(frozen=True, slots=True)
class QueuePage:
    """A page of the queue: its rows, the total that matched, and the counts per filter."""

    rows: tuple[QueueRow, ...]
    matched: int
    total: int
    page: int
    pages: int
    facets: Mapping[str, tuple[Facet, ...]]


def _matches(
    item: QueueItem, stages: frozenset[str], f: QueueFilter, now: float, skip: str
) -> bool:
    if skip != "tenant" and f.tenant and item.tenant != f.tenant:
        return False
    if skip != "category" and f.category and f.category not in item.categories:
        return False
    if skip != "stage" and f.stage and f.stage not in stages:
        return False
    return not (skip != "age" and f.age and now - item.since < AGES.get(f.age, ("", 0.0))[1])


def queue_page(
    items: Sequence[QueueItem],
    stages: Mapping[str, frozenset[str]],
    f: QueueFilter,
    *,
    tenants: Sequence[str],
    categories: Sequence[str],
    page_size: int,
    excerpts: Mapping[str, str] | None = None,
    now: float | None = None,
) -> QueuePage:
    """Filter ``items`` (oldest first, as :meth:`AuditLog.queue` gives them), count each
    filter option against the other filters, and cut out page ``f.page``."""
    now = time.time() if now is None else now
    empty: frozenset[str] = frozenset()

    def count(skip: str, test: Any) -> int:
        return sum(
            1 for i in items if test(i) and _matches(i, stages.get(i.ref, empty), f, now, skip)
        )

    facets: dict[str, tuple[Facet, ...]] = {
        "tenant": tuple(
            Facet(t, t, count("tenant", lambda i, t=t: i.tenant == t), f.tenant == t)
            for t in tenants
        ),
        "category": tuple(
            Facet(c, c, count("category", lambda i, c=c: c in i.categories), f.category == c)
            for c in categories
        ),
        "stage": tuple(
            Facet(
                s,
                s,
                count("stage", lambda i, s=s: s in stages.get(i.ref, empty)),
                f.stage == s,
            )
            for s in STAGES
        ),
        "age": tuple(
            Facet(
                value,
                label,
                count("age", lambda i, least=least: now - i.since >= least),
                f.age == value,
            )
            for value, (label, least) in AGES.items()
            if value
        ),
    }
    matched = [i for i in items if _matches(i, stages.get(i.ref, empty), f, now, "")]
    pages = max(1, math.ceil(len(matched) / page_size))
    page = min(max(1, f.page), pages)
    chosen = matched[(page - 1) * page_size : page * page_size]
    texts = excerpts or {}
    rows = tuple(
        QueueRow(
            item=i,
            stages=tuple(s for s in STAGES if s in stages.get(i.ref, empty)),
            waiting_s=max(0.0, now - i.since),
            excerpt=texts.get(i.request_id or ""),
        )
        for i in chosen
    )
    return QueuePage(rows, len(matched), len(items), page, pages, facets)


def age_text(seconds: float) -> str:
    """``45 s``, ``12 min``, ``5 h``, ``3 d``: how long something has waited."""
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


# -- the prompt with its evidence marked ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of the prompt that a reason quoted: ``[start, end)`` and who flagged it."""

    start: int
    end: int
    label: str


def evidence_spans(reasons: Iterable[Mapping[str, Any]], text: str) -> list[Span]:
    """The text spans the review/block reasons point at (positions in the prompt as typed)."""
    spans = []
    for r in reasons:
        if r.get("action") == "allow":
            continue
        for e in r.get("evidence") or ():
            start, end = e.get("start"), e.get("end")
            if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
                label = f"{r.get('category')} ({r.get('classifier') or r.get('source')})"
                spans.append(Span(start, end, label))
    return spans


def highlight(text: str, spans: Sequence[Span]) -> Markup:
    """The prompt, HTML-escaped, with each evidence span in ``<mark>`` (overlapping spans
    merged; the ``title`` names every reason that quoted it)."""
    merged: list[list[Any]] = []
    for s in sorted(spans, key=lambda s: (s.start, s.end)):
        if merged and s.start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], s.end)
            if s.label not in merged[-1][2]:
                merged[-1][2].append(s.label)
        else:
            merged.append([s.start, s.end, [s.label]])
    out, at = [], 0
    for start, end, labels in merged:
        out.append(escape(text[at:start]))
        title = escape("; ".join(labels))
        out.append(Markup('<mark title="{}">{}</mark>').format(title, text[start:end]))
        at = end
    out.append(escape(text[at:]))
    return Markup("").join(out)


# -- the frame timeline -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameScore:
    """One category's highest score on one frame, and whether it reached its threshold."""

    category: str
    score: float
    threshold: float | None
    over: bool
    classifier: str


@dataclass(frozen=True, slots=True)
class TimelineFrame:
    """A sampled frame: index, timestamp, per-category scores, and whether a reason flagged it."""

    index: int
    timestamp_s: float
    scores: tuple[FrameScore, ...]
    flagged: bool
    flagged_by: tuple[str, ...] = field(default=())


def frame_timeline(story: Story) -> list[TimelineFrame]:
    """Every sampled frame of the job (from its frame decision), oldest first, with the scores
    the frame classifiers gave it; ``flagged`` marks the frames a review/block reason names."""
    sampled: dict[int, float] = {}
    for d in story.decisions:
        if d.get("stage") == "frame" and d.get("frames"):
            sampled = {int(i): float(t) for i, t in d["frames"]}
    best: dict[int, dict[str, FrameScore]] = {}
    for row in story.frame_scores:
        index = row.get("frame_index")
        if index is None:
            continue
        sampled.setdefault(int(index), float(row.get("timestamp_s") or 0.0))
        threshold = row.get("threshold")
        score = float(row.get("score") or 0.0)
        cell = best.setdefault(int(index), {})
        old = cell.get(row["category"])
        if old is None or score > old.score:
            over = threshold is not None and score >= threshold
            cell[row["category"]] = FrameScore(
                row["category"], score, threshold, over, str(row.get("classifier"))
            )
    flagged: dict[int, set[str]] = {}
    for r in story.reasons:
        if r.get("stage") != "frame" or r.get("action") == "allow":
            continue
        for e in r.get("evidence") or ():
            if e.get("frame_index") is not None:
                flagged.setdefault(int(e["frame_index"]), set()).add(str(r.get("category")))
    return [
        TimelineFrame(
            index=index,
            timestamp_s=ts,
            scores=tuple(sorted(best.get(index, {}).values(), key=lambda s: -s.score)),
            flagged=index in flagged,
            flagged_by=tuple(sorted(flagged.get(index, ()))),
        )
        for index, ts in sorted(sampled.items())
    ]


# -- the item's state ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemState:
    """Where an item stands: its tenant, job, whether a video is withheld, the latest review."""

    ref: str
    tenant: str
    job_id: str | None
    request_id: str | None
    withheld: bool
    released: bool
    last_review: Mapping[str, Any] | None
    policy_version: str | None
    prompt_action: str | None = None
    ended: Mapping[str, Any] | None = None
    """The release record of its owner's delete or cancel: then nothing is left to review."""

    @property
    def open(self) -> bool:
        """Whether it still awaits a review (what the queue lists)."""
        if self.ended is not None:
            return False
        if self.job_id is not None and (self.withheld or self.released):
            return self.withheld and self.last_review is None
        return self.prompt_action == "review" and self.last_review is None


def item_state(ref: str, story: Story) -> ItemState:
    """The state of the item ``ref`` from its story (tenant from any of its records)."""
    req = story.request or {}
    tenant = req.get("tenant")
    for part in (story.decisions, story.releases, story.reviews):
        if tenant is None and part:
            tenant = part[0].get("tenant")
    job_id = req.get("job_id") or (story.releases[-1]["job_id"] if story.releases else None)
    last_release = story.releases[-1] if story.releases else None
    withheld = last_release is not None and last_release["action"] == "withheld"
    released = last_release is not None and last_release["action"] == "released"
    review = story.reviews[-1] if story.reviews else None
    if review is not None and last_release is not None and review["seq"] < last_release["seq"]:
        review = None  # a review older than the latest withholding does not settle it
    version = (story.decisions[-1].get("policy_version") if story.decisions else None) or req.get(
        "policy_version"
    )
    return ItemState(
        ref=ref,
        tenant=str(tenant or ""),
        job_id=job_id,
        request_id=req.get("request_id"),
        withheld=withheld,
        released=released,
        last_review=review,
        policy_version=version,
        prompt_action=req.get("action"),
        ended=last_release if last_release and last_release["action"] in ENDED_BY_OWNER else None,
    )
