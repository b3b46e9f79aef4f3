"""Dev-split metrics of the learned text heads, through the same path the gateway runs.

    OMP_NUM_THREADS=1 python benchmarks/eval_text.py --data ../shared/datasets/train.jsonl

Prints, per category: AUPRC, recall at the review (0.35) and block (0.5) thresholds, and the
false-positive rate on benign video-style prompts (captions and T2V benchmark prompts); per
language the same; and recall on an obfuscated copy of the dev positives (leetspeak, look-alike
letters, zero-width splits, spaced letters) next to the clean recall. The dev split is the one
``classifiers.text.train`` holds back (15 % of each source/language/label stratum); it never
includes the templated training rows. Writes the numbers as JSON with ``--json-out``.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click
import numpy as np
import numpy.typing as npt

from classifiers.text.augment import obfuscate
from classifiers.text.learned import HEAD_CATEGORIES, LearnedTextClassifier
from classifiers.text.normalize import normalize
from classifiers.text.train import KIT_LABEL, Row, label_matrix, load_rows, split_of

REVIEW_AT = 0.35
BLOCK_AT = 0.5
MINORS_REVIEW_AT = 0.2
VIDEO_SOURCES = frozenset(
    {"coco_captions_esd", "didemo", "parti", "t2i_compbench", "vbench_aug", "opensora", "six_cd"}
)


def auprc(y: npt.NDArray[np.int8], p: npt.NDArray[np.float64]) -> float:
    """Average precision (the step-wise area under the precision-recall curve)."""
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-p, kind="stable")
    ys = y[order]
    tp = np.cumsum(ys)
    precision = tp / np.arange(1, len(ys) + 1)
    return float((precision * ys).sum() / ys.sum())


def _score_all(
    clf: LearnedTextClassifier, texts: list[str], label: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    scores = np.zeros((len(texts), len(HEAD_CATEGORIES)))
    escalated = np.zeros(len(texts), bool)
    t0 = time.time()
    for i, t in enumerate(texts):
        s = clf.score(normalize(t))
        scores[i] = [s.scores[c] for c in HEAD_CATEGORIES]
        escalated[i] = s.escalated
        if (i + 1) % 2000 == 0:
            click.echo(f"  {label}: {i + 1}/{len(texts)} scored, {time.time() - t0:.0f}s", err=True)
    return scores, escalated


def _gazetteer_metrics(dev: list[Row], video: npt.NDArray[np.bool_]) -> dict[str, float]:
    """Helper B's celebrity/IP matchers on the same dev split (recall on the templated rows,
    false positives on benign video-style prompts)."""
    from classifiers.text.gazetteer import GazetteerClassifier

    gaz = GazetteerClassifier()
    best = np.zeros((len(dev), 2))
    for i, r in enumerate(dev):
        for v in gaz.classify(normalize(r.text)):
            col = {"celebrity": 0, "ip": 1}.get(v.category)
            if col is not None:
                best[i, col] = max(best[i, col], v.score)
    out: dict[str, float] = {}
    click.echo("\ngazetteer matchers (helper B) on the dev split, at 0.35 / 0.5:")
    for col, (cat, label) in enumerate((("celebrity", "celebrity"), ("ip", "ip"))):
        pos = np.array([label in r.labels for r in dev])
        for lang in ("en", "zh"):
            sel = pos & np.array([r.lang == lang for r in dev])
            if sel.sum() < 5:
                continue
            r35 = float((best[sel, col] >= REVIEW_AT).mean())
            r50 = float((best[sel, col] >= BLOCK_AT).mean())
            out[f"{cat}_{lang}_recall_review"] = r35
            out[f"{cat}_{lang}_recall_block"] = r50
            click.echo(
                f"  {cat:<9} {lang}: recall {100 * r35:5.1f} / {100 * r50:5.1f} "
                f"(n={int(sel.sum())})"
            )
        fp = float((best[video, col] >= REVIEW_AT).mean())
        out[f"{cat}_fp_video_review"] = fp
        click.echo(f"  {cat:<9} FP on benign video-style prompts at 0.35: {100 * fp:.2f} %")
    return out


def _pct(x: float) -> str:
    return "  n/a" if np.isnan(x) else f"{100 * x:5.1f}"


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=Path(__file__).resolve().parents[2] / "shared" / "datasets" / "train.jsonl",
    show_default=True,
)
@click.option(
    "--other-fraction",
    type=click.FloatRange(0.0, 1.0),
    default=1.0,
    show_default=True,
    help="Keep every sexual/violence/self-harm row and every benign video-style prompt, and this "
    "seeded share of the other dev rows (tweets escalate to the embedder, ~25-100 ms each).",
)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option(
    "--scores-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Save per-row dev scores (.npz: ids, scores, labels) for later analysis.",
)
def main(data: Path, other_fraction: float, json_out: Path | None, scores_out: Path | None) -> None:
    """Print dev-split metrics of the shipped learned heads."""
    rows = load_rows(data)
    split = split_of(rows)
    dev = [r for r in rows if split[r.id] == "dev"]
    if other_fraction < 1.0:
        rng0 = random.Random(0)
        keep = {"sexual", "violence", "self_harm"}
        dev = [
            r
            for r in dev
            if r.labels & keep
            or (r.source in VIDEO_SOURCES and not r.labels)
            or rng0.random() < other_fraction
        ]
        click.echo(f"sampled dev split: other rows kept with probability {other_fraction}")
    clf = LearnedTextClassifier()
    y = label_matrix([r.labels for r in dev])
    p, esc = _score_all(clf, [r.text for r in dev], "dev")
    if scores_out:
        np.savez(scores_out, ids=np.array([r.id for r in dev]), scores=p, labels=y, escalated=esc)
    video = np.array([r.source in VIDEO_SOURCES and not r.labels for r in dev])
    benign = np.array([not r.labels for r in dev])
    langs = np.array([r.lang for r in dev])
    results: dict[str, object] = {
        "dev_rows": len(dev),
        "video_benign_rows": int(video.sum()),
        "other_fraction": other_fraction,
    }

    click.echo(f"\ndev split: {len(dev)} rows, {int(video.sum())} benign video-style prompts")
    click.echo(
        f"escalated to the embedding heads: {100 * esc.mean():.1f} % of all dev rows, "
        f"{100 * esc[video].mean():.1f} % of benign video-style prompts"
    )
    head = (
        f"{'category':<11} {'n+':>5} {'AUPRC':>6} {'R@.35':>6} {'R@.5':>6} "
        f"{'FPvid@.35':>9} {'FPvid@.5':>8} {'FPbenign@.35':>12}"
    )
    click.echo(head)
    per_cat: dict[str, dict[str, float]] = {}
    for j, cat in enumerate(HEAD_CATEGORIES):
        pos = y[:, j] == 1
        m = {
            "positives": int(pos.sum()),
            "auprc": auprc(y[:, j], p[:, j]),
            "recall_review": float((p[pos, j] >= REVIEW_AT).mean()) if pos.any() else float("nan"),
            "recall_block": float((p[pos, j] >= BLOCK_AT).mean()) if pos.any() else float("nan"),
            "fp_video_review": float((p[video, j] >= REVIEW_AT).mean()),
            "fp_video_block": float((p[video, j] >= BLOCK_AT).mean()),
            "fp_benign_review": float((p[benign, j] >= REVIEW_AT).mean()),
        }
        per_cat[cat] = m
        click.echo(
            f"{cat:<11} {m['positives']:>5} {m['auprc']:6.3f} {_pct(m['recall_review']):>6} "
            f"{_pct(m['recall_block']):>6} {_pct(m['fp_video_review']):>9} "
            f"{_pct(m['fp_video_block']):>8} {_pct(m['fp_benign_review']):>12}"
        )
    any_flag: npt.NDArray[np.bool_] = np.asarray((p >= REVIEW_AT).any(axis=1))
    click.echo(
        f"any category >= {REVIEW_AT}: {100 * any_flag[video].mean():.2f} % of benign video-style "
        f"prompts, {100 * any_flag[benign].mean():.2f} % of all benign dev rows"
    )
    results["categories"] = per_cat
    results["fp_video_any_review"] = float(any_flag[video].mean())
    any_block: npt.NDArray[np.bool_] = np.asarray((p >= BLOCK_AT).any(axis=1))
    results["fp_video_any_block"] = float(any_block[video].mean())
    click.echo(
        f"any category >= {BLOCK_AT}: {100 * any_block[video].mean():.2f} % of benign video-style "
        f"prompts, {100 * any_block[benign].mean():.2f} % of all benign dev rows"
    )

    click.echo("\nbenign rows by source: any category flagged at 0.35 / 0.5, escalated share:")
    by_source: dict[str, dict[str, float]] = {}
    sources = np.array([r.source for r in dev])
    for src in sorted(set(sources[benign].tolist())):
        sel = benign & (sources == src)
        by_source[src] = {
            "rows": int(sel.sum()),
            "fp_any_review": float(any_flag[sel].mean()),
            "fp_any_block": float(any_block[sel].mean()),
            "escalated": float(esc[sel].mean()),
        }
        click.echo(
            f"  {src:<24} n={int(sel.sum()):>5}  {_pct(float(any_flag[sel].mean()))} % / "
            f"{_pct(float(any_block[sel].mean()))} %   escalated {_pct(float(esc[sel].mean()))} %"
        )
    results["benign_by_source"] = by_source

    # The sexual/minors rule: a minor mention plus sexual >= 0.2 (policies/default.yaml).
    from classifiers.text.lexicon import find_minor_mentions

    j_sex = HEAD_CATEGORIES.index("sexual")
    minor = np.array([bool(find_minor_mentions(normalize(r.text))) for r in dev])
    sel = video & minor
    rule = float((p[sel, j_sex] >= MINORS_REVIEW_AT).mean()) if sel.any() else float("nan")
    results["minors_rule_fp_video"] = {"rows_with_minor": int(sel.sum()), "fires": rule}
    click.echo(
        f"\nsexual/minors rule (sexual >= {MINORS_REVIEW_AT} and a minor mentioned) on benign "
        f"video-style prompts that mention a minor: fires on {_pct(rule).strip()} % "
        f"(n={int(sel.sum())}; {100 * float(sel.mean() / max(video.mean(), 1e-9)):.1f} % of them)"
    )

    click.echo("\nper language (recall at 0.35 / FP on that language's benign rows at 0.35):")
    per_lang: dict[str, dict[str, object]] = {}
    for lang in sorted(set(langs.tolist())):
        sel = langs == lang
        parts = []
        entry: dict[str, object] = {"rows": int(sel.sum())}
        for j, cat in enumerate(HEAD_CATEGORIES):
            pos = sel & (y[:, j] == 1)
            if pos.sum() >= 5:
                r = float((p[pos, j] >= REVIEW_AT).mean())
                entry[cat] = {"positives": int(pos.sum()), "recall_review": r}
                parts.append(f"{cat} {100 * r:.0f}% (n={int(pos.sum())})")
        ben = sel & benign
        fp = float(any_flag[ben].mean()) if ben.any() else float("nan")
        entry["fp_benign_any_review"] = fp
        per_lang[lang] = entry
        click.echo(
            f"  {lang}: {', '.join(parts) or '-'}; FP any {_pct(fp).strip()}% (n={int(ben.sum())})"
        )
    results["languages"] = per_lang

    # Obfuscated copy of every dev positive: recall there vs on the clean text.
    rng = random.Random(1)
    harmful = [i for i, r in enumerate(dev) if r.labels & set(KIT_LABEL.values())]
    obf_texts = [obfuscate(dev[i].text, rng) for i in harmful]
    po, _ = _score_all(clf, obf_texts, "obfuscated")
    click.echo("\nobfuscated copy of the dev positives (recall at 0.35, clean -> obfuscated):")
    obf: dict[str, dict[str, float]] = {}
    yh = y[harmful]
    for j, cat in enumerate(HEAD_CATEGORIES):
        pos = yh[:, j] == 1
        if not pos.any():
            continue
        clean = float((p[harmful][pos, j] >= REVIEW_AT).mean())
        dirty = float((po[pos, j] >= REVIEW_AT).mean())
        obf[cat] = {"clean": clean, "obfuscated": dirty}
        click.echo(
            f"  {cat:<11} {100 * clean:5.1f} -> {100 * dirty:5.1f}  "
            f"({100 * (dirty - clean):+.1f} points)"
        )
    results["obfuscated"] = obf
    results["gazetteer"] = _gazetteer_metrics(dev, video)
    if json_out:
        json_out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
