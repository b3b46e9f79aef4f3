"""A ``POST /v1/videos`` body, validated: JSON or form fields to a :class:`CreateVideo`, with a
problem (422/413/400) naming each bad field, and the chosen backend's own check of the request.
An ``input_reference`` file part is read here (bounded by ``REELGUARD_MAX_UPLOAD_MB``) and
checked by :mod:`gateway.inputs`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import State, UploadFile

from config.settings import Settings
from gateway.inputs import Upload, read_upload
from gateway.limits import check_normalized_size
from gateway.problems import FieldError, Problem

SIZE_PATTERN = re.compile(r"([0-9]{1,5})x([0-9]{1,5})", re.ASCII)
"""``WIDTHxHEIGHT`` in ASCII digits, matched with ``fullmatch`` (no full-width digits, no
trailing newline); the job stores the canonical ``f"{width}x{height}"``."""
FIELDS = ("prompt", "model", "seconds", "size", "seed", "input_reference")
CHARACTER_FORM_FIELD = "characters[][id]"


class CreateVideo(msgspec.Struct, frozen=True, omit_defaults=True):
    """A validated create request."""

    prompt: str
    model: str
    seconds: str
    size: str
    width: int
    height: int
    seed: int | None
    input_sha256: str | None = None
    """SHA-256 of the uploaded ``input_reference`` (part of what an Idempotency-Key binds)."""
    remix_of: str | None = None
    """The source video of a remix (or of an extension or edit of a video id)."""
    mode: str | None = None
    """``extend`` or ``edit`` for ``/v1/videos/extensions`` and ``/v1/videos/edits``."""
    character: str | None = None
    """The character the video features (``characters: [{"id": ...}]``)."""

    def request_hash(self) -> str:
        """What an Idempotency-Key is bound to."""
        canon = json.dumps(msgspec.to_builtins(self), sort_keys=True)
        return hashlib.sha256(canon.encode()).hexdigest()


def check_with_backend(
    state: State, spec: CreateVideo, start_image: Any = None, conditioning: Any = None
) -> None:
    """Ask the chosen backend whether it can serve the request (422 naming the field if not;
    400 ``unsupported-input`` when it cannot start from ``start_image``, the checked reference
    image or remix source at the video's size, or use ``conditioning``, a
    :class:`~generator.base.Conditioning` clip to extend or edit).

    Backends are built lazily and cached on ``app.state``; building one does not load its
    weights, and the web process never calls ``generate``.
    """
    from generator.base import (
        BackendUnavailable,
        Conditioning,
        InvalidVideoRequest,
        PromptNotUnderstood,
        VideoRequest,
    )
    from generator.registry import get_backend

    backends: dict[str, Any] = state.setdefault("video_backends", {})
    try:
        if spec.model not in backends:
            backends[spec.model] = get_backend(state.settings, spec.model)
        backends[spec.model].check_inputs(
            VideoRequest(
                prompt=spec.prompt,
                seconds=float(spec.seconds),
                width=spec.width,
                height=spec.height,
                seed=spec.seed,
                conditioning=conditioning
                if conditioning is not None
                else None
                if start_image is None
                else Conditioning(start_image),
            )
        )
    except PromptNotUnderstood as exc:
        raise Problem(
            400,
            "prompt-not-understood",
            f"The {spec.model} generator cannot make this video: {exc}. No video was created.",
            errors=[FieldError("#/prompt", f"no known word (ignored: {', '.join(exc.ignored)})")],
        ) from None
    except InvalidVideoRequest as exc:
        if exc.field in ("input_reference", "video"):
            raise Problem(
                400,
                "unsupported-input",
                f"The {spec.model} generator cannot use this input: {exc}. No video was created.",
                errors=[FieldError(f"#/{exc.field}", str(exc))],
            ) from None
        pointer = "#/size" if exc.field in ("width", "height") else f"#/{exc.field}"
        raise Problem(
            422,
            "validation-error",
            f"The {spec.model} generator cannot make this video: {exc}.",
            errors=[FieldError(pointer, str(exc))],
        ) from None
    except (BackendUnavailable, KeyError) as exc:
        raise Problem(
            422,
            "validation-error",
            f"The model {spec.model!r} is not available on this server: {exc}",
            errors=[FieldError("#/model", "not available here")],
        ) from None


def _known_models() -> tuple[str, ...]:
    from generator.registry import BACKENDS

    return tuple(BACKENDS)


def parse_create(raw: dict[str, Any], settings: Settings) -> CreateVideo:
    """Validate a create body (JSON or form fields); 422/413 problems name each bad field."""
    errors: list[FieldError] = []
    unknown = sorted(set(raw) - set(FIELDS))
    references = [k for k in unknown if k.startswith("input_reference[")]
    errors += [FieldError(f"#/{k}", "unknown field") for k in unknown if k not in references]
    reference = raw.get("input_reference")
    if references or (reference is not None and not isinstance(reference, Upload)):
        errors.append(
            FieldError(
                "#/input_reference",
                "send the image as a file part of a multipart/form-data request (PNG, JPEG or "
                "WebP); reference objects (file_id, image_url) are not supported",
            )
        )
    prompt = raw.get("prompt")
    if isinstance(prompt, UploadFile):
        errors.append(FieldError("#/prompt", "sent as a file; send the prompt as a text field"))
    elif not isinstance(prompt, str) or not prompt.strip():
        errors.append(FieldError("#/prompt", "required: a non-empty string"))
    elif len(prompt) > settings.max_input_chars:
        raise Problem(
            413,
            "input-too-large",
            f"prompt has {len(prompt)} characters; the limit is {settings.max_input_chars} "
            "(REELGUARD_MAX_INPUT_CHARS).",
            errors=[FieldError("#/prompt", f"at most {settings.max_input_chars} characters")],
        )
    else:
        check_normalized_size([prompt], ["#/prompt"], settings)
    errors += [
        FieldError(f"#/{k}", "sent as a file; send it as a text field")
        for k, v in raw.items()
        if isinstance(v, UploadFile) and k not in ("prompt", "input_reference")
    ]
    model = raw.get("model") or settings.generator_backend
    if not isinstance(model, str) or model not in _known_models():
        errors.append(
            FieldError("#/model", f"unknown model {model!r}; use one of {list(_known_models())}")
        )
    seconds = _seconds(raw.get("seconds", settings.video_default_seconds), errors)
    size = raw.get("size") or settings.video_default_size
    match = SIZE_PATTERN.fullmatch(size) if isinstance(size, str) else None
    if match is None:
        errors.append(FieldError("#/size", f"must be WIDTHxHEIGHT, e.g. '256x256'; got {size!r}"))
    seed = _seed(raw.get("seed"), errors)
    if errors:
        raise Problem(422, "validation-error", "The video request is not valid.", errors=errors)
    assert match is not None and isinstance(prompt, str) and seconds is not None
    return CreateVideo(
        prompt=prompt,
        model=model,
        seconds=seconds,
        size=f"{int(match.group(1))}x{int(match.group(2))}",
        width=int(match.group(1)),
        height=int(match.group(2)),
        seed=seed,
        input_sha256=hashlib.sha256(reference.data).hexdigest()
        if isinstance(reference, Upload)
        else None,
    )


def _seconds(value: Any, errors: list[FieldError]) -> str | None:
    try:
        number = float(value)
        ok = 0 < number <= 600 and not isinstance(value, bool)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        errors.append(FieldError("#/seconds", f"must be a number of seconds > 0; got {value!r}"))
        return None
    return f"{number:g}"


def _seed(value: Any, errors: list[FieldError]) -> int | None:
    if value is None or value == "":
        return None
    try:
        seed = int(value)
        ok = 0 <= seed < 2**32 and not isinstance(value, bool | float)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        errors.append(FieldError("#/seed", f"must be an integer from 0 to 2**32-1; got {value!r}"))
        return None
    return seed


async def read_body(request: Request[Any, Any, State]) -> dict[str, Any]:
    """The create body as a dict, from JSON or from multipart/urlencoded form fields."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        try:
            form = await request.form()
        except (UnicodeDecodeError, LookupError) as exc:
            raise Problem(
                400, "bad-request", f"A form field is not text in its declared charset: {exc}."
            ) from None
        # The reference image is read here (bounded); other file parts stay UploadFile
        # objects, which parse_create refuses by name.
        fields = dict(form.multi_items())
        # The SDK sends extra_body={"characters": [{"id": ...}]} in a form as repeated
        # characters[][id] fields: gather them back into the JSON shape.
        featured = [v for k, v in form.multi_items() if k == CHARACTER_FORM_FIELD]
        if featured:
            del fields[CHARACTER_FORM_FIELD]
            fields["characters"] = [{"id": v} for v in featured]
        part = fields.get("input_reference")
        if isinstance(part, UploadFile):
            fields["input_reference"] = await read_upload(part, request.app.state.settings)
        return fields
    body = await request.body()
    if not body:
        raise Problem(400, "bad-request", "The request body is empty; send JSON or a form.")
    try:
        # msgspec, as for /v1/moderations: it refuses lone UTF-16 surrogates ("\ud800"),
        # which no database or encoder downstream could store.
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise Problem(
            400,
            "invalid-json",
            f"The request body is not valid JSON: {exc}. Strings must be valid Unicode "
            "(no lone \\ud800-\\udfff escapes).",
        ) from None
    except RecursionError:
        raise Problem(
            400, "invalid-json", "The request body is not valid JSON: it is nested too deeply."
        ) from None
    if not isinstance(raw, dict):
        raise Problem(422, "validation-error", "The request body must be a JSON object.")
    return raw
