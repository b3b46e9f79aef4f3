"""The ``input`` stage: an uploaded reference image, checked before any job exists.

``POST /v1/videos`` with ``input_reference`` (a multipart file part, as the ``openai`` SDK
sends it) goes::

    upload bytes (at most REELGUARD_MAX_UPLOAD_MB, else 413)
      -> decode_image             PNG/JPEG/WebP only (else 415); header checked against
                                  REELGUARD_MAX_UPLOAD_PIXELS before decoding (a bomb: 400);
                                  a file that does not decode: 400
      -> classify_image           the frame classifiers of the policy's classifiers.input
                                  (with `faces`: a face is a celebrity signal), within
                                  REELGUARD_INPUT_CHECK_TIMEOUT_S; a failure blocks
      -> decide(stage="input")    input thresholds, inputs.faces, the sexual/minors rule with
                                  the prompt's mentions of a child
      -> InputOutcome             recorded with the prompt decision (one audit record), and
                                  a block answers 400 input-blocked; no job exists

The accepted image, scaled to the video's size, becomes the job's start image
(:class:`generator.base.Conditioning`); the generated video is frame-audited in full as always.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audit.records import InputCheck
from classifiers.base import Evidence, Verdict, error_verdicts
from classifiers.frame.images import DecodedImage, ImageRejected, decode_image, encode_png, fit_to
from config.settings import Settings
from gateway import metrics
from gateway.frame_audit import FrameClassifierCache, classify_image
from gateway.problems import FieldError, Problem
from policies.decision import Decision
from policies.engine import decide, with_thresholds
from policies.resolved import ResolvedPolicy

log = logging.getLogger("reelguard.inputs")

FIELD = "input_reference"


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part as received: its bytes (at most the limit plus one), name and type."""

    data: bytes
    filename: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class InputOutcome:
    """An uploaded image's input-stage result."""

    image: DecodedImage
    verdicts: tuple[Verdict, ...]
    decision: Decision
    model_versions: dict[str, str]
    latency_ms: float

    def record(self) -> InputCheck:
        """The audit log's view (goes into the request's :class:`ModerationRecord`)."""
        return InputCheck(
            field=FIELD,
            sha256=self.image.sha256,
            media_type=self.image.media_type,
            width=self.image.width,
            height=self.image.height,
            bytes=self.image.bytes,
            verdicts=self.verdicts,
            decision=self.decision,
            model_versions=self.model_versions,
            latency_ms=self.latency_ms,
        )

    def as_json(self) -> dict[str, Any]:
        """The job's ``input_moderation`` (and the ``moderation.input`` member of a video)."""
        return {
            **self.decision.as_json(),
            "model_versions": dict(self.model_versions),
            "upload": {
                "field": FIELD,
                "sha256": self.image.sha256,
                "media_type": self.image.media_type,
                "width": self.image.width,
                "height": self.image.height,
                "bytes": self.image.bytes,
            },
        }


def max_upload_bytes(settings: Settings) -> int:
    """``REELGUARD_MAX_UPLOAD_MB`` in bytes."""
    return int(settings.max_upload_mb * 1024 * 1024)


async def read_upload(part: Any, settings: Settings, field: str = FIELD) -> Upload:
    """Read a multipart file part, at most the upload limit plus one byte (413 if over)."""
    limit = max_upload_bytes(settings)
    data = await part.read(limit + 1)
    if len(data) > limit:
        what = "image" if field == FIELD else "file"
        raise Problem(
            413,
            "upload-too-large",
            f"{field} is over the upload limit of {settings.max_upload_mb:g} MiB "
            f"(REELGUARD_MAX_UPLOAD_MB); send a smaller {what}.",
            errors=[FieldError(f"#/{field}", f"at most {limit} bytes")],
        )
    return Upload(data=data, filename=part.filename, content_type=part.content_type)


def decode_upload(upload: Upload, settings: Settings) -> DecodedImage:
    """The upload as an image, or the problem that says why not (415, 400)."""
    try:
        return decode_image(upload.data, max_pixels=settings.max_upload_pixels)
    except ImageRejected as exc:
        status, kind = (
            (415, "unsupported-media-type")
            if exc.kind == "not_image"
            else (
                400,
                "invalid-image",
            )
        )
        name = f" ({upload.filename})" if upload.filename else ""
        raise Problem(
            status,
            kind,
            f"{FIELD}{name} was refused: {exc}. Send a PNG, JPEG or WebP image. No video was "
            "created.",
            errors=[FieldError(f"#/{FIELD}", str(exc))],
        ) from None


def check_input(
    image: DecodedImage,
    policy: ResolvedPolicy,
    classifiers: FrameClassifierCache,
    *,
    tenant: str,
    prompt: str,
    timeout_s: float,
) -> InputOutcome:
    """Score ``image`` with the policy's input classifiers and decide at the ``input`` stage
    (``prompt``'s mentions of a child turn on the sexual/minors rule, as for frames).

    Fail closed: a classifier that cannot be built, raises or times out yields error verdicts,
    which block; so does an error anywhere in the check itself.
    """
    t0 = time.perf_counter()
    mentions: Sequence[Evidence] = ()
    try:
        mentions = prompt_minor_mentions(prompt)
        scores = classify_image(
            image.pixels, policy, classifiers.for_input(policy), timeout_s=timeout_s
        )
        verdicts, versions = list(scores.verdicts), dict(scores.model_versions)
    except Exception as exc:  # fail closed: block, and the log says why
        log.exception("input check raised")
        verdicts = error_verdicts("input-check", exc)
        versions = {"input-check": "input-check@error"}
    decision = decide(policy, "input", verdicts, minor_mentions=mentions)
    metrics.count_decision(tenant, "input", decision)
    return InputOutcome(
        image=image,
        verdicts=tuple(with_thresholds(policy, "input", verdicts)),
        decision=decision,
        model_versions=versions,
        latency_ms=(time.perf_counter() - t0) * 1000.0,
    )


def prompt_minor_mentions(prompt: str) -> tuple[Evidence, ...]:
    """Evidence that ``prompt`` mentions a child, found as the prompt stage finds it."""
    from classifiers.text.lexicon import find_minor_mentions
    from classifiers.text.normalize import normalize

    return tuple(find_minor_mentions(normalize(prompt)))


def start_image(pixels: Any, width: int, height: int) -> str:
    """The job's start image: ``pixels`` scaled to the video's size, as base64 PNG."""
    return base64.b64encode(encode_png(fit_to(pixels, width, height))).decode("ascii")
