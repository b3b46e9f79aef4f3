"""The embedded backend: prompt parsing, procedural data, the automatic checker, training
reproducibility, and the shipped weights."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from generator.base import (
    BackendUnavailable,
    PromptNotUnderstood,
    VideoBackend,
    VideoRequest,
    resize_frames,
)
from generator.embedded import backend as embedded
from generator.embedded import check, data
from generator.embedded.vocab import MOTIONS, SHAPES, canonical_prompt, parse_prompt

# (prompt, colour, shape, motion, background, ignored, why)
PARSES = [
    ("a red circle moving left on a blue background", "red", "circle", "left", "blue", (),
     "the training template"),
    ("Crimson ball falling against a navy backdrop", "red", "circle", "down", "blue", (),
     "synonyms for every slot"),
    ("a circel bouncing over green", None, "circle", "bounce", "green", (),
     "typo mapped to the nearest word; 'over' marks the background"),
    ("a yellow square, purple", "yellow", "square", None, "purple", (),
     "a second bare colour is the background"),
    ("a happy dog running in a park", None, None, None, None, ("happy", "dog", "running", "park"),
     "nothing known: every slot left to the model"),
    ("shrinking white triangle", "white", "triangle", "shrink", None, (), "word order free"),
    ("A GREEN CUBE rising on black", "green", "square", "up", "black", (), "case and synonyms"),
    ("a red dragon moving right", "red", None, "right", None, ("dragon",),
     "unknown noun ignored, the rest kept"),
]  # fmt: skip


@pytest.mark.parametrize(("prompt", "colour", "shape", "motion", "background", "ignored", "why"),
                         PARSES, ids=[p[-1] for p in PARSES])  # fmt: skip
def test_parse_prompt(
    prompt: str,
    colour: str | None,
    shape: str | None,
    motion: str | None,
    background: str | None,
    ignored: tuple[str, ...],
    why: str,
) -> None:
    parsed = parse_prompt(prompt)
    got = (parsed.colour, parsed.shape, parsed.motion, parsed.background)
    assert got == (colour, shape, motion, background), why
    assert parsed.ignored == ignored, why


def test_parse_reports_understood_words() -> None:
    parsed = parse_prompt("Crimson ball falling against a navy backdrop")
    assert parsed.understood == ("crimson", "ball", "falling", "navy", "backdrop")
    assert parse_prompt(canonical_prompt("red", "circle", "left", "blue")).describe() == (
        "a red circle moving left on a blue background"
    )


def test_held_out_split_is_stable_and_about_one_in_eight() -> None:
    combos = data.all_combinations()
    held = [c for c in combos if data.is_held_out(*c)]
    assert len(combos) == 8 * 7 * 3 * 7
    assert 0.08 < len(held) / len(combos) < 0.18
    rng = np.random.default_rng(0)
    for _ in range(50):
        spec = data.random_spec(rng)
        assert not data.is_held_out(spec.colour, spec.shape, spec.motion, spec.background)


def test_renderer_and_checker_agree() -> None:
    """The checker reads every attribute of the renderer's clips, even after H.264-like
    upsampling to a display size: it is a fair judge of the model."""
    rng = np.random.default_rng(1)
    for i, motion in enumerate(MOTIONS * 3):
        combo = data.COLOUR_NAMES[i % 8], SHAPES[i % 3], motion, data.COLOUR_NAMES[(i + 3) % 8]
        frames, mask = data.render(data.spec_for(*combo, rng))
        assert frames.shape == (16, 64, 64, 3) and mask.shape == (16, 64, 64)
        for clip in (frames, resize_frames(frames, 128, 128)):
            got = check.score(check.analyse(clip), *combo)
            assert (got.background, got.colour, got.shape, got.motion) == (True,) * 4, combo


def _clip_along(ys: list[float], x: float = 30.0) -> np.ndarray:
    spec = data.ClipSpec("red", "circle", "down", "blue", x, 0.0, x, 0.0, 9.0, 9.0)
    frames = np.empty((16, 64, 64, 3), dtype=np.uint8)
    for t, y in enumerate(ys):
        frames[t] = data.render(replace(spec, y0=y, y1=y))[0][0]
    return frames


@pytest.mark.parametrize(
    ("ys", "motion", "why"),
    [
        ([14 + 2 * t + (3 if t % 3 == 1 else 0) for t in range(16)], "down", "wobble is no bounce"),
        ([48 - 2 * t - (3 if t % 4 == 2 else 0) for t in range(16)], "up", "wobble is no bounce"),
        ([50, 40, 30, 20, 16, 24, 34, 44, 50, 42, 32, 22, 16, 22, 30, 40], "bounce", "two swings"),
    ],
)
def test_checker_counts_only_real_reversals_as_a_bounce(
    ys: list[float], motion: str, why: str
) -> None:
    assert check.analyse(_clip_along(ys)).motion == motion, why


def test_checker_on_an_empty_clip() -> None:
    blank = np.full((16, 64, 64, 3), 30, dtype=np.uint8)
    result = check.analyse(blank)
    assert result.colour is None and result.motion is None and result.background == "black"


def test_a_shape_leaving_the_frame_is_not_shrinking() -> None:
    """A shape that moves on out of the frame loses area at the edge; the checker reads its
    direction, not a shrink (the size is only measured while the shape is whole)."""
    rng = np.random.default_rng(3)
    for motion in ("left", "right", "up", "down"):
        spec = data.spec_for("red", "square", motion, "blue", rng)
        source, leaving = data.render(spec)[0], data.render(spec, 8)[0]
        assert check.analyse(np.concatenate([source[8:], leaving[8:]])).motion == motion
    shrinking = data.spec_for("red", "circle", "shrink", "blue", rng)
    assert check.analyse(data.render(shrinking, 8)[0]).motion == "shrink"


def test_paths_go_on_past_the_clip() -> None:
    """Frames further along a shape's path continue it: the same path shifted, a moving shape
    leaving the frame, a bouncing one still bouncing, a growing one capped."""
    rng = np.random.default_rng(4)
    spec = data.spec_for("red", "circle", "left", "blue", rng)
    xs, ys, _ = data.trajectory(spec)
    later = data.trajectory(spec, 8)
    assert np.allclose(later[0][:8], xs[8:]) and np.allclose(later[1][:8], ys[8:])
    assert later[0][-1] < xs[-1] - 15  # still moving left, at the same speed
    assert data.render(spec, 24)[1].sum() == 0  # gone
    bounce = data.spec_for("red", "circle", "bounce", "blue", rng)
    assert check.analyse(data.render(bounce, 16)[0]).motion == "bounce"
    grow = data.spec_for("red", "circle", "grow", "blue", rng)
    assert data.trajectory(grow, 32)[2].max() == data.MAX_RADIUS


def test_frame_conditioning_starts_as_the_text_only_model() -> None:
    """The conditioning projection starts at zero: loaded from a text-only model, the
    conditioned model predicts the same with or without known frames; a text-only model
    refuses known frames rather than ignoring them."""
    import torch

    from generator.embedded.model import ModelConfig, VideoDiT

    torch.manual_seed(0)
    config = ModelConfig(width=32, depth=1, heads=2)
    plain = VideoDiT(config)
    cond = VideoDiT(replace(config, frame_conditioning=True))
    missing, _ = cond.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["known_embed.weight"]
    z = torch.randn(2, 8, 16, 8, 8)
    t, ids = torch.tensor([0.3, 0.9]), torch.tensor([[1, 2, 3, 4], [0, 0, 0, 0]])
    keep = torch.arange(16)[None].expand(2, -1) < 8
    known = torch.randn(2, 8, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(plain(z, t, ids), cond(z, t, ids))
        assert torch.equal(plain(z, t, ids), cond(z, t, ids, known=known, keep=keep))
        torch.nn.init.normal_(cond.known_embed.weight)
        assert not torch.equal(plain(z, t, ids), cond(z, t, ids, known=known, keep=keep))
        assert torch.equal(plain(z, t, ids), cond(z, t, ids))
    with pytest.raises(ValueError, match="frame conditioning"):
        plain(z, t, ids, known=known, keep=keep)


def _train(out: Path, *extra: str) -> None:
    from generator.embedded.train import main

    main(["--out", str(out), "--ae-steps", "2", "--pool", "8", "--batch", "2", "--width", "32",
          "--depth", "1", "--heads", "2", *extra])  # fmt: skip


@pytest.mark.slow
def test_training_resumes_bit_for_bit(tmp_path: Path) -> None:
    """Stopping and resuming gives the very weights of an uninterrupted run (fixed seed)."""
    _train(tmp_path / "straight", "--steps", "12")
    _train(tmp_path / "resumed", "--steps", "11")
    _train(tmp_path / "resumed", "--steps", "12", "--resume")
    digests = []
    for run in ("straight", "resumed"):
        target = tmp_path / f"{run}.safetensors"
        _train(tmp_path / run, "--export", str(target))
        digests.append(hashlib.sha256(target.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    model = embedded.TinyDiT(tmp_path / "straight.safetensors")
    assert model.metadata["dit_steps"] == 12
    ids = embedded.slot_tensor(parse_prompt("a red circle"))
    clip = model.sample(ids, seed=0, steps=2)
    assert clip.shape == (1, 16, 64, 64, 3) and clip.dtype == np.uint8


def _finetune(base: Path, out: Path, *extra: str) -> None:
    from generator.embedded.finetune import main

    main(["--base", str(base), "--out", str(out), "--encoder-clips", "2", "--encoder-steps", "3",
          "--pool", "8", "--batch", "2", *extra])  # fmt: skip


@pytest.mark.slow
def test_conditioning_fine_tune_resumes_bit_for_bit_and_extends(tmp_path: Path) -> None:
    """The fine-tune from text-only weights resumes to the very weights of a straight run, and
    its export loads through the backend's own loader, encoder included, and extends a clip."""
    from generator.embedded.conditioned import extend_native

    _train(tmp_path / "base", "--steps", "2")
    base = tmp_path / "base.safetensors"
    _train(tmp_path / "base", "--export", str(base))
    _finetune(base, tmp_path / "straight", "--steps", "3")
    _finetune(base, tmp_path / "resumed", "--steps", "2")
    _finetune(base, tmp_path / "resumed", "--steps", "3", "--resume")
    digests = []
    for run in ("straight", "resumed"):
        target = tmp_path / f"{run}.safetensors"
        _finetune(base, tmp_path / run, "--export", str(target))
        digests.append(hashlib.sha256(target.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    card = json.loads((tmp_path / "straight.json").read_text())
    assert (
        card["conditioning_steps"] == 3
        and card["base_sha256"] == hashlib.sha256(base.read_bytes()).hexdigest()
    )
    model = embedded.TinyDiT(tmp_path / "straight.safetensors")
    assert model.config.frame_conditioning and model.has_encoder
    source = data.render(data.spec_for("red", "circle", "left", "blue", np.random.default_rng(0)))
    ids = embedded.slot_tensor(parse_prompt("a red circle moving left"))
    new = extend_native(model, ids, 0, source[0], data.FPS, 1.0, steps=2,
                        progress=lambda _: None)  # fmt: skip
    assert new.shape == (8, 64, 64, 3) and new.dtype == np.uint8


# ---- the shipped weights ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> embedded.EmbeddedBackend:
    return embedded.EmbeddedBackend(steps=10)


def test_shipped_weights_match_the_recorded_sha256() -> None:
    recorded = json.loads(embedded.WEIGHTS_CARD.read_text())["sha256"]
    assert hashlib.sha256(embedded.WEIGHTS.read_bytes()).hexdigest() == recorded
    assert embedded.WEIGHTS.stat().st_size < 8_000_000


@pytest.mark.slow
def test_generate_is_seeded_and_sized(shipped: embedded.EmbeddedBackend) -> None:
    assert isinstance(shipped, VideoBackend)
    request = VideoRequest("a red circle moving left on a blue background", 3.0, 128, 96, seed=5)
    progress: list[float] = []
    out = shipped.generate(request, progress.append)
    assert out.frames.shape == (24, 96, 128, 3) and out.fps == 8.0 and out.seed == 5
    assert out.understood == ("red", "circle", "left", "blue", "background") and out.ignored == ()
    assert progress[-1] == 1.0 and progress == sorted(progress)
    assert np.array_equal(out.frames, shipped.generate(request, lambda _: None).frames)
    other = shipped.generate(VideoRequest(request.prompt, 3.0, 128, 96, seed=6), lambda _: None)
    assert not np.array_equal(out.frames, other.frames)


def test_a_video_longer_than_ten_seconds_continues_the_clip_by_extension(
    shipped: embedded.EmbeddedBackend,
) -> None:
    """Past MAX_RETIMED_SECONDS the native clip is not stretched further: it opens the video
    and extension windows continue it (the scene's colours and motion kept) to the length
    asked; past MAX_SECONDS (60) the request is refused."""
    prompt = "a red circle bouncing on a blue background"
    progress: list[float] = []
    out = shipped.generate(VideoRequest(prompt, 12.0, 64, 64, seed=5), progress.append)
    assert out.frames.shape == (96, 64, 64, 3) and out.fps == 8.0
    assert progress[-1] == 1.0 and progress == sorted(progress)
    short = shipped.generate(VideoRequest(prompt, 2.0, 64, 64, seed=5), lambda _: None)
    assert np.array_equal(out.frames[:16], short.frames)  # the native clip, not stretched
    end = check.analyse(out.frames[-16:])
    assert (end.background, end.colour, end.motion) == ("blue", "red", "bounce"), end
    shipped.check_inputs(VideoRequest(prompt, embedded.MAX_SECONDS, 64, 64))
    with pytest.raises(embedded.InvalidVideoRequest, match="seconds"):
        shipped.check_inputs(VideoRequest(prompt, embedded.MAX_SECONDS + 1, 64, 64))


def test_a_prompt_it_understands_nothing_of_is_refused_by_default() -> None:
    request = VideoRequest("a majestic dragon over Paris", 2.0, 64, 64, fps=12)
    with pytest.raises(PromptNotUnderstood, match="understands none of its words") as info:
        embedded.EmbeddedBackend(steps=10).check_inputs(request)
    assert info.value.field == "prompt"
    assert info.value.ignored == ("majestic", "dragon", "paris")
    embedded.EmbeddedBackend(steps=10).check_inputs(replace(request, prompt="a red dragon"))


@pytest.mark.slow
def test_out_of_vocabulary_prompt_still_makes_a_video_when_allowed() -> None:
    backend = embedded.EmbeddedBackend(steps=10, refuse_not_understood=False)
    out = backend.generate(VideoRequest("a majestic dragon over Paris", 2.0, 64, 64, fps=12),
                           lambda _: None)  # fmt: skip
    assert out.frames.shape == (24, 64, 64, 3)
    assert out.understood == () and out.ignored == ("majestic", "dragon", "paris")


def test_tampered_weights_refuse_to_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "tiny_dit.json"
    bad.write_text(json.dumps({"sha256": "0" * 64}))
    monkeypatch.setattr(embedded, "WEIGHTS_CARD", bad)
    with pytest.raises(BackendUnavailable, match="does not match"):
        embedded.EmbeddedBackend().model()


def test_missing_weights_say_how_to_train(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match=r"generator\.embedded\.train"):
        embedded.EmbeddedBackend(tmp_path / "none.safetensors").model()
