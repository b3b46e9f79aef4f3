"""``faces``: is there a human face in an uploaded image? OpenCV's Haar cascade, offline.

A face in a reference image may be a real person's (a celebrity, an ex-partner, a child), and
neither who it is nor whether they agreed can be checked automatically. So the detector says
only *that* there is a face: one ``celebrity`` verdict per frame with ``mention="face"``, score
1.0 when it finds one (0.0 otherwise), and evidence listing the boxes. The policy's
``inputs.faces`` decides what a face does (default: review). It runs at the ``input`` stage
only (generated videos show faces all the time; the schema refuses it under
``classifiers.frame``).

The cascade is ``haarcascade_frontalface_default.xml`` from the ``opencv-python-headless``
wheel (``cv2.data.haarcascades``): frontal faces of at least :data:`MIN_FACE_FRACTION` of the
image's shorter side. Profiles, small faces in crowds, and heavily stylised faces can be
missed; that is a limit of the detector, which the README states. ``model_version`` is the
sha256 of the cascade file, so an audit row pins the exact model.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from classifiers.base import Category, SampledFrame, Verdict
from classifiers.frame.common import frame_evidence, sha256_file
from classifiers.frame.errors import FrameModelUnavailable

CASCADE = "haarcascade_frontalface_default.xml"
MIN_FACE_FRACTION = 0.08
"""Smallest face reported, as a fraction of the image's shorter side (and at least 24 px)."""
MAX_SIDE = 640
"""Images are scaled down to this longest side first: the cascade's cost grows with area."""


def cascade_path() -> Path:
    """Where the wheel keeps the frontal-face cascade."""
    return Path(cv2.data.haarcascades) / CASCADE  # type: ignore[attr-defined]


class FaceDetector:
    """Frontal-face detector; thread-safe (one cascade per thread: OpenCV's is not)."""

    name = "faces"
    model_id = "opencv-haar-frontalface-default"
    categories: ClassVar[tuple[Category, ...]] = ("celebrity",)

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cascade_path()
        if not self.path.is_file():
            raise FrameModelUnavailable(
                f"{self.path}: OpenCV's face cascade is missing; reinstall "
                "opencv-python-headless (pip install --force-reinstall opencv-python-headless)"
            )
        self.model_version = sha256_file(self.path)[:16]
        self._local = threading.local()
        self._cascade()  # fail at construction, not in the first request, if it does not load

    def _cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = cv2.CascadeClassifier(str(self.path))
            if cascade.empty():
                raise FrameModelUnavailable(
                    f"{self.path}: OpenCV could not load the face cascade; reinstall "
                    "opencv-python-headless"
                )
            self._local.cascade = cascade
        return cascade

    def faces(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes ``(x, y, w, h)`` in ``image``'s pixels (RGB uint8, H x W x 3)."""
        height, width = image.shape[:2]
        scale = min(1.0, MAX_SIDE / max(height, width))
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        side = max(24, round(min(gray.shape[:2]) * MIN_FACE_FRACTION))
        if min(gray.shape[:2]) < side:
            return []
        found = self._cascade().detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side)
        )
        return [tuple(round(v / scale) for v in box) for box in np.asarray(found).reshape(-1, 4)]

    def classify(self, frames: Sequence[SampledFrame]) -> list[Verdict]:
        """One ``celebrity`` verdict per frame: 1.0 with the boxes when a face is found."""
        out = []
        for frame in frames:
            boxes = self.faces(frame.image)
            detail = (
                f"{len(boxes)} face(s) at "
                + ", ".join(f"x={x} y={y} w={w} h={h}" for x, y, w, h in boxes[:8])
                if boxes
                else "no face found"
            )
            out.append(
                Verdict(
                    classifier=self.name,
                    category="celebrity",
                    score=1.0 if boxes else 0.0,
                    model_id=self.model_id,
                    model_version=self.model_version,
                    evidence=(frame_evidence(frame, detail),),
                    mention="face",
                )
            )
        return out
