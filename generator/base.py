"""The one protocol every video backend implements, and the typed values it exchanges.

A backend turns a validated :class:`VideoRequest` into a :class:`VideoOutput` (RGB frames plus
what was actually used: fps, seed, backend and model id). Backends hold no safety code: the
gateway moderates the prompt before, and audits the frames after, every call.

Errors::

    ValueError
     └── InvalidVideoRequest      the request cannot be served by this backend (size, length...)
          └── PromptNotUnderstood the backend understands no word of the prompt (and refuses)
    RuntimeError
     └── BackendError             the backend failed while generating (model, upstream, decode)
          └── BackendUnavailable  the backend cannot start (weights or packages missing)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

ProgressCallback = Callable[[float], None]
"""Called with the fraction done, in [0, 1], from the thread running ``generate``."""


class InvalidVideoRequest(ValueError):
    """A request this backend cannot serve; the message names the field and the allowed values."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


class PromptNotUnderstood(InvalidVideoRequest):
    """The backend would ignore every word of the prompt; ``ignored`` lists them."""

    def __init__(self, message: str, ignored: tuple[str, ...]) -> None:
        super().__init__("prompt", message)
        self.ignored = ignored


class BackendError(RuntimeError):
    """A backend failed while generating (a model error, an upstream error, a decode error)."""


class BackendUnavailable(BackendError):
    """A backend cannot start here: its weights, packages or upstream are missing."""


@dataclass(frozen=True, slots=True)
class Conditioning:
    """What a generation starts from besides the prompt.

    ``start_image`` is RGB uint8 ``(height, width, 3)`` at the request's size: an uploaded
    reference image that passed the ``input`` stage, or a remixed video's first frame. The
    gateway checked it before the job existed; the output is frame-audited in full as always.
    ``source`` says where it came from (``"input_reference"`` or ``"remix:<video id>"``).
    """

    start_image: npt.NDArray[np.uint8] = field(repr=False)
    source: str = "input_reference"


@dataclass(frozen=True, slots=True)
class VideoRequest:
    """What to generate. ``seed=None`` lets the backend pick one (reported in the output);
    ``fps=None`` uses the backend's native frame rate. ``conditioning`` (optional) is what to
    start from; a backend that cannot use it refuses the request in ``check_inputs``
    (:func:`check_common` does, unless the backend says it can)."""

    prompt: str
    seconds: float
    width: int
    height: int
    seed: int | None = None
    fps: int | None = None
    conditioning: Conditioning | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class VideoOutput:
    """Generated frames, shape ``(T, H, W, 3)``, dtype uint8, RGB, at ``fps`` frames per second.

    ``understood``/``ignored`` list the prompt words the model used and those it could not
    (empty when the backend cannot tell, e.g. a large text encoder or a remote upstream).
    """

    frames: npt.NDArray[np.uint8] = field(repr=False)
    fps: float
    seed: int
    backend: str
    model_id: str
    understood: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        f = self.frames
        if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3 or f.shape[0] < 1:
            raise ValueError(
                f"VideoOutput.frames must be uint8 (T, H, W, 3) with T >= 1, got {f.dtype} "
                f"{f.shape}"
            )
        if not self.fps > 0:
            raise ValueError(f"VideoOutput.fps must be > 0, got {self.fps}")

    @property
    def duration_s(self) -> float:
        """Length of the clip in seconds."""
        return float(self.frames.shape[0] / self.fps)


@runtime_checkable
class VideoBackend(Protocol):
    """Generates video from text (and, where supported, a :class:`Conditioning` start image).
    ``generate`` must call ``check_inputs`` first; a backend that cannot use
    ``request.conditioning`` must refuse it there, never ignore it."""

    name: str
    model_id: str

    def check_inputs(self, request: VideoRequest) -> None:
        """Raise :class:`InvalidVideoRequest` if this backend cannot serve ``request``."""
        ...

    def generate(self, request: VideoRequest, progress: ProgressCallback) -> VideoOutput:
        """Generate the clip; raise :class:`BackendError` on failure (never return partial)."""
        ...


def check_common(
    request: VideoRequest,
    *,
    max_seconds: float,
    max_side: int,
    min_side: int = 16,
    max_fps: int = 60,
    conditioning: bool = False,
) -> None:
    """Checks every backend shares: a prompt, a positive bounded length, even bounded sizes,
    and a conditioning input only where the backend takes one (``conditioning=True``), at the
    request's size."""
    if request.conditioning is not None:
        if not conditioning:
            raise InvalidVideoRequest(
                "input_reference",
                "this backend cannot start from a reference image or a source video; leave "
                "input_reference out, or use the embedded model",
            )
        shape = request.conditioning.start_image.shape
        if shape != (request.height, request.width, 3):
            raise InvalidVideoRequest(
                "input_reference",
                f"the start image is {shape}, expected ({request.height}, {request.width}, 3)",
            )
    if not request.prompt.strip():
        raise InvalidVideoRequest("prompt", "must not be empty")
    if not 0 < request.seconds <= max_seconds:
        raise InvalidVideoRequest(
            "seconds", f"must be > 0 and <= {max_seconds:g}, got {request.seconds:g}"
        )
    for name, value in (("width", request.width), ("height", request.height)):
        if not min_side <= value <= max_side or value % 2:
            raise InvalidVideoRequest(
                name, f"must be an even number from {min_side} to {max_side}, got {value}"
            )
    if request.fps is not None and not 1 <= request.fps <= max_fps:
        raise InvalidVideoRequest("fps", f"must be from 1 to {max_fps}, got {request.fps}")
    if request.seed is not None and not 0 <= request.seed < 2**32:
        raise InvalidVideoRequest("seed", f"must be from 0 to {2**32 - 1}, got {request.seed}")


def resolve_seed(request: VideoRequest) -> int:
    """The request's seed, or a fresh random one (reported back so the clip can be reproduced)."""
    if request.seed is not None:
        return request.seed
    return int(np.random.default_rng().integers(0, 2**32 - 1))


def resize_frames(frames: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """Resize every frame to ``width`` x ``height`` (bicubic up, area down) with Pillow."""
    from PIL import Image

    if frames.shape[1] == height and frames.shape[2] == width:
        return frames
    up = width >= frames.shape[2]
    method = Image.Resampling.BICUBIC if up else Image.Resampling.BOX
    out = np.empty((frames.shape[0], height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(frame).resize((width, height), method))
    return out


def retime_frames(
    frames: npt.NDArray[np.uint8], src_fps: float, dst_fps: float, seconds: float
) -> npt.NDArray[np.uint8]:
    """Resample frames (nearest in time) so the clip lasts ``seconds`` at ``dst_fps``."""
    n_out = max(1, round(seconds * dst_fps))
    src_duration = frames.shape[0] / src_fps
    times = (np.arange(n_out) + 0.5) / n_out * src_duration
    idx = np.clip((times * src_fps).astype(int), 0, frames.shape[0] - 1)
    return np.ascontiguousarray(frames[idx])
