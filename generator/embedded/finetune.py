"""Fine-tune the shipped text-to-video model into one that also continues known frames.

    python -m generator.embedded.finetune --out runs/cond --resume
    python -m generator.embedded.finetune --out runs/cond \
        --export generator/weights/tiny_dit.safetensors

Extension used to keep the source's frames RePaint-style only, and the model, trained on clips
that each cross the frame once, put the object back at a starting position after the seam.
This fine-tune starts from the shipped weights (``--base``) and adds frame conditioning
(:class:`~generator.embedded.model.VideoDiT` with ``frame_conditioning``: the known frames'
clean latents and a mask, through a zero-initialised projection, so step 0 is the base model):

1. An encoder for the shipped decoder (whose own encoder was not shipped): trained on the base
   model's samples (frames -> the latents they were decoded from, so it maps onto the latents
   the transformer knows) plus reconstruction through the frozen decoder on rendered clips.
2. The transformer, on a rolling pool of rendered clips of which most are windows further
   along their shape's path (:func:`generator.embedded.data.trajectory` with ``start``): the
   shape goes on moving, leaves the frame, keeps bouncing. Each example keeps a random number
   of its first frames known (most often :data:`~generator.embedded.conditioned.CONTEXT_FRAMES`
   as an extension does); the loss is on the other frames. A share of plain clips without
   known frames keeps text-to-video as it was. Same objective, noise levels and guidance
   dropout as :mod:`generator.embedded.train`; an EMA of weights.

Seeded; a checkpoint (models, optimiser, EMA, pool, random states) is written atomically every
``--checkpoint-minutes`` and at the end, and ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from generator.embedded import data
from generator.embedded.model import FrameAutoencoder, VideoDiT
from generator.embedded.train import (
    PROMPT_DROP,
    SLOT_DROP,
    sample_t,
    slot_ids,
    to_unit,
    write_weights,
)

SEED = 4321
POOL = 2048
REFRESH = 4
PLAIN_SHARE = 0.3
"""Share of training examples with no known frame (plain text-to-video)."""
ENCODER_CLIPS = 64
ENCODER_BATCH = 64
EMA_DECAY = 0.998


def draw_start(rng: np.random.Generator) -> int:
    """Where along its path a pooled clip starts: 0 (the clip itself), often 8 or 16 (an
    extension's first and second window), else any even frame up to 32."""
    r = rng.random()
    if r < 0.4:
        return 0
    if r < 0.65:
        return 8
    if r < 0.8:
        return 16
    return int(rng.integers(1, 17)) * 2


def draw_known(rng: np.random.Generator, start: int) -> int:
    """How many leading frames of an example are known: none for a share of clips that start
    at 0 (text-to-video), else an even count from 2 to 12, most often 8."""
    if start == 0 and rng.random() < PLAIN_SHARE / 0.4:
        return 0
    if rng.random() < 0.6:
        return 8
    return int(rng.choice([2, 4, 6, 10, 12]))


class FineTuner:
    """The base model loaded for training, the new encoder, the optimiser, pool and random
    state."""

    def __init__(self, base: Path, batch: int, lr: float, pool: int = POOL) -> None:
        from generator.embedded.backend import TinyDiT

        torch.manual_seed(SEED)
        self.base_path = base
        self.base_sha256 = hashlib.sha256(base.read_bytes()).hexdigest()
        self.tiny = TinyDiT(base)
        self.base_meta = dict(self.tiny.metadata)
        self.config = replace(self.tiny.config, frame_conditioning=True)
        self.dit = VideoDiT(self.config)
        missing, unexpected = self.dit.load_state_dict(self.tiny.dit.state_dict(), strict=False)
        assert missing == ["known_embed.weight"] and not unexpected, (missing, unexpected)
        self.ema = VideoDiT(self.config)
        self.ema.load_state_dict(self.dit.state_dict())
        self.ema.requires_grad_(False)
        self.decoder = self.tiny.decoder.decoder.requires_grad_(False)
        self.encoder = FrameAutoencoder(self.config.latent_channels).encoder
        self.enc_opt = torch.optim.AdamW(self.encoder.parameters(), lr=2e-3, weight_decay=0.0)
        self.opt = torch.optim.AdamW(self.dit.parameters(), lr=lr, weight_decay=0.0)
        self.batch = batch
        self.lr = lr
        self.pool_size = pool
        self.rng = np.random.default_rng(SEED)
        self.gen = torch.Generator().manual_seed(SEED)
        self.mean = self.tiny.latent_mean.view(-1)
        self.std = self.tiny.latent_std.view(-1)
        self.pairs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.enc_step = 0
        self.step = 0
        self.pool: torch.Tensor | None = None
        self.pool_w: torch.Tensor | None = None
        self.pool_ids: torch.Tensor | None = None
        self.pool_start: torch.Tensor | None = None
        self.log: list[dict[str, float]] = []

    # ---- encoder ------------------------------------------------------------------------
    @torch.no_grad()
    def sample_pairs(self, clips: int) -> None:
        """Frames the base model samples, with the (unnormalised) latents they decode from."""
        frames, latents = [], []
        for i in range(0, clips, 8):
            specs = [data.random_spec(self.rng) for _ in range(min(8, clips - i))]
            z = self.tiny.sample_latents(slot_ids(specs), seed=SEED + i)
            x = self.tiny.decode(z)  # (b, T, 64, 64, 3) uint8
            z = (z * self.tiny.latent_std + self.tiny.latent_mean).clamp(-1, 1)
            frames.append(to_unit(x))
            latents.append(z.permute(0, 2, 1, 3, 4).reshape(-1, *z.shape[1:2], *z.shape[3:]))
            print(f"encoder pairs {i + len(specs)}/{clips}", flush=True)
        self.pairs = (torch.cat(frames).half(), torch.cat(latents).half())

    def encoder_train_step(self) -> float:
        """Latent regression on the model's samples plus reconstruction of rendered frames."""
        assert self.pairs is not None
        x, z = self.pairs
        idx = torch.randint(0, len(x), (ENCODER_BATCH,), generator=self.gen)
        x, z = x[idx].float(), z[idx].float()
        frames, masks, _ = data.batch(self.rng, 2, [int(self.rng.integers(0, 17)) * 2] * 2)
        xr = to_unit(frames)
        wr = 1.0 + 8.0 * torch.from_numpy(masks.reshape(-1, 1, 64, 64))
        fit = ((torch.tanh(self.encoder(x)) - z) ** 2).mean()
        rec = (wr * (self.decoder(torch.tanh(self.encoder(xr))) - xr) ** 2).mean()
        loss = fit + 0.5 * rec
        self.enc_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.enc_opt.step()
        self.enc_step += 1
        return float(loss.detach())

    # ---- pool ---------------------------------------------------------------------------
    @torch.no_grad()
    def encode_clips(self, n: int) -> tuple[torch.Tensor, ...]:
        starts = [draw_start(self.rng) for _ in range(n)]
        frames, masks, specs = data.batch(self.rng, n, starts)
        c = self.config
        z = torch.tanh(self.encoder(to_unit(frames)))
        z = z.reshape(n, c.frames, c.latent_channels, 8, 8).permute(0, 2, 1, 3, 4)
        z = (z - self.mean.view(1, -1, 1, 1, 1)) / self.std.view(1, -1, 1, 1, 1)
        m = F.avg_pool2d(torch.from_numpy(masks), 8)
        w = 1.0 + 4.0 * (m > 0.02).float()
        return z.half(), w.half(), slot_ids(specs), torch.tensor(starts)

    @torch.no_grad()
    def start_pool(self) -> None:
        self.encoder.eval()
        chunk = min(256, self.pool_size)
        parts = [self.encode_clips(chunk) for _ in range(self.pool_size // chunk)]
        self.pool, self.pool_w, self.pool_ids, self.pool_start = (
            torch.cat([p[i] for p in parts]) for i in range(4)
        )

    # ---- transformer --------------------------------------------------------------------
    def dit_train_step(self) -> float:
        assert self.pool is not None and self.pool_w is not None
        assert self.pool_ids is not None and self.pool_start is not None
        new = self.encode_clips(REFRESH)
        slots = torch.randint(0, self.pool_size, (REFRESH,), generator=self.gen)
        self.pool[slots], self.pool_w[slots], self.pool_ids[slots], self.pool_start[slots] = new
        idx = torch.randint(0, self.pool_size, (self.batch,), generator=self.gen)
        x0 = self.pool[idx].float()
        weight = self.pool_w[idx].float()[:, None]
        ids = self.pool_ids[idx].clone()
        ids[torch.rand(ids.shape, generator=self.gen) < SLOT_DROP] = 0
        ids[torch.rand(self.batch, generator=self.gen) < PROMPT_DROP] = 0
        known = torch.tensor([draw_known(self.rng, int(s)) for s in self.pool_start[idx]])
        keep = torch.arange(self.config.frames)[None] < known[:, None]  # (B, T)
        noise = torch.randn(x0.shape, generator=self.gen)
        t = sample_t(self.batch, self.gen)
        tb = t.view(-1, 1, 1, 1, 1)
        # Known frames are noised like the rest, as the sampler re-imposes them (RePaint);
        # their clean latents come in through the conditioning.
        x_t = (1 - tb) * x0 + tb * noise
        x0_hat = self.dit(x_t, t, ids, known=x0, keep=keep)
        err = (x0 - x0_hat) / tb.clamp_min(0.05)
        new_frames = (~keep).float()[:, None, :, None, None].expand_as(err)
        loss = (weight * new_frames * err**2).sum() / new_frames.sum()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.dit.parameters(), 1.0)
        warm = min(1.0, (self.step + 1) / 100)
        for g in self.opt.param_groups:
            g["lr"] = self.lr * warm
        self.opt.step()
        decay = min(EMA_DECAY, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for pe, pm in zip(self.ema.parameters(), self.dit.parameters(), strict=True):
                pe.lerp_(pm, 1 - decay)
        self.step += 1
        return float(loss.detach())

    # ---- checkpoints --------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "base_sha256": self.base_sha256,
            "base_meta": self.base_meta,
            "dit": self.dit.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "encoder": self.encoder.state_dict(),
            "enc_opt": self.enc_opt.state_dict(),
            "decoder": self.decoder.state_dict(),
            "latent_mean": self.mean,
            "latent_std": self.std,
            "pairs": self.pairs,
            "rng": self.rng.bit_generator.state,
            "gen": self.gen.get_state(),
            "enc_step": self.enc_step,
            "step": self.step,
            "pool": self.pool,
            "pool_w": self.pool_w,
            "pool_ids": self.pool_ids,
            "pool_start": self.pool_start,
            "log": self.log,
        }

    def load(self, state: dict[str, Any]) -> None:
        if state["base_sha256"] != self.base_sha256:
            raise SystemExit(
                f"{self.base_path}: the checkpoint was fine-tuned from another base "
                f"(sha256 {state['base_sha256']})"
            )
        self.dit.load_state_dict(state["dit"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.encoder.load_state_dict(state["encoder"])
        self.enc_opt.load_state_dict(state["enc_opt"])
        self.pairs = state["pairs"]
        self.rng.bit_generator.state = state["rng"]
        self.gen.set_state(state["gen"])
        self.enc_step, self.step = state["enc_step"], state["step"]
        self.pool, self.pool_w = state["pool"], state["pool_w"]
        self.pool_ids, self.pool_start = state["pool_ids"], state["pool_start"]
        self.log = state["log"]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        tmp.replace(path)


def export(checkpoint: Path, out: Path) -> str:
    """Write the EMA transformer, the encoder and the (base) decoder as fp16 safetensors, and
    the model card beside it; return the sha256."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in state["ema"].items():
        tensors[f"dit.{k}"] = v.half().contiguous()
    for k, v in state["encoder"].items():
        tensors[f"ae.encoder.{k}"] = v.half().contiguous()
    for k, v in state["decoder"].items():
        tensors[f"ae.decoder.{k}"] = v.half().contiguous()
    tensors["latent_mean"] = state["latent_mean"].float().contiguous()
    tensors["latent_std"] = state["latent_std"].float().contiguous()
    base = state["base_meta"]
    info = {
        "config": state["config"],
        "dit_steps": base["dit_steps"],
        "ae_steps": base["ae_steps"],
        "seed": base["seed"],
        "conditioning_steps": state["step"],
        "encoder_steps": state["enc_step"],
        "conditioning_seed": SEED,
        "base_sha256": state["base_sha256"],
    }
    return write_weights(
        out,
        tensors,
        info,
        data_note="procedural clips (generator/embedded/data.py), and windows further along "
        "their paths for frame conditioning; held-out combinations excluded",
        reproduce=(
            f"python -m generator.embedded.train --out runs/dit --resume "
            f"--ae-steps {base['ae_steps']} --steps {base['dit_steps']} --threads 1 && "
            f"python -m generator.embedded.train --out runs/dit --export base.safetensors && "
            f"python -m generator.embedded.finetune --base base.safetensors --out runs/cond "
            f"--resume --encoder-clips {len(state['pairs'][0]) // state['config']['frames']} "
            f"--encoder-steps {state['enc_step']} --steps {state['step']} --threads 1 && "
            f"python -m generator.embedded.finetune --out runs/cond --export {out.name}"
        ),
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    from generator.embedded.backend import WEIGHTS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", type=Path, default=WEIGHTS, help="text-to-video weights to start from")
    p.add_argument("--out", type=Path, default=Path("runs/cond"), help="checkpoint folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument(
        "--encoder-clips",
        type=int,
        default=ENCODER_CLIPS,
        help="base-model samples the encoder learns the latents of",
    )
    p.add_argument("--encoder-steps", type=int, default=1000)
    p.add_argument("--steps", type=int, default=3000, help="transformer fine-tuning steps")
    p.add_argument(
        "--stop-after-minutes",
        type=float,
        default=0.0,
        help="save and stop after this long (0: run all steps); resume later",
    )
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--pool", type=int, default=POOL)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--export", type=Path, help="write weights from OUT/checkpoint.pt")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    ckpt = args.out / "checkpoint.pt"
    if args.export:
        print(f"{args.export} sha256={export(ckpt, args.export)}")
        return
    torch.set_num_threads(args.threads)
    tuner = FineTuner(args.base, args.batch, args.lr, args.pool)
    if args.resume and ckpt.exists():
        tuner.load(torch.load(ckpt, map_location="cpu", weights_only=False))
        print(f"resumed at enc_step={tuner.enc_step} step={tuner.step}", flush=True)
    t0 = last_save = time.monotonic()

    def due() -> bool:
        return args.stop_after_minutes > 0 and time.monotonic() - t0 > 60 * args.stop_after_minutes

    if tuner.pairs is None:
        tuner.sample_pairs(args.encoder_clips)
        tuner.save(ckpt)
    losses: list[float] = []
    while tuner.enc_step < args.encoder_steps and not due():
        losses.append(tuner.encoder_train_step())
        if tuner.enc_step % 100 == 0:
            print(f"encoder {tuner.enc_step} loss {np.mean(losses):.5f} "
                  f"{time.monotonic() - t0:.0f}s", flush=True)  # fmt: skip
            losses = []
    if tuner.pool is None and not due():
        tuner.start_pool()
        tuner.save(ckpt)
        last_save = time.monotonic()
        print(f"pool ready {time.monotonic() - t0:.0f}s", flush=True)
    tuner.dit.train()
    losses = []
    while tuner.step < args.steps and not due():
        losses.append(tuner.dit_train_step())
        if tuner.step % 25 == 0:
            mean = float(np.mean(losses))
            tuner.log.append({"step": tuner.step, "loss": mean})
            print(f"dit {tuner.step} loss {mean:.4f} {time.monotonic() - t0:.0f}s", flush=True)
            losses = []
            if not math.isfinite(mean):
                raise SystemExit("loss is not finite; lower --lr")
        if time.monotonic() - last_save > 60 * args.checkpoint_minutes:
            tuner.save(ckpt)
            last_save = time.monotonic()
    tuner.save(ckpt)
    print("stopped (resume to go on)" if tuner.step < args.steps else "done", flush=True)


if __name__ == "__main__":
    main()
