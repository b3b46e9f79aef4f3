"""Records to table rows and back: pure mapping, no database.

Writers turn a :class:`~audit.records.ModerationRecord`, a
:class:`~audit.records.FrameAuditRecord`, a release, a review or a setting into ``(table, row)``
pairs for :func:`audit.append.append`, which numbers, seals and chains them; readers turn stored
rows back into plain dicts (JSON columns decoded, evidence quotes merged back). Every function
here validates what it maps and raises :class:`~audit.errors.InvalidRecord` for a value the log
refuses to store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from audit import chain
from audit.errors import InvalidRecord
from audit.evidence import stored_evidence_path
from audit.records import (
    ENDPOINTS,
    RELEASE_ACTIONS,
    REVIEW_VERDICTS,
    FrameAuditRecord,
    ModerationRecord,
    StoredEvidence,
)
from audit.schema import TableSpec
from classifiers.base import Evidence, Verdict
from policies.decision import Action, Decision, Reason

Row = dict[str, Any]
"""A row as column name -> value."""
TableRows = list[tuple[str, Row]]
"""Rows to append, each with its table, in chain order."""

POLICY_SETTING = "policy."
"""Prefix of the ``settings`` rows that chain policy changes (``policy.edited``...)."""

JSON_COLUMNS = frozenset(
    {"model_versions", "evidence", "quotes", "category_scores", "latency_ms", "frames"}
)
"""Columns stored as JSON text (decoded by :func:`decode`)."""


def json_text(value: Any) -> str:
    """``value`` as the canonical JSON text the log stores (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def need(value: str | None, name: str) -> None:
    """Raise :class:`InvalidRecord` unless ``value`` is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise InvalidRecord(f"{name} must be a non-empty string, got {value!r}")


def evidence_parts(evidence: Sequence[Evidence]) -> tuple[str, str | None]:
    """Evidence as committed JSON (no prompt text) plus the quotes, which are redactable."""
    items: list[dict[str, Any]] = []
    quotes: list[str | None] = []
    for e in evidence:
        item = {
            k: getattr(e, k)
            for k in ("start", "end", "frame_index", "timestamp_s", "detail")
            if getattr(e, k) is not None
        }
        items.append(item)
        quotes.append(e.text)
    return json_text(items), (json_text(quotes) if any(q is not None for q in quotes) else None)


def frame_of(verdict: Verdict) -> tuple[int | None, float | None, str | None]:
    """The frame a frame verdict is about: (index, timestamp, detail)."""
    for e in verdict.evidence:
        if e.frame_index is not None:
            return e.frame_index, e.timestamp_s, e.detail
    detail = next((e.detail for e in verdict.evidence if e.detail), None)
    return None, None, detail


def file_sha256(path: Path) -> tuple[str | None, int | None]:
    """(hex SHA-256, size) of a file, or ``(None, None)`` when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError:
        return None, None
    return hashlib.sha256(data).hexdigest(), len(data)


def seal_text(spec: TableSpec, row: Row) -> None:
    """Digest the redactable text, then keep, hash or drop it per the tenant's retention."""
    retention = row.setdefault("retention", "keep")
    if all(row.get(c) is None for c in spec.redactable):
        return
    salt = chain.new_salt()
    for col in spec.redactable:
        text = row.get(col)
        row[f"{col}_digest"] = None if text is None else chain.text_digest(salt, text)
    if retention != "keep":
        for col in spec.redactable:
            row[col] = None
    row["salt"] = None if retention == "drop" else salt


def moderation_rows(rec: ModerationRecord, retention: str) -> TableRows:
    """The rows of one request's prompt stage: request, verdicts, decision, reasons.

    Raises :class:`InvalidRecord` for a bad endpoint or an empty id or tenant.
    """
    if rec.endpoint not in ENDPOINTS:
        raise InvalidRecord(f"endpoint {rec.endpoint!r} is not one of {', '.join(ENDPOINTS)}")
    need(rec.request_id, "request_id")
    need(rec.tenant, "tenant")
    d = rec.decision
    common = {"request_id": rec.request_id, "tenant": rec.tenant, "created_at": rec.created_at}
    models = json_text(dict(rec.model_versions))
    action = Action(d.action)
    if rec.input is not None:
        action = max(action, Action(rec.input.decision.action), key=lambda a: a.severity)
    rows: TableRows = [
        (
            "requests",
            {
                **common,
                "endpoint": rec.endpoint,
                "job_id": rec.job_id,
                "action": action.value,
                "policy_version": d.policy_version,
                "model_versions": models,
                "latency_ms": rec.latency_ms,
                "retention": retention,
                "original": rec.original,
                "normalized": rec.normalized,
            },
        )
    ]
    for v in (*rec.verdicts, *(rec.input.verdicts if rec.input is not None else ())):
        evidence, quotes = evidence_parts(v.evidence)
        rows.append(
            (
                "verdicts",
                {
                    **common,
                    "classifier": v.classifier,
                    "category": v.category,
                    "score": v.score,
                    "threshold": v.threshold,
                    "model_id": v.model_id,
                    "model_version": v.model_version,
                    "evidence": evidence,
                    "retention": retention,
                    "quotes": quotes,
                },
            )
        )
    rows += decision_rows(
        d,
        {**common, "job_id": rec.job_id},
        "prompt",
        retention,
        models,
        {"latency_ms": json_text({"total": rec.latency_ms}), "frames": None},
    )
    if rec.input is not None:
        i = rec.input
        upload = {
            i.field: {
                "sha256": i.sha256,
                "media_type": i.media_type,
                "width": i.width,
                "height": i.height,
                "bytes": i.bytes,
                **(dict(i.video) if i.video is not None else {}),
            }
        }
        rows += decision_rows(
            i.decision,
            {**common, "job_id": rec.job_id},
            "input",
            retention,
            json_text(dict(i.model_versions)),
            {"latency_ms": json_text({"total": i.latency_ms}), "frames": json_text(upload)},
        )
    return rows


def decision_rows(
    d: Decision, common: Row, stage: str, retention: str, models: str, extra: Row
) -> TableRows:
    """A decision row and one row per reason."""
    rows: TableRows = [
        (
            "decisions",
            {
                **common,
                "stage": stage,
                "action": Action(d.action).value,
                "policy_version": d.policy_version,
                "model_versions": models,
                "category_scores": json_text(dict(d.category_scores)),
                **extra,
            },
        )
    ]
    for r in d.reasons:
        rows.append(("reasons", reason_row(r, common, retention)))
    return rows


def reason_row(r: Reason, common: Row, retention: str) -> Row:
    """One reason of a decision (its evidence quotes are redactable)."""
    evidence, quotes = evidence_parts(r.evidence)
    return {
        **common,
        "stage": r.stage,
        "category": r.category,
        "action": Action(r.action).value,
        "source": r.source,
        "classifier": r.classifier,
        "score": r.score,
        "threshold": r.threshold,
        "message": r.message,
        "evidence": evidence,
        "retention": retention,
        "quotes": quotes,
    }


def frame_audit_rows(
    rec: FrameAuditRecord, request_id: str | None, retention: str, created: float
) -> TableRows:
    """The rows of one video job's frame stage: decision, reasons, every frame score, and the
    evidence thumbnails with their SHA-256 (a thumbnail that cannot be read gets no digest)."""
    need(rec.job_id, "job_id")
    need(rec.tenant, "tenant")
    common = {
        "request_id": request_id,
        "job_id": rec.job_id,
        "tenant": rec.tenant,
        "created_at": created,
    }
    frames = json_text([[f.index, f.timestamp_s] for f in rec.frames])
    extra = {"latency_ms": json_text(dict(rec.latency_ms)), "frames": frames}
    models = json_text(dict(rec.model_versions))
    rows = decision_rows(rec.decision, common, "frame", retention, models, extra)
    for v in rec.verdicts:
        index, ts, detail = frame_of(v)
        rows.append(
            (
                "frame_scores",
                {
                    "job_id": rec.job_id,
                    "request_id": request_id,
                    "tenant": rec.tenant,
                    "frame_index": index,
                    "timestamp_s": ts,
                    "classifier": v.classifier,
                    "category": v.category,
                    "score": v.score,
                    "threshold": v.threshold,
                    "model_id": v.model_id,
                    "model_version": v.model_version,
                    "detail": detail,
                },
            )
        )
    stamps = {f.index: f.timestamp_s for f in rec.frames}
    for index, thumb in sorted(rec.thumbnails.items()):
        digest: str | None
        size: int | None
        if isinstance(thumb, StoredEvidence):  # hashed as written: the store may be remote
            stored, digest, size = thumb.key, thumb.sha256, thumb.size
        else:
            digest, size = file_sha256(Path(thumb))
            stored = (
                str(thumb)
                if rec.data_dir is None
                else stored_evidence_path(Path(thumb), rec.data_dir)
            )
        rows.append(
            (
                "evidence",
                {
                    "job_id": rec.job_id,
                    "tenant": rec.tenant,
                    "frame_index": index,
                    "timestamp_s": stamps.get(index),
                    "path": stored,
                    "sha256": digest,
                    "bytes": size,
                },
            )
        )
    return rows


def release_row(
    job_id: str,
    request_id: str | None,
    tenant: str,
    action: str,
    path: str | None,
    reason: str,
    actor: str,
    decided: Mapping[str, str | None],
) -> Row:
    """What became of a job's video (``decided``: the policy and models it was decided under)."""
    check_release(job_id, action, actor)
    return {
        "job_id": job_id,
        "request_id": request_id,
        "tenant": tenant,
        "action": action,
        "path": None if path is None else str(path),
        "reason": reason,
        "actor": actor,
        **decided,
    }


def check_release(job_id: str, action: str, actor: str) -> None:
    """Raise :class:`InvalidRecord` for a release that cannot be stored."""
    if action not in RELEASE_ACTIONS:
        raise InvalidRecord(f"release action {action!r} is not one of {', '.join(RELEASE_ACTIONS)}")
    need(job_id, "job_id")
    need(actor, "actor")


def check_review(reviewer: str, verdict: str) -> None:
    """Raise :class:`InvalidRecord` for a review that cannot be stored."""
    if verdict not in REVIEW_VERDICTS:
        raise InvalidRecord(f"review verdict {verdict!r} is not one of approve, reject")
    need(reviewer, "reviewer")


def review_row(
    ref: str,
    request_id: str | None,
    job_id: str | None,
    tenant: str,
    reviewer: str,
    verdict: str,
    note: str,
    decided: Mapping[str, str | None],
) -> Row:
    """A human review of a request or job (``ref`` is the id the reviewer gave)."""
    check_review(reviewer, verdict)
    return {
        "ref": ref,
        "request_id": request_id,
        "job_id": job_id,
        "tenant": tenant,
        "reviewer": reviewer,
        "verdict": verdict,
        "note": note,
        **decided,
    }


def setting_row(tenant: str, mode: str, previous: str, actor: str) -> Row:
    """A chained change of a tenant's prompt retention."""
    return {
        "tenant": tenant,
        "name": "prompt_retention",
        "value": mode,
        "previous": previous,
        "actor": actor,
    }


def policy_change_row(
    tenant: str, change: str, version: str, previous: str | None, actor: str
) -> Row:
    """A chained change of the policy a tenant is served (``policy.<change>``)."""
    need(tenant, "tenant")
    need(actor, "actor")
    need(change, "change")
    return {
        "tenant": tenant,
        "name": f"{POLICY_SETTING}{change}",
        "value": version,
        "previous": previous or "",
        "actor": actor,
    }


def decode(row: Row) -> Row:
    """A stored row with its JSON columns decoded."""
    return {
        k: (json.loads(v) if k in JSON_COLUMNS and isinstance(v, str) else v)
        for k, v in row.items()
    }


def merge_quotes(row: Row, original: str | None) -> None:
    """Put the quoted text back into each evidence item (from the prompt if the quote is gone)."""
    quotes = row.get("quotes") or []
    for i, item in enumerate(row.get("evidence") or []):
        text = quotes[i] if i < len(quotes) else None
        if text is None and original is not None and "start" in item and "end" in item:
            text = original[item["start"] : item["end"]]
        item["text"] = text
