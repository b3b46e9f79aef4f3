"""Reading the audit log: every query a reviewer, the CLI or a worker asks, on one transaction.

Each function takes the read (or write) transaction it runs in, so a multi-query answer comes
from one snapshot; :class:`audit.log.AuditLog` opens the transaction. Filters that cannot be
understood raise :class:`~audit.errors.BadFilter`, unknown ids
:class:`~audit.errors.UnknownRecord`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audit.errors import BadFilter, UnknownRecord
from audit.records import (
    ListFilter,
    PromptRetention,
    QueueItem,
    RequestSummary,
    StatRow,
    Story,
)
from audit.rows import POLICY_SETTING, Row, decode, merge_quotes
from audit.schema import TABLES
from classifiers.base import CATEGORIES, STAGES
from policies.decision import Action
from storage import Tx

_ACTIONS = tuple(a.value for a in Action)

WITHHELD_OPEN = """x.action = 'withheld'
    AND NOT EXISTS (SELECT 1 FROM releases y WHERE y.job_id = x.job_id AND y.seq > x.seq)
    AND NOT EXISTS (SELECT 1 FROM reviews v WHERE v.job_id = x.job_id AND v.seq > x.seq)"""
"""A ``releases x`` row that withheld a video nobody has released or reviewed since."""

PROMPT_REVIEW_OPEN = """x.action = 'review'
    AND NOT EXISTS (SELECT 1 FROM reviews v WHERE v.request_id = x.request_id)
    AND (x.job_id IS NULL OR NOT EXISTS (SELECT 1 FROM releases y WHERE y.job_id = x.job_id))"""
"""A ``requests x`` row sent to review that nobody has reviewed (nor its video released)."""


def _summary_columns(tx: Tx) -> str:
    categories = tx.dialect.distinct_list("category")
    return f"""r.seq, r.request_id, r.job_id, r.tenant, r.endpoint, r.created_at, r.action,
    (SELECT action FROM decisions d WHERE d.job_id = r.job_id AND d.stage = 'frame'
        ORDER BY d.seq DESC LIMIT 1),
    (SELECT action FROM releases y WHERE y.job_id = r.job_id ORDER BY y.seq DESC LIMIT 1),
    (SELECT verdict FROM reviews v WHERE v.request_id = r.request_id ORDER BY v.seq DESC LIMIT 1),
    (SELECT {categories} FROM reasons c WHERE c.request_id = r.request_id),
    r.policy_version, r.latency_ms"""


def _summary(row: Sequence[Any]) -> RequestSummary:
    cats = tuple(sorted(row[10].split(","))) if row[10] else ()
    return RequestSummary(
        seq=row[0],
        request_id=row[1],
        job_id=row[2],
        tenant=row[3],
        endpoint=row[4],
        created_at=row[5],
        action=row[6],
        frame_action=row[7],
        release=row[8],
        review=row[9],
        categories=cats,
        policy_version=row[11],
        latency_ms=row[12],
    )


def resolve(tx: Tx, ref: str) -> tuple[str | None, str | None, str]:
    """(request id, job id, tenant) for a request id or a job id."""
    found = tx.one("SELECT request_id, job_id, tenant FROM requests WHERE request_id = ?", (ref,))
    if found is None:
        found = tx.one(
            "SELECT request_id, job_id, tenant FROM requests WHERE job_id = ? ORDER BY seq LIMIT 1",
            (ref,),
        )
    if found is None:
        for table in ("decisions", "releases"):
            job = tx.one(
                f"SELECT request_id, job_id, tenant FROM {table} WHERE job_id = ? LIMIT 1", (ref,)
            )
            if job is not None:
                found = job
                break
    if found is None:
        raise UnknownRecord(
            f"no request or job with id {ref!r} in the audit log; "
            "`reelguard audit list` shows the ids"
        )
    return found[0], found[1], found[2]


def first_request_of(tx: Tx, job_id: str) -> str | None:
    """The request id that created video job ``job_id`` (``None`` when the log has none)."""
    found = tx.one(
        "SELECT request_id FROM requests WHERE job_id = ? ORDER BY seq LIMIT 1", (job_id,)
    )
    return None if found is None else str(found[0])


def decided_under(tx: Tx, request_id: str | None, job_id: str | None) -> dict[str, str | None]:
    """Policy version and models of the latest decision on a request or job (for releases and
    reviews, so they too name the policy and models they act on)."""
    found = tx.one(
        "SELECT policy_version, model_versions FROM decisions "
        "WHERE request_id = ? OR job_id = ? ORDER BY seq DESC LIMIT 1",
        (request_id, job_id),
    )
    return {
        "policy_version": found[0] if found else None,
        "model_versions": found[1] if found else None,
    }


def prompt_decision(tx: Tx, job_id: str) -> str | None:
    """The action of the prompt decision recorded for video job ``job_id``, or ``None``."""
    found = tx.one(
        "SELECT action FROM requests WHERE job_id = ? AND endpoint = 'videos' "
        "ORDER BY seq DESC LIMIT 1",
        (job_id,),
    )
    return None if found is None else str(found[0])


def policy_changes(tx: Tx, tenant: str | None, after_seq: int) -> list[Row]:
    """The chained policy changes (oldest first), of one tenant or all, after ``after_seq``."""
    where, args = "name LIKE ? AND seq > ?", [f"{POLICY_SETTING}%", after_seq]
    if tenant is not None:
        where += " AND tenant = ?"
        args.append(tenant)
    rows = tx.all(
        "SELECT seq, recorded_at, tenant, name, value, previous, actor FROM settings "
        f"WHERE {where} ORDER BY seq",
        args,
    )
    return [
        {
            "seq": seq,
            "recorded_at": at,
            "tenant": who,
            "change": name[len(POLICY_SETTING) :],
            "version": value,
            "previous": previous or None,
            "actor": actor,
        }
        for seq, at, who, name, value, previous, actor in rows
    ]


def prompt_retentions(tx: Tx) -> dict[str, PromptRetention]:
    """Every tenant with a non-default setting (the default is ``keep``)."""
    rows = tx.all("SELECT tenant, prompt_retention FROM audit_tenants ORDER BY 1")
    return {t: m for t, m in rows}


def list_requests(tx: Tx, f: ListFilter, *, limit: int | None, offset: int) -> list[RequestSummary]:
    """Requests matching ``f``, newest first."""
    where, params = where_clause(f)
    order = "ORDER BY r.created_at DESC, r.seq DESC"
    page = f"SELECT r.seq FROM requests r {where} {order}"
    if limit is not None:
        page += " LIMIT ? OFFSET ?"
        params += [limit, offset]
    # Pick the page first, then compute the summary columns for those rows only: with a
    # sort in the plan, SQLite would otherwise evaluate them for every matching row.
    sql = f"SELECT {_summary_columns(tx)} FROM requests r WHERE r.seq IN ({page}) {order}"
    return [_summary(row) for row in tx.all(sql, params)]


def requests_page(tx: Tx, f: ListFilter, before_seq: int, page: int) -> list[Row]:
    """Up to ``page`` matching requests with seq below ``before_seq``, newest first, with their
    prompt text (``original``, ``normalized``): one page of an export."""
    where, params = where_clause(f)
    cond = f"{where} AND r.seq < ?" if where else "WHERE r.seq < ?"
    rows = tx.all(
        f"SELECT {_summary_columns(tx)}, r.original, r.normalized FROM requests r {cond} "
        "ORDER BY r.seq DESC LIMIT ?",
        [*params, before_seq, page],
    )
    out = []
    for row in rows:
        item = _summary(row[:-2]).as_dict()
        item["original"], item["normalized"] = row[-2], row[-1]
        out.append(item)
    return out


def story(tx: Tx, ref: str) -> Story:
    """Everything recorded about a request or job id."""
    request_id, job_id, _ = resolve(tx, ref)

    def rows(table: str, where: str, *args: Any) -> list[Row]:
        found = tx.records(f"SELECT * FROM {table} WHERE {where} ORDER BY seq", args)
        return [decode(row) for row in found]

    key = "request_id = ? OR job_id = ?"
    request = rows("requests", "request_id = ?", request_id)
    verdicts = rows("verdicts", "request_id = ?", request_id)
    text = request[0]["original"] if request else None
    for v in verdicts:
        merge_quotes(v, text)
    reasons = rows("reasons", key, request_id, job_id)
    for r in reasons:
        merge_quotes(r, text)
    return Story(
        request=request[0] if request else None,
        verdicts=verdicts,
        decisions=rows("decisions", key, request_id, job_id),
        reasons=reasons,
        frame_scores=rows("frame_scores", "job_id = ?", job_id),
        evidence=rows("evidence", "job_id = ?", job_id),
        releases=rows("releases", "job_id = ?", job_id),
        reviews=rows("reviews", key, request_id, job_id),
    )


def queue(tx: Tx, limit: int | None, tenant: str | None) -> list[QueueItem]:
    """What awaits a human review, oldest first: withheld videos and prompts sent to review."""
    tenant_sql = "" if tenant is None else " AND x.tenant = ?"
    args: list[Any] = [] if tenant is None else [tenant]
    cap = "" if limit is None else f" LIMIT {int(limit)}"
    found = [
        ("withheld_video", job_id, request_id, job_id, who, since)
        for job_id, request_id, who, since in tx.execute(
            f"SELECT x.job_id, x.request_id, x.tenant, x.recorded_at FROM releases x "
            f"WHERE {WITHHELD_OPEN}{tenant_sql} ORDER BY x.recorded_at{cap}",
            args,
        )
    ]
    found += [
        ("prompt_review", request_id, request_id, job_id, who, since)
        for request_id, job_id, who, since in tx.execute(
            f"SELECT x.request_id, x.job_id, x.tenant, x.created_at FROM requests x "
            f"WHERE {PROMPT_REVIEW_OPEN}{tenant_sql} ORDER BY x.created_at{cap}",
            args,
        )
    ]
    found.sort(key=lambda item: item[5])
    if limit is not None:
        found = found[:limit]
    return [
        QueueItem(
            ref=ref,
            kind=kind,  # type: ignore[arg-type]
            tenant=who,
            since=since,
            request_id=request_id,
            job_id=job_id,
            categories=_categories(
                tx,
                *(("job_id", job_id) if kind == "withheld_video" else ("request_id", request_id)),
            ),
        )
        for kind, ref, request_id, job_id, who, since in found
    ]


def stats(tx: Tx, *, since: float | None, until: float | None, tenant: str | None) -> list[StatRow]:
    """Per day (UTC) and category: requests reviewed or blocked, and that day's total."""
    cond: list[str] = ["1 = 1"]
    args: list[Any] = []
    for col, op, val in (("created_at", ">=", since), ("created_at", "<", until)):
        if val is not None:
            cond.append(f"{col} {op} ?")
            args.append(val)
    if tenant is not None:
        cond.append("tenant = ?")
        args.append(tenant)
    where = " AND ".join(cond)
    day, first_day = tx.dialect.utc_day("created_at"), tx.dialect.utc_day("min(created_at)")
    totals = dict(tx.all(f"SELECT {day} d, count(*) FROM requests WHERE {where} GROUP BY d", args))
    per = tx.all(
        f"""SELECT d, category, sum(1 - b), sum(b) FROM (
                SELECT {first_day} d, category,
                       max(CASE WHEN action = 'block' THEN 1 ELSE 0 END) b
                FROM reasons WHERE {where} AND action != 'allow'
                GROUP BY coalesce(request_id, job_id), category) per_request
            GROUP BY d, category ORDER BY d, category""",
        args,
    )
    return [StatRow(d, c, int(r), int(b), int(totals.get(d, 0))) for d, c, r, b in per]


def head(tx: Tx) -> tuple[int, str]:
    """The last sequence number and its hash."""
    seq, digest = tx.execute("SELECT head_seq, head_hash FROM audit_chain WHERE id = 1").fetchone()
    return int(seq), str(digest)


def count(tx: Tx) -> int:
    """Rows in all chained tables."""
    return sum(int(tx.value(f"SELECT count(*) FROM {t}")) for t in TABLES)


def _categories(tx: Tx, column: str, value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    rows = tx.execute(
        f"SELECT DISTINCT category FROM reasons WHERE {column} = ? ORDER BY 1", (value,)
    )
    return tuple(c for (c,) in rows)


def _action_condition(f: ListFilter) -> tuple[list[str], list[Any]]:
    if f.stage is not None and f.stage not in STAGES:
        raise BadFilter(f"stage {f.stage!r} is not one of {', '.join(STAGES)}")
    if f.action is None:
        if f.stage is not None:
            raise BadFilter("--stage only narrows --action; give --action too")
        return [], []
    if f.action not in _ACTIONS:
        raise BadFilter(f"action {f.action!r} is not one of {', '.join(_ACTIONS)}")
    frame = "r.job_id IN (SELECT job_id FROM decisions WHERE stage = 'frame' AND action = ?)"
    if f.stage == "frame":
        return [frame], [f.action]
    if f.stage in ("prompt", "input"):
        # Not r.action: with an uploaded image that is the more severe of the two decisions.
        return [
            "r.request_id IN (SELECT request_id FROM decisions WHERE stage = ? AND action = ?)"
        ], [f.stage, f.action]
    return [f"(r.action = ? OR {frame})"], [f.action, f.action]


def where_clause(f: ListFilter) -> tuple[str, list[Any]]:
    """SQL conditions on ``requests r`` for a filter; :class:`BadFilter` for bad values."""
    cond, args = _action_condition(f)
    if f.category is not None:
        if f.category not in CATEGORIES:
            raise BadFilter(f"category {f.category!r} is not one of {', '.join(CATEGORIES)}")
        cond.append("r.request_id IN (SELECT request_id FROM reasons WHERE category = ?)")
        args.append(f.category)
    for col, text in (("tenant", f.tenant), ("policy_version", f.policy_version)):
        if text is not None:
            cond.append(f"r.{col} = ?")
            args.append(text)
    if f.since is not None and f.until is not None and f.since >= f.until:
        raise BadFilter("--since must be earlier than --until")
    for op, val in ((">=", f.since), ("<", f.until)):
        if val is not None:
            cond.append(f"r.created_at {op} ?")
            args.append(val)
    if f.needs_review:
        open_prompt = PROMPT_REVIEW_OPEN.replace("x.", "r.")
        cond.append(
            f"(({open_prompt}) OR r.job_id IN "
            f"(SELECT x.job_id FROM releases x WHERE {WITHHELD_OPEN}))"
        )
    return ("WHERE " + " AND ".join(cond)) if cond else "", args
