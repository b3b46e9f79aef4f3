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
from generator.base import BackendUnavailable, InvalidVideoRequest, VideoBackend, VideoRequest
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


@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )

    tokenizer, text_encoder = tiny_text_encoder()
    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])  # fmt: skip
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


# (family folder, request, field, message fragment, why)
RULES = [
    ("wan", VideoRequest("x", 1.0, 32, 32), "seconds", "4k+1", "16 frames is not 4k+1"),
    ("wan", VideoRequest("x", 9 / 16, 40, 32), "width", "multiple of 16", "40 not /16"),
    ("wan", VideoRequest("x", 9.0, 32, 32), "seconds", "at most 121", "144 frames too many"),
    ("ltx", VideoRequest("x", 9 / 24, 48, 32), "width", "multiple of 32", "48 not /32"),
    ("ltx", VideoRequest("x", 13 / 24, 32, 32), "seconds", "8k+1", "13 frames is not 8k+1"),
    ("cogvideox", VideoRequest("x", 49 / 8, 720, 480), None, "", "CogVideoX default"),
    ("cogvideox", VideoRequest("x", 6.0, 720, 480), "seconds", "4k+1", "48 frames"),
]


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders holding only a model index: enough for the checks, which load no weights."""
    root = tmp_path_factory.mktemp("indexes")
    out = {}
    for family, cls in (("wan", "WanPipeline"), ("ltx", "LTXPipeline"),
                        ("cogvideox", "CogVideoXPipeline")):  # fmt: skip
        path = root / family
        path.mkdir()
        (path / "model_index.json").write_text(json.dumps({"_class_name": cls}))
        out[family] = path
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
