"""Appending to the chain: number, seal and hash rows, insert them, move the head.

Every writer (records, settings, purges, redactions, migrations) ends here, inside a write
transaction: the head is read with the dialect's row lock (nothing in SQLite, where
``BEGIN IMMEDIATE`` already serialises writers; ``FOR UPDATE`` in PostgreSQL), so appends from
many processes form one chain with a single global order. The hash rules themselves are in
:mod:`audit.chain` (plain Python, the same for every database).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from audit import chain
from audit.records import PromptRetention
from audit.rows import Row, seal_text
from audit.schema import TABLES
from storage import Tx


def append(tx: Tx, rows: Sequence[tuple[str, Row]]) -> int:
    """Chain and insert ``rows`` (inside a write transaction); returns the last seq."""
    head_seq, head_hash = tx.execute(
        "SELECT head_seq, head_hash FROM audit_chain WHERE id = 1" + tx.dialect.lock_row
    ).fetchone()
    now = time.time()
    by_table: dict[str, list[list[Any]]] = {}
    for table, row in rows:
        spec = TABLES[table]
        head_seq += 1
        row = {**row, "seq": head_seq, "recorded_at": row.get("recorded_at", now)}
        if spec.redactable:
            seal_text(spec, row)
        types = spec.types
        full = {name: chain.coerce(row.get(name), types[name]) for name, _ in spec.columns}
        head_hash = chain.row_hash(head_hash, table, [full[c] for c in spec.chained])
        full["hash"] = head_hash
        by_table.setdefault(table, []).append([full[name] for name, _ in spec.columns])
    for table, values in by_table.items():
        marks = ", ".join("?" * len(TABLES[table].columns))
        tx.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
    tx.execute(
        "UPDATE audit_chain SET head_seq = ?, head_hash = ? WHERE id = 1", (head_seq, head_hash)
    )
    return int(head_seq)


def retention_of(tx: Tx, tenant: str) -> PromptRetention:
    """How ``tenant``'s new records keep prompt text (``keep`` unless set)."""
    found = tx.one("SELECT prompt_retention FROM audit_tenants WHERE tenant = ?", (tenant,))
    return found[0] if found else "keep"
