"""The learned text classifier: calibrated sexual / violence / graphic violence / hate /
harassment / self-harm scores from multilingual-e5-small, read as a two-stage cascade.

Every prompt is cut into windows of at most :data:`EMBED_WINDOW` characters (one for most
prompts; a long prompt gets several, so a harmful sentence cannot hide inside benign text) and
each window goes through the first :data:`~classifiers.text.embed.EARLY_LAYERS` layers of e5
(:meth:`~classifiers.text.embed.E5Embedder.embed_early`, ~1-2 ms). Linear heads on that early
embedding give a coarse score per category. A window whose coarse score reaches its category's
escalation level (set so that only a few percent of ordinary video prompts escalate, and always
below the review threshold) runs the remaining layers (:meth:`~.embed.E5Embedder.embed_late`)
and is scored by the heads on the full embedding stacked with the coarse ones. A window that does
not escalate keeps its coarse score, which is below every default threshold by construction, so
**only the full model can flag a prompt**.

Why e5 and not character n-grams (the heads before 2026-12): n-grams learned the *style* of the
training kit's unsafe sources (art-style prompts, tweets) and flagged ordinary prompts of other
styles; the sentence embedding carries content. Scores are calibrated **out of source**: the
calibration reads scores that every kit source got from heads trained without it, so a
threshold's false-positive rate is set on styles the heads never saw (``classifiers/text/train.py``;
the model card has the leave-one-source-out figures).

``violence`` scores *depicted* violence of any kind (action scenes, battles, sport, war films);
``violence/graphic`` scores what a video product refuses: gore, torture, real-world attacks,
threats, and violence against children or animals. The default policy acts on the second only
(``policies/default.yaml``, ``violence.depicted``).

Everything here is numpy at run time; the heads are plain matrices (``heads.npz``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from classifiers.base import Category, Evidence, PromptText, Verdict
from classifiers.text.embed import (
    E5Embedder,
    EmbedderIntegrityError,
    clean_for_engine,
    sha256_file,
    windows,
)
from classifiers.text.lexicon import find_minor_mentions

__all__ = [
    "EMBED_WINDOW",
    "HEAD_CATEGORIES",
    "MAX_WINDOWS",
    "MODELS_DIR",
    "HeadWeights",
    "LearnedTextClassifier",
    "ModelFileError",
    "PromptTooLongError",
    "Scores",
    "embed_text",
    "prompt_windows",
]

MODELS_DIR: Final = Path(__file__).resolve().parent / "models"
HEADS_FILE: Final = "heads.npz"
MANIFEST_FILE: Final = "manifest.json"

HEAD_CATEGORIES: Final[tuple[Category, ...]] = (
    "sexual",
    "violence",
    "violence/graphic",
    "hate",
    "harassment",
    "self-harm",
)
"""Categories the heads score, in the column order of the weight matrices."""

EMBED_WINDOW: Final = 200
"""Characters per window (cut at a space): one window for most prompts, ~50 tokens."""
MAX_WINDOWS: Final = 160
"""Most windows scored per prompt: every window of a prompt at the server's default limit of
20,000 normalised characters, even cut at spaces between long words. A longer prompt raises
:class:`PromptTooLongError` (the gateway blocks it, fail closed) instead of leaving its tail
unread."""
EVIDENCE_MIN_SCORE: Final = 0.2


class PromptTooLongError(ValueError):
    """A prompt longer than :data:`MAX_WINDOWS` windows; the caller blocks it (fail closed)."""


class ModelFileError(RuntimeError):
    """The shipped head weights are missing, malformed or do not match the manifest hash."""


def embed_text(prompt: PromptText) -> str:
    """The text the embedder reads: the normalised text when the normaliser changed more than
    case and spacing (leetspeak, look-alike letters, zero-width splits), else the original (e5
    was trained on ordinary cased text)."""
    original = " ".join(prompt.original.split())
    changed = prompt.normalized != original.casefold()
    return prompt.normalized if changed else original


def prompt_windows(prompt: PromptText) -> list[str]:
    """The windows of :func:`embed_text` the heads score (training scores the same)."""
    return windows(clean_for_engine(embed_text(prompt)), EMBED_WINDOW)


def _sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0))), dtype=np.float64)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


@dataclass(frozen=True, slots=True)
class HeadWeights:
    """Everything the heads need at run time (``heads.npz``; ``classifiers.text.train`` writes it).

    ``early_w`` and ``full_w`` are (dim + 1, n_cat) linear heads on the early and the full
    embedding (the last row is the bias). ``early_cal`` (n_cat, 2) maps an early logit ``z4`` to
    a reference logit ``a*z4 + b``; ``stack`` (n_cat, 3) maps (full, early) logits to
    ``a*z12 + b*z4 + c``. ``knots_ref``/``knots_out`` (n_cat, k) map a reference logit to the
    policy scale: linear between the knots in logit space, extended by the end segments' slopes
    (the knots are the out-of-source operating points anchored to 0.2, 0.35 and 0.5).
    ``escalate_at`` (n_cat,) is the early score from which a window runs the full model,
    ``escalate_minor_at`` the same for a prompt that mentions a minor (the sexual/minors rule
    acts on lower sexual scores).
    """

    early_w: npt.NDArray[np.float32]
    full_w: npt.NDArray[np.float32]
    early_cal: npt.NDArray[np.float64]
    stack: npt.NDArray[np.float64]
    knots_ref: npt.NDArray[np.float64]
    knots_out: npt.NDArray[np.float64]
    escalate_at: npt.NDArray[np.float64]
    escalate_minor_at: npt.NDArray[np.float64]

    FIELDS = (
        "early_w",
        "full_w",
        "early_cal",
        "stack",
        "knots_ref",
        "knots_out",
        "escalate_at",
        "escalate_minor_at",
    )

    @classmethod
    def load(cls, path: Path) -> HeadWeights:
        """Load and shape-check ``heads.npz``; raises :class:`ModelFileError` naming the field."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{path}: cannot read head weights ({exc}); retrain them") from exc
        n_cat = len(HEAD_CATEGORIES)
        missing = [k for k in cls.FIELDS if k not in arrays]
        if missing:
            raise ModelFileError(f"{path}: fields {missing} missing; retrain the heads")
        early_w, full_w = arrays["early_w"], arrays["full_w"]
        n_knots = arrays["knots_ref"].shape[-1] if arrays["knots_ref"].ndim == 2 else 0
        shapes = {
            "early_w": (early_w.shape[0], n_cat),
            "full_w": (early_w.shape[0], n_cat),
            "early_cal": (n_cat, 2),
            "stack": (n_cat, 3),
            "knots_ref": (n_cat, n_knots),
            "knots_out": (n_cat, n_knots),
            "escalate_at": (n_cat,),
            "escalate_minor_at": (n_cat,),
        }
        for key, shape in shapes.items():
            if arrays[key].shape != shape:
                raise ModelFileError(
                    f"{path}: field {key!r} should have shape {shape}, got {arrays[key].shape}"
                )
        if n_knots < 2 or np.any(np.diff(arrays["knots_ref"], axis=1) <= 0):
            raise ModelFileError(f"{path}: knots_ref must hold 2+ increasing knots per category")
        return cls(
            early_w=early_w.astype(np.float32),
            full_w=full_w.astype(np.float32),
            early_cal=arrays["early_cal"].astype(np.float64),
            stack=arrays["stack"].astype(np.float64),
            knots_ref=arrays["knots_ref"].astype(np.float64),
            knots_out=arrays["knots_out"].astype(np.float64),
            escalate_at=arrays["escalate_at"].astype(np.float64),
            escalate_minor_at=arrays["escalate_minor_at"].astype(np.float64),
        )

    def save(self, path: Path) -> None:
        """Write ``heads.npz`` (deterministic bytes for the same arrays)."""
        np.savez_compressed(path, **{k: getattr(self, k) for k in self.FIELDS})

    @property
    def dim(self) -> int:
        """Embedding width the heads expect."""
        return int(self.early_w.shape[0]) - 1

    # -- the scoring maths, shared with training (vectorised over rows) ---------------------

    def early_logits(self, vecs: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Raw early logits (n, n_cat) of early embeddings (n, dim)."""
        w = self.early_w
        return np.asarray(vecs @ w[:-1] + w[-1], dtype=np.float64)

    def full_logits(self, vecs: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Raw full-model logits (n, n_cat) of full embeddings (n, dim)."""
        w = self.full_w
        return np.asarray(vecs @ w[:-1] + w[-1], dtype=np.float64)

    def to_policy(self, ref: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Policy-scale scores of reference logits (n, n_cat)."""
        out = np.empty_like(ref, dtype=np.float64)
        for j in range(ref.shape[1]):
            x, yv = self.knots_ref[j], self.knots_out[j]
            r = ref[:, j]
            lo_slope = (yv[1] - yv[0]) / (x[1] - x[0])
            hi_slope = (yv[-1] - yv[-2]) / (x[-1] - x[-2])
            mid = np.interp(r, x, yv)
            mid = np.where(r < x[0], yv[0] + (r - x[0]) * lo_slope, mid)
            out[:, j] = np.where(r > x[-1], yv[-1] + (r - x[-1]) * hi_slope, mid)
        return _sigmoid(out)

    def early_scores(self, z4: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Policy-scale coarse scores of early logits (n, n_cat)."""
        return self.to_policy(self.early_cal[:, 0] * z4 + self.early_cal[:, 1])

    def full_scores(
        self, z12: npt.NDArray[np.float64], z4: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Policy-scale scores of the full model stacked with the early one (n, n_cat)."""
        s = self.stack
        return self.to_policy(s[:, 0] * z12 + s[:, 1] * z4 + s[:, 2])

    def escalates(
        self, early: npt.NDArray[np.float64], minor: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.bool_]:
        """Which windows (n,) run the full model, from their early scores (n, n_cat) and
        whether their prompt mentions a minor (n,)."""
        level = np.where(minor[:, None], self.escalate_minor_at[None, :], self.escalate_at)
        return np.asarray((early >= level).any(axis=1))


@dataclass(frozen=True, slots=True)
class Scores:
    """Per-category calibrated scores for one prompt, and how they were reached."""

    scores: dict[Category, float]
    early: dict[Category, float]
    """The highest coarse (early-layer) score per category over the windows."""
    escalated: bool
    """Whether any window ran the full model."""
    window: str
    """The window that gave the highest score (quoted as evidence)."""


def _read_manifest(models_dir: Path) -> dict[str, object]:
    path = models_dir / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(
            f"{path}: cannot read the model manifest ({exc}); retrain with "
            "`python -m classifiers.text.train`"
        ) from exc
    if not isinstance(manifest, dict):
        raise ModelFileError(f"{path}: the manifest must be a JSON object")
    return manifest


def load_weights(models_dir: Path = MODELS_DIR) -> tuple[HeadWeights, str]:
    """The shipped heads and their version, after checking ``heads.npz`` against the sha256 in
    ``manifest.json``; raises :class:`ModelFileError` on any mismatch."""
    manifest = _read_manifest(models_dir)
    heads_path = models_dir / HEADS_FILE
    if not heads_path.is_file():
        raise ModelFileError(f"{heads_path}: head weights missing; retrain them")
    expected = manifest.get("heads_sha256")
    actual = sha256_file(heads_path)
    if actual != expected:
        raise ModelFileError(
            f"{heads_path}: sha256 {actual} does not match manifest.json heads_sha256 "
            f"{expected}; reinstall the package or retrain the heads"
        )
    if manifest.get("categories") != list(HEAD_CATEGORIES):
        raise ModelFileError(
            f"{models_dir / MANIFEST_FILE}: categories {manifest.get('categories')} "
            f"differ from {list(HEAD_CATEGORIES)}; retrain the heads"
        )
    return HeadWeights.load(heads_path), f"{manifest.get('version', '0')}+{actual[:12]}"


class LearnedTextClassifier:
    """The learned heads as a :class:`~classifiers.base.TextClassifier` (thread-safe).

    By default construction verifies the sha256 of the head weights (from ``manifest.json``)
    and of the embedding weights, and raises :class:`ModelFileError` /
    ``EmbedderIntegrityError`` on a mismatch: the gateway then fails closed rather than scoring
    with unknown weights. ``weights`` (with ``version``) runs heads built in memory instead (the
    leave-one-source-out benchmark scores each fold's heads through this same class).
    """

    name = "learned"
    model_id = "reelguard-text-heads"
    categories: tuple[Category, ...] = HEAD_CATEGORIES

    def __init__(
        self,
        models_dir: Path = MODELS_DIR,
        embedder: E5Embedder | None = None,
        *,
        weights: HeadWeights | None = None,
        version: str = "in-memory",
    ) -> None:
        if weights is None:
            weights, version = load_weights(models_dir)
        self.weights = weights
        self.embedder = embedder if embedder is not None else E5Embedder()
        if self.weights.dim != self.embedder.dim:
            raise EmbedderIntegrityError(
                f"heads expect embeddings of width {self.weights.dim}, the embedder gives "
                f"{self.embedder.dim}; retrain the heads for this embedder"
            )
        self.model_version = version
        self.escalations = 0
        """Prompts that ran the full model (a statistic for benchmarks; not locked)."""

    def score(self, prompt: PromptText) -> Scores:
        """Calibrated scores for one prompt (the maximum over its windows)."""
        w = self.weights
        parts = prompt_windows(prompt) or [""]
        if len(parts) > MAX_WINDOWS:
            raise PromptTooLongError(
                f"the prompt makes {len(parts)} windows of {EMBED_WINDOW} characters, more than "
                f"the {MAX_WINDOWS} the learned heads read; lower REELGUARD_MAX_NORMALIZED_CHARS "
                f"to {MAX_WINDOWS * EMBED_WINDOW // 2:,} or less"
            )
        early_passes = [self.embedder.embed_early(p) for p in parts]
        z4 = w.early_logits(np.stack([e.vector for e in early_passes]))
        early = w.early_scores(z4)
        minor = bool(np.any(early[:, 0] >= w.escalate_minor_at[0])) and bool(
            find_minor_mentions(prompt)
        )
        escalate = w.escalates(early, np.full(len(parts), minor))
        final = early.copy()
        if escalate.any():
            self.escalations += 1
            rows = np.flatnonzero(escalate)
            z12 = w.full_logits(np.stack([self.embedder.embed_late(early_passes[i]) for i in rows]))
            final[rows] = w.full_scores(z12, z4[rows])
        best = np.nan_to_num(final, nan=1.0)
        top_window = int(np.unravel_index(int(np.argmax(best)), best.shape)[0])
        cats = HEAD_CATEGORIES
        return Scores(
            scores={c: float(best[:, j].max()) for j, c in enumerate(cats)},
            early={c: float(early[:, j].max()) for j, c in enumerate(cats)},
            escalated=bool(escalate.any()),
            window=parts[top_window],
        )

    def classify(self, prompt: PromptText) -> list[Verdict]:
        """One verdict per head category; evidence quotes the highest-scoring window."""
        result = self.score(prompt)
        detail = "e5 full model" if result.escalated else "e5 early layers"
        evidence = (Evidence(text=result.window[:200], detail=detail),)
        return [
            Verdict(
                classifier=self.name,
                category=c,
                score=s,
                model_id=self.model_id,
                model_version=self.model_version,
                evidence=evidence if s >= EVIDENCE_MIN_SCORE else (),
            )
            for c, s in result.scores.items()
        ]
