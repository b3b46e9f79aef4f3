"""Training of the learned heads on a small synthetic corpus: the closed-form ridge heads equal a
direct solve, heads for a subset of sources never see the others, the out-of-source calibration
keeps its invariants, and its report counts what the run-time scoring does."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers.text.learned import HEAD_CATEGORIES, HeadWeights
from classifiers.text.train import build_model
from classifiers.text.train_calibrate import ANCHORS, BASE_SCORE, score_windows
from classifiers.text.train_corpus import TEMPLATED, Corpus, Row, label_matrix, row_weights
from classifiers.text.train_ridge import RidgeStats, out_of_source_logits, ridge_stats

DIM = 8
SOURCES = ["alpha", "beta", "gamma", "coco_captions_esd", "didemo"]


def _corpus(seed: int = 0, n: int = 400) -> Corpus:
    """Rows per source: benign ones around the origin, "sexual" and "hate" ones shifted along
    their own direction; the two video sources are benign only."""
    rng = np.random.default_rng(seed)
    rows: list[Row] = []
    vecs: list[np.ndarray] = []
    for s in [*SOURCES, TEMPLATED]:
        for i in range(n):
            label: frozenset[str] = frozenset()
            v = rng.normal(0, 1, DIM)
            if s not in ("coco_captions_esd", "didemo") and i % 4 == 0:
                label = frozenset({"sexual"}) if i % 8 == 0 else frozenset({"hate"})
                v[0 if "sexual" in label else 1] += 12.0
            rows.append(Row(f"{s}:{i}", s, f"text {s} {i}", label, "en", "human"))
            vecs.append(v / np.linalg.norm(v))
    e = np.array(vecs, dtype=np.float32)
    benign = np.array([not r.labels for r in rows])
    video = benign & np.array([r.source in ("coco_captions_esd", "didemo") for r in rows])
    return Corpus(
        rows=rows,
        y=label_matrix([r.labels for r in rows]),
        weight=row_weights(rows),
        group=np.array([r.source for r in rows]),
        benign=benign,
        video=video,
        minor=np.zeros(len(rows), bool),
        win_row=np.arange(len(rows)),
        train_win=np.ones(len(rows), bool),
        e4=e + rng.normal(0, 0.05, e.shape).astype(np.float32),
        e12=e,
    )


def test_ridge_heads_equal_a_direct_weighted_solve() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, DIM)).astype(np.float32)
    y = (rng.random((300, 2)) < 0.2).astype(np.int8)
    w = rng.random(300) + 0.5
    groups = np.array(["a", "b", "c"] * 100)
    stats = RidgeStats(x, y, w, groups, lam=0.7)
    got = stats.fit(["a", "c"])
    keep = groups != "b"
    xa = np.hstack([x[keep], np.ones((keep.sum(), 1))]).astype(np.float64)
    for j in range(2):
        yj, wj = y[keep, j], w[keep]
        r = max(1.0, 0.5 * wj[yj == 0].sum() / wj[yj == 1].sum())
        wj = np.where(yj == 1, wj * r, wj)
        reg = 0.7 * np.eye(DIM + 1)
        reg[-1, -1] = 1e-6
        direct = np.linalg.solve((xa * wj[:, None]).T @ xa + reg, xa.T @ (wj * (2.0 * yj - 1)))
        assert got[:, j] == pytest.approx(direct, rel=1e-4, abs=1e-5)


def test_out_of_source_logits_come_from_heads_that_never_saw_the_source() -> None:
    corpus = _corpus()
    stats = ridge_stats(corpus)
    z4, z12 = out_of_source_logits(corpus, stats, corpus.kit_groups)
    # Poison one source's labels: its own out-of-source logits must not change.
    flipped = _corpus()
    flipped.y[flipped.group == "alpha"] ^= 1
    z4b, z12b = out_of_source_logits(flipped, ridge_stats(flipped), flipped.kit_groups)
    alpha = corpus.group[corpus.win_row] == "alpha"
    assert np.allclose(z12[alpha], z12b[alpha]) and np.allclose(z4[alpha], z4b[alpha])
    assert not np.allclose(z12[~alpha & ~np.isnan(z12[:, 0])], z12b[~alpha & ~np.isnan(z12[:, 0])])
    # The templated rows are always training data, never scored for calibration.
    templated = corpus.group[corpus.win_row] == TEMPLATED
    assert np.isnan(z12[templated]).all()


def test_calibration_invariants_and_report() -> None:
    corpus = _corpus()
    heads, cal = build_model(corpus, corpus.kit_groups)
    assert isinstance(heads, HeadWeights)
    assert np.all(np.diff(heads.knots_ref, axis=1) > 0)
    anchors = np.array([BASE_SCORE, *ANCHORS])
    assert heads.to_policy(heads.knots_ref.T.copy()) == pytest.approx(
        np.tile(anchors[:, None], (1, len(HEAD_CATEGORIES))), abs=1e-6
    )
    assert np.all(heads.escalate_at < ANCHORS[1])
    assert heads.escalate_minor_at[0] < ANCHORS[0]
    # Separable toy data: the out-of-source report finds most positives at modest video FP.
    assert cal.report["sexual"]["oos_recall_review"] > 0.8
    assert cal.report["hate"]["oos_recall_review"] > 0.8
    assert cal.report["sexual"]["oos_video_fp_review"] <= 0.02
    # The report counts exactly what score_windows (the run-time maths) gives.
    z4, z12 = out_of_source_logits(corpus, ridge_stats(corpus), corpus.kit_groups)
    scored = ~np.isnan(z4[:, 0])
    scores, _ = score_windows(
        heads,
        np.where(scored[:, None], z4, -1e9),
        np.where(scored[:, None], z12, -1e9),
        corpus.win_row,
        corpus.minor,
        len(corpus.rows),
    )
    pos = scored & (corpus.y[:, 0] == 1)
    assert (scores[pos, 0] >= ANCHORS[1]).mean() == pytest.approx(
        cal.report["sexual"]["oos_recall_review"], abs=1e-3
    )


def test_a_held_out_source_changes_nothing_it_should_not() -> None:
    corpus = _corpus()
    stats = ridge_stats(corpus)
    groups = [g for g in corpus.kit_groups if g != "gamma"]
    a, _ = build_model(corpus, groups, stats)
    changed = _corpus()
    changed.e12[changed.group == "gamma"] *= -1  # nothing of gamma may reach the fold's heads
    changed.e4[changed.group == "gamma"] *= -1
    b, _ = build_model(changed, groups, ridge_stats(changed))
    for field in HeadWeights.FIELDS:
        assert np.allclose(getattr(a, field), getattr(b, field)), field
