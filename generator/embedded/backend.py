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
from generator.embedded.conditioned import edit_native, extend_native
from generator.embedded.data import FPS
from generator.embedded.guide import LatentGuide
from generator.embedded.model import FrameAutoencoder, ModelConfig, VideoDiT
from generator.embedded.vocab import SLOT_VALUES, SLOTS, ParsedPrompt, parse_prompt

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "tiny_dit.safetensors"
WEIGHTS_CARD = WEIGHTS.with_suffix(".json")
"""Recorded sha256 (and training details) of the shipped weights, checked at load time."""
MAX_SECONDS = 60.0
"""Longest video one request makes (the seed product's longest)."""
MAX_RETIMED_SECONDS = 10.0
"""Up to this length the 2-second native clip is retimed to the request; a longer video is the
native clip continued by extension (one-second windows, each continuing the last), as
``POST /v1/videos/extensions`` would continue it."""
MAX_EXTEND_SECONDS = 20.0
"""Longest new part of one extension (made in one-second windows, each continuing the last)."""
MAX_TOTAL_SECONDS = 60.0
"""Longest extended video (source plus new part): extend again to go on, up to this."""
MAX_SIDE = 1024
GUIDANCE = 4.0
SHIFT = 3.0
INVERT_STEPS = 80
"""Gradient steps of the decoder inversion that finds a source clip's latents."""


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
        encoder = {k[11:]: v for k, v in tensors.items() if k.startswith("ae.encoder.")}
        if encoder:
            ae.encoder.load_state_dict(encoder)
        self.has_encoder = bool(encoder)
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
        guide: LatentGuide | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Sample clips for slot ids (B, 4): uint8 frames (B, 16, 64, 64, 3). Deterministic."""
        return self.decode(
            self.sample_latents(
                ids, seed, steps=steps, guidance=guidance, progress=progress, guide=guide
            )
        )

    @torch.inference_mode()
    def sample_latents(
        self,
        ids: torch.Tensor,
        seed: int,
        *,
        steps: int = 20,
        guidance: float = GUIDANCE,
        progress: ProgressCallback | None = None,
        guide: LatentGuide | None = None,
    ) -> torch.Tensor:
        """The normalised clip latents (B, C, 16, 8, 8) for slot ids (B, 4); with ``guide``,
        RePaint-style kept frames and/or an SDEdit-style start (see :class:`LatentGuide`)."""
        from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
            FlowMatchEulerDiscreteScheduler,
        )

        c = self.config
        b = ids.shape[0]
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=SHIFT)
        scheduler.set_timesteps(steps)
        gen = torch.Generator().manual_seed(seed)
        shape = (b, c.latent_channels, c.frames, c.latent_size, c.latent_size)
        noise = torch.randn(shape, generator=gen)
        z, first = noise, 0
        if guide is not None and guide.start is not None:
            sigmas = [float(t) / 1000.0 for t in scheduler.timesteps]
            first = next(
                (i for i, sg in enumerate(sigmas) if sg <= guide.strength), len(sigmas) - 1
            )
            scheduler.set_begin_index(first)
            z = (1.0 - sigmas[first]) * guide.start + sigmas[first] * noise
        both = torch.cat([ids, torch.zeros_like(ids)])
        known = keep = None
        if self.config.frame_conditioning and guide is not None and guide.known is not None:
            # Both guidance branches see the known frames: guidance is on the text alone.
            assert guide.keep is not None
            known = guide.known.expand(2 * b, -1, -1, -1, -1)
            keep = guide.keep.view(1, -1).expand(2 * b, -1)
        timesteps = scheduler.timesteps[first:]
        for i, t in enumerate(timesteps):
            sigma = float(t) / 1000.0
            if guide is not None:
                z = guide.impose(z, noise, sigma)
            x0 = self.dit(
                torch.cat([z, z]), torch.full((2 * b,), sigma), both, known=known, keep=keep
            )
            cond, uncond = x0.chunk(2)
            x0_hat = uncond + guidance * (cond - uncond)
            velocity = (z - x0_hat) / max(sigma, 0.05)
            z = scheduler.step(velocity, t, z).prev_sample
            if progress is not None:
                progress(0.95 * (i + 1) / len(timesteps))
        if guide is not None:
            z = guide.impose(z, noise, 0.0)
        return z

    @torch.inference_mode()
    def decode(self, z: torch.Tensor) -> npt.NDArray[np.uint8]:
        """Normalised latents (B, C, T, 8, 8) -> uint8 frames (B, T, 64, 64, 3)."""
        c = self.config
        b, t = z.shape[0], z.shape[2]
        z = z * self.latent_std + self.latent_mean
        lat = z.permute(0, 2, 1, 3, 4).reshape(-1, c.latent_channels, c.latent_size, c.latent_size)
        x = self.decoder.decode(lat.clamp(-1, 1))
        x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        x = x.permute(0, 2, 3, 1).reshape(b, t, c.size, c.size, 3)
        return x.numpy()

    def invert(self, frames: npt.NDArray[np.uint8], steps: int = INVERT_STEPS) -> torch.Tensor:
        """Normalised latents (1, C, T, 8, 8) that decode to ``frames`` (T, 64, 64, 3).

        Weights with a frame encoder (those trained with frame conditioning, whose known
        frames came from it) encode; weights with the decoder alone find the latents by
        gradient descent through it (decoder inversion; about 3 px mean error at 64x64 after
        the default steps).
        """
        c = self.config
        target = torch.from_numpy(np.ascontiguousarray(frames)).float().permute(0, 3, 1, 2)
        target = target / 127.5 - 1.0
        if self.has_encoder:
            with torch.inference_mode():
                lat = self.decoder.encode(target).permute(1, 0, 2, 3).unsqueeze(0)
            return (lat - self.latent_mean) / self.latent_std
        with torch.enable_grad():
            u = torch.zeros(len(frames), c.latent_channels, c.latent_size, c.latent_size)
            u.requires_grad_(True)
            opt = torch.optim.Adam([u], lr=0.1)
            for _ in range(steps):
                opt.zero_grad()
                loss = ((self.decoder.decode(torch.tanh(u)) - target) ** 2).mean()
                loss.backward()
                opt.step()
        lat = torch.tanh(u.detach()).permute(1, 0, 2, 3).unsqueeze(0)
        return (lat - self.latent_mean) / self.latent_std


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
        """Shared checks: 0 < seconds <= 60 (an extension: a new part <= 20 s, a total <= 60 s),
        even sides 16..1024, fps 1..60, a start image, a video to extend or to edit at the
        request's size; and, unless
        ``refuse_not_understood`` is off, a prompt with at least one word the model knows
        (:class:`~generator.base.PromptNotUnderstood` otherwise)."""
        extending = request.conditioning is not None and request.conditioning.kind == "extend"
        check_common(
            request,
            max_seconds=MAX_EXTEND_SECONDS if extending else MAX_SECONDS,
            max_total_seconds=MAX_TOTAL_SECONDS if extending else MAX_SECONDS,
            max_side=MAX_SIDE,
            conditioning=("start_image", "extend", "edit"),
        )
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
        """Render the prompt; the 2-second native clip is stretched to ``request.seconds``
        (up to :data:`MAX_RETIMED_SECONDS`; a longer video continues it by extension).

        An extension keeps the source's frames and appends new ones at the source's frame rate
        (:func:`~generator.embedded.conditioned.extend_native`); an edit follows the source
        clip over its length (:func:`~generator.embedded.conditioned.edit_native`)."""
        self.check_inputs(request)
        parsed = parse_prompt(request.prompt)
        seed = resolve_seed(request)
        cond = request.conditioning
        ids = slot_tensor(parsed)
        with self._lock:
            torch.set_num_threads(self.threads)
            model = self.model()
            if cond is not None and cond.keep_frames is not None and cond.fps:
                fps = cond.fps
                new = extend_native(model, ids, seed, cond.keep_frames, fps,
                                    request.seconds - cond.kept_seconds, steps=self.steps,
                                    progress=progress)  # fmt: skip
                added = resize_frames(
                    retime_frames(new, FPS, fps, request.seconds - cond.kept_seconds),
                    request.width,
                    request.height,
                )
                frames = np.concatenate([cond.keep_frames, added])
            elif cond is not None and cond.start_clip is not None and cond.fps:
                fps = cond.fps
                clip = edit_native(model, ids, seed, cond.start_clip, fps, cond.strength,
                                   steps=self.steps, progress=progress)  # fmt: skip
                frames = resize_frames(
                    retime_frames(clip, FPS, fps, len(cond.start_clip) / fps),
                    request.width,
                    request.height,
                )
            else:
                if request.seconds > MAX_RETIMED_SECONDS:
                    clip = long_native(model, ids, seed, request.seconds, self.steps, progress)
                else:
                    clip = model.sample(ids, seed, steps=self.steps, progress=progress)[0]
                fps = float(request.fps or FPS)
                frames = resize_frames(
                    retime_frames(clip, FPS, fps, request.seconds), request.width, request.height
                )
                if cond is not None and cond.start_image is not None:
                    frames = blend_start(frames, cond.start_image)
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


def long_native(
    model: TinyDiT,
    ids: torch.Tensor,
    seed: int,
    seconds: float,
    steps: int,
    progress: ProgressCallback,
) -> npt.NDArray[np.uint8]:
    """``seconds`` of native frames: the native clip, then extension windows continuing it
    (:func:`~generator.embedded.conditioned.extend_native`) until the length is reached."""
    native_s = model.config.frames / FPS
    share = native_s / seconds
    clip = model.sample(ids, seed, steps=steps, progress=lambda f: progress(share * f))[0]
    more = extend_native(model, ids, seed, clip, float(FPS), seconds - native_s, steps=steps,
                         progress=lambda f: progress(share + (1.0 - share) * f))  # fmt: skip
    return np.concatenate([clip, more])


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
