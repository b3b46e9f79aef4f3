"""Optional Detoxify text classifier (``detoxify``): Unitary's Jigsaw toxicity models, offline.

Off by default: it runs only where a policy lists ``detoxify`` under ``classifiers.prompt``, and
then only from local files named by settings (nothing is downloaded):

* ``REELGUARD_DETOXIFY_CHECKPOINT``: a Detoxify ``.ckpt`` from the GitHub releases of
  unitaryai/detoxify (:data:`RELEASES`). It holds ``state_dict`` (the fine-tuned transformer)
  and ``config``: ``arch.args`` names the base model (``model_type``, e.g. ``bert-base-uncased``),
  the transformers classes (``model_name``, ``tokenizer_name``) and ``num_classes``;
  ``dataset.args.classes`` the labels of the first logits.
* ``REELGUARD_DETOXIFY_MODEL_DIR``: a local Hugging Face folder of that base model with its
  ``config.json`` and tokenizer files (``tokenizer.json``), the same name as ``model_type``.
* ``REELGUARD_DETOXIFY_SHA256`` (optional): the checkpoint's sha256; any other file is refused.

Loading follows ``detoxify.detoxify.load_checkpoint`` of the ``detoxify`` package (0.5.x): the
label names come from ``config.dataset.args.classes`` with the same renaming (``toxic`` ->
``toxicity``, ``severe_toxic`` -> ``severe_toxicity``, ``identity_hate`` ->
``identity_attack``), the model class and tokenizer class are looked up in ``transformers`` by
the names the checkpoint gives, the config is the base model's with ``num_labels =
num_classes``, and a label's score is ``sigmoid(logit)``. Only the first ``len(classes)`` logits
are labels (the ``unbiased`` model has 16 outputs: 7 labels, then 9 identity-mention columns).
Three deliberate differences: ``torch.load(..., weights_only=True)`` (a checkpoint cannot run
code; a file holding more than tensors and plain data is refused, and the README shows the
one-off conversion of a trusted one); the state dict must fit the model
exactly (a missing weight is an error, not a random initialisation); and a text longer than the
model's 512 tokens is scored window by window (maximum per label) instead of being truncated, so
a harmful sentence cannot hide behind a long benign prefix.

Every failure to load raises :class:`DetoxifyUnavailable` naming the setting and the fix; the
gateway then blocks every prompt the classifier should check (source ``error``) and
``/healthz`` reports ``failing``.

Labels -> policy categories (:data:`LABEL_CATEGORIES`), a category scoring the highest of its
labels; the reasons are in the table's comments. Scores are Detoxify's own probabilities, not
recalibrated to the default policy's anchors (see ``classifiers/text/MODEL_CARD.md``).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from classifiers.base import CATEGORIES, Category, Evidence, PromptText, Verdict
from classifiers.text.embed import clean_for_engine
from config.settings import get_settings

__all__ = [
    "LABEL_CATEGORIES",
    "RELEASES",
    "DetoxifyClassifier",
    "DetoxifySpec",
    "DetoxifyUnavailable",
    "detoxify_available",
    "detoxify_spec",
    "load_detoxify",
]

RELEASES: Final[Mapping[str, tuple[str, str]]] = {
    "original": (
        "https://github.com/unitaryai/detoxify/releases/download/v0.1-alpha/"
        "toxic_original-c1212f89.ckpt",
        "bert-base-uncased",
    ),
    "unbiased": (
        "https://github.com/unitaryai/detoxify/releases/download/v0.3-alpha/"
        "toxic_debiased-c7548aa0.ckpt",
        "roberta-base",
    ),
    "multilingual": (
        "https://github.com/unitaryai/detoxify/releases/download/v0.4-alpha/"
        "multilingual_debiased-0b549669.ckpt",
        "xlm-roberta-base",
    ),
}
"""Detoxify model name -> (checkpoint URL, Hugging Face base model for MODEL_DIR), as in the
``detoxify`` package's ``MODEL_URLS``."""

LABEL_CATEGORIES: Final[Mapping[str, Category]] = {
    # Jigsaw's "toxicity" is a rude or disrespectful comment aimed at people in a discussion:
    # closest to harassment. Not hate (identity_attack says that) nor violence (threat does).
    "toxicity": "harassment",
    "severe_toxicity": "harassment",
    "insult": "harassment",
    # "obscene" is swearing and vulgar language (the sexual content label is sexual_explicit);
    # in the Jigsaw comments it is almost always abuse aimed at someone, so harassment.
    "obscene": "harassment",
    # A threat of harm to a real person or group is what the policy refuses as graphic /
    # real-world violence, not depicted violence (an action scene), which the default allows.
    "threat": "violence/graphic",
    # Attacks on a group for its identity (race, religion, gender, orientation, ...) is hate.
    "identity_attack": "hate",
    "sexual_explicit": "sexual",
}
"""Detoxify label -> policy category. Labels absent from a checkpoint are simply not scored."""

_RENAMED: Final = {
    "toxic": "toxicity",
    "identity_hate": "identity_attack",
    "severe_toxic": "severe_toxicity",
}
"""The renaming ``detoxify.load_checkpoint`` applies, so every model uses the same names."""

MAX_TOKENS: Final = 512
"""Longest window the model reads (the base models' limit, and Detoxify's truncation length)."""
WINDOW_OVERLAP: Final = 64
"""Tokens shared by consecutive windows of a long text (a phrase on a boundary is seen whole)."""
MAX_WINDOWS: Final = 48
"""Most windows per text: enough for a 10,000-character prompt (the server's limit) of ordinary
text; beyond it the classifier raises, which blocks the prompt (fail closed)."""
BATCH_WINDOWS: Final = 16
"""Windows per forward pass."""
EVIDENCE_AT: Final = 0.2
"""A category's score from which its verdict quotes the window (as the learned heads do)."""

_ROBERTA_LIKE: Final = frozenset({"roberta", "xlm-roberta", "camembert"})
"""Model types whose position ids start after the padding index (2 positions fewer)."""
_IGNORED_KEYS: Final = ("position_ids",)
"""Buffers older transformers saved in state dicts and newer ones no longer persist."""


class DetoxifyUnavailable(RuntimeError):
    """Detoxify cannot run: weights not configured, missing, not the pinned file, or broken."""


@dataclass(frozen=True, slots=True)
class DetoxifySpec:
    """Which Detoxify files to load (from settings; see :func:`detoxify_spec`)."""

    checkpoint: Path | None = None
    model_dir: Path | None = None
    sha256: str | None = None
    threads: int = 1


def detoxify_spec() -> DetoxifySpec:
    """The Detoxify files the process settings name (``REELGUARD_DETOXIFY_*``).

    The only place this module reads settings.
    """
    settings = get_settings()
    return DetoxifySpec(
        checkpoint=settings.detoxify_checkpoint,
        model_dir=settings.detoxify_model_dir,
        sha256=settings.detoxify_sha256,
        threads=settings.torch_threads,
    )


def detoxify_available(spec: DetoxifySpec | None = None) -> bool:
    """Whether Detoxify weights are configured and present (cheap: nothing is loaded).

    For benchmarks that score Detoxify beside the shipped classifiers only where it can run.
    """
    try:
        spec = spec if spec is not None else detoxify_spec()
    except Exception:  # unreadable settings: not available (building it would fail closed)
        return False
    return (
        spec.checkpoint is not None
        and spec.checkpoint.is_file()
        and spec.model_dir is not None
        and spec.model_dir.is_dir()
    )


def load_detoxify() -> DetoxifyClassifier:
    """The registry factory: a :class:`DetoxifyClassifier` from the process settings."""
    return DetoxifyClassifier(detoxify_spec())


@dataclass(frozen=True, slots=True)
class _CheckpointConfig:
    model_type: str
    model_name: str
    tokenizer_name: str
    num_classes: int
    labels: tuple[str, ...]


def _field(config: object, path: str, where: Path) -> Any:
    node = config
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            raise DetoxifyUnavailable(
                f"detoxify: {where}: config.{path} is missing, so this is not a Detoxify "
                "checkpoint; set REELGUARD_DETOXIFY_CHECKPOINT to a .ckpt from the "
                "unitaryai/detoxify releases (README, 'Detoxify')"
            )
        node = node[key]
    return node


def _checkpoint_config(loaded: object, where: Path) -> _CheckpointConfig:
    """Validate the checkpoint dict and read what ``detoxify.load_checkpoint`` reads."""
    if not isinstance(loaded, Mapping) or "config" not in loaded or "state_dict" not in loaded:
        raise DetoxifyUnavailable(
            f"detoxify: {where}: a Detoxify checkpoint holds 'config' and 'state_dict'; this "
            "file does not. Set REELGUARD_DETOXIFY_CHECKPOINT to a .ckpt from the "
            "unitaryai/detoxify releases (README, 'Detoxify')"
        )
    config = loaded["config"]
    texts = {
        key: _field(config, f"arch.args.{key}", where)
        for key in ("model_type", "model_name", "tokenizer_name")
    }
    for key, value in texts.items():
        if not isinstance(value, str) or not value:
            raise DetoxifyUnavailable(f"detoxify: {where}: config.arch.args.{key} must be text")
    num_classes = _field(config, "arch.args.num_classes", where)
    classes = _field(config, "dataset.args.classes", where)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise DetoxifyUnavailable(
            f"detoxify: {where}: config.arch.args.num_classes must be a positive whole number"
        )
    if (
        not isinstance(classes, list | tuple)
        or not classes
        or not all(isinstance(c, str) for c in classes)
        or len(classes) > num_classes
    ):
        raise DetoxifyUnavailable(
            f"detoxify: {where}: config.dataset.args.classes must list 1 to {num_classes} "
            "label names"
        )
    labels = tuple(_RENAMED.get(str(c), str(c)) for c in classes)
    if not any(label in LABEL_CATEGORIES for label in labels):
        raise DetoxifyUnavailable(
            f"detoxify: {where}: none of the labels {list(labels)} maps to a policy category "
            f"(known: {sorted(LABEL_CATEGORIES)})"
        )
    return _CheckpointConfig(
        model_type=texts["model_type"],
        model_name=texts["model_name"],
        tokenizer_name=texts["tokenizer_name"],
        num_classes=num_classes,
        labels=labels,
    )


def _check_paths(spec: DetoxifySpec) -> tuple[Path, Path]:
    """The checkpoint file and the model folder, once both settings name ones that exist."""
    if spec.checkpoint is None:
        raise DetoxifyUnavailable(
            "detoxify: no checkpoint configured; set REELGUARD_DETOXIFY_CHECKPOINT to a local "
            "Detoxify .ckpt and REELGUARD_DETOXIFY_MODEL_DIR to its tokenizer/config folder "
            "(README, 'Detoxify'), or remove 'detoxify' from the policy's classifiers.prompt"
        )
    if not spec.checkpoint.is_file():
        raise DetoxifyUnavailable(
            f"detoxify: checkpoint {spec.checkpoint} not found; fix "
            "REELGUARD_DETOXIFY_CHECKPOINT (README, 'Detoxify')"
        )
    if spec.model_dir is None:
        raise DetoxifyUnavailable(
            "detoxify: no tokenizer/config folder configured; set REELGUARD_DETOXIFY_MODEL_DIR "
            "to the local Hugging Face folder of the checkpoint's base model (README, "
            "'Detoxify')"
        )
    if not spec.model_dir.is_dir():
        raise DetoxifyUnavailable(
            f"detoxify: folder {spec.model_dir} not found; fix REELGUARD_DETOXIFY_MODEL_DIR"
        )
    return spec.checkpoint, spec.model_dir


def _read_checkpoint(path: Path, pinned: str | None) -> tuple[Mapping[str, Any], str]:
    """The checkpoint dict and the sha256 of the very bytes it was loaded from."""
    import torch

    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if pinned is not None and digest != pinned.lower():
        raise DetoxifyUnavailable(
            f"detoxify: {path} has sha256 {digest}, not REELGUARD_DETOXIFY_SHA256 "
            f"{pinned}; put back the pinned file or update the pin"
        )
    try:
        loaded = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or corrupt file, or a pickle that is not plain data
        raise DetoxifyUnavailable(
            f"detoxify: cannot read {path} as a checkpoint ({type(exc).__name__}: "
            f"{str(exc)[:300]}); download it again, or convert a trusted file that holds other "
            "Python objects (README, 'Detoxify'). Only tensors and plain data are loaded, so a "
            "checkpoint cannot run code"
        ) from exc
    return loaded, digest


def _transformers_class(name: str, suffixes: tuple[str, ...], kind: str) -> Any:
    import transformers

    # Only names of the expected kind are looked up, so a checkpoint cannot pick any callable.
    if not name.isidentifier() or not name.endswith(suffixes):
        raise DetoxifyUnavailable(f"detoxify: the checkpoint names {name!r} as its {kind} class")
    try:
        return getattr(transformers, name)
    except (AttributeError, ImportError) as exc:
        raise DetoxifyUnavailable(
            f"detoxify: transformers has no {kind} class {name!r} ({exc})"
        ) from exc


def _read_model_type(model_dir: Path) -> str:
    path = model_dir / "config.json"
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise DetoxifyUnavailable(
            f"detoxify: cannot read {path} ({exc}); REELGUARD_DETOXIFY_MODEL_DIR must be a "
            "Hugging Face model folder with config.json and tokenizer files (README, 'Detoxify')"
        ) from exc
    return str(found)


def _build_model(spec_dir: Path, ckpt: _CheckpointConfig, state_dict: object) -> Any:
    """The transformers model of the checkpoint, its weights loaded exactly."""
    import torch

    model_class = _transformers_class(ckpt.model_name, ("ForSequenceClassification",), "model")
    config_class = model_class.config_class
    found = _read_model_type(spec_dir)
    if found != config_class.model_type:
        raise DetoxifyUnavailable(
            f"detoxify: REELGUARD_DETOXIFY_MODEL_DIR {spec_dir} holds a {found!r} model; the "
            f"checkpoint needs {ckpt.model_type!r} ({config_class.model_type}): download that "
            "folder (README, 'Detoxify')"
        )
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
    ):
        raise DetoxifyUnavailable(
            "detoxify: the checkpoint's state_dict is not a mapping of names to tensors"
        )
    try:
        config = config_class.from_pretrained(str(spec_dir), local_files_only=True)
        config.num_labels = ckpt.num_classes
        model = model_class(config)
        missing, unexpected = model.load_state_dict(dict(state_dict), strict=False)
    except Exception as exc:  # shape mismatch, unreadable config
        raise DetoxifyUnavailable(
            f"detoxify: the checkpoint does not fit {ckpt.model_name} configured from "
            f"{spec_dir} ({type(exc).__name__}: {str(exc)[:300]}); check that "
            f"REELGUARD_DETOXIFY_MODEL_DIR holds {ckpt.model_type!r}"
        ) from exc
    unexpected = [k for k in unexpected if not k.endswith(_IGNORED_KEYS)]
    if missing or unexpected:
        raise DetoxifyUnavailable(
            f"detoxify: the checkpoint's weights do not match {ckpt.model_name}: missing "
            f"{missing[:5]}, unexpected {unexpected[:5]}; download the checkpoint again"
        )
    model.eval()
    return model


def _load_tokenizer(model_dir: Path, ckpt: _CheckpointConfig, vocab_size: int) -> Any:
    import transformers

    # The fast (Rust) tokenizer of the class the checkpoint names: the same tokens, and the
    # character offsets and overflow windows this classifier needs.
    name = ckpt.tokenizer_name.removesuffix("Fast")
    if not (model_dir / "tokenizer.json").is_file():
        # transformers would build a tokenizer without a vocabulary and read every word as
        # unknown.
        raise DetoxifyUnavailable(
            f"detoxify: no tokenizer.json in REELGUARD_DETOXIFY_MODEL_DIR {model_dir}; download "
            f"the tokenizer files of {ckpt.model_type!r} into it (README, 'Detoxify')"
        )
    fast = f"{name}Fast"
    found = fast if hasattr(transformers, fast) else name
    cls = _transformers_class(found, ("Tokenizer", "TokenizerFast"), "tokenizer")
    try:
        tokenizer = cls.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as exc:
        raise DetoxifyUnavailable(
            f"detoxify: cannot load the {name} tokenizer from REELGUARD_DETOXIFY_MODEL_DIR "
            f"{model_dir} ({type(exc).__name__}: {str(exc)[:300]}); download the tokenizer "
            f"files of {ckpt.model_type!r} into it (README, 'Detoxify')"
        ) from exc
    if not getattr(tokenizer, "is_fast", False):
        raise DetoxifyUnavailable(
            f"detoxify: {model_dir} has no fast tokenizer (tokenizer.json); download the "
            f"tokenizer files of {ckpt.model_type!r} into it"
        )
    if len(tokenizer) > vocab_size:
        raise DetoxifyUnavailable(
            f"detoxify: the tokenizer in {model_dir} has {len(tokenizer)} tokens, the model "
            f"{vocab_size}; REELGUARD_DETOXIFY_MODEL_DIR must hold {ckpt.model_type!r}"
        )
    return tokenizer


def _window_limit(config: Any, tokenizer: Any) -> int:
    positions = int(getattr(config, "max_position_embeddings", MAX_TOKENS))
    if getattr(config, "model_type", "") in _ROBERTA_LIKE:
        positions -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    limit = min(MAX_TOKENS, positions, int(min(tokenizer.model_max_length, 1 << 30)))
    if limit < 8:
        raise DetoxifyUnavailable(f"detoxify: the model reads only {limit} tokens")
    return limit


@dataclass(frozen=True, slots=True)
class _Best:
    """The highest probability of each label over a text's windows, and where it was."""

    probs: tuple[float, ...]
    spans: tuple[tuple[int, int], ...]


class DetoxifyClassifier:
    """Detoxify as a :class:`~classifiers.base.TextClassifier` (thread-safe, CPU).

    Construction loads and checks everything (see the module docstring) and runs one
    prediction, raising :class:`DetoxifyUnavailable` on any problem. ``classify`` scores the
    original prompt and, when normalisation changed more than case, the normalised text too,
    and keeps the higher score per label.
    """

    name = "detoxify"

    def __init__(self, spec: DetoxifySpec) -> None:
        import torch

        checkpoint, model_dir = _check_paths(spec)
        loaded, digest = _read_checkpoint(checkpoint, spec.sha256)
        ckpt = _checkpoint_config(loaded, checkpoint)
        self.labels = ckpt.labels
        self.model = _build_model(model_dir, ckpt, loaded["state_dict"])
        del loaded
        self.tokenizer = _load_tokenizer(model_dir, ckpt, self.model.config.vocab_size)
        self.max_tokens = _window_limit(self.model.config, self.tokenizer)
        self.model_id = f"unitary/detoxify:{ckpt.model_type}"
        self.model_version = f"sha256:{digest[:16]}"
        self.categories: tuple[Category, ...] = tuple(
            c for c in CATEGORIES if c in {LABEL_CATEGORIES.get(x) for x in self.labels}
        )
        self._inputs = set(self.tokenizer.model_input_names)
        # torch's intra-op thread count is per process: one thread is fastest for one short
        # prompt on a small shared box, and leaves the other cores to concurrent checks.
        torch.set_num_threads(spec.threads)
        # transformers re-sets truncation and padding on the shared Rust tokenizer at every
        # call, which some tokenizers versions reject from two threads at once ("Already
        # borrowed"); tokenizing is cheap, so it is serialised. The forward pass needs no lock.
        self._tokenizer_lock = threading.Lock()
        try:  # fail at start-up, not on the first prompt
            self.predict(["hello"])
        except Exception as exc:
            raise DetoxifyUnavailable(
                f"detoxify: the model loaded from {checkpoint} cannot score a prompt "
                f"({type(exc).__name__}: {str(exc)[:300]}); download the checkpoint again"
            ) from exc

    # -- scoring -------------------------------------------------------------------------

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Detoxify's ``predict`` for several texts: label -> probability (long texts: the
        highest over their windows)."""
        return [dict(zip(self.labels, best.probs, strict=True)) for best in self._score(texts)]

    def _score(self, texts: Sequence[str]) -> list[_Best]:
        import torch

        if not texts:
            return []
        clean = [clean_for_engine(t) for t in texts]
        stride = min(WINDOW_OVERLAP, self.max_tokens // 4)
        with self._tokenizer_lock:
            enc = self.tokenizer(
                clean,
                truncation=True,
                max_length=self.max_tokens,
                stride=stride,
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
                padding=True,
                return_tensors="pt",
            )
        owner = enc["overflow_to_sample_mapping"].tolist()
        most = max(Counter(owner).values(), default=0)
        if most > MAX_WINDOWS:
            raise ValueError(
                f"detoxify: a prompt of {most} windows of {self.max_tokens} tokens is longer "
                f"than the {MAX_WINDOWS} this classifier reads"
            )
        inputs = {k: v for k, v in enc.items() if k in self._inputs}
        lengths = enc["attention_mask"].sum(dim=1)
        # Shortest windows first, each pass cut to its longest window: one long prompt in a
        # batch does not make every short one pay for its padding.
        order = torch.argsort(lengths, stable=True)
        passes = []
        with torch.inference_mode():
            for start in range(0, len(order), BATCH_WINDOWS):
                rows = order[start : start + BATCH_WINDOWS]
                part = {k: v[rows] for k, v in inputs.items()}
                if self.tokenizer.padding_side == "right":
                    width = int(lengths[rows].max())
                    part = {k: v[:, :width] for k, v in part.items()}
                logits = self.model(**part).logits[:, : len(self.labels)]
                passes.append(torch.sigmoid(logits.float()))
            by_length = torch.cat(passes)
            probs = torch.empty_like(by_length)
            probs[order] = by_length
        if not bool(torch.isfinite(probs).all()):
            raise ValueError("detoxify: the model returned a score that is not a number")
        offsets = enc["offset_mapping"].tolist()
        return self._best_per_text(len(texts), owner, probs.tolist(), offsets)

    def _best_per_text(
        self,
        n_texts: int,
        owner: list[int],
        probs: list[list[float]],
        offsets: list[list[list[int]]],
    ) -> list[_Best]:
        n_labels = len(self.labels)
        best = [[-1.0] * n_labels for _ in range(n_texts)]
        spans = [[(0, 0)] * n_labels for _ in range(n_texts)]
        for window, text_i in enumerate(owner):
            span = _window_span(offsets[window])
            for j, p in enumerate(probs[window]):
                if p > best[text_i][j]:
                    best[text_i][j], spans[text_i][j] = p, span
        return [_Best(tuple(b), tuple(s)) for b, s in zip(best, spans, strict=True)]

    # -- the protocol --------------------------------------------------------------------

    def classify(self, prompt: PromptText) -> list[Verdict]:
        """One verdict per covered category; evidence quotes the highest-scoring window."""
        return self.classify_many([prompt])[0]

    def classify_many(self, prompts: Sequence[PromptText]) -> list[list[Verdict]]:
        """:meth:`classify` for several prompts, their windows scored in shared forward passes."""
        texts: list[str] = []
        owners: list[tuple[int, bool]] = []  # (prompt index, is the normalised text)
        for i, prompt in enumerate(prompts):
            texts.append(prompt.original)
            owners.append((i, False))
            if prompt.normalized != prompt.original.casefold().strip():
                texts.append(prompt.normalized)
                owners.append((i, True))
        scored = self._score(texts)
        out: list[list[Verdict]] = []
        for i, prompt in enumerate(prompts):
            mine = [(best, norm) for best, (k, norm) in zip(scored, owners, strict=True) if k == i]
            out.append(self._verdicts(prompt, mine))
        return out

    def _verdicts(self, prompt: PromptText, scored: list[tuple[_Best, bool]]) -> list[Verdict]:
        top: dict[Category, tuple[float, str, str]] = {c: (0.0, "", "") for c in self.categories}
        for best, normalized in scored:
            for j, label in enumerate(self.labels):
                category = LABEL_CATEGORIES.get(label)
                if category is None or best.probs[j] <= top[category][0]:
                    continue
                start, end = best.spans[j]
                if normalized:
                    start, end = prompt.original_span(start, end)
                top[category] = (best.probs[j], label, prompt.original[start:end][:200])
        return [
            Verdict(
                classifier=self.name,
                category=category,
                score=score,
                model_id=self.model_id,
                model_version=self.model_version,
                # A window is what the model read, not a located hit: quoted without a span,
                # as the learned heads do, so the allowlist rule treats it as a whole-prompt
                # score (policies/engine.py, rule 4).
                evidence=(
                    (Evidence(text=quote, detail=f"detoxify {label} {score:.2f}"),)
                    if score >= EVIDENCE_AT
                    else ()
                ),
            )
            for category, (score, label, quote) in top.items()
        ]


def _window_span(offsets: list[list[int]]) -> tuple[int, int]:
    """The character span a window's tokens cover (special and padding tokens have (0, 0))."""
    real = [(s, e) for s, e in offsets if e > s]
    if not real:
        return 0, 0
    return min(s for s, _ in real), max(e for _, e in real)
