"""The learned text classifier: calibrated sexual / violence / hate / harassment / self-harm scores.

Two stages, both plain numpy at run time (no sklearn, no torch):

1. **Fast heads** (every prompt): logistic regression over hashed character 2-4-grams and word
   1-2-grams of the normalised text (:class:`NgramFeaturizer`). Long prompts are scored per
   window of :data:`FAST_WINDOW` characters and the highest window counts, so a harmful sentence
   cannot hide inside a long benign prompt. Both the normalised text and the case-folded
   original are scored, and the higher score counts (the normaliser can also *create* a match,
   e.g. leetspeak; the original can lose one, e.g. zero-width splits).
2. **Embedding heads** (only for the few prompts the fast heads are unsure about): logistic
   regression over multilingual-e5-small embeddings (:mod:`classifiers.text.embed`), combined
   with the fast logit by a per-category stacker. A prompt escalates when a fast score reaches
   that category's escalation level (set on the calibration split so that only a fixed small
   share of benign video-style prompts escalate) and no fast score is already so high that the
   embedding would not change the decision (``escalate_hi``). e5 costs 4-14 ms an English
   prompt on one core (more for Chinese: more tokens per character), the fast heads well
   under 1 ms, so escalation is kept rare.

Scores are calibrated on a held-out calibration split, scored with this same windowing, and
anchored to the default policy thresholds: 0.35 and 0.5 each flag a fixed small share of benign
video-style prompts per category (the shares add up to 1 % at 0.35; ``train.BUDGETS``). The
model card (``classifiers/text/MODEL_CARD.md``) lists the data, the dev metrics and the blind
spots.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from classifiers.base import Category, Evidence, PromptText, Verdict
from classifiers.text.embed import WINDOW_CHARS, E5Embedder, EmbedderIntegrityError, sha256_file
from classifiers.text.lexicon import find_minor_mentions

__all__ = [
    "HEAD_CATEGORIES",
    "MODELS_DIR",
    "HeadWeights",
    "LearnedTextClassifier",
    "ModelFileError",
    "NgramFeaturizer",
    "Scores",
    "context_window",
    "fast_windows",
    "prompt_pieces",
]

MODELS_DIR: Final = Path(__file__).resolve().parent / "models"
HEADS_FILE: Final = "heads.npz"
MANIFEST_FILE: Final = "manifest.json"

HEAD_CATEGORIES: Final[tuple[Category, ...]] = (
    "sexual",
    "violence",
    "hate",
    "harassment",
    "self-harm",
)
"""Categories the learned heads score, in the column order of the weight matrices."""

N_FEATURES: Final = 1 << 18
FAST_WINDOW: Final = 400
"""Characters per window for the fast heads (long prompts are scored window by window)."""
MAX_FAST_WINDOWS: Final = 400
"""Pieces scored per text variant: enough for every window and sentence of a 10,000-char prompt
(the server's limit) written in short sentences."""

EMBED_CHARS: Final = 128
"""Characters of an escalated prompt the embedding reads (e5 costs ~0.3 ms a token on one core;
the model card compares this with the 240-character windows the embedding heads train on)."""

_WORD = re.compile(r"[^\W_]+")
_SENTENCE_END = re.compile(r"(?<=[.!?;\n\u3002\uff01\uff1f\uff1b])\s*")


class ModelFileError(RuntimeError):
    """The shipped head weights are missing, malformed or do not match the manifest hash."""


class NgramFeaturizer:
    """Hashed, L2-normalised bag of character 2-4-grams and word 1-2-grams.

    The hash is CRC-32 (stable across processes and platforms, unlike ``hash``). Training and
    inference use this same class, so features cannot drift apart.
    """

    def __init__(self, n_features: int = N_FEATURES) -> None:
        self.n_features = n_features

    def _hashes(self, text: str) -> list[int]:
        mask = self.n_features - 1
        crc = zlib.crc32
        out: list[int] = []
        padded = f" {text} "
        data = padded.encode("utf-8", "replace")
        if len(data) == len(padded):  # pure ASCII: byte slices are char slices, and faster
            for n in (2, 3, 4):
                salt = n * 0x9E3779B1
                out.extend((crc(data[i : i + n]) ^ salt) & mask for i in range(len(data) - n + 1))
        else:
            for n in (2, 3, 4):
                salt = n * 0x9E3779B1
                out.extend(
                    (crc(padded[i : i + n].encode("utf-8", "replace")) ^ salt) & mask
                    for i in range(len(padded) - n + 1)
                )
        words = _WORD.findall(text)
        out.extend((crc(b"w:" + w.encode("utf-8", "replace")) & mask) for w in words)
        out.extend(
            (crc(b"b:" + f"{a} {b}".encode("utf-8", "replace")) & mask)
            for a, b in itertools.pairwise(words)
        )
        return out

    def transform_one(self, text: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Sparse features of one text: (sorted unique indices, L2-normalised sublinear tf)."""
        hashes = self._hashes(text)
        if not hashes:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        idx, counts = np.unique(np.asarray(hashes, dtype=np.int64), return_counts=True)
        val = (1.0 + np.log(counts)).astype(np.float32)
        val /= np.float32(np.sqrt(float(val @ val)))
        return idx, val


def fast_windows(text: str) -> list[str]:
    """The pieces of ``text`` the fast heads score: the whole text when it is short, else every
    sentence and every :data:`FAST_WINDOW`-character window (half overlap).

    Sentences stop one harmful sentence from being diluted by benign text around it (the
    features are L2-normalised); windows keep context that spans sentences.
    """
    if len(text) <= FAST_WINDOW:
        return [text]
    step = FAST_WINDOW // 2
    pieces = [text[s : s + FAST_WINDOW] for s in range(0, max(1, len(text) - step), step)]
    pieces += [p for p in _SENTENCE_END.split(text) if 8 <= len(p) <= FAST_WINDOW]
    return list(dict.fromkeys(pieces))[:MAX_FAST_WINDOWS]


def prompt_pieces(prompt: PromptText) -> tuple[list[str], list[str]]:
    """What the fast heads score for a prompt: the windows of the normalised text and of the
    case-folded original. Training calibrates on exactly these pieces (maximum over them), so a
    long prompt's scores mean what a short prompt's do."""
    return fast_windows(prompt.normalized), fast_windows(prompt.original.casefold())


def context_window(text: str, piece: str, size: int = WINDOW_CHARS) -> str:
    """``piece`` widened to about ``size`` characters of the ``text`` around it (``piece`` alone
    when it is not found, e.g. after case folding changed the text's length)."""
    at = text.casefold().find(piece.casefold())
    if at < 0 or len(piece) >= size:
        return piece
    start = max(0, min(at - (size - len(piece)) // 2, len(text) - size))
    return text[start : start + size]


@dataclass(frozen=True, slots=True)
class HeadWeights:
    """Everything the heads need at run time (loaded from ``heads.npz``).

    ``fast_w`` is (n_features, n_cat) and ``emb_w`` (dim, n_cat). ``platt_fast`` (n_cat, 2) maps
    a fast logit ``z`` to ``a*z + b``; ``stack`` (n_cat, 3) maps (fast logit, embedding logit)
    to ``a*zf + b*ze + c``. ``escalate_at`` (n_cat,) is the calibrated fast score from which the
    embedding heads run, ``escalate_minor_at`` the same for a prompt that mentions a minor (the
    sexual/minors rule acts on lower sexual scores); ``escalate_hi`` (n_cat,) the fast score from
    which a prompt is flagged whatever the embedding says, so it does not escalate.
    """

    fast_w: npt.NDArray[np.float32]
    fast_b: npt.NDArray[np.float32]
    emb_w: npt.NDArray[np.float32]
    emb_b: npt.NDArray[np.float32]
    platt_fast: npt.NDArray[np.float64]
    stack: npt.NDArray[np.float64]
    escalate_at: npt.NDArray[np.float64]
    escalate_minor_at: npt.NDArray[np.float64]
    escalate_hi: npt.NDArray[np.float64]

    @classmethod
    def load(cls, path: Path) -> HeadWeights:
        """Load and shape-check ``heads.npz``; raises :class:`ModelFileError` naming the field."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{path}: cannot read head weights ({exc}); retrain them") from exc
        n_cat = len(HEAD_CATEGORIES)
        shapes = {
            "fast_w": (N_FEATURES, n_cat),
            "fast_b": (n_cat,),
            "emb_b": (n_cat,),
            "platt_fast": (n_cat, 2),
            "stack": (n_cat, 3),
            "escalate_at": (n_cat,),
            "escalate_minor_at": (n_cat,),
            "escalate_hi": (n_cat,),
        }
        for key, shape in shapes.items():
            if key not in arrays or arrays[key].shape != shape:
                got = arrays[key].shape if key in arrays else "missing"
                raise ModelFileError(f"{path}: field {key!r} should have shape {shape}, got {got}")
        if "emb_w" not in arrays or arrays["emb_w"].ndim != 2 or arrays["emb_w"].shape[1] != n_cat:
            raise ModelFileError(f"{path}: field 'emb_w' should have shape (dim, {n_cat})")
        return cls(
            fast_w=arrays["fast_w"].astype(np.float32),
            fast_b=arrays["fast_b"].astype(np.float32),
            emb_w=arrays["emb_w"].astype(np.float32),
            emb_b=arrays["emb_b"].astype(np.float32),
            platt_fast=arrays["platt_fast"].astype(np.float64),
            stack=arrays["stack"].astype(np.float64),
            escalate_at=arrays["escalate_at"].astype(np.float64),
            escalate_minor_at=arrays["escalate_minor_at"].astype(np.float64),
            escalate_hi=arrays["escalate_hi"].astype(np.float64),
        )


def _sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0))), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Scores:
    """Per-category calibrated scores for one prompt, and how they were reached."""

    scores: dict[Category, float]
    fast: dict[Category, float]
    escalated: bool
    window: str
    """The text window that gave the highest fast score (quoted as evidence)."""


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


class LearnedTextClassifier:
    """The learned heads as a :class:`~classifiers.base.TextClassifier` (thread-safe).

    Construction verifies the sha256 of the head weights (from ``manifest.json``) and of the
    embedding weights, and raises :class:`ModelFileError` / ``EmbedderIntegrityError`` on a
    mismatch: the gateway then fails closed rather than scoring with unknown weights.
    """

    name = "learned"
    model_id = "reelguard-text-heads"
    categories: tuple[Category, ...] = HEAD_CATEGORIES

    def __init__(self, models_dir: Path = MODELS_DIR, embedder: E5Embedder | None = None) -> None:
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
                f"differ from {list(HEAD_CATEGORIES)}"
            )
        self.weights = HeadWeights.load(heads_path)
        self.embedder = embedder if embedder is not None else E5Embedder()
        if self.weights.emb_w.shape[0] != self.embedder.dim:
            raise EmbedderIntegrityError(
                f"{heads_path}: embedding heads expect dim {self.weights.emb_w.shape[0]}, "
                f"the embedder gives {self.embedder.dim}"
            )
        self.model_version = f"{manifest.get('version', '0')}+{actual[:12]}"
        self.featurizer = NgramFeaturizer()
        esc = np.clip(self.weights.escalate_at, 1e-6, 1 - 1e-6)
        self._esc_logit = np.log(esc / (1 - esc))
        self.escalations = 0
        """Prompts that reached the embedding heads (a statistic for benchmarks; not locked)."""

    def fast_logits(self, text: str) -> tuple[npt.NDArray[np.float64], str, float]:
        """Highest raw fast logit per category over the windows of ``text``, the most suspicious
        window (largest margin over a category's escalation level) and that margin."""
        return self._fast_logits(fast_windows(text), text)

    def _fast_logits(
        self, parts: list[str], text: str
    ) -> tuple[npt.NDArray[np.float64], str, float]:
        w = self.weights
        best = np.full(len(HEAD_CATEGORIES), -np.inf)
        best_window = text[:FAST_WINDOW]
        best_margin = -np.inf
        for part in parts:
            idx, val = self.featurizer.transform_one(part)
            z = (val @ w.fast_w[idx] + w.fast_b).astype(np.float64)
            best = np.maximum(best, z)
            margin = float(np.max(w.platt_fast[:, 0] * z + w.platt_fast[:, 1] - self._esc_logit))
            if margin > best_margin:
                best_margin, best_window = margin, part
        return best, best_window, best_margin

    def emb_logits(self, text: str) -> npt.NDArray[np.float64]:
        """Raw embedding logit per category of the first window of ``text`` (at most
        :data:`EMBED_CHARS` characters).

        One window, as in calibration (``train.embed_cached``): a maximum over several windows
        would score higher than the stacker was fitted for, and every window costs another
        e5 call. For a long prompt ``text`` is the window the fast heads found most suspicious.
        """
        vec = self.embedder.embed(text, EMBED_CHARS)
        z = vec @ self.weights.emb_w + self.weights.emb_b
        return np.asarray(z, dtype=np.float64)

    def score(self, prompt: PromptText) -> Scores:
        """Calibrated scores for one prompt (both the normalised and the original text)."""
        w = self.weights
        parts_norm, parts_orig = prompt_pieces(prompt)
        z_norm, win_norm, m_norm = self._fast_logits(parts_norm, prompt.normalized)
        z_orig, win_orig, m_orig = self._fast_logits(parts_orig, prompt.original.casefold())
        z_fast = np.maximum(z_norm, z_orig)
        window, source = (
            (win_norm, prompt.normalized) if m_norm >= m_orig else (win_orig, prompt.original)
        )
        p_fast = _sigmoid(w.platt_fast[:, 0] * z_fast + w.platt_fast[:, 1])
        level = w.escalate_at
        if np.any(p_fast >= w.escalate_minor_at) and find_minor_mentions(prompt):
            level = w.escalate_minor_at
        escalated = bool(np.any(p_fast >= level)) and not bool(np.any(p_fast >= w.escalate_hi))
        if escalated:
            self.escalations += 1
            if len(prompt.normalized) > FAST_WINDOW:
                # A long prompt: the embedder reads the window the fast heads found suspicious,
                # with its context (a lone sentence such as "medium shot, half-body composition."
                # reads as something else than the prompt it belongs to).
                emb_text = context_window(source, window, EMBED_CHARS)
            else:
                # The embedder reads the normalised text when the normaliser changed more than
                # case (it was trained on ordinary cased text).
                changed = prompt.normalized != prompt.original.casefold().strip()
                emb_text = prompt.normalized if changed else prompt.original
            z_emb = self.emb_logits(emb_text)
            p = _sigmoid(w.stack[:, 0] * z_fast + w.stack[:, 1] * z_emb + w.stack[:, 2])
        else:
            p = p_fast
        cats = HEAD_CATEGORIES
        return Scores(
            scores={c: float(p[i]) for i, c in enumerate(cats)},
            fast={c: float(p_fast[i]) for i, c in enumerate(cats)},
            escalated=escalated,
            window=window,
        )

    def classify(self, prompt: PromptText) -> list[Verdict]:
        """One verdict per head category; evidence quotes the highest-scoring window."""
        result = self.score(prompt)
        detail = "fast+embedding heads" if result.escalated else "fast n-gram heads"
        evidence = (Evidence(text=result.window[:200], detail=detail),)
        return [
            Verdict(
                classifier=self.name,
                category=c,
                score=0.0 if math.isnan(s) else s,
                model_id=self.model_id,
                model_version=self.model_version,
                evidence=evidence if s >= 0.2 else (),
            )
            for c, s in result.scores.items()
        ]
