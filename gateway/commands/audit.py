"""``reelguard audit ...``: the reviewer's command line over the audit log.

Read commands (``list``, ``show``, ``queue``, ``stats``, ``verify``, ``prompt-retention``)
print readable tables on a terminal and JSON with ``--json``. Bad ids, filters and durations
end with a message saying how to fix them, never a traceback. The chain's own commands
(``verify``, ``purge``, ``redact``, ``prompt-retention``) are in
:mod:`gateway.commands.audit_chain`.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from gateway.commands.audit_chain import CHAIN_COMMANDS
from gateway.commands.common import (
    DbTarget,
    F,
    TimeParam,
    data_dir_option,
    db_option,
    echo_json,
    fmt_score,
    fmt_time,
    guard,
    json_option,
    open_log,
    print_table,
    resolve_data_dir,
)

audit: click.Group = click.Group(
    "audit",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="""Review the audit log: what happened to each request, why, and who changed it.

    Every request, verdict, frame score, decision, release and review is one row in a hash
    chain; `reelguard audit verify` proves nothing was edited, deleted or reordered.
    """,
)


def filter_options(func: F) -> F:
    """The request filters shared by ``list`` and ``export``."""
    from classifiers.base import CATEGORIES

    options = [
        click.option(
            "--action",
            type=click.Choice(["allow", "review", "block"]),
            help="Requests with this decision at any stage (see --stage).",
        ),
        click.option(
            "--stage",
            type=click.Choice(["prompt", "input", "frame"]),
            help="With --action: only the decision at this stage.",
        ),
        click.option(
            "--category",
            type=click.Choice(list(CATEGORIES)),
            help="Requests with a review/block reason in this category.",
        ),
        click.option("--tenant", help="Only this tenant's requests."),
        click.option(
            "--since", type=TimeParam(), help="Requests at or after TIME (2026-01-31, 7d, today)."
        ),
        click.option("--until", type=TimeParam(), help="Requests before TIME."),
        click.option("--policy-version", help="Requests decided under this policy version."),
        click.option(
            "--needs-review",
            is_flag=True,
            help="Only requests awaiting a human review (withheld videos, prompts sent to review).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _filter(**kw: Any) -> Any:
    from audit.records import ListFilter

    return ListFilter(
        action=kw["action"],
        stage=kw["stage"],
        category=kw["category"],
        tenant=kw["tenant"],
        since=kw["since"],
        until=kw["until"],
        policy_version=kw["policy_version"],
        needs_review=kw["needs_review"],
    )


@audit.command("list")
@filter_options
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Most rows."
)
@click.option(
    "--offset", type=click.IntRange(0), default=0, show_default=True, help="Rows to skip (pages)."
)
@json_option
@db_option
def list_cmd(limit: int, offset: int, as_json: bool, db: DbTarget, **filters: Any) -> None:
    """List requests, newest first, with where each stands (decision, release, review).

    Example: reelguard audit list --category violence --since 7d --action block
    """
    log = open_log(db)
    rows = guard(lambda: log.list_requests(_filter(**filters), limit=limit, offset=offset))
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    print_table(
        f"{len(rows)} request(s)",
        ["time (UTC)", "request", "job", "tenant", "action", "frame", "release", "review", "why"],
        (
            [
                fmt_time(r.created_at),
                r.request_id,
                r.job_id,
                r.tenant,
                r.action,
                r.frame_action,
                r.release,
                r.review,
                ", ".join(r.categories),
            ]
            for r in rows
        ),
    )


@audit.command()
@click.argument("ref", metavar="ID")
@json_option
@db_option
def show(ref: str, as_json: bool, db: DbTarget) -> None:
    """Everything recorded about one request or video job (ID is either id).

    The prompt as sent and normalised, every verdict, the decisions and their reasons, the frame
    timeline (timestamps and scores), evidence thumbnails, releases and reviews.
    """
    log = open_log(db)
    story = guard(lambda: log.story(ref))
    if as_json:
        echo_json(story.as_dict())
        return
    _show_story(story)


def _show_story(story: Any) -> None:
    from audit.records import evidence_text

    req = story.request
    if req is not None:
        retention = req["redacted"] or req["retention"]
        hidden = f"<not stored: prompt retention {retention}>"
        print_table(
            f"request {req['request_id']}",
            ["field", "value"],
            [
                ["time (UTC)", fmt_time(req["created_at"])],
                ["tenant", req["tenant"]],
                ["endpoint", req["endpoint"]],
                ["job", req["job_id"]],
                ["action", req["action"]],
                ["policy version", req["policy_version"]],
                ["models", json.dumps(req["model_versions"], sort_keys=True)],
                ["latency", f"{req['latency_ms']:.2f} ms"],
                ["prompt", req["original"] if req["original"] is not None else hidden],
                ["normalised", req["normalized"] if req["normalized"] is not None else hidden],
            ],
        )
    if story.verdicts:
        print_table(
            "prompt verdicts",
            ["classifier", "category", "score", "threshold", "model", "evidence"],
            (
                [
                    v["classifier"],
                    v["category"],
                    fmt_score(v["score"]),
                    fmt_score(v["threshold"]),
                    f"{v['model_id']}@{v['model_version']}",
                    evidence_text(v["evidence"]),
                ]
                for v in story.verdicts
                if v["score"] or v["evidence"]
            ),
        )
    print_table(
        "decisions",
        ["stage", "action", "policy version", "time (UTC)", "latency ms"],
        (
            [
                d["stage"],
                d["action"],
                d["policy_version"],
                fmt_time(d["recorded_at"]),
                ", ".join(f"{k} {v:.1f}" for k, v in (d["latency_ms"] or {}).items()),
            ]
            for d in story.decisions
        ),
    )
    if story.reasons:
        print_table(
            "reasons",
            ["stage", "category", "action", "source", "classifier", "score", "threshold", "where"],
            (
                [
                    r["stage"],
                    r["category"],
                    r["action"],
                    r["source"],
                    r["classifier"],
                    fmt_score(r["score"]),
                    fmt_score(r["threshold"]),
                    evidence_text(r["evidence"]) or r["message"],
                ]
                for r in story.reasons
            ),
        )
    _show_frames(story)
    _show_outcomes(story)


def _show_frames(story: Any) -> None:
    if not story.frame_scores:
        return
    cats = sorted({f["category"] for f in story.frame_scores})
    timeline: dict[tuple[int, float], dict[str, tuple[float, bool]]] = {}
    for f in story.frame_scores:
        key = (f["frame_index"] if f["frame_index"] is not None else -1, f["timestamp_s"] or 0.0)
        cell = timeline.setdefault(key, {})
        over = f["threshold"] is not None and f["score"] >= f["threshold"]
        old = cell.get(f["category"])
        if old is None or f["score"] > old[0]:
            cell[f["category"]] = (f["score"], over or (old is not None and old[1]))
    rows = []
    for (index, ts), cell in sorted(timeline.items()):
        values = []
        for c in cats:
            score, over = cell.get(c, (None, False))
            values.append("" if score is None else f"{score:.3f}{' !' if over else ''}")
        rows.append([index, f"{ts:.3f}", *values])
    print_table(
        "frame timeline (max score per category; ! = at or over threshold)",
        ["frame", "t (s)", *cats],
        rows,
    )


def _show_outcomes(story: Any) -> None:
    if story.evidence:
        print_table(
            "evidence thumbnails",
            ["frame", "t (s)", "path", "sha256"],
            (
                [e["frame_index"], e["timestamp_s"], e["path"], (e["sha256"] or "unreadable")[:16]]
                for e in story.evidence
            ),
        )
    if story.releases:
        print_table(
            "releases",
            ["time (UTC)", "action", "actor", "path", "reason"],
            (
                [fmt_time(r["recorded_at"]), r["action"], r["actor"], r["path"], r["reason"]]
                for r in story.releases
            ),
        )
    if story.reviews:
        print_table(
            "reviews",
            ["time (UTC)", "reviewer", "verdict", "note"],
            (
                [fmt_time(r["recorded_at"]), r["reviewer"], r["verdict"], r["note"]]
                for r in story.reviews
            ),
        )


@audit.command()
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=100, show_default=True, help="Most items."
)
@click.option("--tenant", help="Only this tenant's items.")
@json_option
@db_option
def queue(limit: int, tenant: str | None, as_json: bool, db: DbTarget) -> None:
    """What awaits a human review, oldest first: withheld videos and prompts sent to review.

    Settle an item with `reelguard audit review ID --approve|--reject`.
    """
    log = open_log(db)
    items = guard(lambda: log.queue(limit, tenant=tenant))
    if as_json:
        echo_json([i.as_dict() for i in items])
        return
    print_table(
        f"{len(items)} item(s) awaiting review",
        ["waiting since (UTC)", "id", "kind", "tenant", "categories"],
        ([fmt_time(i.since), i.ref, i.kind, i.tenant, ", ".join(i.categories)] for i in items),
    )


@audit.command()
@click.argument("ref", metavar="ID")
@click.option(
    "--approve", "verdict", flag_value="approve", help="Approve (releases a withheld video)."
)
@click.option(
    "--reject", "verdict", flag_value="reject", help="Reject (a withheld video stays withheld)."
)
@click.option("--note", required=True, help="Why: kept in the audit log with the review.")
@click.option("--reviewer", required=True, help="Who reviews (your name or id).")
@data_dir_option
@db_option
def review(
    ref: str, verdict: str | None, note: str, reviewer: str, data_dir: Path | None, db: DbTarget
) -> None:
    """Record a review of a request or video job (ID is either id).

    Approving a withheld video releases it through the job system's release path; the release
    and the review are both recorded in the chain. Rejecting keeps it withheld.
    """
    if verdict is None:
        raise click.UsageError("give --approve or --reject")
    if not reviewer.strip():
        raise click.UsageError("--reviewer must name who reviews")
    outcome = _apply_review(open_log(db), data_dir, ref, verdict, reviewer, note)
    click.echo(outcome.message)


def _apply_review(
    log: Any, data_dir: Path | None, ref: str, verdict: str, reviewer: str, note: str
) -> Any:
    """:func:`gateway.review.apply_review`, its errors turned into messages saying what to do."""
    from gateway.jobs import EndedByOwner, JobError, JobNotFound
    from gateway.review import Verdict, apply_review

    folder = resolve_data_dir(data_dir)
    choice: Verdict = "approve" if verdict == "approve" else "reject"
    try:
        return guard(lambda: apply_review(log, folder, ref, reviewer, choice, note))
    except JobNotFound as exc:
        raise click.ClickException(
            f"no video job for {ref!r} in the job store: {exc}; nothing was recorded"
        ) from None
    except EndedByOwner as exc:
        raise click.ClickException(f"cannot review {ref}: {exc}; nothing was recorded") from None
    except JobError as exc:
        what = "release" if verdict == "approve" else "record the rejection of"
        raise click.ClickException(f"cannot {what} video {ref}: {exc}") from None


@audit.command()
@filter_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="JSON lines (one request per line) or CSV with a header row.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: standard output).",
)
@db_option
def export(fmt: str, output: Path | None, db: DbTarget, **filters: Any) -> None:
    """Export matching requests (newest first) as JSON lines or CSV, with their prompt text."""
    log = open_log(db)
    flt = _filter(**filters)
    rows = guard(lambda: log.iter_requests(flt))
    out: Any = sys.stdout if output is None else output.open("w", newline="", encoding="utf-8")
    try:
        if fmt == "jsonl":
            count = guard(lambda: _write_jsonl(out, rows))
        else:
            count = guard(lambda: _write_csv(out, rows))
    finally:
        if output is not None:
            out.close()
    if output is not None:
        click.echo(f"Wrote {count} request(s) to {output}.", err=True)


def _write_jsonl(out: io.TextIOBase, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


_CSV_COLUMNS = (
    "seq",
    "request_id",
    "job_id",
    "tenant",
    "endpoint",
    "created_at",
    "action",
    "frame_action",
    "release",
    "review",
    "categories",
    "policy_version",
    "latency_ms",
    "original",
    "normalized",
)


def _write_csv(out: io.TextIOBase, rows: Iterable[dict[str, Any]]) -> int:
    writer = csv.DictWriter(out, fieldnames=_CSV_COLUMNS)
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow({**row, "categories": ";".join(row["categories"])})
        count += 1
    return count


@audit.command()
@click.option("--since", type=TimeParam(), help="Requests at or after TIME (2026-01-31, 7d).")
@click.option("--until", type=TimeParam(), help="Requests before TIME.")
@click.option("--tenant", help="Only this tenant's requests.")
@json_option
@db_option
def stats(
    since: float | None, until: float | None, tenant: str | None, as_json: bool, db: DbTarget
) -> None:
    """Per day (UTC) and category: requests reviewed, blocked, and the rate of all requests."""
    log = open_log(db)
    rows = guard(lambda: log.stats(since=since, until=until, tenant=tenant))
    if as_json:
        echo_json([r.as_dict() for r in rows])
        return
    print_table(
        "flagged requests per day and category",
        ["day", "category", "review", "block", "requests", "rate"],
        ([r.day, r.category, r.review, r.block, r.requests, f"{r.rate:.2%}"] for r in rows),
    )


for _command in CHAIN_COMMANDS:
    audit.add_command(_command)
