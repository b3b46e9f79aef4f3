"""The audit schema's versions: create the tables, and upgrade an older database in place.

:func:`ensure_schema` runs once per process (``AuditLog`` calls it on first use) inside one
write transaction: the ``CREATE ... IF NOT EXISTS`` statements of :mod:`audit.schema`, the
chain's head row, then each step of :data:`MIGRATIONS` from the stored version up to
:data:`~audit.schema.SCHEMA_VERSION`. A database written by a newer ReelGuard is refused
untouched (:class:`~audit.errors.SchemaTooNew`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from audit import chain
from audit.append import append
from audit.errors import SchemaTooNew
from audit.rows import setting_row
from audit.schema import SCHEMA_VERSION, ddl
from storage import Tx


def ensure_schema(tx: Tx, where: Path) -> None:
    """Create the audit tables and bring them up to :data:`SCHEMA_VERSION` (in ``tx``)."""
    for stmt in ddl():
        tx.execute(stmt)
    tx.execute(
        tx.dialect.insert_or_ignore(
            "audit_chain",
            ("id", "schema_version", "base_seq", "base_hash", "head_seq", "head_hash"),
        ),
        (1, SCHEMA_VERSION, 0, chain.GENESIS, 0, chain.GENESIS),
    )
    version = tx.value("SELECT schema_version FROM audit_chain WHERE id = 1")
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{where}: audit schema version {version} was written by a newer ReelGuard "
            f"(this one reads up to {SCHEMA_VERSION}); upgrade ReelGuard, or open a copy"
        )
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](tx)
        version += 1
        tx.execute("UPDATE audit_chain SET schema_version = ? WHERE id = 1", (version,))


def _migrate_1_to_2(tx: Tx) -> None:
    """Version 2 chains retention settings: state the ones an older database already holds."""
    rows = [
        ("settings", setting_row(tenant, mode, mode, "schema migration 1->2"))
        for tenant, mode in tx.execute(
            "SELECT tenant, prompt_retention FROM audit_tenants ORDER BY tenant"
        )
    ]
    if rows:
        append(tx, rows)


MIGRATIONS: dict[int, Callable[[Tx], None]] = {1: _migrate_1_to_2}
"""Schema version -> the step that upgrades a database from it to the next version."""
