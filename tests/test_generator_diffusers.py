"""The diffusers backend, run on CPU with tiny seeded pipelines saved to disk in the test.

Built the way diffusers tests its own pipelines (tiny transformer, VAE and T5 configs), with a
word-level tokenizer made here so nothing is downloaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from config.settings import Settings
from generator.base import (
    BackendUnavailable,
    Conditioning,
    InvalidVideoRequest,
    VideoBackend,
    VideoRequest,
)
from generator.diffusers_backend import DiffusersBackend, detect_family

pytestmark = pytest.mark.slow

WORDS = [
    "<pad>",
    "</s>",
    "<unk>",
    "a",
    "red",
    "circle",
    "moving",
    "left",
    "on",
    "blue",
    "background",
]


def tiny_text_encoder() -> tuple[Any, Any]:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(WORDS), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                      num_heads=4, relative_attention_num_buckets=8)  # fmt: skip
    return tokenizer, T5EncoderModel(config)


def tiny_wan_vae() -> Any:
    """The Wan VAE both tiny Wan pipelines share (seeded, so both get the same weights)."""
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])  # fmt: skip


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )

    tokenizer, text_encoder = tiny_text_encoder()
    vae = tiny_wan_vae()
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    )  # fmt: skip
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                       transformer=transformer,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))  # fmt: skip
    path = tmp_path_factory.mktemp("models") / "tiny-wan"
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def ltx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )

    tokenizer, text_encoder = tiny_text_encoder()
    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
        attention_head_dim=8, cross_attention_dim=32, num_layers=1, caption_channels=32,
    )  # fmt: skip
    torch.manual_seed(0)
    vae = AutoencoderKLLTXVideo(
        latent_channels=8, block_out_channels=(8, 8, 8, 8),
        spatio_temporal_scaling=(True, True, False, False), layers_per_block=(1, 1, 1, 1, 1),
        decoder_block_out_channels=(8, 8, 8, 8), decoder_layers_per_block=(1, 1, 1, 1, 1),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        patch_size=1, patch_size_t=1, encoder_causal=True, decoder_causal=False,
    )  # fmt: skip
    scheduler = FlowMatchEulerDiscreteScheduler()
    pipe = LTXPipeline(transformer=transformer, vae=vae, text_encoder=text_encoder,
                       tokenizer=tokenizer, scheduler=scheduler)  # fmt: skip
    path = tmp_path_factory.mktemp("models") / "tiny-ltx"
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def wan_i2v_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wan 2.1 image-to-video: the T2V parts plus a tiny CLIP vision encoder (built from a
    config, nothing downloaded) and a transformer taking the image latents and embedding."""
    import torch
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    tokenizer, text_encoder = tiny_text_encoder()
    vae = tiny_wan_vae()
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32, image_dim=4,
    )  # fmt: skip
    torch.manual_seed(0)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(hidden_size=4, projection_dim=4, num_hidden_layers=2,
                         num_attention_heads=2, image_size=32, intermediate_size=16, patch_size=1)
    )  # fmt: skip
    image_processor = CLIPImageProcessor(crop_size=32, size=32)
    pipe = WanImageToVideoPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), image_encoder=image_encoder,
        image_processor=image_processor,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("models") / "tiny-wan-i2v"
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def cogvideox_i2v_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CogVideoX image-to-video: a transformer taking the noise and the image latents side by
    side (twice the VAE's latent channels), rotary positions so any size goes."""
    import torch
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXTransformer3DModel,
    )

    tokenizer, text_encoder = tiny_text_encoder()
    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4,
        time_embed_dim=2, text_embed_dim=32, num_layers=1, sample_width=4, sample_height=4,
        sample_frames=9, patch_size=2, temporal_compression_ratio=4, max_text_seq_length=16,
        use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8),
        latent_channels=4, layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4,
    )  # fmt: skip
    pipe = CogVideoXImageToVideoPipeline(
        tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
        scheduler=CogVideoXDDIMScheduler(),
    )  # fmt: skip
    path = tmp_path_factory.mktemp("models") / "tiny-cogvideox-i2v"
    pipe.save_pretrained(path)
    return path


def test_wan_generates_deterministic_uint8_frames(wan_dir: Path) -> None:
    backend = DiffusersBackend.from_settings(
        Settings(diffusers_model=str(wan_dir), diffusers_steps=2, diffusers_device="cpu")
    )
    assert isinstance(backend, VideoBackend)
    assert backend.family.name == "wan" and backend.model_id == "diffusers/WanPipeline:tiny-wan"
    request = VideoRequest("a red circle moving left", 9 / 16, 32, 32, seed=3)
    seen: list[float] = []
    out = backend.generate(request, seen.append)
    assert out.frames.shape == (9, 32, 32, 3) and out.frames.dtype == np.uint8
    assert out.fps == 16.0 and out.seed == 3 and out.backend == "diffusers"
    assert seen == [0.475, 0.95, 1.0]
    assert out.frames.std() > 0  # real decoded noise, not a constant placeholder
    again = backend.generate(request, lambda _: None)
    assert np.array_equal(out.frames, again.frames)
    other = backend.generate(VideoRequest(request.prompt, 9 / 16, 32, 32, seed=4), lambda _: None)
    assert not np.array_equal(out.frames, other.frames)


def test_ltx_generates_with_its_frame_rate(ltx_dir: Path) -> None:
    backend = DiffusersBackend(str(ltx_dir), steps=2, device="cpu")
    assert backend.family.name == "ltx"
    out = backend.generate(VideoRequest("a blue circle", 9 / 24, 32, 32, seed=0), lambda _: None)
    assert out.frames.shape == (9, 32, 32, 3) and out.fps == 24.0


def rgb(height: int, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()


def moving_square(frames: int, size: int = 32) -> np.ndarray:
    """A white square crossing a dark frame left to right: a source clip with motion."""
    clip = np.full((frames, size, size, 3), 20, np.uint8)
    for t in range(frames):
        x = 2 + t * (size - 12) // max(1, frames - 1)
        clip[t, 10:20, x : x + 8] = 235
    return clip


def test_wan_i2v_starts_from_the_image_and_needs_one(wan_i2v_dir: Path) -> None:
    backend = DiffusersBackend(str(wan_i2v_dir), steps=2, device="cpu")
    assert backend.family.name == "wan-i2v"
    white = VideoRequest("a red circle", 9 / 16, 32, 32, seed=1,
                         conditioning=Conditioning(rgb(32, 32, (255, 255, 255))))  # fmt: skip
    black = VideoRequest("a red circle", 9 / 16, 32, 32, seed=1,
                         conditioning=Conditioning(rgb(32, 32, (0, 0, 0))))  # fmt: skip
    out_white = backend.generate(white, lambda _: None)
    out_black = backend.generate(black, lambda _: None)
    assert out_white.frames.shape == (9, 32, 32, 3) and out_white.fps == 16.0
    # The image reaches the model (CLIP embedding and first-frame latents): same seed and
    # prompt, a different start image, a different clip.
    assert not np.array_equal(out_white.frames, out_black.frames)
    assert np.array_equal(out_white.frames, backend.generate(white, lambda _: None).frames)
    with pytest.raises(InvalidVideoRequest, match="image-to-video model") as info:
        backend.check_inputs(VideoRequest("a red circle", 9 / 16, 32, 32))
    assert info.value.field == "input_reference"
    edit = Conditioning(start_clip=moving_square(9), fps=16.0)
    with pytest.raises(InvalidVideoRequest, match="cannot edit") as info:
        backend.check_inputs(VideoRequest("a red circle", 9 / 16, 32, 32, conditioning=edit))
    assert info.value.field == "video"


def test_cogvideox_i2v_starts_from_the_image_and_needs_one(cogvideox_i2v_dir: Path) -> None:
    backend = DiffusersBackend(str(cogvideox_i2v_dir), steps=2, device="cpu")
    assert backend.family.name == "cogvideox-i2v" and backend.fixed_size is None

    def start(colour: tuple[int, int, int]) -> np.ndarray:
        cond = Conditioning(rgb(32, 32, colour))
        request = VideoRequest("a red circle", 9 / 8, 32, 32, seed=1, conditioning=cond)
        seen: list[float] = []
        out = backend.generate(request, seen.append)
        assert out.frames.shape == (9, 32, 32, 3) and out.fps == 8.0 and seen[-1] == 1.0
        return out.frames

    white, black = start((255, 255, 255)), start((0, 0, 0))
    assert not np.array_equal(white, black)  # the image latents reach the transformer
    assert np.array_equal(white, start((255, 255, 255)))
    with pytest.raises(InvalidVideoRequest, match="image-to-video model") as info:
        backend.check_inputs(VideoRequest("a red circle", 9 / 8, 32, 32))
    assert info.value.field == "input_reference"
    edit = Conditioning(start_clip=moving_square(9), fps=8.0)
    with pytest.raises(InvalidVideoRequest, match="cannot edit") as info:
        backend.check_inputs(VideoRequest("a red circle", 9 / 8, 32, 32, conditioning=edit))
    assert info.value.field == "video"


@pytest.mark.parametrize(("folder", "fps"), [("wan_i2v_dir", 16.0), ("cogvideox_i2v_dir", 8.0)])
def test_image_to_video_extends_from_the_last_frame(
    request: pytest.FixtureRequest, folder: str, fps: float
) -> None:
    """An image-to-video model extends from the source's last frame: the output opens with
    the source itself, the new frames depend on that last frame, and on nothing before it."""
    backend = DiffusersBackend(str(request.getfixturevalue(folder)), steps=2, device="cpu")
    source = moving_square(10)

    def extend(clip: np.ndarray) -> np.ndarray:
        cond = Conditioning(keep_frames=clip, fps=fps)
        req = VideoRequest("a red circle", 18 / fps, 32, 32, seed=4, conditioning=cond)
        plan = backend.plan(req)
        # One frame of context (the image) and 8 new: 9 frames, 4k+1.
        assert (plan.skip, plan.new, plan.num_frames) == (1, 8, 9)
        out = backend.generate(req, lambda _: None)
        assert out.frames.shape == (18, 32, 32, 3) and out.fps == fps
        assert np.array_equal(out.frames[:10], clip)  # the source itself, not a re-encoding
        return out.frames[10:]

    new = extend(source)
    earlier_changed = source.copy()
    earlier_changed[:9] = 255 - earlier_changed[:9]
    assert np.array_equal(new, extend(earlier_changed))
    last_changed = source.copy()
    last_changed[-1] = 255 - last_changed[-1]
    assert not np.array_equal(new, extend(last_changed))


def test_ltx_starts_from_an_image(ltx_dir: Path) -> None:
    backend = DiffusersBackend(str(ltx_dir), steps=2, device="cpu")

    def start(colour: tuple[int, int, int]) -> np.ndarray:
        cond = Conditioning(rgb(32, 32, colour))
        request = VideoRequest("a blue circle", 9 / 24, 32, 32, seed=0, conditioning=cond)
        seen: list[float] = []
        out = backend.generate(request, seen.append)
        assert out.frames.shape == (9, 32, 32, 3) and out.fps == 24.0 and seen[-1] == 1.0
        return out.frames

    white, black = start((250, 250, 250)), start((0, 0, 0))
    # The tiny VAE is untrained, so the image does not come back as pixels; but it reaches the
    # model: the same seed and prompt from another image make another clip, deterministically.
    assert not np.array_equal(white, black)
    assert np.array_equal(white, start((250, 250, 250)))


def test_ltx_extends_opening_with_the_source_frames(ltx_dir: Path) -> None:
    backend = DiffusersBackend(str(ltx_dir), steps=2, device="cpu")
    source = moving_square(20)
    cond = Conditioning(keep_frames=source, fps=24.0)
    request = VideoRequest("a blue circle", 31 / 24, 32, 32, seed=5, conditioning=cond)
    plan = backend.plan(request)
    # 1 s of context at 24 fps rounded down to 8k+1 is 17 frames (the source has 20); 17 + 11
    # new rounds up to 33.
    assert (plan.skip, plan.new, plan.num_frames) == (17, 11, 33)
    out = backend.generate(request, lambda _: None)
    assert out.frames.shape == (31, 32, 32, 3) and out.fps == 24.0
    assert np.array_equal(out.frames[:20], source)  # the source itself, not a re-encoding
    again = backend.generate(request, lambda _: None)
    assert np.array_equal(out.frames, again.frames)
    # The context reaches the model: another source, the same seed, other new frames.
    other = Conditioning(keep_frames=255 - source, fps=24.0)
    flipped = backend.generate(
        VideoRequest("a blue circle", 31 / 24, 32, 32, seed=5, conditioning=other), lambda _: None
    )
    assert not np.array_equal(out.frames[20:], flipped.frames[20:])


def test_ltx_edits_follow_the_source_as_far_as_strength_allows(ltx_dir: Path) -> None:
    backend = DiffusersBackend(str(ltx_dir), steps=4, device="cpu")
    source = moving_square(12)

    def edit(strength: float) -> np.ndarray:
        cond = Conditioning(start_clip=source, fps=24.0, strength=strength)
        request = VideoRequest("a blue circle", 12 / 24, 32, 32, seed=2, conditioning=cond)
        out = backend.generate(request, lambda _: None)
        assert out.frames.shape == (12, 32, 32, 3) and out.fps == 24.0
        return out.frames.astype(np.float64)

    errors = [np.abs(edit(s) - source).mean() for s in (0.2, 1.0)]
    # An untrained model cannot reproduce the source, but low strength keeps far more of it.
    assert errors[0] < errors[1], errors


def test_ltx_refuses_an_extension_past_one_window(ltx_dir: Path) -> None:
    backend = DiffusersBackend(str(ltx_dir), steps=2, device="cpu")
    cond = Conditioning(keep_frames=moving_square(48), fps=24.0)
    with pytest.raises(InvalidVideoRequest, match="extends by at most") as info:
        backend.check_inputs(VideoRequest("x", 12.0, 32, 32, conditioning=cond))
    assert info.value.field == "seconds"


# (family folder, request, field, message fragment, why)
RULES = [
    ("wan", VideoRequest("x", 1.0, 32, 32), "seconds", "4k+1", "16 frames is not 4k+1"),
    ("wan", VideoRequest("x", 9 / 16, 40, 32), "width", "multiple of 16", "40 not /16"),
    ("wan", VideoRequest("x", 9.0, 32, 32), "seconds", "at most 121", "144 frames too many"),
    ("ltx", VideoRequest("x", 9 / 24, 48, 32), "width", "multiple of 32", "48 not /32"),
    ("ltx", VideoRequest("x", 13 / 24, 32, 32), "seconds", "8k+1", "13 frames is not 8k+1"),
    ("cogvideox", VideoRequest("x", 49 / 8, 720, 480), None, "", "CogVideoX default"),
    ("cogvideox", VideoRequest("x", 6.0, 720, 480), "seconds", "4k+1", "48 frames"),
    ("cogvideox-5b-i2v", VideoRequest("x", 49 / 8, 720, 480, conditioning=Conditioning(
        rgb(480, 720, (9, 9, 9)))), None, "", "its trained size"),
    ("cogvideox-5b-i2v", VideoRequest("x", 49 / 8, 480, 320, conditioning=Conditioning(
        rgb(320, 480, (9, 9, 9)))), "width", "720x480 only", "learned positions"),
]  # fmt: skip


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders holding only a model index: enough for the checks, which load no weights."""
    root = tmp_path_factory.mktemp("indexes")
    out = {}
    for family, cls in (("wan", "WanPipeline"), ("ltx", "LTXPipeline"),
                        ("cogvideox", "CogVideoXPipeline"),
                        ("wan-i2v", "WanImageToVideoPipeline"),
                        ("cogvideox-i2v", "CogVideoXImageToVideoPipeline"),
                        ("cogvideox-5b-i2v", "CogVideoXImageToVideoPipeline")):  # fmt: skip
        path = root / family
        path.mkdir()
        (path / "model_index.json").write_text(json.dumps({"_class_name": cls}))
        out[family] = path
    # As CogVideoX-5b-I2V ships: learned positional embeddings for 720x480 (90x60 latents).
    big = out["cogvideox-5b-i2v"]
    (big / "transformer").mkdir()
    (big / "transformer" / "config.json").write_text(
        json.dumps(
            {"use_learned_positional_embeddings": True, "sample_width": 90, "sample_height": 60}
        )
    )
    (big / "vae").mkdir()
    (big / "vae" / "config.json").write_text(
        json.dumps({"block_out_channels": [128, 256, 256, 512], "temporal_compression_ratio": 4})
    )
    return out


@pytest.mark.parametrize(("family", "request_", "field", "fragment", "why"), RULES,
                         ids=[r[4] for r in RULES])  # fmt: skip
def test_family_rules(
    family_dirs: dict[str, Path],
    family: str,
    request_: VideoRequest,
    field: str | None,
    fragment: str,
    why: str,
) -> None:
    backend = DiffusersBackend(str(family_dirs[family]))
    if field is None:
        backend.check_inputs(request_)
        return
    with pytest.raises(InvalidVideoRequest, match=re.escape(fragment)) as info:
        backend.check_inputs(request_)
    assert info.value.field == field, why


def test_family_from_folder_name_and_vae_config(tmp_path: Path) -> None:
    folder = tmp_path / "Wan2.1-T2V-1.3B-Diffusers"
    (folder / "vae").mkdir(parents=True)
    assert detect_family(str(folder))[0].name == "wan"
    (folder / "vae" / "config.json").write_text(json.dumps({"scale_factor_temporal": 8}))
    assert detect_family(str(folder))[1] == 8
    assert detect_family(str(tmp_path / "Wan2.1-I2V-14B-480P-Diffusers"))[0].name == "wan-i2v"
    assert detect_family(str(tmp_path / "Wan2.2-TI2V-5B-Diffusers"))[0].name == "wan"
    assert detect_family(str(tmp_path / "CogVideoX-5b-I2V"))[0].name == "cogvideox-i2v"
    assert detect_family(str(tmp_path / "CogVideoX-2b"))[0].name == "cogvideox"


# (family, the kinds it must accept); the rest must be refused with a 400-mapped field.
KINDS = [("wan", ()), ("cogvideox", ()), ("wan-i2v", ("start_image", "extend")),
         ("cogvideox-i2v", ("start_image", "extend")),
         ("ltx", ("start_image", "extend", "edit"))]  # fmt: skip


@pytest.mark.parametrize(("family", "accepted"), KINDS, ids=[k[0] for k in KINDS])
def test_each_family_takes_exactly_its_conditioning_kinds(
    family_dirs: dict[str, Path], family: str, accepted: tuple[str, ...]
) -> None:
    """Checked from the model index alone: a refusal needs no weights, so the gateway answers
    400 unsupported-input before any job exists."""
    backend = DiffusersBackend(str(family_dirs[family]))
    fps = float(backend.family.fps)
    clip = moving_square(9)
    requests = {
        "start_image": VideoRequest("x", 9 / fps, 32, 32,
                                    conditioning=Conditioning(rgb(32, 32, (9, 9, 9)))),
        "extend": VideoRequest("x", 18 / fps, 32, 32,
                               conditioning=Conditioning(keep_frames=clip, fps=fps)),
        "edit": VideoRequest("x", 9 / fps, 32, 32,
                             conditioning=Conditioning(start_clip=clip, fps=fps)),
    }  # fmt: skip
    for kind, request in requests.items():
        if kind in accepted:
            backend.check_inputs(request)
            continue
        with pytest.raises(InvalidVideoRequest, match="this backend cannot") as info:
            backend.check_inputs(request)
        assert info.value.field == request.conditioning.field, kind  # type: ignore[union-attr]


def test_unsupported_or_missing_models_are_unavailable(tmp_path: Path) -> None:
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    with pytest.raises(BackendUnavailable, match="StableDiffusionPipeline is not supported"):
        DiffusersBackend(str(tmp_path / "sd"))
    with pytest.raises(BackendUnavailable, match="no known family"):
        DiffusersBackend(str(tmp_path / "mystery-model"))
    empty = tmp_path / "wan-empty"
    empty.mkdir()
    backend = DiffusersBackend(str(empty), device="cpu")
    with pytest.raises(BackendUnavailable, match="cannot load WanPipeline"):
        backend.generate(VideoRequest("x", 9 / 16, 32, 32), lambda _: None)
