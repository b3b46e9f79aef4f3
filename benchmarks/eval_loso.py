"""Leave-one-source-out evaluation of the whole text stage (the figure the model card leads with).

    OMP_NUM_THREADS=1 python benchmarks/eval_loso.py --data ../shared/datasets/train.jsonl

For every source of the training kit: train and calibrate the learned heads on the *other*
sources (``classifiers.text.train.build_model``, whose calibration is itself out of source, so
the fold is nested), then run that source's rows through the **whole prompt stage of the default
policy**: every classifier it names (lexicon, celebrity, ip, learned with the fold's heads), the
sexual/minors rule and the policy decision, through ``gateway.pipeline.TextModerator``, exactly as
the gateway does. A prompt counts as *flagged* when the decision is review or block (both
withhold a video).

Prints, per source: the flagged rate of its benign rows and, per label, the share of its unsafe
rows flagged in that category (recall); the worst benign video-style source and the worst
recall; pooled figures; then, scored by heads trained on every source (the shipped model, or
``--models`` if given), the hand-written sets in ``benchmarks/data/*_eval.jsonl`` (contrastive
safe prompts, family prompts, sexual/minors golden cases, graphic violence, sexual content) and
obfuscated copies of unsafe rows; and, as a *secondary* line, the old same-source dev split.

Embeddings come from the training cache (``--cache``; the first run embeds ~130k windows, about
25 minutes on one core); the classifier itself runs unchanged on top of a lookup embedder.
Writes every figure as JSON with ``--json-out``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click
import numpy as np
import numpy.typing as npt

from classifiers.registry import TEXT_CLASSIFIERS
from classifiers.text.augment import obfuscate
from classifiers.text.e5_onnx import EarlyPass
from classifiers.text.embed import E5Embedder
from classifiers.text.learned import LearnedTextClassifier
from classifiers.text.train import build_model
from classifiers.text.train_corpus import (
    TEMPLATED,
    VIDEO_SOURCES,
    Corpus,
    is_implicit,
    load_corpus,
    split_of,
)
from classifiers.text.train_ridge import ridge_stats
from gateway.pipeline import ModerationOutcome, TextModerator
from policies.loader import DEFAULT_POLICY_PATH
from policies.store import PolicyStore

DATA_DIR = Path(__file__).resolve().parent / "data"
LABEL_CATEGORIES: dict[str, tuple[str, ...]] = {
    "sexual": ("sexual", "sexual/minors"),
    "violence": ("violence/graphic", "violence"),
    "hate": ("hate",),
    "harassment": ("harassment", "hate"),
    "self_harm": ("self-harm",),
    "celebrity": ("celebrity",),
    "ip": ("ip",),
}
"""Kit label -> the decision categories that count as catching it (a graphic-violence row is
caught by ``violence/graphic``; ``violence`` only acts when a policy blocks depicted violence)."""
MIN_POSITIVES = 20


class LookupEmbedder:
    """An :class:`E5Embedder` stand-in that serves the training cache's vectors for known windows
    (the corpus embedded them with the real embedder) and embeds anything else for real."""

    CACHED = -1
    """Weight marking an :class:`EarlyPass` whose "state" is the cached full embedding."""

    def __init__(self, corpus: Corpus, texts: Sequence[str]) -> None:
        self.dim = corpus.e4.shape[1]
        self._known: dict[str, int] = {t: i for i, t in enumerate(texts)}
        self._e4, self._e12 = corpus.e4, corpus.e12
        # Built now: building it inside a check would run past the classifier's time budget.
        self._real = E5Embedder()

    def embed_early(self, text: str) -> EarlyPass:
        i = self._known.get(text)
        if i is None:
            return self._real.embed_early(text)
        return EarlyPass(self._e4[i], ((self._e12[i], self.CACHED),))

    def embed_late(self, early: EarlyPass) -> npt.NDArray[np.float32]:
        if early.states and early.states[0][1] == self.CACHED:
            return early.states[0][0]
        return self._real.embed_late(early)


@dataclass
class Tally:
    """Counts for one group of rows."""

    n: int = 0
    flagged: int = 0
    by_classifier: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    positives: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    caught: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def rate(self) -> float:
        return self.flagged / self.n if self.n else float("nan")

    def recall(self, label: str) -> float:
        p = self.positives.get(label, 0)
        return self.caught.get(label, 0) / p if p else float("nan")


def flagged_categories(outcome: ModerationOutcome) -> set[str]:
    return {r.category for r in outcome.decision.reasons if r.action.severity > 0}


def tally_rows(tally: Tally, labels: Sequence[frozenset[str]], outcomes: list[ModerationOutcome]):
    for labs, out in zip(labels, outcomes, strict=True):
        cats = flagged_categories(out)
        if not labs:
            tally.n += 1
            if cats:
                tally.flagged += 1
                for r in out.decision.reasons:
                    if r.action.severity > 0:
                        tally.by_classifier[r.classifier] += 1
                        break
        for lab in labs:
            if lab not in LABEL_CATEGORIES:
                continue
            tally.positives[lab] += 1
            if cats & set(LABEL_CATEGORIES[lab]):
                tally.caught[lab] += 1


def dump_row(row: Any, outcome: ModerationOutcome) -> dict[str, Any]:
    """One held-out row's outcome, for ``--dump``."""
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    for v in outcome.verdicts:
        prev = scores[v.classifier].get(v.category, 0.0)
        scores[v.classifier][v.category] = round(max(prev, v.score), 4)
    return {
        "id": row.id,
        "source": row.source,
        "labels": sorted(row.labels),
        "text": row.text,
        "action": outcome.decision.action.value,
        "flagged": sorted(flagged_categories(outcome)),
        "reasons": [
            [r.category, r.classifier, r.action.value, round(r.score, 4)]
            for r in outcome.decision.reasons
            if r.action.severity > 0
        ],
        "scores": scores,
    }


def moderator(clf: LearnedTextClassifier) -> TextModerator:
    factories = dict(TEXT_CLASSIFIERS)
    factories["learned"] = lambda: clf
    return TextModerator(PolicyStore(DEFAULT_POLICY_PATH), classifiers=factories)


def check(mod: TextModerator, texts: list[str]) -> list[ModerationOutcome]:
    out: list[ModerationOutcome] = []
    for start in range(0, len(texts), 32):
        out += mod.check_many(texts[start : start + 32], "default")
    return out


def window_texts(corpus: Corpus) -> list[str]:
    """The window text of every corpus window (the corpus keeps only their vectors)."""
    from classifiers.text.learned import prompt_windows
    from classifiers.text.normalize import normalize

    texts: list[str] = []
    for r in corpus.rows:
        texts += prompt_windows(normalize(r.text)) or [""]
    return texts


def fmt(x: float) -> str:
    return "   -  " if x != x else f"{100 * x:5.1f}%"


def print_source(name: str, t: Tally) -> None:
    parts = [f"{name:26s} n={t.n + sum(t.positives.values()):6d}"]
    if t.n:
        parts.append(f"benign flagged {fmt(t.rate())} (of {t.n})")
    for lab in LABEL_CATEGORIES:
        if t.positives.get(lab, 0) >= MIN_POSITIVES:
            parts.append(f"{lab} {fmt(t.recall(lab))} ({t.positives[lab]})")
    click.echo("  ".join(parts))


def eval_sets(clf: LearnedTextClassifier) -> dict[str, dict[str, Any]]:
    """The hand-written sets, through the whole stage with ``clf``."""
    mod = moderator(clf)
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(DATA_DIR.glob("*_eval.jsonl")):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        outcomes = check(mod, [r["text"] for r in rows])
        flagged = [o for o in outcomes if flagged_categories(o)]
        blocked = [o for o in outcomes if o.decision.action.value == "block"]
        misses = [
            (r["text"], sorted(flagged_categories(o)))
            for r, o in zip(rows, outcomes, strict=True)
            if bool(flagged_categories(o)) != bool(r.get("labels"))
        ]
        out[path.stem] = {
            "n": len(rows),
            "flagged": len(flagged) / len(rows),
            "blocked": len(blocked) / len(rows),
            "wrong": misses,
        }
    return out


@click.command()
@click.option("--data", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/tmp/reelguard-e5"),
    show_default=True,
)
@click.option("--sources", default="", help="Comma-separated sources to hold out (default: all).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-secondary", is_flag=True, help="Skip the same-source dev split line.")
@click.option(
    "--detoxify-sample",
    type=int,
    default=200,
    show_default=True,
    help="Rows per source for the Detoxify line (only when its weights are configured;"
    " 0 skips it).",
)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--dump",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every held-out row's outcome (decision, flagged categories, each classifier's"
    " scores) as JSON lines, to read the misses and false positives.",
)
def main(
    data: Path,
    cache: Path,
    sources: str,
    seed: int,
    no_secondary: bool,
    detoxify_sample: int,
    json_out: Path | None,
    dump: Path | None,
) -> None:
    """Leave-one-source-out figures of the whole text stage (module docstring)."""
    t_start = time.time()
    corpus = load_corpus(data, seed, cache, log)
    embedder = LookupEmbedder(corpus, window_texts(corpus))
    stats = ridge_stats(corpus)
    groups = corpus.kit_groups
    held = [s for s in sources.split(",") if s] or groups
    results: dict[str, Any] = {}
    with dump.open("w", encoding="utf-8") if dump else contextlib.nullcontext() as dump_file:
        tallies, implicit = loso_section(corpus, embedder, stats, held, results, dump_file)
    summary_section(tallies, implicit, results)
    log("training the heads on every source for the hand-written sets")
    heads, cal = build_model(corpus, groups, stats)
    full_clf = LearnedTextClassifier(embedder=embedder, weights=heads, version="all-sources")
    sets_section(full_clf, results)
    obfuscation_section(corpus, full_clf, seed, results)
    if not no_secondary:
        secondary_section(corpus, embedder, results)
    if detoxify_sample:
        detoxify_line(corpus, groups, detoxify_sample, seed, results)
    results["escalated"] = cal.report.get("_escalated")
    click.echo(f"(took {time.time() - t_start:.0f}s)")
    if json_out:
        json_out.write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")


def log(msg: str) -> None:
    click.echo(f"[eval-loso] {msg}", err=True)


def loso_section(
    corpus: Corpus,
    embedder: LookupEmbedder,
    stats: Any,
    held: list[str],
    results: dict[str, Any],
    dump: TextIO | None = None,
) -> tuple[dict[str, Tally], Tally]:
    """Per held-out source: heads without it, its rows through the whole stage."""
    groups = corpus.kit_groups
    tallies: dict[str, Tally] = {}
    implicit = Tally()
    results["sources"] = {}
    click.echo(
        "Leave-one-source-out, whole prompt stage, default policy (flagged = review or block)"
    )
    for source in held:
        t0 = time.time()
        heads, _cal = build_model(corpus, [g for g in groups if g != source], stats)
        clf = LearnedTextClassifier(embedder=embedder, weights=heads, version=f"loso-{source}")
        idx = [i for i, r in enumerate(corpus.rows) if r.source == source]
        outcomes = check(moderator(clf), [corpus.rows[i].text for i in idx])
        t = Tally()
        for i, o in zip(idx, outcomes, strict=True):
            tally_rows(implicit if is_implicit(corpus.rows[i]) else t, [corpus.rows[i].labels], [o])
            if dump:
                dump.write(json.dumps(dump_row(corpus.rows[i], o), ensure_ascii=False) + "\n")
        tallies[source] = t
        print_source(source, t)
        log(f"{source}: {len(idx)} rows in {time.time() - t0:.0f}s")
        results["sources"][source] = {
            "benign": t.n,
            "flagged": t.rate(),
            "by_classifier": dict(t.by_classifier),
            "recall": {lab: t.recall(lab) for lab in t.positives},
            "positives": dict(t.positives),
        }
    return tallies, implicit


def summary_section(tallies: dict[str, Tally], implicit: Tally, results: dict[str, Any]) -> None:
    """Worst sources and pooled figures."""
    video = {s: t for s, t in tallies.items() if s in VIDEO_SOURCES and t.n >= 100}
    pv_n = sum(t.n for t in video.values())
    pv_f = sum(t.flagged for t in video.values())
    by_clf: dict[str, int] = defaultdict(int)
    for t in video.values():
        for k, v in t.by_classifier.items():
            by_clf[k] += v
    click.echo("")
    if video:
        worst = sorted(video.items(), key=lambda kv: -kv[1].rate())
        click.echo(
            "Ordinary video prompts and captions, flagged (worst source first): "
            + ", ".join(f"{s} {fmt(t.rate())}" for s, t in worst[:5])
        )
        click.echo(
            f"  pooled {fmt(pv_f / max(pv_n, 1))} of {pv_n}; first reason by classifier: "
            + ", ".join(f"{k} {fmt(v / max(pv_n, 1))}" for k, v in sorted(by_clf.items()))
        )
        results["video_pooled"] = pv_f / max(pv_n, 1)
        results["video_worst"] = [worst[0][0], worst[0][1].rate()]
    other = {s: t for s, t in tallies.items() if s not in VIDEO_SOURCES and t.n >= 100}
    if other:
        click.echo(
            "Other benign rows (tweets, posts, over-refusal questions), flagged: "
            + ", ".join(
                f"{s} {fmt(t.rate())}"
                for s, t in sorted(other.items(), key=lambda kv: -kv[1].rate())
            )
        )
    click.echo("Recall by label, pooled over the sources holding it (worst source):")
    results["recall"] = {}
    for lab in LABEL_CATEGORIES:
        having = {s: t for s, t in tallies.items() if t.positives.get(lab, 0) >= MIN_POSITIVES}
        if not having:
            continue
        p = sum(t.positives[lab] for t in having.values())
        c = sum(t.caught.get(lab, 0) for t in having.values())
        worst_s, worst_t = min(having.items(), key=lambda kv: kv[1].recall(lab))
        click.echo(f"  {lab:10s} {fmt(c / p)} of {p}   worst {worst_s} {fmt(worst_t.recall(lab))}")
        results["recall"][lab] = {"pooled": c / p, "n": p, "worst": [worst_s, worst_t.recall(lab)]}
    if implicit.positives:
        click.echo(
            "  Adversarial Nibbler implicit prompts (label describes the image; left out of "
            "training): "
            + ", ".join(
                f"{lab} {fmt(implicit.recall(lab))} ({implicit.positives[lab]})"
                for lab in implicit.positives
            )
        )
        results["nibbler_implicit"] = {lab: implicit.recall(lab) for lab in implicit.positives}


def sets_section(clf: LearnedTextClassifier, results: dict[str, Any]) -> None:
    """The hand-written sets with the heads trained on every source."""
    click.echo("")
    click.echo("Hand-written sets (benchmarks/data), heads trained on every kit source:")
    sets = eval_sets(clf)
    for name, figures in sets.items():
        click.echo(
            f"  {name:26s} n={figures['n']:4d} flagged {fmt(figures['flagged'])} "
            f"blocked {fmt(figures['blocked'])}"
        )
        for text, cats in figures["wrong"][:12]:
            click.echo(f"      wrong: {text[:90]!r} {cats}")
    results["sets"] = sets


def obfuscation_section(
    corpus: Corpus, clf: LearnedTextClassifier, seed: int, results: dict[str, Any]
) -> None:
    """Unsafe kit rows, clean and obfuscated (leetspeak, look-alikes, zero-width, spacing)."""
    rng = random.Random(seed)
    unsafe = [
        r
        for r in corpus.rows
        if r.source != TEMPLATED
        and r.labels & {"sexual", "violence", "hate", "self_harm"}
        and not is_implicit(r)
    ]
    sample = rng.sample(unsafe, min(400, len(unsafe)))
    mod = moderator(clf)
    clean = check(mod, [r.text for r in sample])
    obf = check(mod, [obfuscate(r.text, rng) for r in sample])
    rc = float(np.mean([bool(flagged_categories(o)) for o in clean]))
    ro = float(np.mean([bool(flagged_categories(o)) for o in obf]))
    click.echo(
        f"Obfuscated copies of {len(sample)} unsafe kit rows (in-source heads): flagged "
        f"{fmt(rc)} clean -> {fmt(ro)} obfuscated"
    )
    results["obfuscation"] = {"clean": rc, "obfuscated": ro}


def secondary_section(corpus: Corpus, embedder: LookupEmbedder, results: dict[str, Any]) -> None:
    """The old same-source dev split (15 % of each source held back): not evidence of
    generalisation, kept for comparison with earlier model cards."""
    split = split_of([r for r in corpus.rows if r.source != TEMPLATED])
    keep = np.array([split.get(r.id, "train") != "dev" for r in corpus.rows])
    sub = subset(corpus, keep)
    heads_dev, _ = build_model(sub, sub.kit_groups, ridge_stats(sub))
    clf_dev = LearnedTextClassifier(embedder=embedder, weights=heads_dev, version="dev")
    dev_idx = [
        i for i, r in enumerate(corpus.rows) if split.get(r.id) == "dev" and not is_implicit(r)
    ]
    outcomes = check(moderator(clf_dev), [corpus.rows[i].text for i in dev_idx])
    t = Tally()
    vt = Tally()
    tally_rows(t, [corpus.rows[i].labels for i in dev_idx], outcomes)
    vid = [
        (i, o)
        for i, o in zip(dev_idx, outcomes, strict=True)
        if corpus.rows[i].source in VIDEO_SOURCES
    ]
    tally_rows(vt, [corpus.rows[i].labels for i, _ in vid], [o for _, o in vid])
    click.echo(
        "Secondary (same-source dev split, not evidence of generalisation): video "
        f"prompts flagged {fmt(vt.rate())}; recall "
        + ", ".join(f"{lab} {fmt(t.recall(lab))}" for lab in t.positives)
    )
    results["same_source_dev"] = {
        "video_flagged": vt.rate(),
        "recall": {lab: t.recall(lab) for lab in t.positives},
    }


def detoxify_line(
    corpus: Corpus, groups: list[str], per_source: int, seed: int, results: dict[str, Any]
) -> None:
    """The whole stage with Detoxify in place of the learned heads, on a sample of every source
    (Detoxify is trained elsewhere, so every kit source is out of source for it). Skipped, with
    a note, when its weights are not configured (README, "Detoxify")."""
    from classifiers.text.detoxify import detoxify_available, load_detoxify

    if not detoxify_available():
        click.echo("Detoxify: weights not configured (REELGUARD_DETOXIFY_CHECKPOINT); skipped")
        return
    factories = dict(TEXT_CLASSIFIERS)
    factories["learned"] = load_detoxify
    mod = TextModerator(
        PolicyStore(DEFAULT_POLICY_PATH), classifiers=factories, time_budget_ms=60_000
    )
    rng = random.Random(seed)
    video, total = Tally(), Tally()
    for g in groups:
        rows = [r for r in corpus.rows if r.source == g and not is_implicit(r)]
        rows = rng.sample(rows, min(per_source, len(rows)))
        outcomes = check(mod, [r.text for r in rows])
        tally_rows(total, [r.labels for r in rows], outcomes)
        if g in VIDEO_SOURCES:
            tally_rows(video, [r.labels for r in rows], outcomes)
    click.echo(
        f"Detoxify in place of the learned heads ({per_source} rows a source): video "
        f"prompts flagged {fmt(video.rate())}; recall "
        + ", ".join(f"{lab} {fmt(total.recall(lab))}" for lab in total.positives)
    )
    results["detoxify"] = {
        "video_flagged": video.rate(),
        "recall": {lab: total.recall(lab) for lab in total.positives},
    }


def subset(corpus: Corpus, keep: npt.NDArray[np.bool_]) -> Corpus:
    """The corpus restricted to the rows in ``keep`` (windows follow their rows)."""
    new_index = np.cumsum(keep) - 1
    win_keep = keep[corpus.win_row]
    return Corpus(
        rows=[r for r, k in zip(corpus.rows, keep, strict=True) if k],
        y=corpus.y[keep],
        weight=corpus.weight[keep],
        group=corpus.group[keep],
        benign=corpus.benign[keep],
        video=corpus.video[keep],
        minor=corpus.minor[keep],
        win_row=new_index[corpus.win_row[win_keep]],
        train_win=corpus.train_win[win_keep],
        e4=corpus.e4[win_keep],
        e12=corpus.e12[win_keep],
    )


if __name__ == "__main__":
    main()
