"""Read-only figures over the audit log for the review console: the queue's stages and prompt
excerpts, decisions per day, flags per day and category, the frame withhold rate.

Like :mod:`audit.queries`, each function runs in the read transaction it is given
(``with log.snapshot() as tx:``, on the database the gateway shares), so the figures of one
page come from one snapshot and a dashboard never holds the write lock. The SQL is written
once with ``?`` placeholders and asks the :class:`~storage.Dialect` for what differs
(the UTC day of a timestamp). ``tenants`` narrows every figure to those tenants (``None``:
every tenant).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from audit.records import QueueItem
from storage import Tx

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


def _tenant_sql(tenants: Sequence[str] | None, column: str = "tenant") -> tuple[str, list[str]]:
    if tenants is None:
        return "", []
    if not tenants:
        return " AND 1 = 0", []
    return f" AND {column} IN ({', '.join('?' * len(tenants))})", list(tenants)


def item_stages(tx: Tx, items: Iterable[QueueItem]) -> dict[str, frozenset[str]]:
    """For each queue item (by ``ref``), the stages (prompt, frame) of its review/block reasons."""
    jobs: dict[str, str] = {}
    requests: dict[str, str] = {}
    for item in items:
        if item.job_id is not None:
            jobs[item.job_id] = item.ref
        if item.request_id is not None:
            requests[item.request_id] = item.ref
    found: dict[str, set[str]] = {}
    for column, ids in (("job_id", jobs), ("request_id", requests)):
        keys = list(ids)
        for start in range(0, len(keys), _CHUNK):
            part = keys[start : start + _CHUNK]
            marks = ", ".join("?" * len(part))
            for ident, stage in tx.all(
                f"SELECT DISTINCT {column}, stage FROM reasons WHERE action != 'allow' "
                f"AND {column} IN ({marks})",
                part,
            ):
                found.setdefault(ids[ident], set()).add(stage)
    return {ref: frozenset(stages) for ref, stages in found.items()}


def prompt_excerpts(tx: Tx, request_ids: Iterable[str], limit: int = 120) -> dict[str, str]:
    """The first ``limit`` characters of each request's prompt as typed, where it is kept
    (a tenant's retention may have dropped it: such requests are absent)."""
    ids = [i for i in request_ids if i]
    out: dict[str, str] = {}
    for start in range(0, len(ids), _CHUNK):
        part = ids[start : start + _CHUNK]
        marks = ", ".join("?" * len(part))
        for request_id, text in tx.all(
            f"SELECT request_id, substr(original, 1, ?) FROM requests "
            f"WHERE request_id IN ({marks}) AND original IS NOT NULL",
            [limit + 1, *part],
        ):
            out[request_id] = text if len(text) <= limit else text[:limit] + "…"
    return out


def decisions_per_day(
    tx: Tx, since: float, tenants: Sequence[str] | None = None, stage: str = "prompt"
) -> list[DayCount]:
    """Decisions at ``stage`` per UTC day and action (allow, review, block)."""
    where, args = _tenant_sql(tenants)
    day = tx.dialect.utc_day("created_at")
    rows = tx.all(
        f"SELECT {day} d, action, count(*) FROM decisions "
        f"WHERE stage = ? AND created_at >= ?{where} GROUP BY d, action ORDER BY d, action",
        [stage, since, *args],
    )
    return [DayCount(d, a, int(n)) for d, a, n in rows]


def flags_per_day(tx: Tx, since: float, tenants: Sequence[str] | None = None) -> list[DayCount]:
    """Requests or jobs flagged (review or block) per UTC day and category, each counted once
    per category whatever the number of reasons."""
    where, args = _tenant_sql(tenants)
    day = tx.dialect.utc_day("min(created_at)")
    rows = tx.all(
        f"""SELECT d, category, count(*) FROM (
                SELECT {day} d, category
                FROM reasons WHERE action != 'allow' AND created_at >= ?{where}
                GROUP BY coalesce(request_id, job_id), category) flagged
            GROUP BY d, category ORDER BY d, category""",
        [since, *args],
    )
    return [DayCount(d, c, int(n)) for d, c, n in rows]


def frame_withhold_rate(
    tx: Tx, since: float, tenants: Sequence[str] | None = None
) -> list[DayRate]:
    """Per UTC day: frame audits, and how many of them withheld the video (review or block)."""
    where, args = _tenant_sql(tenants)
    day = tx.dialect.utc_day("created_at")
    rows = tx.all(
        f"SELECT {day} d, sum(CASE WHEN action != 'allow' THEN 1 ELSE 0 END), count(*) "
        f"FROM decisions WHERE stage = 'frame' AND created_at >= ?{where} "
        "GROUP BY d ORDER BY d",
        [since, *args],
    )
    return [DayRate(d, int(w), int(n)) for d, w, n in rows]


def tenants_seen(tx: Tx) -> list[str]:
    """Every tenant with a request in the log (for an admin's tenant filter)."""
    return [t for (t,) in tx.all("SELECT DISTINCT tenant FROM requests ORDER BY 1")]
