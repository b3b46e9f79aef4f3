"""Text and frame classifiers behind two small protocols (see :mod:`classifiers.base`)."""

from classifiers.base import (
    CATEGORIES,
    STAGES,
    Category,
    Evidence,
    FrameClassifier,
    PromptText,
    SampledFrame,
    Stage,
    TextClassifier,
    Verdict,
)

__all__ = [
    "CATEGORIES",
    "STAGES",
    "Category",
    "Evidence",
    "FrameClassifier",
    "PromptText",
    "SampledFrame",
    "Stage",
    "TextClassifier",
    "Verdict",
]
