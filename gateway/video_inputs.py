"""The ``input`` stage for uploaded *videos* (a video to extend or edit), checked before any
job exists; the image counterpart is :mod:`gateway.inputs`.

::

    upload bytes (at most REELGUARD_MAX_UPLOAD_MB, else 413)
      -> decode_video_upload     MP4/MOV/WebM only (else 415); frame size, length and frame
                                 count bounded before and while decoding (else 400
                                 invalid-video); a file that does not decode: 400
      -> sample_frames           the frame audit's sampler and the policy's frame_audit rules
      -> classify_frames         the policy's classifiers.input (with `faces`), within
                                 REELGUARD_INPUT_CHECK_TIMEOUT_S; a failure blocks
      -> decide_release(stage="input")
                                 input thresholds with the frame audit's k-of-n rule, a face
                                 in any sampled frame takes inputs.faces, the sexual/minors
                                 rule with the prompt's mentions of a child
      -> VideoInputOutcome       recorded with the prompt decision (one audit record); a block
                                 answers 400 input-blocked and no job exists
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from audit.records import InputCheck
from classifiers.base import Verdict, error_verdicts
from classifiers.frame.sampler import sample_frames
from classifiers.frame.videos import DecodedVideo, VideoRejected, decode_video
from config.settings import Settings
from gateway import metrics
from gateway.frame_audit import FrameClassifierCache, classify_frames
from gateway.inputs import Upload, prompt_minor_mentions
from gateway.problems import FieldError, Problem
from policies.decision import Decision
from policies.engine import with_thresholds
from policies.release import decide_release
from policies.resolved import ResolvedPolicy

log = logging.getLogger("reelguard.inputs")

VIDEO_FIELD = "video"
DECODE_MAX_SIDE = 512
"""Uploaded frames are scaled down to this longer side as they are decoded (memory bound);
the classifiers look at 224-640 pixels anyway."""


@dataclass(frozen=True, slots=True)
class VideoInputOutcome:
    """An uploaded video's input-stage result (the shape of
    :class:`gateway.inputs.InputOutcome`, for the same callers)."""

    video: DecodedVideo
    verdicts: tuple[Verdict, ...]
    decision: Decision
    model_versions: dict[str, str]
    latency_ms: float
    sampled_frames: int
    field: str = VIDEO_FIELD

    def _upload(self) -> dict[str, Any]:
        v = self.video
        return {
            "sha256": v.sha256,
            "media_type": v.media_type,
            "width": v.width,
            "height": v.height,
            "bytes": v.bytes,
            **self._video(),
        }

    def _video(self) -> dict[str, float | int]:
        v = self.video
        return {
            "frames": int(v.frames.shape[0]),
            "fps": round(v.fps, 3),
            "duration_s": round(v.duration_s, 3),
            "sampled_frames": self.sampled_frames,
        }

    def record(self) -> InputCheck:
        """The audit log's view (goes into the request's :class:`ModerationRecord`)."""
        v = self.video
        return InputCheck(
            field=self.field,
            sha256=v.sha256,
            media_type=v.media_type,
            width=v.width,
            height=v.height,
            bytes=v.bytes,
            verdicts=self.verdicts,
            decision=self.decision,
            model_versions=self.model_versions,
            latency_ms=self.latency_ms,
            video=self._video(),
        )

    def as_json(self) -> dict[str, Any]:
        """The job's ``input_moderation`` (the ``moderation.input`` member of a video)."""
        return {
            **self.decision.as_json(),
            "model_versions": dict(self.model_versions),
            "upload": {"field": self.field, **self._upload()},
        }


def decode_video_upload(upload: Upload, settings: Settings) -> DecodedVideo:
    """The upload as a video, or the problem that says why not (415, 400)."""
    try:
        return decode_video(
            upload.data,
            max_pixels=settings.max_upload_pixels,
            max_frames=settings.max_upload_video_frames,
            max_seconds=settings.max_upload_video_s,
            max_side=DECODE_MAX_SIDE,
        )
    except VideoRejected as exc:
        status, kind = (
            (415, "unsupported-media-type") if exc.kind == "not_video" else (400, "invalid-video")
        )
        name = f" ({upload.filename})" if upload.filename else ""
        raise Problem(
            status,
            kind,
            f"{VIDEO_FIELD}{name} was refused: {exc}. Send an MP4, MOV or WebM video, or "
            '{"id": ...} of a completed video. No video was created.',
            errors=[FieldError(f"#/{VIDEO_FIELD}", str(exc))],
        ) from None


def check_video_input(
    video: DecodedVideo,
    policy: ResolvedPolicy,
    classifiers: FrameClassifierCache,
    *,
    tenant: str,
    prompt: str,
    timeout_s: float,
) -> VideoInputOutcome:
    """Sample ``video`` as the frame audit does, score the samples with the policy's input
    classifiers and decide at the ``input`` stage with the frame audit's k-of-n rule.

    Fail closed: a classifier that cannot be built, raises or times out yields error verdicts,
    which block; so does an error anywhere in the check itself.
    """
    t0 = time.perf_counter()
    sampled = sample_frames(video.frames, video.fps, policy.policy.frame_audit)
    try:
        mentions = prompt_minor_mentions(prompt)
        scores = classify_frames(
            sampled, policy, classifiers.for_input(policy), timeout_s=timeout_s
        )
        verdicts, versions = list(scores.verdicts), dict(scores.model_versions)
        decision = decide_release(policy, verdicts, sampled, minor_mentions=mentions, stage="input")
    except Exception as exc:  # fail closed: block, and the log says why
        log.exception("video input check raised")
        verdicts = error_verdicts("input-check", exc)
        versions = {"input-check": "input-check@error"}
        decision = decide_release(policy, verdicts, sampled, stage="input")
    metrics.count_decision(tenant, "input", decision)
    return VideoInputOutcome(
        video=video,
        verdicts=tuple(with_thresholds(policy, "input", verdicts)),
        decision=decision,
        model_versions=versions,
        latency_ms=(time.perf_counter() - t0) * 1000.0,
        sampled_frames=len(sampled),
    )
