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

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

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


ConditioningKind = Literal["start_image", "extend", "edit"]
"""What a :class:`Conditioning` asks of a backend (see there)."""


@dataclass(frozen=True, slots=True)
class Conditioning:
    """What a generation starts from besides the prompt; exactly one of three inputs.

    * ``start_image`` (kind ``"start_image"``): RGB uint8 ``(height, width, 3)`` at the
      request's size: an uploaded reference image that passed the ``input`` stage, or a
      remixed video's first frame.
    * ``keep_frames`` (kind ``"extend"``): RGB uint8 ``(T, height, width, 3)`` at ``fps``: the
      video to extend. The output opens with exactly these frames and continues them up to
      ``request.seconds`` (the stitched total), so the whole result, seam included, is
      frame-audited.
    * ``start_clip`` (kind ``"edit"``): RGB uint8 ``(T, height, width, 3)`` at ``fps``: the
      video to edit. The output has its length and follows it as far as ``strength`` allows
      (0: unchanged, 1: ignore it), SDEdit-style.

    The gateway checked every input before the job existed; the output is frame-audited in
    full as always. ``source`` says where it came from (``"input_reference"``,
    ``"remix:<video id>"``, ``"extend:<video id or upload sha256>"``, ``"edit:..."``).
    """

    start_image: npt.NDArray[np.uint8] | None = field(default=None, repr=False)
    source: str = "input_reference"
    keep_frames: npt.NDArray[np.uint8] | None = field(default=None, repr=False)
    start_clip: npt.NDArray[np.uint8] | None = field(default=None, repr=False)
    fps: float | None = None
    strength: float = 0.7

    def __post_init__(self) -> None:
        given = [x for x in (self.start_image, self.keep_frames, self.start_clip) if x is not None]
        if len(given) != 1:
            raise ValueError(
                "Conditioning takes exactly one of start_image, keep_frames, start_clip"
            )
        ndim = 3 if self.start_image is not None else 4
        if given[0].dtype != np.uint8 or given[0].ndim != ndim or given[0].shape[-1] != 3:
            raise ValueError(
                f"Conditioning {self.kind} must be uint8 RGB with {ndim} dimensions, got "
                f"{given[0].dtype} {given[0].shape}"
            )
        if ndim == 4 and not (self.fps and self.fps > 0 and len(given[0]) >= 1):
            raise ValueError("a Conditioning clip needs at least one frame and fps > 0")
        if not 0.0 < self.strength <= 1.0:
            raise ValueError(f"Conditioning.strength must be in (0, 1], got {self.strength}")

    @property
    def kind(self) -> ConditioningKind:
        """``"start_image"``, ``"extend"`` or ``"edit"``."""
        if self.keep_frames is not None:
            return "extend"
        return "edit" if self.start_clip is not None else "start_image"

    @property
    def field(self) -> str:
        """The API field the input came in (named in a refusal)."""
        return "input_reference" if self.kind == "start_image" else "video"

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(height, width)`` of the image or clip."""
        pixels = next(
            x for x in (self.start_image, self.keep_frames, self.start_clip) if x is not None
        )
        shape = pixels.shape[-3:-1]
        return int(shape[0]), int(shape[1])

    @property
    def kept_seconds(self) -> float:
        """Length of ``keep_frames`` in seconds (0 unless extending)."""
        if self.keep_frames is None or not self.fps:
            return 0.0
        return float(len(self.keep_frames) / self.fps)


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
    conditioning: bool | Collection[ConditioningKind] = (),
    max_total_seconds: float | None = None,
) -> None:
    """Checks every backend shares: a prompt, a positive bounded length, even bounded sizes,
    and a conditioning input only of a kind the backend takes (``conditioning``: the kinds,
    or ``True`` for a start image only), at the request's size.

    For an extension ``request.seconds`` is the stitched total: the new part (total minus the
    kept frames) must be in ``(0, max_seconds]`` and the total at most ``max_total_seconds``
    (default ``max_seconds``).
    """
    kinds: Collection[ConditioningKind] = ()
    if conditioning is True:
        kinds = _START_IMAGE_ONLY
    elif conditioning is not False:
        kinds = conditioning
    new_seconds = request.seconds
    if request.conditioning is not None:
        _check_conditioning(request, request.conditioning, kinds)
        new_seconds = request.seconds - request.conditioning.kept_seconds
    if not request.prompt.strip():
        raise InvalidVideoRequest("prompt", "must not be empty")
    total_max = max_seconds if max_total_seconds is None else max_total_seconds
    if not 0 < new_seconds <= max_seconds or request.seconds > total_max:
        what = "the new part" if new_seconds != request.seconds else "must be"
        raise InvalidVideoRequest(
            "seconds",
            f"{what} > 0 and <= {max_seconds:g}"
            + (f" (and a total <= {total_max:g})" if total_max != max_seconds else "")
            + f", got {new_seconds:g}",
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


_START_IMAGE_ONLY: tuple[ConditioningKind, ...] = ("start_image",)
_KIND_WORDS: dict[ConditioningKind, str] = {
    "start_image": "start from a reference image or a remixed video (leave input_reference out)",
    "extend": "extend a video (keep its frames and continue them)",
    "edit": "edit a video (start from the noised source clip)",
}


def _check_conditioning(
    request: VideoRequest, conditioning: Conditioning, kinds: Collection[ConditioningKind]
) -> None:
    if conditioning.kind not in kinds:
        can = ", ".join(_KIND_WORDS[k].split(" (")[0] for k in kinds) or "nothing"
        raise InvalidVideoRequest(
            conditioning.field,
            f"this backend cannot {_KIND_WORDS[conditioning.kind]}; it can: {can}. Use the "
            "embedded model",
        )
    if conditioning.frame_size != (request.height, request.width):
        raise InvalidVideoRequest(
            conditioning.field,
            f"the {conditioning.kind} input is {conditioning.frame_size} (height, width), "
            f"expected ({request.height}, {request.width})",
        )


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
