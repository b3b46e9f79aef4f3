"""The policy file format: pydantic v2 models, ``extra="forbid"`` everywhere.

A policy says, per category and per stage (``prompt`` text, generated ``frame``, uploaded
``input`` images), at which calibrated score a request goes to human review and at which it is
blocked, plus literal/regex blocklists and allowlists, which classifiers run, and how the frame
audit samples a video.

Every validation error raised here carries a message that ends with the fix (after ``"; "``);
:mod:`policies.loader` adds the file, line and field path.

``sexual/minors`` is special: it is always enabled, never allowlisted, and its thresholds can
never exceed :data:`MINORS_MAX_THRESHOLD`. Overlays may only tighten it (checked by the loader
against the parent policy), and no policy may be looser than :mod:`policies.floor`.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from classifiers.base import CATEGORIES, Category, Stage
from policies.limits import MAX_TERM_CHARS
from policies.patterns import PatternError, compile_pattern

MINORS_CATEGORY: Category = "sexual/minors"
MINORS_MAX_THRESHOLD = 0.5
"""No policy may set a ``sexual/minors`` ``review_at``/``block_at`` above this."""

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _score_in_range(value: float) -> float:
    if not 0.0 <= value <= 1.0:  # also false for NaN
        raise PydanticCustomError(
            "score_range",
            "must be between 0 and 1 (got {got}); set a value from 0 to 1",
            {"got": value},
        )
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=False)


Score = Annotated[float, Field(description="A calibrated score from 0 to 1.")]


class StagePolicy(_Strict):
    """What one category does at one stage: off, or two thresholds on the calibrated score."""

    enabled: bool = Field(True, description="false: ignore this category's scores at this stage.")
    review_at: Score = Field(description="Scores at or above this go to human review.")
    block_at: Score = Field(description="Scores at or above this are blocked.")

    @field_validator("review_at", "block_at")
    @classmethod
    def _range(cls, value: float) -> float:
        return _score_in_range(value)

    @field_validator("block_at")
    @classmethod
    def _ordered(cls, value: float, info: ValidationInfo) -> float:
        review_at = info.data.get("review_at")
        if review_at is not None and review_at > value:
            raise PydanticCustomError(
                "threshold_order",
                "must be at least review_at ({review_at}) (got {got}); raise block_at or "
                "lower review_at",
                {"review_at": review_at, "got": value},
            )
        return value


def _check_term(term: str) -> str:
    if len(term.strip()) < 2:
        raise PydanticCustomError(
            "term_too_short",
            "term {term} is too short to match safely; use at least 2 characters",
            {"term": repr(term)},
        )
    if len(term) > MAX_TERM_CHARS:
        raise PydanticCustomError(
            "term_too_long",
            "term is {got} characters long, over the limit of {limit}; list a shorter phrase",
            {"got": len(term), "limit": MAX_TERM_CHARS},
        )
    return " ".join(term.split())


def _check_pattern(pattern: str) -> str:
    try:
        compiled = compile_pattern(pattern)
    except PatternError as exc:
        raise PydanticCustomError(
            "bad_regex", "pattern {pattern} {error}", {"pattern": repr(pattern), "error": str(exc)}
        ) from None
    if compiled.search("") is not None:
        raise PydanticCustomError(
            "empty_regex",
            "pattern {pattern} matches empty text, so it would hit every prompt; make it "
            "require at least one character",
            {"pattern": repr(pattern)},
        )
    return pattern


Term = Annotated[str, AfterValidator(_check_term)]
RegexPattern = Annotated[str, AfterValidator(_check_pattern)]


class TermList(_Strict):
    """Literal terms (whole words/phrases, case-insensitive) and regular expressions."""

    terms: tuple[Term, ...] = Field(
        (),
        description="Whole words or phrases, matched case-insensitively; spaces match any run "
        "of whitespace.",
    )
    patterns: tuple[RegexPattern, ...] = Field(
        (),
        description="Regular expressions in RE2 syntax (Python's without look-arounds or "
        "back-references), matched case-insensitively anywhere.",
    )
    replace: bool = Field(
        False,
        exclude=True,
        description="Overlays only: true replaces the parent's terms and patterns instead of "
        "adding to them.",
    )

    @field_validator("terms", "patterns")
    @classmethod
    def _unique(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        seen: set[str] = set()
        for item in value:
            key = item.casefold() if info.field_name == "terms" else item
            if key in seen:
                raise PydanticCustomError(
                    "duplicate_entry", "{item} is listed twice; remove one", {"item": repr(item)}
                )
            seen.add(key)
        return value

    def __bool__(self) -> bool:
        return bool(self.terms or self.patterns)


_NO_TERMS = TermList.model_validate({})


def _input_defaults_to_frame(data: Any, stage_key: str = "frame") -> Any:
    """A block without ``input`` takes its ``frame`` value (written before the input stage
    existed: an uploaded image is then judged exactly like a generated frame)."""
    if isinstance(data, dict) and "input" not in data and stage_key in data:
        return {**data, "input": data[stage_key]}
    return data


class CategoryPolicy(_Strict):
    """Thresholds for each stage, plus a blocklist and an allowlist for prompt text."""

    prompt: StagePolicy = Field(description="Thresholds for the prompt text.")
    frame: StagePolicy = Field(description="Thresholds for generated video frames.")
    input: StagePolicy = Field(
        description="Thresholds for images the client uploads (input_reference), scored by "
        "the classifiers under classifiers.input. Left out: the same as frame."
    )
    blocklist: TermList = Field(
        default=_NO_TERMS,
        description="A match in the prompt blocks (source: blocklist).",
    )
    allowlist: TermList = Field(
        default=_NO_TERMS,
        description="Hits whose evidence lies inside a match are ignored (see policies/engine.py).",
    )

    @model_validator(mode="before")
    @classmethod
    def _input_default(cls, data: Any) -> Any:
        return _input_defaults_to_frame(data)

    def stage(self, stage: Stage) -> StagePolicy:
        """The thresholds for ``stage``."""
        policy: StagePolicy = getattr(self, stage)
        return policy


class MinorsCategoryPolicy(CategoryPolicy):
    """``sexual/minors``: always on, never allowlisted, thresholds capped."""

    @field_validator("prompt", "frame", "input")
    @classmethod
    def _always_strict(cls, value: StagePolicy) -> StagePolicy:
        if not value.enabled:
            raise PydanticCustomError(
                "minors_disabled",
                "sexual/minors can never be disabled; remove 'enabled: false'",
                {},
            )
        for name in ("review_at", "block_at"):
            got = getattr(value, name)
            if got > MINORS_MAX_THRESHOLD:
                raise PydanticCustomError(
                    "minors_loosened",
                    "sexual/minors {name} may not exceed {cap} (got {got}); set it to {cap} or "
                    "lower",
                    {"name": name, "cap": MINORS_MAX_THRESHOLD, "got": got},
                )
        return value

    @field_validator("allowlist")
    @classmethod
    def _no_allowlist(cls, value: TermList) -> TermList:
        if value:
            raise PydanticCustomError(
                "minors_allowlist",
                "sexual/minors cannot have an allowlist; remove it (use a review instead)",
                {},
            )
        return value


DepictedAction = Literal["allow", "review", "block"]


class ViolenceCategoryPolicy(CategoryPolicy):
    """``violence``: depicted violence, with what the prompt stage does about it.

    Video users ask for action scenes, fantasy battles, sport, war films and history all day;
    graphic violence (gore, torture, real-world attacks, violence against children) is scored as
    ``violence/graphic``. ``depicted`` says what a ``violence`` score does at the prompt stage:
    ``allow`` (never review or block on it; the default policy, as Sora does), ``review`` (a
    score at ``review_at`` or above goes to review, never straight to a block), or ``block`` (the
    thresholds as written; a kids' app). Blocklists still block, and frames are audited as usual.
    """

    depicted: DepictedAction = Field(
        "block",
        description="What a violence score does at the prompt stage: allow (depicted violence "
        "such as action scenes, battles, sport and war films goes through; graphic violence is "
        "violence/graphic), review (at most a review) or block (the thresholds as written).",
    )


class Categories(_Strict):
    """One entry per category; every category must be present in a base policy."""

    sexual: CategoryPolicy
    sexual_minors: MinorsCategoryPolicy = Field(alias="sexual/minors")
    violence: ViolenceCategoryPolicy
    violence_graphic: CategoryPolicy = Field(alias="violence/graphic")
    hate: CategoryPolicy
    harassment: CategoryPolicy
    self_harm: CategoryPolicy = Field(alias="self-harm")
    celebrity: CategoryPolicy
    ip: CategoryPolicy

    def get(self, category: Category) -> CategoryPolicy:
        """The policy for ``category`` (its YAML name, e.g. ``"self-harm"``)."""
        policy: CategoryPolicy = getattr(self, _FIELD_FOR[category])
        return policy

    def items(self) -> list[tuple[Category, CategoryPolicy]]:
        """``(category, policy)`` in :data:`classifiers.base.CATEGORIES` order."""
        return [(c, self.get(c)) for c in CATEGORIES]


_FIELD_FOR: dict[Category, str] = {
    (info.alias or name): name  # type: ignore[misc]
    for name, info in Categories.model_fields.items()
}
if tuple(_FIELD_FOR) != CATEGORIES:  # pragma: no cover - guards edits to either list
    raise RuntimeError(f"policy categories {tuple(_FIELD_FOR)} differ from {CATEGORIES}")


FACE_CLASSIFIER = "faces"
"""The face detector's registry name (:mod:`classifiers.frame.faces`): input stage only."""

ClassifierName = Annotated[str, Field(pattern=_NAME_RE.pattern, min_length=1, max_length=64)]


def text_classifier_names() -> tuple[str, ...]:
    """The names a policy may list under ``classifiers.prompt`` (``TEXT_CLASSIFIERS``' keys)."""
    # Imported here: the registry pulls in every text classifier module.
    from classifiers.registry import TEXT_CLASSIFIERS

    return tuple(TEXT_CLASSIFIERS)


def _list_text_classifiers(schema: dict[str, Any]) -> None:
    schema.setdefault("items", {})["enum"] = list(text_classifier_names())


class ClassifierSelection(_Strict):
    """Which registered classifiers run at each stage (names from ``classifiers.registry``)."""

    prompt: tuple[ClassifierName, ...] = Field(
        description="Text classifiers, by registry name, run on every prompt.",
        json_schema_extra=_list_text_classifiers,
    )
    frame: tuple[ClassifierName, ...] = Field(
        description="Frame classifiers, by registry name, run on sampled frames."
    )
    input: tuple[ClassifierName, ...] = Field(
        description="Frame classifiers, by registry name, run on uploaded images "
        "(input_reference) before a job exists; 'faces' (a face detector) may only be listed "
        "here. Left out: the same as frame."
    )

    @model_validator(mode="before")
    @classmethod
    def _input_default(cls, data: Any) -> Any:
        return _input_defaults_to_frame(data)

    @field_validator("frame")
    @classmethod
    def _no_face_detector(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if FACE_CLASSIFIER in value:
            raise PydanticCustomError(
                "faces_on_frames",
                "'{name}' finds any face, which generated videos show all the time; list it "
                "under classifiers.input (uploaded images) only",
                {"name": FACE_CLASSIFIER},
            )
        return value

    @field_validator("prompt", "frame", "input")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise PydanticCustomError(
                "no_classifiers", "list at least one classifier; an empty list checks nothing", {}
            )
        dupes = sorted({v for v in value if value.count(v) > 1})
        if dupes:
            raise PydanticCustomError(
                "duplicate_classifier",
                "{names} listed twice; list each classifier once",
                {"names": ", ".join(dupes)},
            )
        return value

    @field_validator("prompt")
    @classmethod
    def _registered(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = text_classifier_names()
        for name in value:
            if name not in known:
                near = difflib.get_close_matches(name, known, n=1)
                raise PydanticCustomError(
                    "unknown_classifier",
                    "no text classifier named '{name}'; {hint}use one of: {known}",
                    {
                        "name": name,
                        "hint": f"did you mean {near[0]!r}? " if near else "",
                        "known": ", ".join(known),
                    },
                )
        return value


class KOfN(_Strict):
    """Block a category when ``k`` of ``n`` consecutive sampled frames score at ``block_at``."""

    k: int = Field(ge=1, description="Frames over block_at needed...")
    n: int = Field(ge=1, description="...within this many consecutive sampled frames.")

    @field_validator("n")
    @classmethod
    def _k_le_n(cls, value: int, info: ValidationInfo) -> int:
        k = info.data.get("k")
        if k is not None and k > value:
            raise PydanticCustomError(
                "k_gt_n",
                "must be at least k ({k}) (got {got}); raise n or lower k",
                {"k": k, "got": value},
            )
        return value


class Concept(_Strict):
    """A CLIP text prompt; a frame that reaches ``threshold`` similarity shows the concept."""

    prompt: str = Field(min_length=3, description="What to look for, e.g. 'a photo of a gun'.")
    threshold: float = Field(
        description="Cosine similarity (0..1) at which the frame counts as showing the concept."
    )

    @field_validator("threshold")
    @classmethod
    def _range(cls, value: float) -> float:
        return _score_in_range(value)


class FrameAudit(_Strict):
    """How a generated video is sampled and checked before release."""

    sample_every_s: float | None = Field(
        None,
        gt=0,
        description="Check one frame every this many seconds (or use sample_every_frames).",
    )
    sample_every_frames: int | None = Field(
        None, ge=1, description="Check every Nth frame (instead of sample_every_s)."
    )
    scene_cut_threshold: float = Field(
        description="Also check a frame whose mean colour-histogram change from the previous frame "
        "is at least this (0..1; lower catches more cuts)."
    )
    always_first_last: bool = Field(True, description="Always check the first and last frame.")
    k_of_n: KOfN = Field(description="Consecutive-frame rule for blocking (sexual/minors: k=1).")
    timeout_s: float = Field(
        gt=0, description="A frame audit slower than this withholds the video (fail closed)."
    )
    concepts: dict[Category, tuple[Concept, ...]] = Field(
        default_factory=dict,
        description="Per category, CLIP concept prompts with similarity thresholds.",
    )

    @model_validator(mode="after")
    def _one_sampling_rule(self) -> FrameAudit:
        if (self.sample_every_s is None) == (self.sample_every_frames is None):
            raise PydanticCustomError(
                "sampling_rule",
                "set exactly one of sample_every_s and sample_every_frames; remove the other "
                "(set the unused one to null in an overlay)",
                {},
            )
        return self


NameAction = Literal["allow", "review", "block"]


class NamesPolicy(_Strict):
    """What celebrity/IP name hits that are not depictions do (prompt stage).

    The gazetteer tags each hit: a brand, logo or product (``brands``), or a creator or an
    anime series named as a credit, "by X", "in the style of X", "X-style"
    (``artist_credits``). A tagged hit takes the action set here instead of the category's
    thresholds; names under the category's ``review_at`` (historical figures, weak list tiers)
    never count.
    """

    brands: NameAction = Field(
        "review",
        description="Brand and logo requests ('a can of Red Bull', 'the Dell logo'): allow, "
        "review or block.",
    )
    artist_credits: NameAction = Field(
        "allow",
        description="A creator named as a credit ('by Ansel Adams', 'in the style of Wes "
        "Anderson'): allow (style is not a likeness), review or block (e.g. living artists who "
        "opted out). Performers named that way still count as depicted.",
    )


class InputsPolicy(_Strict):
    """What the input stage does beyond the thresholds (uploaded images)."""

    faces: NameAction = Field(
        "review",
        description="A face in an uploaded image (the 'faces' classifier's celebrity signal): "
        "allow, review (the default: whose face it is, and whether they consented, cannot be "
        "checked automatically) or block. Ignored when celebrity.input is disabled.",
    )


class Policy(_Strict):
    """A complete, validated policy (a base file, or an overlay merged onto its parent)."""

    extends: str | None = Field(
        None,
        description="Overlays only: 'default' (the base policy) or the name of another policy "
        "file in this file's folder, without '.yaml' (no paths). Only the keys an overlay names "
        "replace the parent's.",
    )
    description: str = Field("", description="Free text for readers: who this policy is for.")
    categories: Categories
    classifiers: ClassifierSelection
    frame_audit: FrameAudit
    names: NamesPolicy = Field(
        default_factory=NamesPolicy,
        description="What brand mentions and artist credits found by the name matcher do.",
    )
    inputs: InputsPolicy = Field(
        default_factory=InputsPolicy,
        description="What a face in an uploaded image does (input stage).",
    )

    def canonical(self) -> dict[str, Any]:
        """The resolved policy as plain JSON data (aliases as keys; ``extends`` dropped)."""
        return self.model_dump(mode="json", by_alias=True, exclude={"extends"})


def policy_json_schema(*, overlay: bool = False) -> dict[str, Any]:
    """JSON Schema of the policy file; ``overlay=True`` makes every field optional."""
    schema = Policy.model_json_schema(by_alias=True, mode="validation")
    schema["title"] = "ReelGuard tenant policy overlay" if overlay else "ReelGuard policy"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    if overlay:
        _drop_required(schema)
        schema["required"] = ["extends"]
    return schema


def _drop_required(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("required", None)
        for value in node.values():
            _drop_required(value)
    elif isinstance(node, list):
        for value in node:
            _drop_required(value)
