"""Read-only figures over the audit log for the review console: the queue's stages and prompt
excerpts, decisions per day, flags per day and category, the frame withhold rate.

Each call opens its own read-only connection (WAL readers never block the writers), so a
dashboard over a large log never holds the gateway's audit connection. ``tenants`` narrows
every figure to those tenants (``None``: every tenant).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from audit.records import QueueItem

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class DayCount:
    """How many of something happened on one UTC day (``YYYY-MM-DD``) under one key."""

    day: str
    key: str
    count: int


@dataclass(frozen=True, slots=True)
class DayRate:
    """Of ``total`` frame audits on ``day``, ``withheld`` decided review or block."""

    day: str
    withheld: int
    total: int

    @property
    def rate(self) -> float:
        """Share withheld (0 when there was nothing)."""
        return self.withheld / self.total if self.total else 0.0


@contextmanager
def _read(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    try:
        conn.execute("SELECT 1 FROM audit_chain LIMIT 1")
    except sqlite3.OperationalError:
        # A WAL file's shared-memory index may need creating, which read-only cannot do.
        conn.close()
        conn = sqlite3.connect(str(path), timeout=30.0)
    try:
        conn.execute("BEGIN")
        yield conn
    finally:
        conn.close()


def _tenant_sql(tenants: Sequence[str] | None, column: str = "tenant") -> tuple[str, list[str]]:
    if tenants is None:
        return "", []
    if not tenants:
        return " AND 0", []
    return f" AND {column} IN ({', '.join('?' * len(tenants))})", list(tenants)


def item_stages(path: Path, items: Iterable[QueueItem]) -> dict[str, frozenset[str]]:
    """For each queue item (by ``ref``), the stages (prompt, frame) of its review/block reasons."""
    jobs: dict[str, str] = {}
    requests: dict[str, str] = {}
    for item in items:
        if item.job_id is not None:
            jobs[item.job_id] = item.ref
        if item.request_id is not None:
            requests[item.request_id] = item.ref
    found: dict[str, set[str]] = {}
    with _read(path) as conn:
        for column, ids in (("job_id", jobs), ("request_id", requests)):
            keys = list(ids)
            for start in range(0, len(keys), _CHUNK):
                part = keys[start : start + _CHUNK]
                marks = ", ".join("?" * len(part))
                for ident, stage in conn.execute(
                    f"SELECT DISTINCT {column}, stage FROM reasons WHERE action != 'allow' "
                    f"AND {column} IN ({marks})",
                    part,
                ):
                    found.setdefault(ids[ident], set()).add(stage)
    return {ref: frozenset(stages) for ref, stages in found.items()}


def prompt_excerpts(path: Path, request_ids: Iterable[str], limit: int = 120) -> dict[str, str]:
    """The first ``limit`` characters of each request's prompt as typed, where it is kept
    (a tenant's retention may have dropped it: such requests are absent)."""
    ids = [i for i in request_ids if i]
    out: dict[str, str] = {}
    with _read(path) as conn:
        for start in range(0, len(ids), _CHUNK):
            part = ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(part))
            for request_id, text in conn.execute(
                f"SELECT request_id, substr(original, 1, ?) FROM requests "
                f"WHERE request_id IN ({marks}) AND original IS NOT NULL",
                [limit + 1, *part],
            ):
                out[request_id] = text if len(text) <= limit else text[:limit] + "…"
    return out


def decisions_per_day(
    path: Path, since: float, tenants: Sequence[str] | None = None, stage: str = "prompt"
) -> list[DayCount]:
    """Decisions at ``stage`` per UTC day and action (allow, review, block)."""
    where, args = _tenant_sql(tenants)
    with _read(path) as conn:
        rows = conn.execute(
            "SELECT date(created_at, 'unixepoch') d, action, count(*) FROM decisions "
            f"WHERE stage = ? AND created_at >= ?{where} GROUP BY d, action ORDER BY d, action",
            [stage, since, *args],
        ).fetchall()
    return [DayCount(d, a, int(n)) for d, a, n in rows]


def flags_per_day(path: Path, since: float, tenants: Sequence[str] | None = None) -> list[DayCount]:
    """Requests or jobs flagged (review or block) per UTC day and category, each counted once
    per category whatever the number of reasons."""
    where, args = _tenant_sql(tenants)
    with _read(path) as conn:
        rows = conn.execute(
            f"""SELECT d, category, count(*) FROM (
                    SELECT date(min(created_at), 'unixepoch') d, category
                    FROM reasons WHERE action != 'allow' AND created_at >= ?{where}
                    GROUP BY coalesce(request_id, job_id), category)
                GROUP BY d, category ORDER BY d, category""",
            [since, *args],
        ).fetchall()
    return [DayCount(d, c, int(n)) for d, c, n in rows]


def frame_withhold_rate(
    path: Path, since: float, tenants: Sequence[str] | None = None
) -> list[DayRate]:
    """Per UTC day: frame audits, and how many of them withheld the video (review or block)."""
    where, args = _tenant_sql(tenants)
    with _read(path) as conn:
        rows = conn.execute(
            "SELECT date(created_at, 'unixepoch') d, sum(action != 'allow'), count(*) "
            f"FROM decisions WHERE stage = 'frame' AND created_at >= ?{where} "
            "GROUP BY d ORDER BY d",
            [since, *args],
        ).fetchall()
    return [DayRate(d, int(w), int(n)) for d, w, n in rows]


def tenants_seen(path: Path) -> list[str]:
    """Every tenant with a request in the log (for an admin's tenant filter)."""
    with _read(path) as conn:
        return [t for (t,) in conn.execute("SELECT DISTINCT tenant FROM requests ORDER BY 1")]
