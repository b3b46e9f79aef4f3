"""CLIP concept classifier: policy-listed text concepts matched against frames (open_clip).

The Stable Diffusion safety checker's rule, with concepts from the policy instead of hidden
embeddings: for each frame and each concept, ``margin = cos(image, concept) - threshold``; the
frame shows the concept when ``margin >= 0``. A category's score is the best concept's margin
mapped to [0, 1] by a logistic curve::

    score = 1 / (1 + exp(-margin / MARGIN_SCALE))        MARGIN_SCALE = 0.01

so a frame exactly at a concept's threshold scores 0.5, one 0.03 above scores 0.95 and one
0.03 below 0.05 (CLIP cosines between an image and a matching caption typically sit 0.05-0.10
above those of an unrelated caption). Put the category's frame ``review_at`` near 0.5 and its
``block_at`` near 0.8 for concept-only categories such as ``ip`` and ``celebrity``.

Weights: a local open_clip checkpoint (``REELGUARD_CLIP_CHECKPOINT``, a ``.pt``/``.bin``/
``.safetensors`` state dict for ``REELGUARD_CLIP_MODEL``), or on a machine with internet a
named pretrained tag (``REELGUARD_CLIP_PRETRAINED``, e.g. ``laion2b_s34b_b79k``). Nothing is
downloaded unless a tag is configured. ``REELGUARD_CLIP_MODEL_CONFIG`` registers a custom model
config JSON (its file stem is the model name). Text embeddings of the concepts are computed once
when the classifier is built for a policy version.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from classifiers.base import Category, SampledFrame, Verdict
from classifiers.frame.common import batches, frame_evidence, sha256_file
from classifiers.frame.errors import FrameModelUnavailable

MARGIN_SCALE = 0.01
"""Cosine margin that moves the score by one logit (see the module docstring)."""

_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


class ConceptLike(Protocol):
    """A concept as the policy lists it (``policies.schema.Concept``)."""

    @property
    def prompt(self) -> str:
        """Text to match, e.g. ``"a photo of a handgun"``."""
        ...

    @property
    def threshold(self) -> float:
        """Cosine similarity at which a frame counts as showing the concept."""
        ...


@dataclass(frozen=True, slots=True)
class ClipSpec:
    """Which open_clip model to load and from where (from settings)."""

    model_name: str = "ViT-B-32"
    checkpoint: Path | None = None
    pretrained_tag: str | None = None
    model_config: Path | None = None
    threads: int = 1


def margin_to_score(margin: npt.NDArray[np.float64] | float) -> npt.NDArray[np.float64]:
    """Logistic map of a cosine margin to [0, 1] (0.5 at the concept threshold)."""
    z = np.clip(np.asarray(margin, dtype=np.float64) / MARGIN_SCALE, -60.0, 60.0)
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


class ClipModel:
    """An open_clip model loaded once, encoding frames and texts to unit vectors."""

    def __init__(self, spec: ClipSpec) -> None:
        import open_clip
        import torch

        self.spec = spec
        if spec.model_config is not None:
            if not spec.model_config.is_file():
                raise FrameModelUnavailable(
                    f"clip: model config {spec.model_config} not found; fix "
                    "REELGUARD_CLIP_MODEL_CONFIG or unset it"
                )
            open_clip.add_model_config(spec.model_config)
        if spec.checkpoint is not None:
            if not spec.checkpoint.is_file():
                raise FrameModelUnavailable(
                    f"clip: checkpoint {spec.checkpoint} not found; set REELGUARD_CLIP_CHECKPOINT "
                    "to an open_clip checkpoint file (see README, 'CLIP weights')"
                )
            pretrained = str(spec.checkpoint)
            self.model_version = "sha256:" + sha256_file(spec.checkpoint)
        elif spec.pretrained_tag:
            pretrained = spec.pretrained_tag
            self.model_version = f"pretrained:{spec.pretrained_tag}"
        else:
            raise FrameModelUnavailable(
                "clip: no weights configured; set REELGUARD_CLIP_CHECKPOINT to a local open_clip "
                "checkpoint (see README, 'CLIP weights') or remove 'clip' from the policy's "
                "classifiers.frame"
            )
        self.model_id = f"open_clip/{spec.model_name}"
        try:
            model, _, _ = open_clip.create_model_and_transforms(
                spec.model_name, pretrained=pretrained, device="cpu"
            )
        except Exception as exc:  # bad name, wrong checkpoint for the config, corrupt file
            raise FrameModelUnavailable(
                f"clip: cannot load {spec.model_name} from {pretrained}: {type(exc).__name__}: "
                f"{exc}; check REELGUARD_CLIP_MODEL matches the checkpoint"
            ) from exc
        model.eval()
        self._model: Any = model
        self._tokenizer = open_clip.get_tokenizer(spec.model_name)
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.image_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)
        self._mean = torch.tensor(cfg.get("mean", _OPENAI_MEAN)).view(1, 3, 1, 1)
        self._std = torch.tensor(cfg.get("std", _OPENAI_STD)).view(1, 3, 1, 1)
        self._threads = spec.threads

    def _pixels(self, frames: Sequence[SampledFrame]) -> Any:
        import torch
        import torch.nn.functional as F

        height, width = self.image_size
        out = []
        for frame in frames:
            x = torch.from_numpy(np.ascontiguousarray(frame.image)).permute(2, 0, 1)[None].float()
            # Shortest side to the model size, then a centre crop: open_clip's own eval transform.
            h, w = x.shape[-2:]
            scale = max(height / h, width / w)
            new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
            x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", antialias=True)
            top, left = (new_h - height) // 2, (new_w - width) // 2
            out.append(x[..., top : top + height, left : left + width])
        batch = torch.cat(out).div_(255.0).clamp_(0.0, 1.0)
        return (batch - self._mean) / self._std

    def encode_images(self, frames: Sequence[SampledFrame]) -> npt.NDArray[np.float32]:
        """Unit-norm image embeddings, one row per frame."""
        import torch

        with torch.inference_mode():
            feats = self._model.encode_image(self._pixels(frames))
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return np.asarray(feats.numpy(), dtype=np.float32)

    def encode_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-norm text embeddings, one row per text."""
        import torch

        with torch.inference_mode():
            feats = self._model.encode_text(self._tokenizer(list(texts)))
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return np.asarray(feats.numpy(), dtype=np.float32)


_MODELS: dict[ClipSpec, ClipModel] = {}
_MODELS_LOCK = threading.Lock()


def load_clip_model(spec: ClipSpec) -> ClipModel:
    """The process-wide :class:`ClipModel` for ``spec`` (loaded on first use, then shared)."""
    with _MODELS_LOCK:
        model = _MODELS.get(spec)
        if model is None:
            model = _MODELS[spec] = ClipModel(spec)
        return model


class ClipConceptClassifier:
    """Scores frames against the policy's concepts for each category (a ``FrameClassifier``).

    Built once per policy version: the concept text embeddings are computed here. Evidence names
    the frame and the best-matching concept with its cosine similarity and threshold.
    """

    name = "clip"

    def __init__(
        self,
        model: ClipModel,
        concepts: Mapping[Category, Sequence[ConceptLike]],
        *,
        batch_size: int = 16,
    ) -> None:
        self._model = model
        self.model_id = model.model_id
        self.model_version = model.model_version
        self.batch_size = batch_size
        self.categories: tuple[Category, ...] = tuple(c for c, items in concepts.items() if items)
        self._prompts: list[str] = []
        self._thresholds: list[float] = []
        self._owner: list[Category] = []
        for category in self.categories:
            for concept in concepts[category]:
                self._prompts.append(concept.prompt)
                self._thresholds.append(float(concept.threshold))
                self._owner.append(category)
        self._text = model.encode_texts(self._prompts) if self._prompts else None

    def classify(self, frames: Sequence[SampledFrame]) -> list[Verdict]:
        """One verdict per (frame, category with concepts)."""
        if self._text is None or not frames:
            return []
        thresholds = np.asarray(self._thresholds, dtype=np.float64)
        verdicts: list[Verdict] = []
        for chunk in batches(frames, self.batch_size):
            cosine = self._model.encode_images(chunk).astype(np.float64) @ self._text.T.astype(
                np.float64
            )
            margins = cosine - thresholds[None, :]
            for row, frame in enumerate(chunk):
                verdicts.extend(self._frame_verdicts(frame, cosine[row], margins[row]))
        return verdicts

    def _frame_verdicts(
        self,
        frame: SampledFrame,
        cosine: npt.NDArray[np.float64],
        margins: npt.NDArray[np.float64],
    ) -> list[Verdict]:
        out = []
        for category in self.categories:
            idx = [i for i, owner in enumerate(self._owner) if owner == category]
            best = max(idx, key=lambda i: margins[i])
            detail = (
                f"concept {self._prompts[best]!r}: cosine {cosine[best]:.3f}, "
                f"threshold {self._thresholds[best]:.3f}"
            )
            score = float(margin_to_score(margins[best]))
            out.append(
                Verdict(
                    classifier=self.name,
                    category=category,
                    score=score if math.isfinite(score) else 1.0,
                    model_id=self.model_id,
                    model_version=self.model_version,
                    evidence=(frame_evidence(frame, detail),),
                )
            )
        return out
