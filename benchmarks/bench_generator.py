"""Embedded generator: prompt following on held-out slot combinations, seconds per clip, and
whether an extension continues its source across the seam.

    python benchmarks/bench_generator.py [--weights FILE] [--clips 48] [--steps 20]
        [--extend-clips 24] [--context 8,12] [--audit-seconds 10]

Samples clips for (colour, shape, motion, background) combinations never seen in training,
analyses each clip automatically (background, object colour, shape, centroid/size path; see
``generator.embedded.check``) and prints accuracy per attribute, then times the full backend
(sampling, decoding, retiming, upsampling to 256x256) on one thread. The same check run on the
procedural training renderer is printed as the ceiling (it should be 100 %).

Extension (``--extend-clips``): for held-out prompts, a 2 s source clip is sampled and extended
by 2 s (``extend_native``, RePaint-style, each window opening with ``--context`` known frames of
the source; one row per value). Printed per row: how often the new part's colour, shape and
motion (analysed alone) match the source's; how often the motion read across the seam (the
source's last second plus the new part's first) matches the source's motion; and the seam's
jump: the object's centroid step and the mean absolute frame difference from the last source
frame to the first new one, against the median step between consecutive frames elsewhere (1x
means a seamless cut). Last, the frame audit's cost per second of video: the packaged policy's
frame models on one extended clip of ``--audit-seconds`` at 256x256 (the product's path:
``EmbeddedBackend.generate`` with a ``Conditioning``).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from generator.base import Conditioning, VideoRequest
from generator.embedded import check, data
from generator.embedded.backend import WEIGHTS, EmbeddedBackend, TinyDiT, slot_tensor
from generator.embedded.conditioned import extend_native
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
    p.add_argument("--extend-clips", type=int, default=24, help="0 skips the extension rows")
    p.add_argument("--context", default="8", help="comma-separated context frames, one row each")
    p.add_argument("--audit-seconds", type=float, default=10.0, help="0 skips the audit cost")
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
    if args.extend_clips:
        seam_rows(model, args)
    if args.audit_seconds:
        audit_cost(backend, combos[0], args.audit_seconds)


def object_path(frames: np.ndarray) -> list[tuple[float, float] | None]:
    """Per frame the object's centroid (x, y), or None: the pixels far from the background,
    as :func:`generator.embedded.check.analyse` finds them."""
    f = frames.astype(np.float64)
    border = np.concatenate([f[:, 0].reshape(-1, 3), f[:, -1].reshape(-1, 3),
                             f[:, :, 0].reshape(-1, 3), f[:, :, -1].reshape(-1, 3)])  # fmt: skip
    far = np.sqrt(((f - np.median(border, axis=0)) ** 2).sum(axis=-1)) > 60.0
    yy, xx = np.mgrid[0 : f.shape[1], 0 : f.shape[2]]
    return [(float(xx[m].mean()), float(yy[m].mean())) if m.sum() >= 6 else None for m in far]


def seam_jump(clip: np.ndarray, seam: int) -> tuple[float | None, float]:
    """(centroid step at the seam / median step elsewhere, frame difference at the seam /
    median elsewhere); the centroid ratio is None where the object is missing there."""
    diffs = np.abs(np.diff(clip.astype(np.float64), axis=0)).mean(axis=(1, 2, 3))
    path = object_path(clip)
    steps = [
        float(np.hypot(b[0] - a[0], b[1] - a[1])) if a is not None and b is not None else None
        for a, b in itertools.pairwise(path)
    ]
    elsewhere = [x for i, x in enumerate(steps) if i != seam - 1 and x is not None]
    at = steps[seam - 1]
    ratio = None if at is None or not elsewhere else at / max(0.5, statistics.median(elsewhere))
    other = np.delete(diffs, seam - 1)
    return ratio, float(diffs[seam - 1] / max(1e-6, float(np.median(other))))


def seam_rows(model: TinyDiT, args: argparse.Namespace) -> None:
    """Print one continuity row per ``--context`` value on ``--extend-clips`` held-out prompts,
    and the same for the renderer's own continuation (the shape going on along its path)."""
    combos = combinations(args.extend_clips)
    print(f"\nextension: {len(combos)} held-out prompts, 2 s source + 2 s new, {args.steps} "
          "steps; % of new parts matching the source (source's accuracy in brackets)")  # fmt: skip
    print(f"{'context':<9}{'colour':>11}{'shape':>11}{'motion':>11}{'across':>8}"
          f"{'jump x':>8}{'diff x':>8}{'s/clip':>8}")  # fmt: skip
    for context in (int(x) for x in args.context.split(",")):
        pairs = []
        t0 = time.perf_counter()
        for i, combo in enumerate(combos):
            ids = slot_tensor(parse_prompt(canonical_prompt(*combo)))
            source = model.sample(ids, seed=i, steps=args.steps, guidance=args.guidance)[0]
            new = extend_native(model, ids, 1000 + i, source, data.FPS, 2.0, steps=args.steps,
                                progress=lambda _: None, context_frames=context)  # fmt: skip
            pairs.append((source, new))
        print(seam_row(str(context), combos, pairs, (time.perf_counter() - t0) / len(combos)))
    rng = np.random.default_rng(0)
    pairs = []
    for combo in combos:
        spec = data.spec_for(*combo, rng)
        frames = [data.render(spec, start)[0] for start in (0, 8, 16)]
        pairs.append((frames[0], np.concatenate([frames[1][8:], frames[2][8:]])))
    print(seam_row("renderer", combos, pairs, 0.0))
    print(
        "(renderer: the source clip and the next 2 s of its shape's path; a shape that "
        "moves on leaves the frame, so its new part alone often shows too little motion)"
    )


def seam_row(
    name: str,
    combos: list[tuple[str, str, str, str]],
    pairs: list[tuple[np.ndarray, np.ndarray]],
    seconds: float,
) -> str:
    """One row of the extension table for (source, new part) clips of ``combos``."""
    same = {a: 0 for a in ("colour", "shape", "motion", "across")}
    right = {a: 0 for a in ("colour", "shape", "motion")}
    jumps: list[float] = []
    diffs: list[float] = []
    for combo, (source, new) in zip(combos, pairs, strict=True):
        a_src, a_new = check.analyse(source), check.analyse(new)
        half = len(source) // 2
        across = check.analyse(np.concatenate([source[half:], new[:half]]))
        for a in ("colour", "shape", "motion"):
            same[a] += getattr(a_new, a) is not None and getattr(a_new, a) == getattr(a_src, a)
            right[a] += getattr(a_src, a) == combo[("colour", "shape", "motion").index(a)]
        same["across"] += a_src.motion is not None and across.motion == a_src.motion
        jump, diff = seam_jump(np.concatenate([source, new]), len(source))
        if jump is not None:
            jumps.append(jump)
        diffs.append(diff)
    n = len(combos)
    row = "".join(
        f"{100 * same[a] / n:>4.0f}%"
        + (f"{f'({100 * right[a] / n:.0f})':<6}" if a in right else "")
        for a in ("colour", "shape", "motion", "across")
    )
    jump_text = f"{statistics.median(jumps):.1f}x" if jumps else "n/a"
    return f"{name:<9}{row}{jump_text:>8}{statistics.median(diffs):>7.1f}x{seconds:>8.1f}"


def audit_cost(backend: EmbeddedBackend, combo: tuple[str, ...], seconds: float) -> None:
    """Print the frame audit's wall and CPU seconds per second of an extended 256x256 video."""
    from config.settings import Settings
    from gateway.frame_audit import audit_frames
    from gateway.frame_classifiers import load_frame_classifiers
    from policies.store import PolicyStore

    prompt = canonical_prompt(*combo)
    source = backend.generate(VideoRequest(prompt, 2.0, 256, 256, seed=7), lambda _: None)
    cond = Conditioning(keep_frames=source.frames, fps=source.fps, source="extend:bench")
    out = backend.generate(
        VideoRequest(prompt, 2.0 + seconds, 256, 256, seed=8, conditioning=cond), lambda _: None
    )
    settings = Settings()
    policy = PolicyStore(settings.policy, None).base
    classifiers = load_frame_classifiers(settings)(policy)
    audit_frames(out.frames[:8], out.fps, policy, classifiers, timeout_s=600)  # warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    result = audit_frames(out.frames, out.fps, policy, classifiers, timeout_s=600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    names = ", ".join(type(c).__name__ for c in classifiers)
    print(f"\nframe audit of one extended video ({out.duration_s:g} s, 256x256, {out.fps:g} fps, "
          f"{names}): {wall / out.duration_s:.3f} s wall and {cpu / out.duration_s:.3f} s CPU "
          f"per second of video ({len(result.sampled)} frames sampled); decision "
          f"{result.decision.action.value}")  # fmt: skip


if __name__ == "__main__":
    main()
