"""``audit verify``: recompute the whole chain and name every row that does not hold up.

Every row stores its hash, so row ``n`` can be checked against the stored hash of row ``n - 1``
alone: a large log is split into seq ranges checked by worker processes (each opens the
database itself, from its URL), and the result is the same as one sequential pass. The checks:
each row's hash (edited, inserted, reordered rows), gaps (deleted rows), the head (a cut-off
tail), the purge base, redactable text against its committed digest, the retention settings
against the chain, anchors noted elsewhere, and (``--check-files``) evidence files on disk.
:func:`check_range` is also what a purge runs on the rows it is about to remove.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import multiprocessing
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit import chain
from audit.errors import UnsafePath
from audit.evidence import resolve_evidence_key
from audit.records import Anchor, VerifyProblem, VerifyReport
from audit.schema import ALL_TENANTS, TABLES, TableSpec
from storage import Database, StorageUnavailable, Tx
from storage.objects import ObjectMissing, ObjectStore, as_object_store


def verify(
    database: Database,
    *,
    check_files: bool = False,
    max_problems: int = 100,
    workers: int | None = None,
    anchors: Sequence[Anchor] = (),
    data_dir: Path | ObjectStore | None = None,
) -> VerifyReport:
    """Recompute the whole chain; name the first row that does not match, and the rest.

    Catches an edited, deleted, inserted or reordered row in any audited table, prompt text
    edited in place, text removed without a chained redaction, a cut-off tail (against the
    head in ``audit_chain``) and, with ``check_files``, evidence thumbnails changed on disk
    (their stored paths are resolved inside ``<data_dir>/evidence/``, ``data_dir`` a folder
    or an object store; a path that leads elsewhere is a problem; without ``data_dir`` only
    absolute paths can be read).

    Every row stores its hash, so row ``n`` can be checked against the stored hash of row
    ``n - 1`` alone: large logs are split into ranges checked by ``workers`` processes
    (default: one per CPU, for logs over :data:`PARALLEL_MIN_ROWS` rows). The result is the
    same as one sequential pass. Rows appended while verify runs are left for the next run;
    run parallel verification when no purge or redaction is under way (one process reads
    one consistent snapshot and is immune to both).

    ``anchors`` are heads noted outside the database by earlier runs: each must still be the
    hash of its row (or of the purge base), and lie at or before the current head, so an
    attacker who rewrites rows *and* recomputes every later hash and the head is still
    caught. Anchors before the purge base are skipped (their rows are gone by design).
    """
    started = time.perf_counter()
    folder = None if data_dir is None else as_object_store(data_dir)
    with database.transaction() as tx:
        _, base_seq, base_hash, head_seq, head_hash = tx.execute(
            "SELECT schema_version, base_seq, base_hash, head_seq, head_hash "
            "FROM audit_chain WHERE id = 1"
        ).fetchone()
        covered: dict[str, int] = {}
        for who, through in tx.execute(
            "SELECT tenant, max(through_seq) FROM redactions GROUP BY tenant"
        ):
            covered[who] = through
        found: list[tuple[int, str, str, str]] = []
        anchors_checked = 0
        for anchor in anchors:
            problem = _check_anchor(tx, anchor, base_seq, base_hash, head_seq)
            anchors_checked += int(anchor.seq >= base_seq)
            if problem is not None:
                found.append(problem)
        _check_base(
            tx,
            base_seq,
            base_hash,
            lambda *p: found.append(p),
        )
        found += _check_settings(tx, head_seq)
        beyond = max(
            tx.execute(f"SELECT coalesce(max(seq), 0) FROM {t}").fetchone()[0] for t in TABLES
        )
        ranges = _ranges(base_seq, head_seq, workers)
        starts = [base_hash] + [_stored_hash(tx, lo - 1) for lo, _ in ranges[1:]]
        if len(ranges) == 1:  # in this snapshot, so a concurrent purge cannot interfere
            results = [
                check_range(tx, *ranges[0], base_hash, covered, check_files, max_problems, folder)
            ]
    jobs = [
        (database.url, lo, hi, prev, covered, check_files, max_problems, folder)
        for (lo, hi), prev in zip(ranges, starts, strict=True)
    ]
    if len(jobs) > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(jobs), mp_context=ctx) as pool:
            results = list(pool.map(_verify_range, *zip(*jobs, strict=True)))
    rows = 0
    for (_, hi), (count, seen, _, problems) in zip(ranges, results, strict=True):
        rows += count
        found += problems
        if hi != head_seq and seen != hi:
            gap = f"seq {hi}" if seen + 1 == hi else f"seqs {seen + 1}..{hi}"
            found.append((seen + 1, "-", "deleted", f"{gap} missing: rows were deleted"))
    _, last_seq, last_hash, _ = results[-1]
    if last_seq != head_seq or last_hash != head_hash:
        found.append(
            (
                last_seq + 1,
                "audit_chain",
                "truncated",
                f"the chain ends at seq {last_seq} but its head records seq {head_seq}: rows "
                "at the end were deleted, or the head was edited",
            )
        )
    if beyond > head_seq:
        found.append(
            (
                head_seq + 1,
                "audit_chain",
                "inserted",
                f"rows up to seq {beyond} lie beyond the head (seq {head_seq}): rows were "
                "inserted after the end, or the head was edited",
            )
        )
    found.sort(key=lambda p: p[0])
    problems_out = tuple(VerifyProblem(*p) for p in found[:max_problems])
    return VerifyReport(
        rows=rows,
        base_seq=base_seq,
        head_seq=head_seq,
        head_hash=head_hash,
        problems=problems_out,
        seconds=time.perf_counter() - started,
        anchors_checked=anchors_checked,
    )


def _check_base(tx: Tx, base_seq: int, base_hash: str, problem: Any) -> None:
    if base_seq == 0 and base_hash == chain.GENESIS:
        return
    last = tx.execute(
        "SELECT seq, through_seq, through_hash FROM purges ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    if last is None or (last[1], last[2]) != (base_seq, base_hash):
        problem(
            base_seq,
            "audit_chain",
            "base",
            f"the chain starts after seq {base_seq}, but no purge record commits to that "
            "start: the start of the log was deleted outside `reelguard audit purge`",
        )


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where the verifier finds each column in a scanned row of one table (computed once)."""

    name: str
    width: int
    columns: tuple[str, ...]
    redactable: tuple[str, ...]
    retention_at: int
    tenant_at: int
    digest_at: tuple[int, ...]
    sha256_at: int


def _plan(spec: TableSpec) -> _Plan:
    chained = spec.chained
    cols = [*chained, "hash"]
    if spec.redactable:
        cols += [*spec.redactable, "salt", "redacted"]
    if spec.name == "evidence":
        cols += ["path"]
    return _Plan(
        name=spec.name,
        width=len(chained),
        columns=tuple(cols),
        redactable=spec.redactable,
        retention_at=chained.index("retention") if spec.redactable else -1,
        tenant_at=chained.index("tenant") if spec.redactable else -1,
        digest_at=tuple(chained.index(d) for d in spec.digests),
        sha256_at=chained.index("sha256") if "sha256" in chained else -1,
    )


_PLANS: dict[str, _Plan] = {name: _plan(spec) for name, spec in TABLES.items()}


def _check_text(plan: _Plan, row: Sequence[Any], covered: Mapping[str, int]) -> str | None:
    """Why a row's redactable text does not hold up, or ``None`` when it does."""
    n = plan.width
    k = len(plan.redactable)
    texts = row[n + 1 : n + 1 + k]
    salt, redacted = row[n + 1 + k], row[n + 2 + k]
    retention = row[plan.retention_at]
    if redacted is not None or retention != "keep":
        if any(t is not None for t in texts):
            return "text present in a row marked redacted"
        tenant = row[plan.tenant_at]
        if (
            redacted is not None
            and max(covered.get(tenant, 0), covered.get(ALL_TENANTS, 0)) < row[0]
        ):
            return "text removed, but no chained redaction record covers this row"
        return None
    for col, text, at in zip(plan.redactable, texts, plan.digest_at, strict=True):
        digest = row[at]
        if text is None and digest is not None:
            return f"{col} removed, but no chained redaction record covers this row"
        if text is not None and (salt is None or chain.text_digest(salt, text) != digest):
            return f"{col} was edited: it no longer matches its committed digest"
    return None


def _scan(tx: Tx, plan: _Plan, lo: int, hi: int) -> Iterator[tuple[int, str, tuple[Any, ...]]]:
    name = plan.name
    cur = tx.cursor(
        sql=f"SELECT {', '.join(plan.columns)} FROM {name} WHERE seq BETWEEN ? AND ? ORDER BY seq",
        params=(lo, hi),
    )
    cur.arraysize = 4096
    while True:
        chunk = cur.fetchmany()
        if not chunk:
            return
        for row in chunk:
            yield row[0], name, row


PARALLEL_MIN_ROWS = 200_000
"""Below this many rows, verify runs in one process (starting workers costs about a second)."""


def _ranges(base_seq: int, head_seq: int, workers: int | None) -> list[tuple[int, int]]:
    """Split ``base_seq + 1 .. head_seq`` into contiguous ranges, one per worker process."""
    total = head_seq - base_seq
    if workers is None:
        workers = 1 if total < PARALLEL_MIN_ROWS else min(os.cpu_count() or 1, 8)
    workers = max(1, min(workers, total))
    step = -(-total // workers) if total else 1
    out = []
    lo = base_seq + 1
    for _ in range(workers):
        hi = min(head_seq, lo + step - 1)
        out.append((lo, hi))
        lo = hi + 1
    out[-1] = (out[-1][0], head_seq)
    return out


def _check_settings(tx: Tx, head_seq: int) -> list[tuple[int, str, str, str]]:
    """``audit_tenants`` must hold, per tenant, the value its latest chained setting names."""
    chained = {
        tenant: (value, seq)
        for tenant, value, seq in tx.execute(
            "SELECT s.tenant, s.value, s.seq FROM settings s "
            "WHERE s.name = 'prompt_retention' AND s.seq = (SELECT max(t.seq) FROM settings t "
            "WHERE t.tenant = s.tenant AND t.name = 'prompt_retention')"
        )
    }
    current = dict(tx.execute("SELECT tenant, prompt_retention FROM audit_tenants"))
    problems = []
    for tenant in sorted(set(chained) | set(current)):
        value, seq = chained.get(tenant, ("keep", head_seq + 1))
        now = current.get(tenant, "keep")
        if now != value:
            problems.append(
                (
                    seq,
                    "audit_tenants",
                    "setting",
                    f"tenant {tenant!r} stores prompts as {now!r} but the chain last recorded "
                    f"{value!r}: the setting was changed outside `reelguard audit "
                    "prompt-retention`; set it again with that command to record who and why",
                )
            )
    return problems


def _check_anchor(
    tx: Tx, anchor: Anchor, base_seq: int, base_hash: str, head_seq: int
) -> tuple[int, str, str, str] | None:
    """A problem tuple when ``anchor`` no longer matches the chain, else None."""
    short = anchor.hash[:12]
    if anchor.seq > head_seq:
        return (
            head_seq + 1,
            "audit_chain",
            "anchor",
            f"an anchor taken {anchor.at or 'earlier'} records seq {anchor.seq} ({short}...) but "
            f"the chain now ends at seq {head_seq}: rows at the end were deleted",
        )
    if anchor.seq < base_seq:
        return None
    stored = base_hash if anchor.seq == base_seq else _stored_hash(tx, anchor.seq)
    if stored == anchor.hash:
        return None
    return (
        anchor.seq,
        "audit_chain",
        "anchor",
        f"row seq {anchor.seq} now hashes to {stored[:12]}... but an anchor taken "
        f"{anchor.at or 'earlier'} recorded {short}...: the chain was rewritten since",
    )


def _stored_hash(tx: Tx, seq: int) -> str:
    """The hash stored for row ``seq`` (all zeros if that row is gone: the gap is reported)."""
    for t in TABLES:
        found = tx.execute(f"SELECT hash FROM {t} WHERE seq = ?", (seq,)).fetchone()
        if found is not None:
            return str(found[0])
    return chain.GENESIS


def _verify_range(
    path: str,
    lo: int,
    hi: int,
    prev_hash: str,
    covered: Mapping[str, int],
    check_files: bool,
    max_problems: int,
    data_dir: ObjectStore | None = None,
) -> tuple[int, int, str, list[tuple[int, str, str, str]]]:
    """Check rows ``lo..hi`` (in a worker process, or in-process for small logs)."""
    database = Database.from_url(path, durable=False)
    try:
        with database.transaction() as tx:
            return check_range(tx, lo, hi, prev_hash, covered, check_files, max_problems, data_dir)
    finally:
        database.close()


def check_range(
    tx: Tx,
    lo: int,
    hi: int,
    prev_hash: str,
    covered: Mapping[str, int],
    check_files: bool,
    max_problems: int,
    data_dir: ObjectStore | None = None,
) -> tuple[int, int, str, list[tuple[int, str, str, str]]]:
    problems: list[tuple[int, str, str, str]] = []

    def problem(seq: int, table: str, kind: str, message: str) -> None:
        if len(problems) < max_problems:
            problems.append((seq, table, kind, message))

    files = _FileCheck(data_dir) if check_files else None
    rows, last_seq, last_hash = _walk_chain(tx, lo, hi, prev_hash, covered, problem, files)
    return rows, last_seq, last_hash, problems


def _walk_chain(
    tx: Tx,
    lo: int,
    hi: int,
    prev_hash: str,
    covered: Mapping[str, int],
    problem: Any,
    files: _FileCheck | None,
) -> tuple[int, int, str]:
    """The verifier's hot loop over rows ``lo..hi`` of every table in seq order.

    Returns (rows seen, last seq seen or ``lo - 1``, the hash that row stores).
    """
    encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    sha = hashlib.sha256
    plans = _PLANS
    merged = heapq.merge(*(_scan(tx, plan, lo, hi) for plan in plans.values()))
    prev = bytes.fromhex(prev_hash)
    expect = lo
    rows = 0
    for seq, table, row in merged:
        rows += 1
        plan = plans[table]
        n = plan.width
        if seq != expect:
            _gap(seq, expect, table, problem)
        digest = sha(prev + encode([table, *row[:n]]).encode()).digest()
        stored = row[n]
        if digest.hex() != stored:
            problem(
                seq,
                table,
                "hash",
                f"{table} seq {seq} does not match its hash: the row was edited, or rows were "
                "reordered or inserted before it",
            )
            with suppress(TypeError, ValueError):
                digest = bytes.fromhex(stored)
        prev = digest
        if plan.redactable:
            why = _check_text(plan, row, covered)
            if why is not None:
                problem(seq, table, "text", f"{table} seq {seq}: {why}")
        if files is not None and plan.sha256_at >= 0:
            _check_file(plan, row, problem, files)
        expect = seq + 1
    return rows, expect - 1, prev.hex()


def _gap(seq: int, expect: int, table: str, problem: Any) -> None:
    if seq < expect:
        problem(seq, table, "order", f"{table} seq {seq} is out of order or duplicated")
    else:
        gap = f"seq {expect}" if seq == expect + 1 else f"seqs {expect}..{seq - 1}"
        problem(expect, table, "deleted", f"{gap} missing: rows were deleted")


@dataclass(frozen=True, slots=True)
class _FileCheck:
    """``verify --check-files``: the store stored evidence paths are resolved in (stores
    pickle, so it goes to the verifier processes too)."""

    data_dir: ObjectStore | None


def _check_file(plan: _Plan, row: Sequence[Any], problem: Any, files: _FileCheck) -> None:
    path, digest = row[-1], row[plan.sha256_at]
    if files.data_dir is not None:
        try:
            key = resolve_evidence_key(path, files.data_dir)
        except UnsafePath as exc:
            problem(row[0], plan.name, "file", str(exc))
            return
        try:
            data: bytes | None = files.data_dir.get_bytes(key)
        except (ObjectMissing, OSError):
            data = None
        except StorageUnavailable as exc:
            problem(row[0], plan.name, "file", f"evidence file {path} cannot be read: {exc}")
            return
    elif Path(path).is_absolute():
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = None
    else:
        problem(
            row[0],
            plan.name,
            "file",
            f"evidence path {path} is relative to the data folder; give it (--data-dir)",
        )
        return
    if data is None:
        problem(row[0], plan.name, "file", f"evidence file {path} is missing")
    elif hashlib.sha256(data).hexdigest() != digest:
        problem(row[0], plan.name, "file", f"evidence file {path} was changed after recording")
