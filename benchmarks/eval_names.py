"""Celebrity/IP name matching on prompts it was not built from: precision and recall.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/eval_names.py \\
        [--data ../shared/datasets/train.jsonl] [--half report|tune|all] [--show N]

A prompt counts as *flagged* when the default policy (``policies/default.yaml``, its
``names:`` settings included) sends it to review or blocks it for ``celebrity`` or ``ip``,
with only the two gazetteer classifiers running (the other categories are not this file's
concern). It prints:

1. **Ordinary prompts**: the flagged rate per benign source of ``train.jsonl`` (every source
   with benign rows, worst first) and pooled over the video/caption sources. The benign rows
   are split by sha1 of their text into a *tune* half (the only half the gazetteer build reads,
   :func:`classifiers.text.gazetteer_words.half_of`) and a *report* half; the figures are on
   the report half unless ``--half`` says otherwise, and ``--show`` (flagged examples, for
   finding failure classes) only shows tune-half rows.
2. **Held-out sets** (``benchmarks/data/names_*.jsonl``, written by hand before the matcher was
   tuned): recall of celebrity names in natural prompts, IP by name, IP with franchise context,
   brand/logo requests, IP by description, and the flagged rate of contrastive everyday
   phrases that contain name-like words.
3. **Kit dev split** (non-regression): recall on the held-out celebrity/IP rows of the
   training split (en/zh) and on an obfuscated copy of them (leetspeak, look-alikes, spacing).
4. Gazetteer load time and per-prompt latency (p50/p99, microseconds) over the benign rows.

Targets: ordinary prompts flagged <= 0.2 % on every benign video/caption source; celebrity
recall >= 95 %; IP by name or context >= 90 %; IP by description >= 50 %; contrastive phrases
flagged <= 1 %.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click

from classifiers.base import Category
from classifiers.text.augment import obfuscate
from classifiers.text.gazetteer import GazetteerClassifier, load_gazetteer
from classifiers.text.gazetteer_words import half_of
from classifiers.text.normalize import normalize
from policies.decision import Action
from policies.engine import decide
from policies.loader import DEFAULT_POLICY_PATH, load_policy
from policies.resolved import ResolvedPolicy

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "data"
NAME_CATEGORIES: tuple[Category, ...] = ("celebrity", "ip")
VIDEO_SOURCES = frozenset(
    {
        "coco_captions_esd", "didemo", "parti", "t2i_compbench", "vbench_aug", "opensora",
        "six_cd", "imagereward", "krea_open_prompts", "dsg1k", "cc3m_val", "chronomagic_bench",
        "fetv", "storybench", "video_model_examples",
    }
)  # fmt: skip
"""Benign sources that are video prompts, image prompts or captions (not chat or tweets)."""
HELD_OUT: tuple[tuple[str, str, str], ...] = (
    # (file stem, what it measures, target)
    ("celebrity", "celebrity names in natural video prompts", ">= 95 % flagged"),
    ("ip_name", "IP by name", ">= 90 % flagged"),
    ("ip_context", "IP: ambiguous name with franchise context", ">= 90 % flagged"),
    # Written after the 2026-12-06 curated additions and never tuned on (film, cartoon, game
    # and anime characters in everyday video prompts): the honest figure for those additions.
    ("ip_popular", "IP: popular characters in video prompts", ">= 90 % flagged"),
    ("brand", "brand and logo requests (policy names.brands)", "review by default"),
    ("ip_description", "IP by description, no name", ">= 50 % flagged"),
    ("contrast", "contrastive everyday phrases with name-like words", "<= 1 % flagged"),
)


class NameCheck:
    """The two gazetteer classifiers and the policy decision, as the gateway runs them."""

    def __init__(self, policy: ResolvedPolicy) -> None:
        self.policy = policy
        self.classifiers = [
            GazetteerClassifier(categories=("celebrity",), name="celebrity"),
            GazetteerClassifier(categories=("ip",), name="ip"),
        ]

    def flagged(self, text: str, *, brands: bool = True) -> set[str]:
        """The name categories the policy reviews or blocks ``text`` for (``brands=False``:
        as if brand mentions were allowed, ``names.brands: allow``)."""
        prompt = normalize(text)
        verdicts = [v for c in self.classifiers for v in c.classify(prompt)]
        if not brands:
            verdicts = [v for v in verdicts if v.mention != "brand"]
        decision = decide(self.policy, "prompt", verdicts, prompt=prompt)
        return {
            r.category
            for r in decision.reasons
            if r.category in NAME_CATEGORIES and r.action is not Action.ALLOW
        }

    def why(self, text: str) -> str:
        prompt = normalize(text)
        out = []
        for c in self.classifiers:
            for v in c.classify(prompt):
                out += [f"{v.category}:{e.text!r} {e.detail}" for e in v.evidence if v.score]
        return "; ".join(out)


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def benign_by_source(data: Path, half: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for row in _read_jsonl(data):
        text = str(row["text"])
        if row["labels"] or (half != "all" and half_of(text) != half):
            continue
        out[str(row["source"])].append(text)
    return out


def ordinary_prompts(check: NameCheck, data: Path, half: str, show: int) -> list[float]:
    """Section 1; returns per-prompt gazetteer latencies (us) for section 4."""
    sources = benign_by_source(data, half)
    click.echo(f"\n1. ordinary prompts flagged for celebrity/ip ({half} half of {data.name})")
    results = []
    latencies: list[float] = []
    examples: list[tuple[str, str]] = []
    pooled = [0, 0, 0]
    for source, texts in sources.items():
        n_flagged = n_names = 0
        for text in texts:
            t0 = time.perf_counter()
            got = check.flagged(text)
            latencies.append((time.perf_counter() - t0) * 1e6)
            if got:
                n_flagged += 1
                n_names += bool(check.flagged(text, brands=False))
                if half == "tune" and source in VIDEO_SOURCES and len(examples) < show:
                    examples.append((source, text))
        results.append((n_flagged / len(texts), source, n_flagged, n_names, len(texts)))
        if source in VIDEO_SOURCES:
            pooled[0] += n_flagged
            pooled[1] += n_names
            pooled[2] += len(texts)
    click.echo(
        f"   {'source':<24} {'rows':>6} {'flagged':>8} {'rate':>8}   {'without brand mentions':>22}"
    )
    for rate, source, n_flagged, n_names, n in sorted(results, reverse=True):
        mark = "" if source in VIDEO_SOURCES else "  (not video/caption)"
        click.echo(
            f"   {source:<24} {n:>6} {n_flagged:>8} {100 * rate:>7.2f}%   "
            f"{n_names:>10} {100 * n_names / n:>7.2f}%{mark}"
        )
    video = [r for r in results if r[1] in VIDEO_SOURCES]
    if video:
        worst = max(video)
        worst_names = max(video, key=lambda r: r[3] / r[4])
        total = max(pooled[2], 1)
        click.echo(
            f"   video/caption sources pooled: {pooled[0]}/{pooled[2]} = "
            f"{100 * pooled[0] / total:.2f}% (without brand mentions {pooled[1]} = "
            f"{100 * pooled[1] / total:.2f}%); worst: {worst[1]} {100 * worst[0]:.2f}% "
            f"(without brands: {worst_names[1]} {100 * worst_names[3] / worst_names[4]:.2f}%); "
            "target <= 0.2 % each"
        )
    if show and half != "tune":
        click.echo("   (--show lists tune-half rows only: run with --half tune)")
    for source, text in examples:
        click.echo(f"   [{source}] {text[:140]!r}\n      -> {check.why(text)[:300]}")
    return latencies


def held_out(check: NameCheck, verbose: bool) -> None:
    click.echo("\n2. held-out hand-written sets (benchmarks/data/names_*.jsonl)")
    for stem, what, target in HELD_OUT:
        rows = _read_jsonl(DATA / f"names_{stem}.jsonl")
        hits = 0
        missed = []
        for row in rows:
            labels = set(row["labels"])  # type: ignore[call-overload]
            got = check.flagged(str(row["text"]))
            ok = bool(got & labels) if labels else bool(got)
            hits += ok
            if ok != bool(labels):
                missed.append(row)
        rate = 100 * hits / len(rows)
        click.echo(f"   {what:<52} {hits:>3}/{len(rows):<3} = {rate:5.1f}%  (target {target})")
        if verbose:
            for row in missed:
                click.echo(f"      {'FP' if not row['labels'] else 'miss'}: {row['text']!r}")


def kit_dev_split(check: NameCheck, data: Path) -> None:
    """Section 3: the training split's held-out celebrity/IP rows, clean and obfuscated."""
    from classifiers.text.train import load_rows, split_of

    rows = load_rows(data)
    split = split_of(rows)
    rng = random.Random(0)
    click.echo("\n3. kit dev split (templated rows held out of training), flagged = recall")
    for category in NAME_CATEGORIES:
        for lang in ("en", "zh"):
            dev = [
                r for r in rows if split[r.id] == "dev" and category in r.labels and r.lang == lang
            ]
            if len(dev) < 5:
                continue
            clean = sum(category in check.flagged(r.text) for r in dev)
            obf = sum(category in check.flagged(obfuscate(r.text, rng)) for r in dev)
            click.echo(
                f"   {category:<9} {lang}: clean {100 * clean / len(dev):5.1f}%   obfuscated "
                f"{100 * obf / len(dev):5.1f}%   (n={len(dev)})"
            )


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


@click.command()
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=ROOT.parent / "shared" / "datasets" / "train.jsonl",
    show_default=True,
)
@click.option("--half", type=click.Choice(["report", "tune", "all"]), default="report")
@click.option(
    "--show", type=int, default=0, help="Print this many flagged tune-half video/caption rows."
)
@click.option("--verbose", is_flag=True, help="List held-out misses and false positives.")
@click.option("--skip-kit", is_flag=True, help="Skip section 3 (the kit dev split).")
def main(data: Path, half: str, show: int, verbose: bool, skip_kit: bool) -> None:
    """Print precision and recall figures of the celebrity/IP name matching."""
    t0 = time.perf_counter()
    load_gazetteer()
    load_s = time.perf_counter() - t0
    check = NameCheck(load_policy(DEFAULT_POLICY_PATH))
    latencies = ordinary_prompts(check, data, half, show)
    held_out(check, verbose)
    if not skip_kit:
        kit_dev_split(check, data)
    clf = check.classifiers[0]
    timings = []
    for text in [t for ts in benign_by_source(data, "report").values() for t in ts][:5000]:
        prompt = normalize(text)
        t1 = time.perf_counter()
        clf.gazetteer.find(prompt)
        timings.append((time.perf_counter() - t1) * 1e6)
    click.echo(
        f"\n4. gazetteer load {load_s:.2f} s; find() per prompt p50 {_pct(timings, 50):.0f} us, "
        f"p99 {_pct(timings, 99):.0f} us, mean {statistics.fmean(timings):.0f} us; "
        f"whole check (normalise + 2 classifiers + decision) p50 {_pct(latencies, 50):.0f} us"
    )


if __name__ == "__main__":
    main()
