"""``POST /v1/moderations``: OpenAI's moderation API, plus ReelGuard's action and reasons.

Request: ``{"input": "text" | ["text", ...] | [{"type": "text", "text": "..."}, ...],
"model": "..."}``. The ``model`` field is accepted for compatibility and ignored: the tenant's
policy decides which classifiers run, and the response's ``model`` names ReelGuard's text check.

Each result carries OpenAI's fields (``flagged``, ``categories``, ``category_scores``,
``category_applied_input_types``) and ours (``action``, ``reasons``, ``policy_version``).
``category_scores`` are the scores the decision used: a hit a policy allowlist excused ("shoot a
video" for violence) does not count there, and ``reasons`` lists it with action ``allow``,
source ``allowlist`` and its raw score, so a client applying its own thresholds to the scores
agrees with ``action``.
OpenAI sub-categories that ReelGuard does not score separately (``harassment/threatening``,
``hate/threatening``, ``illicit``, ``illicit/violent``, ``self-harm/instructions``,
``self-harm/intent``) are always ``false`` with score 0 and an empty
``category_applied_input_types`` list, so a client can tell "not scored" from "scored low".
ReelGuard adds the categories ``celebrity`` and ``ip``.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, Literal

import msgspec
from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody

from audit.errors import AuditError
from audit.log import AuditLog
from classifiers.base import CATEGORIES, Category, Evidence
from config.settings import Settings
from gateway.auth import TENANT_DEPENDENCY, require_api_key
from gateway.limits import check_normalized_size
from gateway.metrics import annotate
from gateway.pipeline import ModerationOutcome, TextModerator, moderation_record
from gateway.problems import FieldError, Problem, problem_responses
from policies.decision import Reason
from storage import StorageError

log = logging.getLogger("reelguard.gateway")

MODEL_NAME = "reelguard-text-1"

OPENAI_CATEGORIES: dict[str, Category | None] = {
    "harassment": "harassment",
    "harassment/threatening": None,
    "hate": "hate",
    "hate/threatening": None,
    "illicit": None,
    "illicit/violent": None,
    "self-harm": "self-harm",
    "self-harm/instructions": None,
    "self-harm/intent": None,
    "sexual": "sexual",
    "sexual/minors": "sexual/minors",
    "violence": "violence",
    "violence/graphic": "violence/graphic",
    "celebrity": "celebrity",
    "ip": "ip",
}
"""Response category name -> the ReelGuard category behind it (None: not scored)."""

if set(CATEGORIES) - {c for c in OPENAI_CATEGORIES.values() if c}:  # pragma: no cover
    raise RuntimeError("every ReelGuard category must appear in OPENAI_CATEGORIES")


# -- request -------------------------------------------------------------------------------


class InputPart(msgspec.Struct, forbid_unknown_fields=True):
    """One part of a multi-modal input; only ``{"type": "text", "text": ...}`` is supported."""

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: dict[str, Any] | None = None


class ModerationRequest(msgspec.Struct, forbid_unknown_fields=True):
    """OpenAI's moderation request body."""

    input: str | list[str | InputPart]
    model: str | None = None


# -- response ------------------------------------------------------------------------------


class EvidenceOut(msgspec.Struct, omit_defaults=True):
    """What a reason points at: a span of the original prompt (``start``/``end``), or a note."""

    text: str | None = None
    start: int | None = None
    end: int | None = None
    detail: str | None = None


class ReasonOut(msgspec.Struct):
    """Why a prompt was reviewed or blocked; or (action ``allow``, source ``allowlist``) a hit
    an allowlist excused, with its raw score."""

    category: str
    action: Literal["allow", "review", "block"]
    source: str
    classifier: str
    score: float
    threshold: float | None
    evidence: list[EvidenceOut]
    message: str


class ModerationResult(msgspec.Struct):
    """One input's result: OpenAI's fields, then ReelGuard's."""

    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]
    action: Literal["allow", "review", "block"]
    reasons: list[ReasonOut]
    policy_version: str


class ModerationResponse(msgspec.Struct):
    """OpenAI's moderation response body."""

    id: str
    model: str
    results: list[ModerationResult]


def _evidence(e: Evidence) -> EvidenceOut:
    return EvidenceOut(text=e.text, start=e.start, end=e.end, detail=e.detail)


def _reason(r: Reason) -> ReasonOut:
    return ReasonOut(
        category=r.category,
        action=r.action.value,
        source=r.source,
        classifier=r.classifier,
        score=r.score,
        threshold=r.threshold,
        evidence=[_evidence(e) for e in r.evidence],
        message=r.message,
    )


def to_result(outcome: ModerationOutcome) -> ModerationResult:
    """The response entry for one checked prompt."""
    decision = outcome.decision
    flags = decision.categories
    scores = decision.category_scores
    categories: dict[str, bool] = {}
    category_scores: dict[str, float] = {}
    applied: dict[str, list[str]] = {}
    for name, ours in OPENAI_CATEGORIES.items():
        categories[name] = bool(ours and flags.get(ours, False))
        category_scores[name] = float(scores.get(ours, 0.0)) if ours else 0.0
        applied[name] = ["text"] if ours else []
    return ModerationResult(
        flagged=decision.flagged,
        categories=categories,
        category_scores=category_scores,
        category_applied_input_types=applied,
        action=decision.action.value,
        reasons=[_reason(r) for r in (*decision.reasons, *decision.allowlisted)],
        policy_version=decision.policy_version,
    )


# -- validation ----------------------------------------------------------------------------


def input_texts(data: ModerationRequest, settings: Settings) -> list[str]:
    """The prompts in ``data.input``, or a 413/422 :class:`Problem` naming each bad item.

    413 for too many items, too many characters, or too many once normalised
    (:func:`gateway.limits.check_normalized_size`).
    """
    items: list[str | InputPart] = [data.input] if isinstance(data.input, str) else data.input
    listed = not isinstance(data.input, str)

    def pointer(i: int) -> str:
        return f"#/input/{i}" if listed else "#/input"

    if not items:
        raise Problem(
            422,
            "validation-error",
            "input is an empty list; send at least one string.",
            errors=[FieldError("#/input", "must contain at least one item")],
        )
    if len(items) > settings.max_input_items:
        raise Problem(
            413,
            "input-too-large",
            f"input has {len(items)} items; the limit is {settings.max_input_items} "
            "(REELGUARD_MAX_INPUT_ITEMS). Split the request.",
            errors=[FieldError("#/input", f"at most {settings.max_input_items} items")],
        )
    texts: list[str] = []
    wrong: list[FieldError] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            texts.append(item)
        elif item.type == "text" and item.text is not None and item.image_url is None:
            texts.append(item.text)
        elif item.type == "image_url":
            wrong.append(FieldError(pointer(i), "image inputs are not supported; send text"))
        else:
            wrong.append(FieldError(pointer(i), "a text part needs a string 'text' and no image"))
    if wrong:
        raise Problem(422, "validation-error", "Only text input is supported.", errors=wrong)
    too_long = [
        FieldError(pointer(i), f"{len(t)} characters; the limit is {settings.max_input_chars}")
        for i, t in enumerate(texts)
        if len(t) > settings.max_input_chars
    ]
    if too_long:
        raise Problem(
            413,
            "input-too-large",
            f"Each input may have at most {settings.max_input_chars} characters "
            "(REELGUARD_MAX_INPUT_CHARS).",
            errors=too_long,
        )
    check_normalized_size(texts, [pointer(i) for i in range(len(texts))], settings)
    return texts


def item_ids(request_id: str, n: int) -> list[str]:
    """Audit request ids for a request's items: the id itself, or ``<id>.<index>`` for a list."""
    return [request_id] if n == 1 else [f"{request_id}.{i}" for i in range(n)]


# -- handler -------------------------------------------------------------------------------


class ModerationController(Controller):
    """The text moderation endpoint (API key required)."""

    path = "/v1/moderations"
    guards = [require_api_key]  # noqa: RUF012 - Litestar reads these as class attributes
    dependencies = TENANT_DEPENDENCY
    tags = ["moderation"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        sync_to_thread=True,
        summary="Classify text (OpenAI-compatible)",
        description=__doc__,
        responses=problem_responses(400, 401, 413, 422, 503),
    )
    def create(
        self,
        request: Request[Any, Any, State],
        tenant: NamedDependency[str],
        data: JSONBody[ModerationRequest],
    ) -> Response[ModerationResponse]:
        """Check each input against the tenant's policy; a block is a 200 with ``action``."""
        state = request.app.state
        texts = input_texts(data, state.settings)
        request_id = f"modr-{uuid.uuid4().hex}"
        created_at = time.time()
        moderator: TextModerator = state.moderator
        outcomes = moderator.check_many(texts, tenant)
        audit: AuditLog = state.audit
        ids = item_ids(request_id, len(outcomes))
        records = [
            moderation_record(outcome, request_id=item_id, created_at=created_at)
            for item_id, outcome in zip(ids, outcomes, strict=True)
        ]
        try:
            # All items in one transaction, shared with concurrent requests (group commit);
            # it returns once they are committed.
            audit.record_moderations(records)
        except (OSError, StorageError, AuditError) as exc:
            # An unrecorded decision is not returned: the audit log is the evidence.
            log.error("audit write failed for %s", request_id, exc_info=exc)
            raise Problem(
                503,
                "audit-unavailable",
                "The decision could not be written to the audit log, so it is not returned; "
                "retry shortly.",
                headers={"Retry-After": "1"},
            ) from exc
        worst = max((o.decision.action for o in outcomes), key=lambda a: a.severity)
        annotate(request, request_id=request_id, action=str(worst), items=len(outcomes))
        body = ModerationResponse(
            id=request_id, model=MODEL_NAME, results=[to_result(o) for o in outcomes]
        )
        return Response(body, headers={"X-Request-ID": request_id})
