"""Retention: purge old rows, redact prompt text, set how a tenant's prompts are stored.

Each function runs inside the caller's write transaction and ends with a chained record of
what it did and who asked (a purge record committing to the new start of the chain, a
redaction record naming the last covered row, a settings row), so ``audit verify`` can tell a
retention action from tampering. A purge verifies the rows it is about to remove first, and
deletes evidence files only inside ``<data_dir>/evidence/``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.append import append
from audit.errors import BadFilter, InvalidRecord, UnsafePath
from audit.evidence import resolve_evidence_key
from audit.records import PROMPT_RETENTIONS, PurgeReport, RedactReport
from audit.rows import need, setting_row
from audit.schema import ALL_TENANTS, TABLES
from audit.verify import check_range
from storage import StorageError, Tx
from storage.objects import ObjectStore, as_object_store


def set_prompt_retention(tx: Tx, tenant: str, mode: str, *, actor: str = "unknown") -> int:
    """Set how new records of ``tenant`` keep prompt text: keep, hash or drop.

    Stored in the database (table ``audit_tenants``) so every process applies the same
    setting, and chained as a ``settings`` row naming ``actor`` and the previous value, so
    who changed it is on record and an edit made directly in SQLite fails verify. Existing
    rows are unchanged; use :meth:`redact` for them. Returns the chained row's seq.
    """
    need(tenant, "tenant")
    need(actor, "actor")
    if mode not in PROMPT_RETENTIONS:
        raise BadFilter(f"prompt retention {mode!r} is not one of keep, hash, drop")
    found = tx.execute(
        "SELECT prompt_retention FROM audit_tenants WHERE tenant = ?", (tenant,)
    ).fetchone()
    tx.execute(
        "INSERT INTO audit_tenants VALUES (?, ?, ?) ON CONFLICT(tenant) DO UPDATE SET "
        "prompt_retention = excluded.prompt_retention, updated_at = excluded.updated_at",
        (tenant, mode, time.time()),
    )
    return append(
        tx, [("settings", setting_row(tenant, mode, found[0] if found else "keep", actor))]
    )


@dataclass(frozen=True, slots=True)
class Purged:
    """What :func:`purge_rows` removed: the report so far and the evidence files to delete
    once the purge has committed (:func:`delete_evidence`)."""

    report: PurgeReport
    evidence: tuple[str, ...] = ()


def purge_rows(tx: Tx, older_than_s: float, *, actor: str, now: float | None = None) -> Purged:
    """Delete every row recorded more than ``older_than_s`` seconds ago, keeping the chain.

    Removes the oldest prefix of the chain (up to the first row that is still young), then
    appends a chained purge record committing to the hash of the last removed row, which
    becomes the chain's verified start. The rows to remove (and the link to the next one) are
    verified first; if any was edited, nothing is purged (:class:`InvalidRecord`): a purge
    must neither act on a tampered row nor erase the proof of tampering. The removed rows'
    evidence files are returned, not deleted: they go only after the commit.
    """
    if older_than_s < 0:
        raise BadFilter("--older-than must not be negative")
    cutoff = (time.time() if now is None else now) - older_than_s
    base_seq, head_seq = tx.execute(
        "SELECT base_seq, head_seq FROM audit_chain WHERE id = 1"
    ).fetchone()
    young = [
        tx.execute(
            f"SELECT seq FROM {t} WHERE recorded_at >= ? ORDER BY seq LIMIT 1", (cutoff,)
        ).fetchone()
        for t in TABLES
    ]
    firsts = [y[0] for y in young if y is not None]
    through = (min(firsts) - 1) if firsts else head_seq
    if through <= base_seq:
        return Purged(PurgeReport(cutoff, base_seq, 0, 0))
    through_hash = None
    for t in TABLES:
        found = tx.execute(f"SELECT hash FROM {t} WHERE seq = ?", (through,)).fetchone()
        if found is not None:
            through_hash = found[0]
    if through_hash is None:
        raise InvalidRecord(
            f"row {through} is missing, so the purge cannot anchor the chain; run "
            "`reelguard audit verify` and resolve the break first"
        )
    _verify_before_purge(tx, base_seq, through, head_seq)
    removed_files = [
        p for (p,) in tx.execute("SELECT path FROM evidence WHERE seq <= ?", (through,))
    ]
    rows = 0
    for t in TABLES:
        rows += tx.execute(f"DELETE FROM {t} WHERE seq <= ?", (through,)).rowcount
    tx.execute(
        "UPDATE audit_chain SET base_seq = ?, base_hash = ? WHERE id = 1",
        (through, through_hash),
    )
    # The settings rows that justified each tenant's current retention may be gone:
    # re-state them in the chain, so verify can still check audit_tenants against it.
    carried = [
        ("settings", setting_row(tenant, mode, mode, actor))
        for tenant, mode in tx.execute(
            "SELECT tenant, prompt_retention FROM audit_tenants ORDER BY tenant"
        )
    ]
    record = {
        "cutoff": cutoff,
        "through_seq": through,
        "through_hash": through_hash,
        "rows": rows,
        "actor": actor,
    }
    append(tx, [*carried, ("purges", record)])
    return Purged(PurgeReport(cutoff, through, rows, 0), tuple(removed_files))


def _verify_before_purge(tx: Tx, base_seq: int, through: int, head_seq: int) -> None:
    """Raise :class:`InvalidRecord` if rows ``base_seq + 1 .. through`` (and the row
    after, which commits to ``through``'s hash) do not verify."""
    (base_hash,) = tx.execute("SELECT base_hash FROM audit_chain WHERE id = 1").fetchone()
    covered = dict(tx.execute("SELECT tenant, max(through_seq) FROM redactions GROUP BY tenant"))
    hi = min(head_seq, through + 1)
    _, _, _, problems = check_range(tx, base_seq + 1, hi, base_hash, covered, False, 5)
    if problems:
        seq, table, _, message = problems[0]
        raise InvalidRecord(
            f"{table} seq {seq} does not verify ({message}), so nothing was purged: a purge "
            "would act on edited rows and erase the proof; run `reelguard audit verify` "
            "and restore the database from a backup"
        )


def redact(
    tx: Tx,
    tenant: str | None,
    mode: str,
    *,
    actor: str,
    older_than_s: float | None = None,
    now: float | None = None,
) -> RedactReport:
    """Remove stored prompt text and evidence quotes (``hash`` keeps the salt, ``drop`` not).

    Applies to ``tenant`` (every tenant when ``None``), for rows recorded before
    ``older_than_s`` ago (all rows when ``None``). Appends a chained redaction record naming
    the last covered seq; ``audit verify`` accepts removed text only under such a record.
    """
    if mode not in ("hash", "drop"):
        raise BadFilter(f"redaction mode {mode!r} is not one of hash, drop")
    who = ALL_TENANTS if tenant is None else tenant
    (through,) = tx.execute("SELECT head_seq FROM audit_chain WHERE id = 1").fetchone()
    if older_than_s is not None:
        cutoff = (time.time() if now is None else now) - older_than_s
        through = max(
            (
                tx.execute(f"SELECT max(seq) FROM {t} WHERE recorded_at < ?", (cutoff,)).fetchone()[
                    0
                ]
                or 0
                for t in TABLES
            ),
            default=0,
        )
    rows = 0
    for spec in TABLES.values():
        if not spec.redactable:
            continue
        sets = ", ".join(f"{c} = NULL" for c in spec.redactable)
        salt = "salt = NULL" if mode == "drop" else "salt = salt"
        cond = "seq <= ? AND coalesce(redacted, retention) != 'drop'"
        if mode == "hash":
            cond += " AND coalesce(redacted, retention) = 'keep'"
        args: list[Any] = [mode, through]
        if tenant is not None:
            cond += " AND tenant = ?"
            args.append(tenant)
        rows += tx.execute(
            f"UPDATE {spec.name} SET {sets}, {salt}, redacted = ? WHERE {cond}", args
        ).rowcount
    record = {"tenant": who, "mode": mode, "through_seq": through, "rows": rows}
    append(tx, [("redactions", {**record, "actor": actor})])
    return RedactReport(who, mode, int(through), rows)  # type: ignore[arg-type]


def delete_evidence(
    stored: Sequence[str], data_dir: Path | ObjectStore | None
) -> tuple[int, list[str]]:
    """Delete the evidence objects of purged rows whose stored path lies under ``evidence/``
    of ``data_dir`` (a folder or an object store); return (objects deleted, ``"<path>: <why>"``
    for each one left alone)."""
    deleted, kept = 0, []
    store = None if data_dir is None else as_object_store(data_dir)
    for path in stored:
        if store is None:
            kept.append(f"{path}: no data folder given, so no file is deleted")
            continue
        try:
            key = resolve_evidence_key(path, store)
        except UnsafePath as exc:
            kept.append(f"{path}: {exc}")
            continue
        local = store.local_path(key)
        if local is not None and local.exists() and not local.is_file():
            continue  # not a file: nothing of ours to delete
        try:
            deleted += int(store.delete(key))
        except (OSError, StorageError) as exc:
            kept.append(f"{path}: {exc}")
    return deleted, kept
