"""Latency, throughput and memory of the whole prompt stage, in-process, one thread.

    OMP_NUM_THREADS=1 python benchmarks/bench_text_stage.py [--data train.jsonl] [-n 2000]

The stage is what the default policy runs per prompt: normalise -> lexicon -> gazetteer matchers
-> learned heads (e5's early layers on every window, the full model on the few that escalate).
Prints p50/p99 single-prompt latency on benign video-style prompts and on a mixed sample of the
kit (tweets and posts: far more of them escalate), batch throughput, the share of prompts that
escalated, two in-process baselines (normalise+lexicon+matchers alone, and the same plus e5's
early layers with escalation switched off), and the peak RSS with all text models loaded.
Targets (issue 11): p50 <= 3 ms, p99 <= 15 ms, RSS <= 1.5 GB. Figures only; nothing is
asserted.

``--detoxify`` also loads the optional Detoxify classifier from ``REELGUARD_DETOXIFY_*`` (README,
"Detoxify") and times it alone and added to the stage; without weights it says so and skips it.
"""

from __future__ import annotations

import os
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click
import numpy as np

from classifiers.base import PromptText, TextClassifier, Verdict
from classifiers.text.learned import LearnedTextClassifier, prompt_windows
from classifiers.text.lexicon import LexiconClassifier
from classifiers.text.normalize import normalize
from classifiers.text.train_corpus import VIDEO_SOURCES

FALLBACK_PROMPTS = [
    "a red fox jumping over a fence in the snow",
    "a drone shot of a coastline at sunset, cinematic, 4k",
    "a chef slicing vegetables in a busy kitchen",
    "two kids flying a kite on a windy hill",
    "timelapse of clouds over a mountain lake",
    "一只猫在窗台上晒太阳",
    "a man lying in a pool of his own blood",
    "she slowly undresses for the camera",
    "Taylor Swift dancing on stage",
    "Storm clouds over the sea",
]


def _prompts(data: Path | None, n: int) -> tuple[list[str], list[str]]:
    if data is None or not data.is_file():
        return FALLBACK_PROMPTS * (n // len(FALLBACK_PROMPTS) + 1), FALLBACK_PROMPTS[:6] * n
    from classifiers.text.train import load_rows

    rows = load_rows(data)
    rng = random.Random(0)
    mixed = [r.text for r in rng.sample(rows, min(n, len(rows)))]
    video = [r.text for r in rows if r.source in VIDEO_SOURCES and not r.labels]
    return mixed, rng.sample(video, min(n, len(video)))


def _stage(classifiers: list[TextClassifier], text: str) -> None:
    prompt: PromptText = normalize(text)
    for clf in classifiers:
        clf.classify(prompt)


def _timed(classifiers: list[TextClassifier], texts: list[str]) -> np.ndarray:
    out = np.zeros(len(texts))
    for i, t in enumerate(texts):
        start = time.perf_counter()
        _stage(classifiers, t)
        out[i] = time.perf_counter() - start
    return out * 1e3


class _EarlyOnly:
    """The learned classifier with escalation switched off (e5's early layers and heads only)."""

    name = "learned-early"
    model_id = "baseline"
    model_version = "0"

    def __init__(self, clf: LearnedTextClassifier) -> None:
        self.clf = clf

    def classify(self, prompt: PromptText) -> list[Verdict]:
        for part in prompt_windows(prompt):
            self.clf.weights.early_logits(self.clf.embedder.embed_early(part).vector[None])
        return []


@click.command()
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(__file__).resolve().parents[2] / "shared" / "datasets" / "train.jsonl",
    show_default=True,
    help="Kit train.jsonl for a realistic dev-split sample (built-in prompts if missing).",
)
@click.option("-n", "n", type=int, default=1500, show_default=True, help="Prompts per run.")
@click.option(
    "--detoxify",
    "with_detoxify",
    is_flag=True,
    help="Also time the Detoxify classifier (needs REELGUARD_DETOXIFY_CHECKPOINT/_MODEL_DIR).",
)
def main(data: Path | None, n: int, with_detoxify: bool) -> None:
    """Print prompt-stage latency, throughput and peak RSS."""
    t0 = time.perf_counter()
    learned = LearnedTextClassifier()
    matchers: list[TextClassifier] = [LexiconClassifier()]
    try:
        from classifiers.text.gazetteer import GazetteerClassifier

        matchers.append(GazetteerClassifier())
    except Exception as exc:  # the benchmark still times the learned heads without them
        click.echo(f"gazetteer matchers not loaded ({exc}); timing the learned heads only")
    load_s = time.perf_counter() - t0
    mixed, video = _prompts(data, n)
    full = [*matchers, learned]
    _timed(full, mixed[:50])  # warm-up

    def show(label: str, ms: np.ndarray) -> None:
        click.echo(
            f"{label:<44} p50 {np.median(ms):6.2f} ms  p99 {np.percentile(ms, 99):7.2f} ms  "
            f"mean {ms.mean():6.2f} ms"
        )

    click.echo(
        f"models loaded in {load_s:.1f}s; {len(video)} video-style, {len(mixed)} mixed prompts"
    )
    learned.escalations = 0
    ms_video = _timed(full, video)
    esc_video = learned.escalations / max(1, len(video))
    show("full stage, benign video-style prompts", ms_video)
    learned.escalations = 0
    start = time.perf_counter()
    ms_mixed = _timed(full, mixed)
    wall = time.perf_counter() - start
    esc_mixed = learned.escalations / max(1, len(mixed))
    show("full stage, mixed dev sample", ms_mixed)
    ms_lists = _timed(matchers, video)
    show("baseline: normalise+lexicon+matchers (video)", ms_lists)
    ms_early = _timed([*matchers, _EarlyOnly(learned)], video)
    show("baseline: ... + e5 early layers only (video)", ms_early)
    ms_base = _timed([*matchers, _EarlyOnly(learned)], mixed)
    click.echo(
        f"escalated to the full model: {100 * esc_video:.1f} % of video-style prompts, "
        f"{100 * esc_mixed:.1f} % of the mixed sample"
    )
    click.echo(
        f"batch throughput (video-style sample, one thread): "
        f"{len(video) / (ms_video.sum() / 1e3):.0f} prompts/s"
    )
    click.echo(
        f"batch throughput (mixed sample, one thread): {len(mixed) / wall:.0f} prompts/s; "
        f"early-layers-only path {len(mixed) / (ms_base.sum() / 1e3):.0f} prompts/s; "
        f"full/early-only mean latency x{ms_mixed.mean() / ms_base.mean():.1f}"
    )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    click.echo(f"peak RSS with the text models loaded: {rss_mb:.0f} MB")
    if with_detoxify:
        _time_detoxify(full, video, mixed, show)


def _time_detoxify(
    full: list[TextClassifier],
    video: list[str],
    mixed: list[str],
    show: Callable[[str, np.ndarray], None],
) -> None:
    """Detoxify alone and added to the stage (the optional classifier; local weights only)."""
    from classifiers.text.detoxify import detoxify_available, load_detoxify

    if not detoxify_available():
        click.echo("detoxify: no weights configured (REELGUARD_DETOXIFY_*); not timed")
        return
    t0 = time.perf_counter()
    detoxify = load_detoxify()
    loaded_s = time.perf_counter() - t0
    click.echo(f"detoxify {detoxify.model_id}@{detoxify.model_version} loaded in {loaded_s:.1f}s")
    _timed([detoxify], video[:20])  # warm-up
    show("detoxify alone, benign video-style prompts", _timed([detoxify], video))
    show("detoxify alone, mixed dev sample", _timed([detoxify], mixed))
    show("full stage + detoxify, mixed dev sample", _timed([*full, detoxify], mixed))
    prompts = [normalize(t) for t in mixed]
    start = time.perf_counter()
    for i in range(0, len(prompts), 32):
        detoxify.classify_many(prompts[i : i + 32])
    wall = time.perf_counter() - start
    click.echo(f"detoxify batches of 32 (mixed sample): {len(prompts) / wall:.0f} prompts/s")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    click.echo(f"peak RSS with detoxify loaded too: {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
