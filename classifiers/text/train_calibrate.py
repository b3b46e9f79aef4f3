"""Out-of-source calibration of the learned text heads (step 4 of :mod:`classifiers.text.train`).

:func:`calibrate` fits, on out-of-source logits, the early heads' Platt scaling, the stacker
of full and early logits, the operating points anchored to false-positive budgets
(:data:`BUDGETS`, at the policy scores :data:`ANCHORS`) and the escalation levels, and
reports what they do on the calibration rows; :func:`score_windows` is the run-time scoring
(:meth:`~classifiers.text.learned.LearnedTextClassifier.score`) vectorised over windows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from classifiers.text.learned import HEAD_CATEGORIES, HeadWeights, _logit
from classifiers.text.train_corpus import SOURCE_CAP, Corpus, is_implicit

__all__ = [
    "ANCHORS",
    "BASE_GAP",
    "BASE_SCORE",
    "BUDGETS",
    "ESCALATE_MARGIN",
    "ESCALATE_VIDEO",
    "MIN_CALIBRATION_POSITIVES",
    "MIN_GAP",
    "REFERENCE_PRIOR",
    "Budget",
    "Calibrated",
    "calibrate",
    "score_windows",
]

REFERENCE_PRIOR = 0.15
"""Calibration prior: reference logits are the posterior odds for a prompt stream in which 15 %
of prompts are in the category (one prior for every category keeps a threshold's meaning the
same everywhere; the kit's own base rates are artefacts of its make-up)."""
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
