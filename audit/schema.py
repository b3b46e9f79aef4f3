"""The audit tables, in one place: columns, which columns the hash chain covers, and indexes.

Every audited table has ``seq INTEGER PRIMARY KEY``: one sequence shared by all tables, so the
rows of all tables form one chain in ``seq`` order (see :mod:`audit.chain`). Columns fall in
three groups:

* chained: covered by the row hash (everything a reviewer relies on);
* redactable: prompt text and evidence quotes. The chain covers their salted SHA-256 digest
  (``<column>_digest``) instead of the text, so retention can remove the text later and the
  chain still verifies; while the text is there, ``audit verify`` checks it against the digest;
* bookkeeping: ``salt``, ``redacted`` (set by a chained redaction record) and ``hash``.

Two small tables sit outside the chain: ``audit_chain`` (one row: the verified base after a
purge, and the head) and ``audit_tenants`` (each tenant's current prompt retention, for fast
lookup; every change to it is also a chained ``settings`` row, and verify checks the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 2
"""Bumped with every change an older database needs migrating for (see ``audit.log.MIGRATIONS``)."""

BOOKKEEPING = ("salt", "redacted", "hash")


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One chained table: its columns with SQL types, and which of them are redactable."""

    name: str
    columns: tuple[tuple[str, str], ...]
    redactable: tuple[str, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    unique: tuple[tuple[str, ...], ...] = ()

    @property
    def chained(self) -> tuple[str, ...]:
        """Columns the row hash covers, in hash order (``seq`` first)."""
        skip = set(BOOKKEEPING) | set(self.redactable)
        return tuple(name for name, _ in self.columns if name not in skip)

    @property
    def types(self) -> dict[str, str]:
        """Column name to SQL type."""
        return dict(self.columns)

    @property
    def digests(self) -> tuple[str, ...]:
        """The digest column of each redactable column."""
        return tuple(f"{c}_digest" for c in self.redactable)


def _cols(*spec: str) -> tuple[tuple[str, str], ...]:
    out = []
    for item in spec:
        name, kind = item.split(":")
        out.append((name, {"i": "INTEGER", "r": "REAL", "t": "TEXT"}[kind]))
    return tuple(out)


_HEAD = ("seq:i", "recorded_at:r")
_REDACT_TAIL = ("retention:t",)
_BOOK = ("salt:t", "redacted:t", "hash:t")

TABLES: dict[str, TableSpec] = {
    "requests": TableSpec(
        "requests",
        _cols(
            *_HEAD,
            "request_id:t",
            "tenant:t",
            "endpoint:t",
            "job_id:t",
            "created_at:r",
            "action:t",
            "policy_version:t",
            "model_versions:t",
            "latency_ms:r",
            *_REDACT_TAIL,
            "original_digest:t",
            "normalized_digest:t",
            "original:t",
            "normalized:t",
            *_BOOK,
        ),
        redactable=("original", "normalized"),
        unique=(("request_id",),),
        indexes=(
            ("job_id",),
            ("created_at",),
            ("tenant", "created_at"),
            ("policy_version", "created_at"),
            ("action", "created_at"),
        ),
    ),
    "verdicts": TableSpec(
        "verdicts",
        _cols(
            *_HEAD,
            "request_id:t",
            "tenant:t",
            "created_at:r",
            "classifier:t",
            "category:t",
            "score:r",
            "threshold:r",
            "model_id:t",
            "model_version:t",
            "evidence:t",
            *_REDACT_TAIL,
            "quotes_digest:t",
            "quotes:t",
            *_BOOK,
        ),
        redactable=("quotes",),
        indexes=(("request_id",),),
    ),
    "decisions": TableSpec(
        "decisions",
        _cols(
            *_HEAD,
            "request_id:t",
            "job_id:t",
            "tenant:t",
            "created_at:r",
            "stage:t",
            "action:t",
            "policy_version:t",
            "model_versions:t",
            "category_scores:t",
            "latency_ms:t",
            "frames:t",
            "hash:t",
        ),
        indexes=(("request_id",), ("job_id",), ("action", "created_at"), ("stage", "action")),
    ),
    "reasons": TableSpec(
        "reasons",
        _cols(
            *_HEAD,
            "request_id:t",
            "job_id:t",
            "tenant:t",
            "created_at:r",
            "stage:t",
            "category:t",
            "action:t",
            "source:t",
            "classifier:t",
            "score:r",
            "threshold:r",
            "message:t",
            "evidence:t",
            *_REDACT_TAIL,
            "quotes_digest:t",
            "quotes:t",
            *_BOOK,
        ),
        redactable=("quotes",),
        indexes=(("request_id",), ("job_id",), ("category", "created_at")),
    ),
    "frame_scores": TableSpec(
        "frame_scores",
        _cols(
            *_HEAD,
            "job_id:t",
            "request_id:t",
            "tenant:t",
            "frame_index:i",
            "timestamp_s:r",
            "classifier:t",
            "category:t",
            "score:r",
            "threshold:r",
            "model_id:t",
            "model_version:t",
            "detail:t",
            "hash:t",
        ),
        indexes=(("job_id", "frame_index"),),
    ),
    "evidence": TableSpec(
        "evidence",
        _cols(
            *_HEAD,
            "job_id:t",
            "tenant:t",
            "frame_index:i",
            "timestamp_s:r",
            "path:t",
            "sha256:t",
            "bytes:i",
            "hash:t",
        ),
        indexes=(("job_id",),),
    ),
    "releases": TableSpec(
        "releases",
        _cols(
            *_HEAD,
            "job_id:t",
            "request_id:t",
            "tenant:t",
            "action:t",
            "path:t",
            "reason:t",
            "actor:t",
            "policy_version:t",
            "model_versions:t",
            "hash:t",
        ),
        indexes=(("job_id",), ("action",)),
    ),
    "reviews": TableSpec(
        "reviews",
        _cols(
            *_HEAD,
            "ref:t",
            "request_id:t",
            "job_id:t",
            "tenant:t",
            "reviewer:t",
            "verdict:t",
            "note:t",
            "policy_version:t",
            "model_versions:t",
            "hash:t",
        ),
        indexes=(("ref",), ("request_id",), ("job_id",)),
    ),
    "redactions": TableSpec(
        "redactions",
        _cols(*_HEAD, "tenant:t", "mode:t", "through_seq:i", "rows:i", "actor:t", "hash:t"),
    ),
    "settings": TableSpec(
        "settings",
        _cols(*_HEAD, "tenant:t", "name:t", "value:t", "previous:t", "actor:t", "hash:t"),
        indexes=(("tenant", "name"),),
    ),
    "purges": TableSpec(
        "purges",
        _cols(
            *_HEAD,
            "cutoff:r",
            "through_seq:i",
            "through_hash:t",
            "rows:i",
            "actor:t",
            "hash:t",
        ),
    ),
}
"""Every chained table. The order is only for display; the chain order is ``seq``."""

ALL_TENANTS = "*"
"""The tenant name a redaction record uses when it applies to every tenant."""


def ddl() -> list[str]:
    """The CREATE statements for every audit table and index (idempotent)."""
    stmts = []
    for spec in TABLES.values():
        cols = ",\n    ".join(
            "seq INTEGER PRIMARY KEY" if name == "seq" else f"{name} {kind}"
            for name, kind in spec.columns
        )
        stmts.append(f"CREATE TABLE IF NOT EXISTS [{spec.name}] (\n    {cols}\n)")
        for unique, indexes in ((True, spec.unique), (False, spec.indexes)):
            for index in indexes:
                name = f"idx_{spec.name}_{'_'.join(index)}"
                kind = "UNIQUE INDEX" if unique else "INDEX"
                stmts.append(
                    f"CREATE {kind} IF NOT EXISTS [{name}] ON [{spec.name}] ({', '.join(index)})"
                )
    stmts.append(
        """CREATE TABLE IF NOT EXISTS audit_chain (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    base_seq INTEGER NOT NULL,
    base_hash TEXT NOT NULL,
    head_seq INTEGER NOT NULL,
    head_hash TEXT NOT NULL
)"""
    )
    stmts.append(
        """CREATE TABLE IF NOT EXISTS audit_tenants (
    tenant TEXT PRIMARY KEY,
    prompt_retention TEXT NOT NULL CHECK (prompt_retention IN ('keep', 'hash', 'drop')),
    updated_at REAL NOT NULL
)"""
    )
    return stmts
