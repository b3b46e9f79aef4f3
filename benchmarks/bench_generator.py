"""Embedded generator: prompt following on held-out slot combinations, and seconds per clip.

    python benchmarks/bench_generator.py [--weights FILE] [--clips 48] [--steps 20]

Samples clips for (colour, shape, motion, background) combinations never seen in training,
analyses each clip automatically (background, object colour, shape, centroid/size path; see
``generator.embedded.check``) and prints accuracy per attribute, then times the full backend
(sampling, decoding, retiming, upsampling to 256x256) on one thread. The same check run on the
procedural training renderer is printed as the ceiling (it should be 100 %).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.base import VideoRequest
from generator.embedded import check, data
from generator.embedded.backend import WEIGHTS, EmbeddedBackend, TinyDiT, slot_tensor
from generator.embedded.vocab import canonical_prompt, parse_prompt

ATTRS = ("background", "colour", "shape", "motion")


def combinations(n: int, held_out: bool = True) -> list[tuple[str, str, str, str]]:
    """``n`` combinations spread evenly over the held-out (or the training) set, stable order."""
    combos = [c for c in data.all_combinations() if data.is_held_out(*c) == held_out]
    step = max(1, len(combos) // n)
    return combos[::step][:n]


def main() -> None:
    """Print the accuracy table and the timing."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--weights", type=Path, default=WEIGHTS)
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=4.0)
    p.add_argument("--timing-runs", type=int, default=5)
    p.add_argument(
        "--split",
        choices=("held-out", "train"),
        default="held-out",
        help="prompt combinations to score; tune sampler settings on 'train', report 'held-out'",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    model = TinyDiT(args.weights)
    combos = combinations(args.clips, held_out=args.split == "held-out")
    hits = {a: 0 for a in ATTRS}
    ceiling = {a: 0 for a in ATTRS}
    both = 0
    rng = np.random.default_rng(0)
    motions: dict[str, list[int]] = {}
    for i, combo in enumerate(combos):
        parsed = parse_prompt(canonical_prompt(*combo))
        seed = i if args.split == "held-out" else 10_000 + i
        clip = model.sample(
            slot_tensor(parsed), seed=seed, steps=args.steps, guidance=args.guidance
        )
        got = check.score(check.analyse(clip[0]), *combo)
        truth = check.score(check.analyse(data.render(data.spec_for(*combo, rng))[0]), *combo)
        for a in ATTRS:
            hits[a] += getattr(got, a)
            ceiling[a] += getattr(truth, a)
        both += got.colour and got.motion
        motions.setdefault(combo[2], []).append(int(got.motion))
    n = len(combos)
    meta = model.metadata
    print(f"weights {args.weights.name}: dit_steps={meta.get('dit_steps')} "
          f"ae_steps={meta.get('ae_steps')}; {n} {args.split} prompts, {args.steps} sampler steps, "
          f"guidance {args.guidance}")  # fmt: skip
    print(f"{'attribute':<12}{'model':>8}{'renderer':>10}")
    for a in ATTRS:
        print(f"{a:<12}{100 * hits[a] / n:>7.0f}%{100 * ceiling[a] / n:>9.0f}%")
    print(f"{'colour+motion':<12}{100 * both / n:>7.0f}%")
    per_motion = (f"{m} {100 * sum(v) / len(v):.0f}% ({len(v)})" for m, v in motions.items())
    print("motion accuracy by motion: " + ", ".join(per_motion))

    backend = EmbeddedBackend(args.weights, steps=args.steps)
    request = VideoRequest(canonical_prompt(*combos[0]), 2.0, 256, 256, seed=1)
    backend.generate(request, lambda _: None)  # load and warm up
    times = []
    for _ in range(args.timing_runs):
        t0 = time.perf_counter()
        backend.generate(request, lambda _: None)
        times.append(time.perf_counter() - t0)
    print(f"seconds per clip (2 s, 256x256, 1 thread): median {statistics.median(times):.2f} "
          f"max {max(times):.2f} over {len(times)} runs")  # fmt: skip


if __name__ == "__main__":
    main()
