"""Ridge heads for the learned text classifier, from per-source sufficient statistics.

:class:`RidgeStats` keeps, per source group, the statistics of a weighted, class-balanced
ridge classifier per category, so heads for any subset of sources cost a few small solves;
:func:`ridge_stats` builds them for both embeddings of a corpus and
:func:`out_of_source_logits` scores every window of a source by heads that never saw it.
Step 3 of :mod:`classifiers.text.train`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from classifiers.text.learned import HEAD_CATEGORIES
from classifiers.text.train_corpus import TEMPLATED, Corpus

__all__ = ["RIDGE_LAMBDA", "HeadStats", "RidgeStats", "out_of_source_logits", "ridge_stats"]

RIDGE_LAMBDA = 1.0


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
class HeadStats:
    """The statistics of both embeddings: early layers and full model."""

    early: RidgeStats
    full: RidgeStats


def ridge_stats(corpus: Corpus) -> HeadStats:
    """Statistics of the training windows (per source group) for both embeddings."""
    t = corpus.train_win
    wr = corpus.win_row[t]
    # A benign row's windows share its weight, so a long prompt counts like a short one.
    n_win = np.bincount(corpus.win_row[t], minlength=len(corpus.rows))
    w = corpus.weight[wr] / np.maximum(n_win[wr], 1)
    y, g = corpus.y[wr], corpus.group[wr]
    return HeadStats(RidgeStats(corpus.e4[t], y, w, g), RidgeStats(corpus.e12[t], y, w, g))


def _apply(w: npt.NDArray[np.float32], x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    return np.asarray(x @ w[:-1] + w[-1], dtype=np.float64)


def out_of_source_logits(
    corpus: Corpus, stats: HeadStats, groups: Sequence[str]
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
