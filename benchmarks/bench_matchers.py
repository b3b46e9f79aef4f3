"""Latency of the normaliser and the lexicon/gazetteer matchers, one prompt at a time.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_matchers.py [--n 3000] [--prompts F.jsonl]

Prints load times, then p50/p99 (microseconds; wall clock and this thread's CPU time, which
other processes on a busy machine do not inflate) over a few thousand benign video-style prompts
and prompts with hits (names, evasions, harmful terms), for each part and for the whole
lexicon+gazetteer stage; and, as a baseline in the same process, a naive scan that tests every
gazetteer key as a substring of the prompt. ``--prompts`` reads ``{"text": ...}`` rows instead
of the built-in generator. Targets: normaliser well under 500 us, gazetteer well under 1 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from classifiers.base import PromptText
from classifiers.text.gazetteer import GazetteerClassifier, load_gazetteer
from classifiers.text.lexicon import LexiconClassifier, find_minor_mentions, load_lexicon
from classifiers.text.normalize import normalize

SUBJECTS = [
    "a young woman", "an old fisherman", "a golden retriever", "two children", "a red fox",
    "a chef", "a robot", "a couple", "a street musician", "a hummingbird", "a surfer",
    "a group of hikers", "an astronaut", "a ballet dancer", "a vintage car", "a cat",
]  # fmt: skip
ACTIONS = [
    "walking through", "dancing in", "running across", "sleeping in", "looking out over",
    "cooking dinner in", "playing guitar in", "flying above", "exploring", "sitting quietly in",
]  # fmt: skip
PLACES = [
    "a neon-lit Tokyo street at night", "a misty pine forest", "a busy market in Marrakech",
    "a quiet library", "the surface of Mars", "a snowy mountain village", "a sunflower field",
    "an abandoned warehouse", "a coral reef", "a rainy Paris cafe", "a desert at sunset",
]  # fmt: skip
STYLES = [
    "cinematic lighting, 4k", "shot on 35mm film", "slow motion, 60fps", "drone shot",
    "watercolor style", "handheld camera, shallow depth of field", "timelapse", "anime style",
]  # fmt: skip
HITS = [
    "Taylor Swift", "T4ylor Sw1ft", "Tayler Swift", "Keanu Reeves", "泰勒·斯威夫特", "Elon Musk",
    "Spider-Man", "Pikachu", "Storm from the X-Men", "a can of Coca-Cola with its logo",
    "a p0rn star", "a s.e.x scene", "a man in a pool of blood", "ѕех", "n@ked", "a 12 year old",
    "Jennie from BLACKPINK", "Mickey Mouse", "皮卡丘", "a man stabbing", "seeeexy",
]  # fmt: skip


def generated_prompts(n: int, seed: int = 7) -> tuple[list[str], list[str]]:
    """``n`` benign and ``n // 3`` hit prompts, built from the lists above."""
    rng = random.Random(seed)

    def one() -> str:
        subject, action, place = rng.choice(SUBJECTS), rng.choice(ACTIONS), rng.choice(PLACES)
        return f"{subject} {action} {place}, {rng.choice(STYLES)}"

    benign = [one() for _ in range(n)]
    hits = [one().replace(rng.choice(SUBJECTS), rng.choice(HITS), 1) for _ in range(n // 3)]
    hits = [h if any(x in h for x in HITS) else f"{rng.choice(HITS)} {h}" for h in hits]
    return benign, hits


_CPU: list[float] = []  # thread CPU time of the last timed() calls, in microseconds


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call in microseconds (its thread CPU time goes to ``_CPU``)."""
    c0 = time.thread_time_ns()
    t0 = time.perf_counter()
    fn()
    wall = (time.perf_counter() - t0) * 1e6
    _CPU.append((time.thread_time_ns() - c0) / 1e3)
    return wall


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(label: str, values: list[float]) -> None:
    """Wall-clock p50/p99/max, then CPU-time p50/p99 (immune to other processes' load)."""
    cpu = _CPU[-len(values) :]
    print(
        f"  {label:<34} p50 {statistics.median(values):7.1f} us  p99 {pct(values, 0.99):8.1f} us"
        f"  max {max(values):9.1f} us | cpu p50 {statistics.median(cpu):7.1f} us"
        f"  p99 {pct(cpu, 0.99):7.1f} us"
    )
    _CPU.clear()


def run(name: str, texts: list[str], lexicon: LexiconClassifier, gaz: GazetteerClassifier) -> None:
    prompts: list[PromptText] = [normalize(t) for t in texts]
    for p in prompts[:50]:  # warm caches
        lexicon.classify(p), gaz.classify(p), find_minor_mentions(p)
    words = statistics.mean(len(t.split()) for t in texts)
    print(f"{name}: {len(texts)} prompts, {words:.1f} words on average")
    report("normalize", [timed(lambda t=t: normalize(t)) for t in texts])
    report("lexicon.classify", [timed(lambda p=p: lexicon.classify(p)) for p in prompts])
    report("find_minor_mentions", [timed(lambda p=p: find_minor_mentions(p)) for p in prompts])
    report(
        "gazetteer.classify (celebrity+ip)", [timed(lambda p=p: gaz.classify(p)) for p in prompts]
    )

    def stage(t: str) -> None:
        p = normalize(t)
        lexicon.classify(p)
        gaz.classify(p)
        find_minor_mentions(p)

    report("whole stage (normalize+all)", [timed(lambda t=t: stage(t)) for t in texts])


def naive_baseline(texts: list[str], gaz: GazetteerClassifier) -> list[float]:
    """Every key tested as a substring of the normalised prompt (what a loop over names costs)."""
    keys = list(gaz.gazetteer.phrases) + list(gaz.gazetteer.cjk)

    def scan(text: str) -> int:
        norm = normalize(text).normalized
        return sum(1 for k in keys if k in norm)

    return [timed(lambda t=t: scan(t)) for t in texts]


LABEL_TO_CATEGORIES = {
    "sexual": ("sexual",),
    "violence": ("violence", "violence/graphic"),
    "hate": ("hate",),
    "harassment": ("harassment",),
    "self_harm": ("self-harm",),
    "celebrity": ("celebrity",),
    "ip": ("ip",),
}
VIDEO_STYLE_SOURCES = (
    "coco_captions_esd",
    "didemo",
    "t2i_compbench",
    "vbench_aug",
    "parti",
    "opensora",
)


def evaluate(path: Path, lexicon: LexiconClassifier, gaz: GazetteerClassifier) -> None:
    """Flag rates on a labelled JSONL (the kit's train.jsonl schema), at the default thresholds.

    Benign rows: share reaching review (0.35) / block (0.5) in any category, per source.
    Labelled rows: share whose own category reaches review / block (recall of this stage alone).
    """
    from collections import Counter

    total: Counter[str] = Counter()
    review: Counter[str] = Counter()
    block: Counter[str] = Counter()
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            p = normalize(row["text"])
            s = {v.category: v.score for v in (*lexicon.classify(p), *gaz.classify(p))}
            if not row["labels"]:
                group = f"benign {row['source']}"
                top = max(s.values())
            else:
                cats = [c for lab in row["labels"] for c in LABEL_TO_CATEGORIES.get(lab, ())]
                if not cats:
                    continue
                group = f"{'+'.join(row['labels'])} ({row['source']})"
                top = max(s.get(c, 0.0) for c in cats)
            total[group] += 1
            review[group] += top >= 0.35
            block[group] += top >= 0.5
    print(f"{path}: share of rows at or over review (0.35) / block (0.5), lexicon+gazetteer only")
    for group in sorted(total, key=lambda g: (not g.startswith("benign"), g)):
        if total[group] >= 20:
            n = total[group]
            print(
                f"  {group:<52} n={n:6d}  review {100 * review[group] / n:5.1f}%"
                f"  block {100 * block[group] / n:5.1f}%"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="benign prompts (hits: n/3)")
    ap.add_argument("--prompts", type=Path, help='JSONL with {"text": ...} rows instead')
    ap.add_argument("--labelled", type=Path, help="also print flag rates on a labelled JSONL")
    args = ap.parse_args()

    t0 = time.perf_counter()
    lex = load_lexicon()
    t1 = time.perf_counter()
    gaz_data = load_gazetteer()
    t2 = time.perf_counter()
    n_keys = len(gaz_data.phrases) + len(gaz_data.cjk)
    print(
        f"load: lexicon {1e3 * (t1 - t0):.0f} ms, gazetteer {1e3 * (t2 - t1):.0f} ms "
        f"({len(gaz_data.entities)} entries, {n_keys} keys)"
    )
    lexicon, gaz = LexiconClassifier(lex), GazetteerClassifier(gazetteer=gaz_data)

    if args.prompts:
        with args.prompts.open(encoding="utf-8") as f:
            rows = [json.loads(line)["text"] for line in f if line.strip()]
        run(str(args.prompts), rows, lexicon, gaz)
        sample = rows[:100]
    else:
        benign, hits = generated_prompts(args.n)
        run("benign video prompts", benign, lexicon, gaz)
        run("prompts with hits", hits, lexicon, gaz)
        sample = benign[:100]
    print("baseline (same 100 prompts, normalize included in both):")
    base = naive_baseline(sample, gaz)
    report("naive substring scan of all keys", base)
    ours = [timed(lambda t=t: gaz.classify(normalize(t))) for t in sample]
    report("gazetteer index", ours)
    print(f"  speed-up at p50: {statistics.median(base) / statistics.median(ours):.0f}x")
    if args.labelled:
        evaluate(args.labelled, lexicon, gaz)


if __name__ == "__main__":
    main()
