"""Train the embedded text-to-video model from scratch on procedural clips, resumably.

    python -m generator.embedded.train --out runs/dit --resume
    python -m generator.embedded.train --out runs/dit \
        --export generator/weights/tiny_dit.safetensors

Two phases, both seeded so a run is reproducible step by step (on one CPU thread):

1. The per-frame autoencoder (``--ae-steps``), with the loss weighted towards the shape.
2. The diffusion transformer (``--steps``) on latents of a rolling pool of clips (a few clips are
   replaced every step); from step 10 each step also fine-tunes the decoder alone (L1 + L2),
   which leaves the encoder and so the transformer's targets unchanged. Rectified flow with
   x-prediction and the loss on the velocity, noise levels drawn half uniform and half
   logit-normal shifted towards full noise, the loss weighted towards the moving shape, slot
   dropout for classifier-free guidance, and an EMA of weights.

A checkpoint (models, optimiser, EMA, pool and every random state) is written atomically every
``--checkpoint-minutes`` and at the end; ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from generator.embedded import data
from generator.embedded.model import FrameAutoencoder, ModelConfig, VideoDiT
from generator.embedded.vocab import SLOT_VALUES, SLOTS

SEED = 1234
POOL = 4096
REFRESH = 4
SLOT_DROP = 0.15
PROMPT_DROP = 0.10
SHIFT = 3.0
DECODER_START = 10
"""From this transformer step on, every step also fine-tunes the frame decoder."""
DECODER_CLIPS = 2
DECODER_LR = 1e-3


def slot_ids(specs: list[data.ClipSpec]) -> torch.Tensor:
    """(B, 4) slot word ids (0 = unspecified) for clip specs."""
    rows = [[SLOT_VALUES[slot].index(getattr(s, slot)) + 1 for slot in SLOTS] for s in specs]
    return torch.tensor(rows, dtype=torch.long)


def to_unit(frames: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(frames.reshape(-1, *frames.shape[-3:])).float()
    return x.permute(0, 3, 1, 2) / 127.5 - 1.0


def sample_t(n: int, gen: torch.Generator) -> torch.Tensor:
    """Noise levels: half uniform, half logit-normal, then shifted towards 1 (full noise)."""
    u = torch.rand(n, generator=gen)
    ln = torch.sigmoid(torch.randn(n, generator=gen))
    pick = torch.rand(n, generator=gen) < 0.5
    t = torch.where(pick, u, ln)
    return SHIFT * t / (1 + (SHIFT - 1) * t)


class Trainer:
    """Holds both models, the optimisers, the latent pool and all random state."""

    def __init__(self, config: ModelConfig, batch: int, lr: float, pool: int = POOL) -> None:
        torch.manual_seed(SEED)
        self.config = config
        self.batch = batch
        self.pool_size = pool
        self.lr = lr
        self.ae = FrameAutoencoder(config.latent_channels)
        self.ae_opt = torch.optim.AdamW(self.ae.parameters(), lr=2e-3, weight_decay=0.0)
        self.dit = VideoDiT(config)
        self.ema = VideoDiT(config)
        self.ema.load_state_dict(self.dit.state_dict())
        self.ema.requires_grad_(False)
        self.opt = torch.optim.AdamW(self.dit.parameters(), lr=lr, weight_decay=0.0)
        self.rng = np.random.default_rng(SEED)
        self.gen = torch.Generator().manual_seed(SEED)
        self.ae_step = 0
        self.step = 0
        self.latent_mean = torch.zeros(config.latent_channels)
        self.latent_std = torch.ones(config.latent_channels)
        self.pool: torch.Tensor | None = None  # (POOL, C, T, 8, 8) float16, normalised
        self.pool_w: torch.Tensor | None = None  # (POOL, T, 8, 8) float16 loss weights
        self.pool_ids: torch.Tensor | None = None  # (POOL, 4)
        self.log: list[dict[str, float]] = []

    # ---- autoencoder -------------------------------------------------------------------
    def ae_train_step(self) -> float:
        frames, masks, _ = data.batch(self.rng, 4)
        x = to_unit(frames)
        w = 1.0 + 8.0 * torch.from_numpy(masks.reshape(-1, 1, 64, 64))
        z = self.ae.encode(x)
        z = z + 0.05 * torch.randn(z.shape, generator=self.gen)
        loss = (w * (self.ae.decode(z) - x) ** 2).mean()
        self.ae_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.ae_opt.step()
        self.ae_step += 1
        return float(loss.detach())

    def decoder_train_step(self) -> float:
        """Fine-tune only the decoder (the encoder, hence the pool's latents, stays fixed)."""
        frames, masks, _ = data.batch(self.rng, DECODER_CLIPS)
        x = to_unit(frames)
        w = 1.0 + 8.0 * torch.from_numpy(masks.reshape(-1, 1, 64, 64))
        with torch.no_grad():
            z = self.ae.encode(x)
        z = z + 0.05 * torch.randn(z.shape, generator=self.gen)
        err = self.ae.decode(z) - x
        # L1 as well as L2: L2 alone settles for blurred edges and colour halos.
        loss = (w * (err**2 + err.abs())).mean()
        self.ae_opt.zero_grad(set_to_none=True)
        loss.backward()
        for g in self.ae_opt.param_groups:
            g["lr"] = DECODER_LR
        self.ae_opt.step()
        return float(loss.detach())

    @torch.no_grad()
    def encode_clips(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        frames, masks, specs = data.batch(self.rng, n)
        c = self.config
        z = self.ae.encode(to_unit(frames))  # (n*T, C, 8, 8)
        z = z.reshape(n, c.frames, c.latent_channels, 8, 8).permute(0, 2, 1, 3, 4)
        z = (z - self.latent_mean.view(1, -1, 1, 1, 1)) / self.latent_std.view(1, -1, 1, 1, 1)
        m = F.avg_pool2d(torch.from_numpy(masks), 8)  # (n, T, 8, 8) shape coverage per cell
        w = 1.0 + 4.0 * (m > 0.02).float()
        return z.half(), w.half(), slot_ids(specs)

    @torch.no_grad()
    def start_pool(self) -> None:
        self.ae.eval()
        frames, _, _ = data.batch(self.rng, 64)
        z = self.ae.encode(to_unit(frames))
        self.latent_mean = z.mean(dim=(0, 2, 3))
        self.latent_std = z.std(dim=(0, 2, 3)).clamp_min(1e-3)
        chunk = min(256, self.pool_size)
        parts = [self.encode_clips(chunk) for _ in range(self.pool_size // chunk)]
        self.pool = torch.cat([p[0] for p in parts])
        self.pool_w = torch.cat([p[1] for p in parts])
        self.pool_ids = torch.cat([p[2] for p in parts])

    # ---- diffusion transformer ---------------------------------------------------------
    def dit_train_step(self) -> float:
        assert self.pool is not None and self.pool_w is not None and self.pool_ids is not None
        z_new, w_new, ids_new = self.encode_clips(REFRESH)
        slots = torch.randint(0, self.pool_size, (REFRESH,), generator=self.gen)
        self.pool[slots], self.pool_w[slots], self.pool_ids[slots] = z_new, w_new, ids_new
        idx = torch.randint(0, self.pool_size, (self.batch,), generator=self.gen)
        x0 = self.pool[idx].float()
        weight = self.pool_w[idx].float()[:, None]
        ids = self.pool_ids[idx].clone()
        ids[torch.rand(ids.shape, generator=self.gen) < SLOT_DROP] = 0
        ids[torch.rand(self.batch, generator=self.gen) < PROMPT_DROP] = 0
        noise = torch.randn(x0.shape, generator=self.gen)
        t = sample_t(self.batch, self.gen)
        tb = t.view(-1, 1, 1, 1, 1)
        x_t = (1 - tb) * x0 + tb * noise
        x0_hat = self.dit(x_t, t, ids)
        # v = noise - x0 and v_hat = (x_t - x0_hat) / t, so v_hat - v = (x0 - x0_hat) / t.
        err = (x0 - x0_hat) / tb.clamp_min(0.05)
        loss = (weight * err**2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.dit.parameters(), 1.0)
        warm = min(1.0, (self.step + 1) / 300)
        for g in self.opt.param_groups:
            g["lr"] = self.lr * warm
        self.opt.step()
        decay = min(0.999, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for pe, pm in zip(self.ema.parameters(), self.dit.parameters(), strict=True):
                pe.lerp_(pm, 1 - decay)
        self.step += 1
        return float(loss.detach())

    # ---- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "ae": self.ae.state_dict(),
            "ae_opt": self.ae_opt.state_dict(),
            "dit": self.dit.state_dict(),
            "ema": self.ema.state_dict(),
            "opt": self.opt.state_dict(),
            "rng": self.rng.bit_generator.state,
            "gen": self.gen.get_state(),
            "ae_step": self.ae_step,
            "step": self.step,
            "latent_mean": self.latent_mean,
            "latent_std": self.latent_std,
            "pool": self.pool,
            "pool_w": self.pool_w,
            "pool_ids": self.pool_ids,
            "log": self.log,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.ae.load_state_dict(state["ae"])
        self.ae_opt.load_state_dict(state["ae_opt"])
        self.dit.load_state_dict(state["dit"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.rng.bit_generator.state = state["rng"]
        self.gen.set_state(state["gen"])
        self.ae_step, self.step = state["ae_step"], state["step"]
        self.latent_mean, self.latent_std = state["latent_mean"], state["latent_std"]
        self.pool, self.pool_w, self.pool_ids = state["pool"], state["pool_w"], state["pool_ids"]
        self.log = state["log"]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        tmp.replace(path)


def export(checkpoint: Path, out: Path) -> str:
    """Write the EMA transformer and the autoencoder decoder as fp16 safetensors; return sha256."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    tensors: dict[str, torch.Tensor] = {}
    for k, v in state["ema"].items():
        tensors[f"dit.{k}"] = v.half().contiguous()
    for k, v in state["ae"].items():
        if k.startswith("decoder."):
            tensors[f"ae.{k}"] = v.half().contiguous()
    tensors["latent_mean"] = state["latent_mean"].float().contiguous()
    tensors["latent_std"] = state["latent_std"].float().contiguous()
    info = {
        "config": state["config"],
        "dit_steps": state["step"],
        "ae_steps": state["ae_step"],
        "seed": SEED,
    }
    return write_weights(
        out,
        tensors,
        info,
        data_note="procedural clips (generator/embedded/data.py); held-out combinations excluded",
        reproduce=(
            f"python -m generator.embedded.train --out runs/dit --resume "
            f"--ae-steps {state['ae_step']} --steps {state['step']} --threads 1 && "
            f"python -m generator.embedded.train --out runs/dit --export {out.name}"
        ),
    )


def write_weights(
    out: Path,
    tensors: dict[str, torch.Tensor],
    info: dict[str, Any],
    *,
    data_note: str,
    reproduce: str,
) -> str:
    """Write ``tensors`` as safetensors with ``info`` as metadata, and the model card (``.json``)
    beside them; return the file's sha256."""
    import hashlib

    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    # One metadata key: safetensors writes several keys in no fixed order, and the file's
    # sha256 must only depend on the training run.
    save_file(tensors, str(out), metadata={"reelguard": json.dumps(info, sort_keys=True)})
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    card = {
        "file": out.name,
        "sha256": digest,
        "bytes": out.stat().st_size,
        **info,
        "data": data_note,
        "reproduce": reproduce,
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return digest


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/dit"), help="checkpoint folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--ae-steps", type=int, default=500)
    p.add_argument("--steps", type=int, default=18195, help="transformer steps (shipped: 18195)")
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--pool", type=int, default=POOL, help="clips in the rolling latent pool")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--export", type=Path, help="write shipped weights from OUT/checkpoint.pt")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    ckpt = args.out / "checkpoint.pt"
    if args.export:
        print(f"{args.export} sha256={export(ckpt, args.export)}")
        return
    torch.set_num_threads(args.threads)
    config = replace(ModelConfig(), width=args.width, depth=args.depth, heads=args.heads)
    trainer = Trainer(config, args.batch, args.lr, args.pool)
    if args.resume and ckpt.exists():
        trainer.load(torch.load(ckpt, map_location="cpu", weights_only=False))
        print(f"resumed at ae_step={trainer.ae_step} step={trainer.step}", flush=True)
    last_save = time.monotonic()
    t0 = time.monotonic()
    losses: list[float] = []
    while trainer.ae_step < args.ae_steps:
        losses.append(trainer.ae_train_step())
        if trainer.ae_step % 50 == 0:
            print(f"ae {trainer.ae_step} loss {np.mean(losses):.5f} {time.monotonic() - t0:.0f}s",
                  flush=True)  # fmt: skip
            losses = []
        if time.monotonic() - last_save > 60 * args.checkpoint_minutes:
            trainer.save(ckpt)
            last_save = time.monotonic()
    if trainer.pool is None:
        trainer.start_pool()
        trainer.save(ckpt)
        last_save = time.monotonic()
        print(f"pool ready {time.monotonic() - t0:.0f}s", flush=True)
    trainer.dit.train()
    losses = []
    dec_losses: list[float] = []
    while trainer.step < args.steps:
        losses.append(trainer.dit_train_step())
        if trainer.step >= DECODER_START:
            dec_losses.append(trainer.decoder_train_step())
        if trainer.step % 50 == 0:
            mean = float(np.mean(losses))
            dec = float(np.mean(dec_losses)) if dec_losses else float("nan")
            trainer.log.append({"step": trainer.step, "loss": mean, "decoder_loss": dec})
            print(f"dit {trainer.step} loss {mean:.4f} decoder {dec:.4f} "
                  f"{time.monotonic() - t0:.0f}s", flush=True)  # fmt: skip
            losses, dec_losses = [], []
            if not math.isfinite(mean):
                raise SystemExit("loss is not finite; lower --lr")
        if time.monotonic() - last_save > 60 * args.checkpoint_minutes:
            trainer.save(ckpt)
            last_save = time.monotonic()
    trainer.save(ckpt)
    print("done", flush=True)


if __name__ == "__main__":
    main()
