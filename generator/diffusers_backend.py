"""GPU backend: a local diffusers video pipeline (Wan, LTX-Video, CogVideoX; Wan and CogVideoX
image-to-video).

``REELGUARD_DIFFUSERS_MODEL`` names a folder saved by ``DiffusionPipeline.save_pretrained`` (or
downloaded with ``huggingface-cli download --local-dir``). The pipeline family is read from the
folder's ``model_index.json`` (``_class_name``), or guessed from the folder name. Weights are
only ever read from disk (``local_files_only=True``): the gateway never downloads at run time.

Each family has its own rules for sizes and frame counts, checked up front with a concise error
instead of being silently rounded as the pipelines themselves do:

=============  ===================================  =========================  ===========  ===
family         pipeline                             frames                     sides        fps
=============  ===================================  =========================  ===========  ===
wan            ``WanPipeline``                      4k+1 (81 at 16 fps = 5 s)  multiple 16  16
wan-i2v        ``WanImageToVideoPipeline``          4k+1 (81 at 16 fps)        multiple 16  16
ltx            ``LTXPipeline``                      8k+1 (121 at 24 fps)       multiple 32  24
cogvideox      ``CogVideoXPipeline``                4k+1 (49 at 8 fps = 6 s)   multiple 16  8
cogvideox-i2v  ``CogVideoXImageToVideoPipeline``    4k+1 (49 at 8 fps)         multiple 16  8
=============  ===================================  =========================  ===========  ===

A CogVideoX transformer with learned positional embeddings (``CogVideoX-5b-I2V``, the 2b and 5b
text-to-video models) only makes its trained size (720x480); other sizes are refused up front.

Conditioning (see :mod:`generator.diffusers_conditioning`): the image-to-video families
(``wan-i2v``, ``cogvideox-i2v``) need an image: a start image, or for an extension the source's
last frame; ``ltx`` takes a start image, a video to extend and a video to edit, through
``LTXConditionPipeline`` over the same components (frame conditioning was trained into
LTX-Video from 0.9.5; earlier checkpoints follow it poorly); ``wan`` and ``cogvideox`` take none.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from config.settings import Settings
from generator.base import (
    BackendError,
    BackendUnavailable,
    ConditioningKind,
    InvalidVideoRequest,
    ProgressCallback,
    VideoOutput,
    VideoRequest,
    check_common,
    resolve_seed,
)
from generator.diffusers_conditioning import FramePlan, conditioning_kwargs, plan_frames


@dataclass(frozen=True, slots=True)
class PipelineFamily:
    """What differs between the supported diffusers pipelines."""

    name: str
    pipeline_class: str
    temporal_factor: int
    """num_frames must be ``temporal_factor * k + 1``."""
    side_multiple: int
    fps: int
    steps: int
    guidance: float
    max_frames: int
    extra_call_kwargs: tuple[tuple[str, Any], ...] = ()
    conditioning: tuple[ConditioningKind, ...] = ()
    """The conditioning kinds this family takes; any other is refused before a job exists."""
    conditioned_class: str | None = None
    """The pipeline that serves conditioned requests, built over the loaded one's components
    (``None``: the loaded pipeline itself)."""
    needs_image: bool = False
    """An image-to-video model: a request without a start image (or, for an extension, a source
    whose last frame it starts from) is refused."""


FAMILIES: dict[str, PipelineFamily] = {
    "wan": PipelineFamily("wan", "WanPipeline", 4, 16, 16, 50, 5.0, 121),
    "wan-i2v": PipelineFamily(
        "wan-i2v",
        "WanImageToVideoPipeline",
        4,
        16,
        16,
        50,
        5.0,
        121,
        conditioning=("start_image", "extend"),
        needs_image=True,
    ),
    "ltx": PipelineFamily(
        "ltx",
        "LTXPipeline",
        8,
        32,
        24,
        50,
        3.0,
        257,
        conditioning=("start_image", "extend", "edit"),
        conditioned_class="LTXConditionPipeline",
    ),
    "cogvideox": PipelineFamily("cogvideox", "CogVideoXPipeline", 4, 16, 8, 50, 6.0, 81),
    "cogvideox-i2v": PipelineFamily(
        "cogvideox-i2v",
        "CogVideoXImageToVideoPipeline",
        4,
        16,
        8,
        50,
        6.0,
        81,
        conditioning=("start_image", "extend"),
        needs_image=True,
    ),
}
"""Supported pipeline families, by name."""

MAX_TOTAL_SECONDS = 60.0
"""Longest extended video (source plus new part); each call adds at most one window."""

_CLASS_TO_FAMILY = {f.pipeline_class: f for f in FAMILIES.values()}
# (words the folder name must contain, words it must not, family), first match wins.
_NAME_HINTS = (
    (("wan", "i2v"), ("ti2v",), "wan-i2v"),
    (("wan",), (), "wan"),
    (("ltx",), (), "ltx"),
    (("cogvideo", "i2v"), (), "cogvideox-i2v"),
    (("cogvideo",), (), "cogvideox"),
)
_VAE_TEMPORAL_KEYS = ("scale_factor_temporal", "temporal_compression_ratio")


def detect_family(model: str) -> tuple[PipelineFamily, int]:
    """The family of the pipeline in folder ``model`` and its VAE's temporal factor.

    Reads ``model_index.json`` (``_class_name``) and ``vae/config.json`` when present; otherwise
    matches the folder name ("Wan2.1-T2V-1.3B-Diffusers" -> wan).
    """
    path = Path(model)
    index = path / "model_index.json"
    family: PipelineFamily | None = None
    if index.is_file():
        try:
            class_name = json.loads(index.read_text())["_class_name"]
        except (ValueError, KeyError) as exc:
            raise BackendUnavailable(f"{index}: not a diffusers model index ({exc})") from exc
        family = _CLASS_TO_FAMILY.get(class_name)
        if family is None:
            known = ", ".join(sorted(_CLASS_TO_FAMILY))
            raise BackendUnavailable(
                f"{index}: pipeline {class_name} is not supported; use one of: {known}"
            )
    else:
        lowered = path.name.lower()
        for needs, excludes, name in _NAME_HINTS:
            if all(w in lowered for w in needs) and not any(w in lowered for w in excludes):
                family = FAMILIES[name]
                break
        if family is None:
            raise BackendUnavailable(
                f"REELGUARD_DIFFUSERS_MODEL={model}: no model_index.json there and the name "
                "names no known family (wan, wan-i2v, ltx, cogvideox, cogvideox-i2v)"
            )
    temporal = family.temporal_factor
    vae_config = path / "vae" / "config.json"
    if vae_config.is_file():
        config = json.loads(vae_config.read_text())
        for key in _VAE_TEMPORAL_KEYS:
            if isinstance(config.get(key), int) and config[key] > 0:
                temporal = config[key]
                break
    return family, temporal


def fixed_size(model: str, family: PipelineFamily) -> tuple[int, int] | None:
    """``(width, height)`` a CogVideoX transformer with learned positional embeddings is bound
    to (diffusers refuses any other size mid-call), read from the folder's configs; else None."""
    path = Path(model)
    config_file = path / "transformer" / "config.json"
    if not family.name.startswith("cogvideox") or not config_file.is_file():
        return None
    try:
        config = json.loads(config_file.read_text())
        vae_file = path / "vae" / "config.json"
        vae = json.loads(vae_file.read_text()) if vae_file.is_file() else {}
    except ValueError as exc:
        raise BackendUnavailable(f"{config_file}: not a transformer config ({exc})") from exc
    if not config.get("use_learned_positional_embeddings"):
        return None
    spatial = 2 ** (len(vae.get("block_out_channels", (0, 0, 0, 0))) - 1)
    return int(config["sample_width"]) * spatial, int(config["sample_height"]) * spatial


class DiffusersBackend:
    """:class:`generator.base.VideoBackend` over a local diffusers text-to-video pipeline."""

    name = "diffusers"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        steps: int | None = None,
        max_seconds: float = 20.0,
        max_side: int = 1920,
    ) -> None:
        self.model = model
        self.family, self.temporal_factor = detect_family(model)
        self.model_id = f"diffusers/{self.family.pipeline_class}:{Path(model).name}"
        self.fixed_size = fixed_size(model, self.family)
        self._device = device
        self.steps = steps or self.family.steps
        self.max_seconds = max_seconds
        self.max_side = max_side
        self._pipe: Any = None
        self._conditioned_pipe: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> DiffusersBackend:
        """Build from ``REELGUARD_DIFFUSERS_*`` settings."""
        if not settings.diffusers_model:
            raise BackendUnavailable(
                "the diffusers backend needs REELGUARD_DIFFUSERS_MODEL: a local folder holding a "
                "Wan, LTX-Video or CogVideoX diffusers pipeline"
            )
        return cls(
            settings.diffusers_model,
            device=settings.diffusers_device,
            steps=settings.diffusers_steps,
        )

    def num_frames(self, request: VideoRequest) -> int:
        """Frames the pipeline makes for the request (see :func:`plan` for an extension's)."""
        return self.plan(request).num_frames

    def plan(self, request: VideoRequest) -> FramePlan:
        """Frames to make and which of them to output
        (:func:`generator.diffusers_conditioning.plan_frames`)."""
        return plan_frames(self.family, self.temporal_factor, request)

    def check_inputs(self, request: VideoRequest) -> None:
        """Shared checks (and the conditioning kinds this family takes), then this family's
        frame-count and size rules."""
        f = self.family
        extending = request.conditioning is not None and request.conditioning.kind == "extend"
        check_common(
            request,
            max_seconds=self.max_seconds,
            max_total_seconds=MAX_TOTAL_SECONDS if extending else None,
            max_side=self.max_side,
            conditioning=f.conditioning,
        )
        if f.needs_image and request.conditioning is None:
            raise InvalidVideoRequest(
                "input_reference",
                f"{self.model_id} is an image-to-video model: it starts from a reference image "
                "(send input_reference), or serve text-only requests with a text-to-video model",
            )
        m = f.side_multiple
        for name, value in (("width", request.width), ("height", request.height)):
            if value % m:
                raise InvalidVideoRequest(
                    name,
                    f"{f.name} needs a multiple of {m}, got {value} (try {(value // m or 1) * m})",
                )
        if self.fixed_size is not None and (request.width, request.height) != self.fixed_size:
            w, h = self.fixed_size
            raise InvalidVideoRequest(
                "width" if request.width != w else "height",
                f"{self.model_id} makes {w}x{h} only (its transformer has learned positional "
                f"embeddings for that size), got {request.width}x{request.height}",
            )
        self.plan(request)

    def device(self) -> str:
        """The torch device: the configured one, else CUDA when present, else CPU."""
        if self._device:
            return self._device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def pipeline(self) -> Any:
        """Load the pipeline once from the local folder (bf16 on CUDA, fp32 on CPU)."""
        if self._pipe is None:
            import diffusers
            import torch
            from diffusers.pipelines import pipeline_utils

            cls = getattr(diffusers, self.family.pipeline_class)
            # Newer diffusers renamed ``torch_dtype`` to ``dtype`` (the old name warns).
            dtype_arg = "dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype"
            device = self.device()
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            try:
                pipe = cls.from_pretrained(self.model, **{dtype_arg: dtype}, local_files_only=True)
            except (OSError, ValueError) as exc:
                raise BackendUnavailable(
                    f"{self.model}: cannot load {self.family.pipeline_class} from this folder "
                    f"({exc}); download it first, e.g. `huggingface-cli download <repo> "
                    f"--local-dir {self.model}`"
                ) from exc
            if dtype != torch.float32 and getattr(pipe, "vae", None) is not None:
                # The VAE decodes in fp32 for quality (the Wan and LTX model cards recommend it).
                pipe.vae.to(torch.float32)
            pipe.to(device)
            pipe.set_progress_bar_config(disable=True)
            self._pipe = pipe
        return self._pipe

    def conditioned_pipeline(self) -> Any:
        """The pipeline for a conditioned request: this family's ``conditioned_class`` over the
        loaded pipeline's components (no second copy of the weights), or the loaded one."""
        if self.family.conditioned_class is None:
            return self.pipeline()
        if self._conditioned_pipe is None:
            import diffusers

            cls = getattr(diffusers, self.family.conditioned_class, None)
            if cls is None:
                raise BackendUnavailable(
                    f"the installed diffusers {diffusers.__version__} has no "
                    f"{self.family.conditioned_class}; upgrade diffusers to condition "
                    f"{self.family.name}"
                )
            pipe = cls.from_pipe(self.pipeline())
            pipe.set_progress_bar_config(disable=True)
            self._conditioned_pipe = pipe
        return self._conditioned_pipe

    def _call_kwargs(
        self, request: VideoRequest, plan: FramePlan, seed: int, progress: ProgressCallback
    ) -> dict[str, Any]:
        import torch

        steps = self.steps
        device = self.device()

        def on_step_end(_pipe: Any, i: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            progress(0.95 * (i + 1) / steps)
            return kwargs

        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "height": request.height,
            "width": request.width,
            "num_frames": plan.num_frames,
            "num_inference_steps": steps,
            "guidance_scale": self.family.guidance,
            "generator": torch.Generator(device="cpu" if device == "mps" else device).manual_seed(
                seed
            ),
            "output_type": "np",
            "callback_on_step_end": on_step_end,
        }
        if self.family.name == "ltx":
            kwargs["frame_rate"] = plan.fps
        kwargs.update(dict(self.family.extra_call_kwargs))
        kwargs.update(conditioning_kwargs(self.family, request, plan))
        return kwargs

    def generate(self, request: VideoRequest, progress: ProgressCallback) -> VideoOutput:
        """Run the pipeline; frames come back as uint8 RGB. An extension opens with the
        source's own frames (:class:`~generator.diffusers_conditioning.FramePlan`)."""
        self.check_inputs(request)
        plan = self.plan(request)
        seed = resolve_seed(request)
        with self._lock:
            pipe = self.pipeline() if request.conditioning is None else self.conditioned_pipeline()
            try:
                result = pipe(**self._call_kwargs(request, plan, seed, progress))
            except (RuntimeError, ValueError) as exc:
                raise BackendError(f"{self.model_id}: generation failed: {exc}") from exc
        frames = _to_uint8(result.frames[0])
        expected = (plan.num_frames, request.height, request.width)
        if frames.shape[:3] != expected:
            raise BackendError(
                f"{self.model_id}: pipeline returned {frames.shape[:3]} (frames, height, width), "
                f"expected {expected}; the folder's component configs do not fit together"
            )
        progress(1.0)
        return VideoOutput(
            frames=plan.finish(frames),
            fps=plan.fps,
            seed=seed,
            backend=self.name,
            model_id=self.model_id,
        )


def _to_uint8(video: Any) -> np.ndarray:
    """(T, H, W, 3) floats in [0, 1] (or a list of PIL images) -> uint8."""
    if isinstance(video, list):
        return np.stack([np.asarray(frame.convert("RGB")) for frame in video]).astype(np.uint8)
    array = np.asarray(video, dtype=np.float32)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise BackendError(f"pipeline returned frames of shape {array.shape}, not (T, H, W, 3)")
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
