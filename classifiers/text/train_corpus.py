"""Training data for the learned text heads: rows, labels, weights and embedded windows.

:func:`load_rows` reads the kit's ``train.jsonl`` (a bad line is a ``click.ClickException``
naming it), :func:`templated_rows` adds the templated rows of :mod:`classifiers.text.augment`
(group :data:`TEMPLATED`), :func:`build_corpus` cuts every row into the windows the classifier
scores, embeds them with e5 twice (early layers and full; cached per window text by
:func:`embed_cached`) and weights them (:func:`row_weights`). :func:`split_of` is the frozen
same-source split the benchmark's secondary line uses. Step 1 and 2 of
:mod:`classifiers.text.train`.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import numpy.typing as npt

from classifiers.text.augment import DEPICTED, contrastive_rows, obfuscate, synthetic_rows
from classifiers.text.embed import E5_MODEL_ID, EARLY_LAYERS, E5Embedder
from classifiers.text.learned import HEAD_CATEGORIES, prompt_windows
from classifiers.text.lexicon import find_minor_mentions
from classifiers.text.normalize import normalize

__all__ = [
    "KIT_LABELS",
    "NOISY_WEIGHT",
    "SOURCE_CAP",
    "TEMPLATED",
    "TEMPLATED_WEIGHT",
    "VIDEO_BENIGN_WEIGHT",
    "VIDEO_SOURCES",
    "Corpus",
    "Log",
    "Row",
    "build_corpus",
    "embed_cached",
    "is_implicit",
    "label_matrix",
    "load_corpus",
    "load_rows",
    "row_weights",
    "split_key",
    "split_of",
    "templated_rows",
]

Log = Callable[[str], None]

KIT_LABELS: dict[str, frozenset[str]] = {
    "sexual": frozenset({"sexual"}),
    "violence": frozenset({"violence", DEPICTED}),
    "violence/graphic": frozenset({"violence"}),
    "hate": frozenset({"hate"}),
    "harassment": frozenset({"harassment"}),
    "self-harm": frozenset({"self_harm"}),
}
"""Kit labels that make a row positive for each head. Every kit ``violence`` row is a harmful
request or graphic depiction (AART crimes, Nibbler gore, HateCheck threats, AdvBench weapons), so
it is positive for ``violence/graphic``; the templated depicted-violence rows are positive for
``violence`` only."""
TEMPLATED = "templated"
"""Group of the templated rows: always in training, never a calibration or evaluation source."""
SOURCE_CAP = 6000
NOISY_WEIGHT = 0.4
VIDEO_BENIGN_WEIGHT = 4.0
TEMPLATED_WEIGHT = 2.0
VIDEO_SOURCES = frozenset(
    {
        "coco_captions_esd",
        "didemo",
        "parti",
        "t2i_compbench",
        "vbench_aug",
        "opensora",
        "six_cd",
        "cc3m_val",
        "chronomagic_bench",
        "dsg1k",
        "fetv",
        "imagereward",
        "krea_open_prompts",
        "storybench",
        "video_model_examples",
    }
)
"""Sources of ordinary video prompts, captions and text-to-image prompts (the benign style the
gateway serves); their false positives are what the thresholds are anchored to."""


@dataclass(frozen=True, slots=True)
class Row:
    """One kit (or templated) row as training reads it."""

    id: str
    source: str
    text: str
    labels: frozenset[str]
    lang: str
    quality: str


def load_rows(path: Path) -> list[Row]:
    """Read ``train.jsonl``; raises ``click.ClickException`` naming the line on bad JSON."""
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            try:
                r = json.loads(line)
                rows.append(
                    Row(
                        r["id"],
                        r["source"],
                        r["text"],
                        frozenset(r["labels"]),
                        r["lang"],
                        r["label_quality"],
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise click.ClickException(f"{path}:{n}: bad row ({exc}); fix or drop it") from exc
    return rows


def templated_rows(seed: int) -> list[Row]:
    """The templated rows of :mod:`classifiers.text.augment` as :class:`Row` (group
    :data:`TEMPLATED`), plus an obfuscated copy of every harmful one and of one benign one in
    ten (leetspeak, look-alikes, zero-width splits, spaced letters: what the normaliser only
    partly undoes, e.g. "sh3 sl0wly und.r.e.s.s.e.s", must still read as what it is)."""
    rng = random.Random(seed)
    rows = [*synthetic_rows(seed), *contrastive_rows(seed)]
    out = [
        Row(f"{TEMPLATED}:{n}", TEMPLATED, s.text, frozenset(s.labels), s.lang, "t")
        for n, s in enumerate(rows)
    ]
    for n, s in enumerate(rows):
        if (s.labels and DEPICTED not in s.labels) or rng.random() < 0.1:
            copy = obfuscate(s.text, rng)
            out.append(
                Row(f"{TEMPLATED}:obf:{n}", TEMPLATED, copy, frozenset(s.labels), s.lang, "t")
            )
    return out


def _h(s: str) -> str:
    return hashlib.sha1(s.encode("utf-8", "replace")).hexdigest()


def split_key(text: str) -> str:
    """The text identity used for the same-source split: NFKC, casefold, whitespace collapsed
    (frozen on purpose: a new key would reshuffle the split)."""
    import unicodedata

    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def split_of(rows: list[Row]) -> dict[str, str]:
    """Row id -> ``train``/``calib``/``dev``, stratified by (source, lang, labels): the
    same-source split, kept only for the benchmark's secondary line."""
    strata: dict[tuple[str, str, tuple[str, ...]], list[Row]] = defaultdict(list)
    for r in rows:
        strata[(r.source, r.lang, tuple(sorted(r.labels)))].append(r)
    out: dict[str, str] = {}
    for members in strata.values():
        members.sort(key=lambda r: (_h(split_key(r.text)), r.id))
        for i, r in enumerate(members):
            k = i % 20
            out[r.id] = "dev" if k in (0, 7, 14) else "calib" if k in (3, 11) else "train"
    return out


def label_matrix(labels: Sequence[frozenset[str]]) -> npt.NDArray[np.int8]:
    """(n, n_cat) 0/1 matrix in :data:`HEAD_CATEGORIES` order."""
    return np.array(
        [[int(bool(KIT_LABELS[c] & ls)) for c in HEAD_CATEGORIES] for ls in labels], dtype=np.int8
    ).reshape(len(labels), len(HEAD_CATEGORIES))


def is_implicit(row: Row) -> bool:
    """Adversarial Nibbler's implicit prompts: the label describes the generated image."""
    return row.source == "adversarial_nibbler" and row.quality == "noisy"


@dataclass(frozen=True)
class Corpus:
    """Rows, their windows and the windows' early and full embeddings.

    Row arrays have one entry per row; window arrays one per window (``win_row`` points to the
    row). ``train_win`` marks the windows training reads: every window of a benign row, the
    first window of any other (the label may belong to one sentence only).
    """

    rows: list[Row]
    y: npt.NDArray[np.int8]
    weight: npt.NDArray[np.float64]
    group: npt.NDArray[np.str_]
    benign: npt.NDArray[np.bool_]
    video: npt.NDArray[np.bool_]
    minor: npt.NDArray[np.bool_]
    win_row: npt.NDArray[np.int64]
    train_win: npt.NDArray[np.bool_]
    e4: npt.NDArray[np.float32]
    e12: npt.NDArray[np.float32]

    @property
    def kit_groups(self) -> list[str]:
        """The kit's sources (every group but the templated rows)."""
        return sorted({str(g) for g in self.group} - {TEMPLATED})


def row_weights(rows: Sequence[Row]) -> npt.NDArray[np.float64]:
    """Training weight per row: label quality, source size, benign video-style emphasis."""
    size = Counter(r.source for r in rows)
    out = np.empty(len(rows))
    for i, r in enumerate(rows):
        if r.source == TEMPLATED:
            out[i] = TEMPLATED_WEIGHT
            continue
        w = min(1.0, SOURCE_CAP / size[r.source]) * (NOISY_WEIGHT if r.quality == "noisy" else 1.0)
        if r.source in VIDEO_SOURCES and not r.labels:
            w *= VIDEO_BENIGN_WEIGHT
        out[i] = 0.0 if is_implicit(r) else w
    return out


def embed_cached(
    windows: Sequence[str], cache: Path, log: Log
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Early and full e5 embeddings of ``windows`` (one by one, exactly as at run time), cached
    per window text in ``cache`` (one store per embedder and split)."""
    cache.mkdir(parents=True, exist_ok=True)
    store = cache / f"pairs-{_h(f'{E5_MODEL_ID}|{EARLY_LAYERS}')[:12]}.npz"
    known: dict[str, npt.NDArray[np.float16]] = {}
    if store.exists():
        with np.load(store) as npz:
            known = dict(zip(npz["keys"].tolist(), npz["vecs"], strict=True))
    keys = [_h(w) for w in windows]
    missing = sorted({k: w for k, w in zip(keys, windows, strict=True) if k not in known}.items())

    def save() -> None:
        ks = list(known)
        np.savez(store, keys=np.array(ks), vecs=np.stack([known[k] for k in ks]))

    if missing:
        log(f"embedding {len(missing)} windows not in {store} (one core, ~10 ms each)")
        emb = E5Embedder()
        t0 = time.time()
        for n, (key, text) in enumerate(missing, 1):
            early = emb.embed_early(text)
            known[key] = np.stack([early.vector, emb.embed_late(early)]).astype(np.float16)
            if n % 5000 == 0 or n == len(missing):
                log(f"  {n}/{len(missing)} embedded, {time.time() - t0:.0f}s")
                save()
    vecs = np.stack([known[k] for k in keys]).astype(np.float32)
    return vecs[:, 0], vecs[:, 1]


def build_corpus(rows: Sequence[Row], cache: Path, log: Log) -> Corpus:
    """Window, embed (cached) and weight ``rows``."""
    win_row: list[int] = []
    first: list[bool] = []
    texts: list[str] = []
    minor = np.zeros(len(rows), bool)
    for i, r in enumerate(rows):
        prompt = normalize(r.text)
        minor[i] = bool(find_minor_mentions(prompt))
        parts = prompt_windows(prompt) or [""]
        for k, part in enumerate(parts):
            texts.append(part)
            win_row.append(i)
            first.append(k == 0)
    e4, e12 = embed_cached(texts, cache, log)
    benign = np.array([not r.labels for r in rows])
    wr = np.array(win_row)
    return Corpus(
        rows=list(rows),
        y=label_matrix([r.labels for r in rows]),
        weight=row_weights(rows),
        group=np.array([r.source for r in rows]),
        benign=benign,
        video=benign & np.array([r.source in VIDEO_SOURCES for r in rows]),
        minor=minor,
        win_row=wr,
        train_win=np.array(first) | benign[wr],
        e4=e4,
        e12=e12,
    )


def load_corpus(data: Path, seed: int, cache: Path, log: Log) -> Corpus:
    """The kit rows of ``data`` plus the templated rows, windowed and embedded."""
    rows = [*load_rows(data), *templated_rows(seed)]
    log(f"{len(rows)} rows ({sum(r.source == TEMPLATED for r in rows)} templated)")
    t0 = time.time()
    corpus = build_corpus(rows, cache, log)
    log(f"{len(corpus.win_row)} windows embedded in {time.time() - t0:.0f}s")
    return corpus
