"""The default backend: the embedded tiny text-to-video diffusion transformer, on CPU.

It understands a closed vocabulary (see :mod:`generator.embedded.vocab`): one coloured shape
(circle, square, triangle) moving left/right/up/down, bouncing, growing or shrinking, over a
named background colour. Other words are mapped to the nearest known concept or ignored, and
the output says which. It renders 16 frames at 64x64 (two seconds at 8 fps), then retimes and
upsamples them to the requested length, frame rate and size.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from config.settings import Settings
from generator.base import (
    BackendUnavailable,
    InvalidVideoRequest,
    ProgressCallback,
    PromptNotUnderstood,
    VideoOutput,
    VideoRequest,
    check_common,
    resize_frames,
    resolve_seed,
    retime_frames,
)
from generator.embedded.data import FPS
from generator.embedded.model import FrameAutoencoder, ModelConfig, VideoDiT
from generator.embedded.vocab import SLOT_VALUES, SLOTS, ParsedPrompt, parse_prompt

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "tiny_dit.safetensors"
WEIGHTS_CARD = WEIGHTS.with_suffix(".json")
"""Recorded sha256 (and training details) of the shipped weights, checked at load time."""
MAX_SECONDS = 10.0
MAX_SIDE = 1024
GUIDANCE = 4.0
SHIFT = 3.0


def slot_tensor(parsed: ParsedPrompt) -> torch.Tensor:
    """(1, 4) slot ids for a parsed prompt (0 = unspecified)."""
    ids = []
    for slot in SLOTS:
        value = parsed.slot(slot)
        ids.append(0 if value is None else SLOT_VALUES[slot].index(value) + 1)
    return torch.tensor([ids], dtype=torch.long)


class TinyDiT:
    """The loaded model: transformer, latent statistics and frame decoder (fp32 on CPU)."""

    def __init__(self, path: Path) -> None:
        from safetensors import SafetensorError, safe_open

        if not path.is_file():
            raise BackendUnavailable(
                f"{path}: embedded weights not found; train them with "
                "`python -m generator.embedded.train --out runs/dit --resume` and export with "
                "`--export`, or set REELGUARD_EMBEDDED_WEIGHTS"
            )
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = json.loads((f.metadata() or {})["reelguard"])
                tensors = {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118
            self.config = ModelConfig(**meta["config"])
        except (OSError, KeyError, TypeError, ValueError, SafetensorError) as exc:
            raise BackendUnavailable(f"{path}: not embedded DiT weights ({exc})") from exc
        self.metadata: dict[str, object] = meta
        self.dit = VideoDiT(self.config)
        self.dit.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("dit.")})
        self.dit.eval()
        ae = FrameAutoencoder(self.config.latent_channels)
        ae.decoder.load_state_dict(
            {k[11:]: v for k, v in tensors.items() if k.startswith("ae.decoder.")}
        )
        self.decoder = ae.eval()
        self.latent_mean = tensors["latent_mean"].view(1, -1, 1, 1, 1)
        self.latent_std = tensors["latent_std"].view(1, -1, 1, 1, 1)

    @torch.inference_mode()
    def sample(
        self,
        ids: torch.Tensor,
        seed: int,
        *,
        steps: int = 20,
        guidance: float = GUIDANCE,
        progress: ProgressCallback | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Sample clips for slot ids (B, 4): uint8 frames (B, 16, 64, 64, 3). Deterministic."""
        from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
            FlowMatchEulerDiscreteScheduler,
        )

        c = self.config
        b = ids.shape[0]
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=SHIFT)
        scheduler.set_timesteps(steps)
        gen = torch.Generator().manual_seed(seed)
        shape = (b, c.latent_channels, c.frames, c.latent_size, c.latent_size)
        z = torch.randn(shape, generator=gen)
        both = torch.cat([ids, torch.zeros_like(ids)])
        for i, t in enumerate(scheduler.timesteps):
            sigma = float(t) / 1000.0
            x0 = self.dit(torch.cat([z, z]), torch.full((2 * b,), sigma), both)
            cond, uncond = x0.chunk(2)
            x0_hat = uncond + guidance * (cond - uncond)
            velocity = (z - x0_hat) / max(sigma, 0.05)
            z = scheduler.step(velocity, t, z).prev_sample
            if progress is not None:
                progress(0.95 * (i + 1) / steps)
        z = z * self.latent_std + self.latent_mean
        lat = z.permute(0, 2, 1, 3, 4).reshape(-1, c.latent_channels, c.latent_size, c.latent_size)
        x = self.decoder.decode(lat.clamp(-1, 1))
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        x = x.permute(0, 2, 3, 1).reshape(b, c.frames, c.size, c.size, 3)
        return x.numpy()


class EmbeddedBackend:
    """:class:`generator.base.VideoBackend` over :class:`TinyDiT` (thread-safe, one lock)."""

    name = "embedded"

    def __init__(
        self,
        weights: Path = WEIGHTS,
        *,
        steps: int = 20,
        threads: int = 1,
        refuse_not_understood: bool = True,
    ) -> None:
        self.weights = weights
        self.steps = steps
        self.threads = threads
        self.refuse_not_understood = refuse_not_understood
        self._model: TinyDiT | None = None
        self._lock = threading.Lock()
        self.model_id = f"reelguard/tiny-dit@{_short_hash(weights)}"

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedBackend:
        """Build from ``REELGUARD_EMBEDDED_*`` settings."""
        return cls(
            settings.embedded_weights or WEIGHTS,
            steps=settings.embedded_steps,
            threads=settings.torch_threads,
            refuse_not_understood=settings.embedded_refuse_not_understood,
        )

    def model(self) -> TinyDiT:
        """Load the weights once, checking the shipped file's recorded sha256."""
        if self._model is None:
            if self.weights == WEIGHTS and WEIGHTS.is_file():
                try:
                    expected = json.loads(WEIGHTS_CARD.read_text())["sha256"]
                except (OSError, ValueError, KeyError) as exc:
                    raise BackendUnavailable(
                        f"{WEIGHTS_CARD}: cannot read the recorded sha256 ({exc}); reinstall"
                    ) from exc
                actual = hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
                if actual != expected:
                    raise BackendUnavailable(
                        f"{WEIGHTS}: sha256 {actual} does not match {WEIGHTS_CARD} "
                        f"({expected}); reinstall the package"
                    )
            self._model = TinyDiT(self.weights)
        return self._model

    def check_inputs(self, request: VideoRequest) -> None:
        """Shared checks: 0 < seconds <= 10, even sides 16..1024, fps 1..60; and, unless
        ``refuse_not_understood`` is off, a prompt with at least one word the model knows
        (:class:`~generator.base.PromptNotUnderstood` otherwise)."""
        check_common(request, max_seconds=MAX_SECONDS, max_side=MAX_SIDE, conditioning=True)
        if self.refuse_not_understood:
            parsed = parse_prompt(request.prompt)
            if not parsed.understood:
                raise PromptNotUnderstood(
                    f"the embedded model understands none of its words "
                    f"({', '.join(parsed.ignored) or 'none'}), so it would draw a shape the "
                    "prompt never asked for; it draws one coloured circle, square or triangle "
                    "moving left, right, up or down, bouncing, growing or shrinking over a "
                    "coloured background, e.g. 'a red circle bouncing on a blue background'",
                    parsed.ignored,
                )

    def generate(self, request: VideoRequest, progress: ProgressCallback) -> VideoOutput:
        """Render the prompt; the 2-second native clip is stretched to ``request.seconds``."""
        self.check_inputs(request)
        parsed = parse_prompt(request.prompt)
        seed = resolve_seed(request)
        with self._lock:
            torch.set_num_threads(self.threads)
            clip = self.model().sample(slot_tensor(parsed), seed, steps=self.steps,
                                       progress=progress)[0]  # fmt: skip
        fps = float(request.fps or FPS)
        frames = retime_frames(clip, FPS, fps, request.seconds)
        frames = resize_frames(frames, request.width, request.height)
        if request.conditioning is not None:
            frames = blend_start(frames, request.conditioning.start_image)
        progress(1.0)
        return VideoOutput(
            frames=frames,
            fps=fps,
            seed=seed,
            backend=self.name,
            model_id=self.model_id,
            understood=parsed.understood,
            ignored=parsed.ignored,
        )


START_BLEND_S = 0.5
"""How long the embedded model's start image fades into the generated clip (seconds at the
native frame rate: the first :data:`START_BLEND_FRAMES` frames)."""
START_BLEND_FRAMES = round(START_BLEND_S * FPS)


def blend_start(
    frames: npt.NDArray[np.uint8], start: npt.NDArray[np.uint8]
) -> npt.NDArray[np.uint8]:
    """The clip opening on ``start`` and cross-fading into the generated frames.

    The tiny model was not trained with image conditioning, so a reference image is used as
    a start frame: frame 0 is the image, and its weight falls linearly to 0 over
    :data:`START_BLEND_FRAMES` frames. (SDEdit-style sampling from a noised start image is
    the better method; it is not done here.) Every output frame is audited as usual.
    """
    out = frames.astype(np.float32)
    n = min(len(frames), START_BLEND_FRAMES)
    for t in range(n):
        w = 1.0 - t / max(1, n)
        out[t] = w * start.astype(np.float32) + (1.0 - w) * out[t]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _short_hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return "missing"


__all__ = ["EmbeddedBackend", "InvalidVideoRequest", "TinyDiT"]
