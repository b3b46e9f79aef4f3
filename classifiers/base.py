"""The two protocols every classifier implements, and the typed values they exchange.

A text classifier reads a :class:`PromptText` (original and normalised text, with a map back
to the original for evidence spans). A frame classifier reads :class:`SampledFrame` values.
Both return :class:`Verdict` values: one per category they score (per frame for frames).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args, runtime_checkable

import numpy as np
import numpy.typing as npt

Category = Literal[
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
    "hate",
    "harassment",
    "self-harm",
    "celebrity",
    "ip",
]
"""Policy categories, the same names in YAML, HTTP responses and audit rows."""

CATEGORIES: tuple[Category, ...] = get_args(Category)

Mention = Literal["depicted", "brand", "credit", "face"]
"""How a verdict's names are used: ``depicted`` (what the video would show; thresholds apply),
``brand`` (a brand, logo or product) or ``credit`` (an artist credit: "by X", "in the style of
X"). The policy's ``names:`` settings decide what ``brand`` and ``credit`` verdicts do.
``face``: a face found in an uploaded image (``celebrity``; whose face is unknown, so consent
cannot be checked); the policy's ``inputs.faces`` decides what it does."""

Stage = Literal["prompt", "frame", "input"]
"""``prompt``: the request's text; ``frame``: generated video frames; ``input``: images the
client uploads (``input_reference``), checked by frame classifiers before any job exists."""
STAGES: tuple[Stage, ...] = get_args(Stage)


@dataclass(frozen=True, slots=True)
class Evidence:
    """Why a verdict scored what it did: a span of the original prompt, or a frame.

    ``start``/``end`` index the *original* prompt text (not the normalised one), so a reviewer
    sees exactly what the user sent. Frame evidence names the frame index and its timestamp.
    """

    text: str | None = None
    start: int | None = None
    end: int | None = None
    frame_index: int | None = None
    timestamp_s: float | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One classifier's score for one category (for one frame, at the frame stage).

    ``score`` is calibrated to [0, 1] so a policy threshold means the same across classifiers.
    ``threshold`` is the policy threshold the score was compared with, filled in by the policy
    engine (classifiers leave it ``None``).
    """

    classifier: str
    category: Category
    score: float
    model_id: str
    model_version: str
    evidence: tuple[Evidence, ...] = ()
    threshold: float | None = None
    mention: Mention = "depicted"
    """For name verdicts: see :data:`Mention`. Other classifiers leave the default."""


@dataclass(frozen=True, slots=True)
class PromptText:
    """A prompt as the text classifiers see it.

    ``normalized`` is the de-obfuscated text (NFKC, casefold, confusables, leetspeak, spacing
    tricks removed). ``offsets[i]`` is the index in ``original`` of the character that produced
    ``normalized[i]``; ``offsets`` has ``len(normalized) + 1`` entries (the last one is
    ``len(original)``), so any normalised span maps back to an original span.
    """

    original: str
    normalized: str
    offsets: tuple[int, ...] = field(repr=False)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a ``[start, end)`` span of ``normalized`` to the matching span of ``original``."""
        if not 0 <= start <= end <= len(self.normalized):
            raise ValueError(
                f"span [{start}, {end}) outside normalised text of {len(self.normalized)}"
            )
        if start == end:
            pos = self.offsets[start]
            return pos, pos
        # The end maps through the last character inside the span, so a span never swallows
        # characters the normaliser deleted after it.
        return self.offsets[start], self.offsets[end - 1] + 1

    def evidence(self, start: int, end: int, detail: str | None = None) -> Evidence:
        """Evidence for a span of the normalised text, quoted from the original."""
        o_start, o_end = self.original_span(start, end)
        return Evidence(text=self.original[o_start:o_end], start=o_start, end=o_end, detail=detail)


@dataclass(frozen=True, slots=True)
class SampledFrame:
    """One frame picked by the frame sampler: RGB uint8 pixels, shape (height, width, 3)."""

    index: int
    timestamp_s: float
    image: npt.NDArray[np.uint8] = field(repr=False)


@runtime_checkable
class TextClassifier(Protocol):
    """Scores a prompt. Must be thread-safe after construction; raising means "fail closed"."""

    name: str
    model_id: str
    model_version: str

    def classify(self, prompt: PromptText) -> list[Verdict]:
        """Return one verdict per category this classifier covers (score 0 when nothing found)."""
        ...


@runtime_checkable
class FrameClassifier(Protocol):
    """Scores sampled frames. Raising means the video is withheld (fail closed)."""

    name: str
    model_id: str
    model_version: str

    def classify(self, frames: Sequence[SampledFrame]) -> list[Verdict]:
        """Return one verdict per (frame, category) with frame evidence (index, timestamp)."""
        ...


ERROR_MARKER = "error:"
"""How a failure is marked, wherever ReelGuard reports one: the evidence ``detail`` of an error
verdict (``"error: <ExcType>: <message>"``) and a classifier's health entry when it failed to
load. The policy engine and the release decision fail closed on it."""
ERROR_MODEL_VERSION = "error"
"""The ``model_version`` of an error verdict whose classifier has none to report."""


def error_text(error: BaseException | str) -> str:
    """``"error: <ExcType>: <message>"`` for an exception, ``"error: <text>"`` for a text (which
    is not marked twice)."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return message if message.startswith(ERROR_MARKER) else f"{ERROR_MARKER} {message}"


def error_verdicts(
    classifier: str,
    error: BaseException | str,
    categories: Iterable[Category] = CATEGORIES,
    *,
    model_id: str | None = None,
    model_version: str = ERROR_MODEL_VERSION,
) -> list[Verdict]:
    """The fail-closed stand-in for a classifier that failed (raised, timed out, returned
    garbage, could not be built): one verdict per category it covers, score 1.0, evidence
    :func:`error_text`. The engine turns each into a block (a withheld video at the frame
    stage) with a reason of source ``"error"``."""
    evidence = (Evidence(detail=error_text(error)),)
    return [
        Verdict(
            classifier=classifier,
            category=category,
            score=1.0,
            model_id=classifier if model_id is None else model_id,
            model_version=model_version,
            evidence=evidence,
        )
        for category in dict.fromkeys(categories)
    ]


def error_message(verdict: Verdict) -> str | None:
    """The message of an error verdict (after the marker), or ``None`` for any other verdict."""
    for e in verdict.evidence:
        if e.detail is not None and e.detail.startswith(ERROR_MARKER):
            return e.detail[len(ERROR_MARKER) :].strip() or "classifier error"
    return None


def is_error_verdict(verdict: Verdict) -> bool:
    """True for a verdict made by :func:`error_verdicts` (a failed classifier)."""
    return error_message(verdict) is not None
