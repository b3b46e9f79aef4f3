"""The hash chain: how a row's hash is computed, so anyone can re-check it without this code.

A row's hash is ``SHA-256(prev_hash || canonical)`` where ``prev_hash`` is the 32 raw bytes of
the previous row's hash (in ``seq`` order, over all audited tables; 32 zero bytes before the
first row) and ``canonical`` is the UTF-8 JSON array ``[table, seq, value, ...]`` of the table
name and the row's chained columns in schema order (see :mod:`audit.schema`), written with
``separators=(",", ":")`` and ``ensure_ascii=False``. Hashes are stored as lower-case hex.

Redactable text (prompts, evidence quotes) enters the chain through its digest
``SHA-256(salt || utf8(text))`` (hex; ``salt`` is 16 random bytes stored as hex in the row), so
removing the text keeps every row hash valid, and a text edited in place no longer matches its
committed digest.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from collections.abc import Sequence
from typing import Any

GENESIS = "0" * 64
"""The ``prev_hash`` of the first row ever written."""

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode
_sha256 = hashlib.sha256


def row_hash(prev_hex: str, table: str, values: Sequence[Any]) -> str:
    """The hex hash of a row whose chained values (``seq`` first) are ``values``."""
    payload = _encode([table, *values]).encode()
    return _sha256(bytes.fromhex(prev_hex) + payload).hexdigest()


def new_salt() -> str:
    """A fresh per-row salt for text digests (hex)."""
    return secrets.token_hex(16)


def text_digest(salt_hex: str, text: str) -> str:
    """The committed digest of a redactable text."""
    return _sha256(bytes.fromhex(salt_hex) + text.encode()).hexdigest()


def coerce(value: Any, sql_type: str) -> Any:
    """The value exactly as SQLite will hand it back, so the hash survives the round trip.

    SQLite's column affinity turns ``1`` into ``1.0`` in a REAL column and stores NaN as NULL;
    hashing the coerced value keeps the writer and the verifier in agreement.
    """
    if value is None:
        return None
    if sql_type == "REAL":
        f = float(value)
        return None if math.isnan(f) else f
    if sql_type == "INTEGER":
        if isinstance(value, bool):
            return int(value)
        return int(value)
    return str(value)
