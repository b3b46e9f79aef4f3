"""``reelguard audit ...``: the reviewer's command line over the audit log.

Read commands (``list``, ``show``, ``queue``, ``stats``, ``verify``, ``prompt-retention``)
print readable tables on a terminal and JSON with ``--json``. Bad ids, filters and durations
end with a message saying how to fix them, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from gateway.options import db_option

F = TypeVar("F", bound=Callable[..., Any])


audit: click.Group = click.Group(
    "audit",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="""Review the audit log: what happened to each request, why, and who changed it.

    Every request, verdict, frame score, decision, release and review is one row in a hash
    chain; `reelguard audit verify` proves nothing was edited, deleted or reordered.
    """,
)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> float:
    """``90d``, ``12h``, ``30m``, ``45s``, ``2w`` as seconds; ValueError otherwise."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(
            f"{text!r} is not a duration; use a number and a unit: 45s, 30m, 12h, 90d, 2w"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_time(text: str, now: float | None = None) -> float:
    """An instant as epoch seconds: ISO 8601 (UTC unless it names a zone), a duration ago
    (``7d``), ``now``, ``today`` (UTC midnight) or epoch seconds; ValueError otherwise."""
    now = time.time() if now is None else now
    value = text.strip().lower()
    if value == "now":
        return now
    if value == "today":
        day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return day.timestamp()
    if _DURATION.match(value):
        return now - parse_duration(value)
    if re.fullmatch(r"\d{9,}(\.\d+)?", value):
        return float(value)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; use ISO 8601 (2026-01-31 or 2026-01-31T12:00), a "
            "duration ago (7d, 12h), 'today', 'now' or epoch seconds"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class TimeParam(click.ParamType):
    """A click parameter for :func:`parse_time`."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            return parse_time(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class DurationParam(click.ParamType):
    """A click parameter for :func:`parse_duration`."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def json_option(func: F) -> F:
    """The shared ``--json`` flag of every read command."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")(
        func
    )


def data_dir_option(func: F) -> F:
    """``--data-dir``: the video folder (released/, quarantine/, evidence/)."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Video folder (released/, quarantine/, evidence/); default REELGUARD_DATA_DIR "
        "or var/videos.",
    )(func)


def _data_dir(given: Path | None) -> Path:
    from gateway.settings import get_settings

    return given if given is not None else get_settings().data_dir


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
            type=click.Choice(["prompt", "frame"]),
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


def _log(db: Path) -> Any:
    from audit.log import AuditLog

    if not db.exists():
        raise click.ClickException(
            f"no database at {db}; pass --db PATH or set REELGUARD_DB to the gateway's database"
        )
    return AuditLog(db)


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


def _guard(call: Callable[[], Any]) -> Any:
    """Run ``call``; turn the audit log's errors into messages that say how to fix them."""
    from audit.errors import AuditError

    try:
        return call()
    except AuditError as exc:
        raise click.ClickException(str(exc)) from None


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    # Off a terminal (pipes, files) rich would wrap at 80 columns; keep each row on one line.
    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=240)
    console.print(table)


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


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
def list_cmd(limit: int, offset: int, as_json: bool, db: Path, **filters: Any) -> None:
    """List requests, newest first, with where each stands (decision, release, review).

    Example: reelguard audit list --category violence --since 7d --action block
    """
    log = _log(db)
    rows = _guard(lambda: log.list_requests(_filter(**filters), limit=limit, offset=offset))
    if as_json:
        _echo_json([r.as_dict() for r in rows])
        return
    _table(
        f"{len(rows)} request(s)",
        ["time (UTC)", "request", "job", "tenant", "action", "frame", "release", "review", "why"],
        (
            [
                _when(r.created_at),
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
def show(ref: str, as_json: bool, db: Path) -> None:
    """Everything recorded about one request or video job (ID is either id).

    The prompt as sent and normalised, every verdict, the decisions and their reasons, the frame
    timeline (timestamps and scores), evidence thumbnails, releases and reviews.
    """
    log = _log(db)
    story = _guard(lambda: log.story(ref))
    if as_json:
        _echo_json(story.as_dict())
        return
    _show_story(story)


def _show_story(story: Any) -> None:
    req = story.request
    if req is not None:
        retention = req["redacted"] or req["retention"]
        hidden = f"<not stored: prompt retention {retention}>"
        _table(
            f"request {req['request_id']}",
            ["field", "value"],
            [
                ["time (UTC)", _when(req["created_at"])],
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
        _table(
            "prompt verdicts",
            ["classifier", "category", "score", "threshold", "model", "evidence"],
            (
                [
                    v["classifier"],
                    v["category"],
                    _score(v["score"]),
                    _score(v["threshold"]),
                    f"{v['model_id']}@{v['model_version']}",
                    _evidence_text(v["evidence"]),
                ]
                for v in story.verdicts
                if v["score"] or v["evidence"]
            ),
        )
    _table(
        "decisions",
        ["stage", "action", "policy version", "time (UTC)", "latency ms"],
        (
            [
                d["stage"],
                d["action"],
                d["policy_version"],
                _when(d["recorded_at"]),
                ", ".join(f"{k} {v:.1f}" for k, v in (d["latency_ms"] or {}).items()),
            ]
            for d in story.decisions
        ),
    )
    if story.reasons:
        _table(
            "reasons",
            ["stage", "category", "action", "source", "classifier", "score", "threshold", "where"],
            (
                [
                    r["stage"],
                    r["category"],
                    r["action"],
                    r["source"],
                    r["classifier"],
                    _score(r["score"]),
                    _score(r["threshold"]),
                    _evidence_text(r["evidence"]) or r["message"],
                ]
                for r in story.reasons
            ),
        )
    _show_frames(story)
    _show_outcomes(story)


def _evidence_text(items: Sequence[dict[str, Any]] | None) -> str:
    parts = []
    for e in items or ():
        if e.get("frame_index") is not None:
            parts.append(f"frame {e['frame_index']} @ {e.get('timestamp_s', 0):.2f}s")
        elif e.get("text") is not None:
            parts.append(f"{e['text']!r} [{e.get('start')}:{e.get('end')}]")
        elif "start" in e:
            parts.append(f"[{e['start']}:{e.get('end')}] (text not stored)")
        if e.get("detail"):
            parts.append(str(e["detail"]))
    return "; ".join(parts)


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
    _table(
        "frame timeline (max score per category; ! = at or over threshold)",
        ["frame", "t (s)", *cats],
        rows,
    )


def _show_outcomes(story: Any) -> None:
    if story.evidence:
        _table(
            "evidence thumbnails",
            ["frame", "t (s)", "path", "sha256"],
            (
                [e["frame_index"], e["timestamp_s"], e["path"], (e["sha256"] or "unreadable")[:16]]
                for e in story.evidence
            ),
        )
    if story.releases:
        _table(
            "releases",
            ["time (UTC)", "action", "actor", "path", "reason"],
            (
                [_when(r["recorded_at"]), r["action"], r["actor"], r["path"], r["reason"]]
                for r in story.releases
            ),
        )
    if story.reviews:
        _table(
            "reviews",
            ["time (UTC)", "reviewer", "verdict", "note"],
            (
                [_when(r["recorded_at"]), r["reviewer"], r["verdict"], r["note"]]
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
def queue(limit: int, tenant: str | None, as_json: bool, db: Path) -> None:
    """What awaits a human review, oldest first: withheld videos and prompts sent to review.

    Settle an item with `reelguard audit review ID --approve|--reject`.
    """
    log = _log(db)
    items = _guard(lambda: log.queue(limit, tenant=tenant))
    if as_json:
        _echo_json([i.as_dict() for i in items])
        return
    _table(
        f"{len(items)} item(s) awaiting review",
        ["waiting since (UTC)", "id", "kind", "tenant", "categories"],
        ([_when(i.since), i.ref, i.kind, i.tenant, ", ".join(i.categories)] for i in items),
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
    ref: str, verdict: str | None, note: str, reviewer: str, data_dir: Path | None, db: Path
) -> None:
    """Record a review of a request or video job (ID is either id).

    Approving a withheld video releases it through the job system's release path; the release
    and the review are both recorded in the chain. Rejecting keeps it withheld.
    """
    if verdict is None:
        raise click.UsageError("give --approve or --reject")
    if not reviewer.strip():
        raise click.UsageError("--reviewer must name who reviews")
    from audit.release import apply_review

    log = _log(db)
    folder = _data_dir(data_dir)
    outcome = _guard(lambda: apply_review(log, db, folder, ref, verdict, reviewer, note))
    click.echo(outcome.message)


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
def export(fmt: str, output: Path | None, db: Path, **filters: Any) -> None:
    """Export matching requests (newest first) as JSON lines or CSV, with their prompt text."""
    log = _log(db)
    flt = _filter(**filters)
    rows = _guard(lambda: log.iter_requests(flt))
    out: Any = sys.stdout if output is None else output.open("w", newline="", encoding="utf-8")
    try:
        if fmt == "jsonl":
            count = _guard(lambda: _write_jsonl(out, rows))
        else:
            count = _guard(lambda: _write_csv(out, rows))
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
    since: float | None, until: float | None, tenant: str | None, as_json: bool, db: Path
) -> None:
    """Per day (UTC) and category: requests reviewed, blocked, and the rate of all requests."""
    log = _log(db)
    rows = _guard(lambda: log.stats(since=since, until=until, tenant=tenant))
    if as_json:
        _echo_json([r.as_dict() for r in rows])
        return
    _table(
        "flagged requests per day and category",
        ["day", "category", "review", "block", "requests", "rate"],
        ([r.day, r.category, r.review, r.block, r.requests, f"{r.rate:.2%}"] for r in rows),
    )


def read_anchors(path: Path) -> list[Any]:
    """Anchors from a JSONL anchors file (missing file: none yet). Bad lines name file:line."""
    from audit.records import Anchor

    if not path.exists():
        return []
    anchors = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot read the anchors file ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            anchor = Anchor(int(obj["seq"]), str(obj["hash"]), str(obj.get("at", "")))
            if anchor.seq < 0 or len(anchor.hash) != 64:
                raise ValueError("seq must be >= 0 and hash a 64-character sha256")
        except (ValueError, KeyError, TypeError) as exc:
            raise click.ClickException(
                f"{path}:{number}: not an anchor ({exc}); each line is "
                '{"seq": N, "hash": "<sha256>", "at": "<time>"} as written by '
                "`reelguard audit verify --anchor`; restore the line from your copy"
            ) from None
        anchors.append(anchor)
    return anchors


def append_anchor(path: Path, seq: int, head_hash: str) -> None:
    """Append the current head to the anchors file (flushed and fsynced)."""
    line = json.dumps({"seq": seq, "hash": head_hash, "at": datetime.now(UTC).isoformat()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


@audit.command()
@click.option(
    "--check-files",
    is_flag=True,
    help="Also re-hash evidence thumbnails on disk (under --data-dir/evidence).",
)
@click.option(
    "--anchor",
    "anchor_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Anchors file kept outside the database (JSONL): check every head noted there, then "
    "append the current head after a clean run.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes checking ranges of the chain (default: one per CPU for large logs).",
)
@data_dir_option
@json_option
@db_option
@click.pass_context
def verify(
    ctx: click.Context,
    check_files: bool,
    anchor_path: Path | None,
    workers: int | None,
    data_dir: Path | None,
    as_json: bool,
    db: Path,
) -> None:
    """Recompute the whole hash chain; name the first row edited, deleted or reordered.

    Exits 1 when the chain is broken. The database alone cannot prove that nobody rewrote a row
    and recomputed every later hash, or cut rows from the end along with the head: keep the
    head outside it. `--anchor FILE` does that: it checks every head noted in FILE and appends
    the current one after a clean run (put FILE on other storage, or copy it to a ticket).
    """
    log = _log(db)
    anchors = read_anchors(anchor_path) if anchor_path is not None else []
    folder = _data_dir(data_dir) if check_files else None
    report = _guard(
        lambda: log.verify(
            check_files=check_files, workers=workers, anchors=anchors, data_dir=folder
        )
    )
    if anchor_path is not None and report.ok:
        last = anchors[-1] if anchors else None
        if last is None or (last.seq, last.hash) != (report.head_seq, report.head_hash):
            append_anchor(anchor_path, report.head_seq, report.head_hash)
    if as_json:
        _echo_json(report.as_dict())
    elif report.ok:
        click.echo(
            f"OK: {report.rows} rows verified in {report.seconds:.2f} s "
            f"(seq {report.base_seq + 1}..{report.head_seq}); head {report.head_hash}"
        )
        if anchor_path is not None:
            click.echo(
                f"{report.anchors_checked} anchor(s) in {anchor_path} still match; "
                "the current head is noted there"
            )
    else:
        first = report.problems[0]
        click.echo(f"BROKEN: first bad row: {first.table} seq {first.seq}: {first.message}")
        _table(
            f"{len(report.problems)} problem(s)",
            ["seq", "table", "kind", "message"],
            ([p.seq, p.table, p.kind, p.message] for p in report.problems),
        )
    if not report.ok:
        ctx.exit(1)


@audit.command()
@click.option(
    "--older-than", type=DurationParam(), required=True, help="Age to remove: 90d, 12w, 36h."
)
@click.option("--actor", required=True, help="Who purges (kept in the chained purge record).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@data_dir_option
@json_option
@db_option
def purge(
    older_than: float, actor: str, yes: bool, data_dir: Path | None, as_json: bool, db: Path
) -> None:
    """Delete every audit row older than a duration; the chain stays verifiable.

    The oldest rows are removed and a chained purge record commits to the last removed row's
    hash, which becomes the verified start of the chain. If any of those rows fails
    verification, nothing is purged. Their evidence thumbnails are deleted only inside
    --data-dir/evidence/; a stored path that leads elsewhere is left alone and listed.
    """
    log = _log(db)
    folder = _data_dir(data_dir)
    if not yes and sys.stdin.isatty():
        click.confirm(
            f"Delete audit rows older than {older_than / 86400:g} days from {db} (and their "
            f"evidence files in {folder / 'evidence'})?",
            abort=True,
        )
    report = _guard(lambda: log.purge(older_than, actor=actor, data_dir=folder))
    if as_json:
        _echo_json(report.as_dict())
        return
    click.echo(
        f"Purged {report.rows} rows (through seq {report.through_seq}) and {report.files} "
        f"evidence file(s) recorded before {_when(report.cutoff)} UTC."
    )
    for line in report.kept:
        click.echo(f"Kept {line}", err=True)


@audit.command()
@click.option("--tenant", help="Whose prompts to redact.")
@click.option("--all-tenants", is_flag=True, help="Redact every tenant's prompts.")
@click.option(
    "--mode",
    type=click.Choice(["hash", "drop"]),
    required=True,
    help="hash: keep a salted digest that can confirm a candidate text; drop: keep nothing.",
)
@click.option("--older-than", type=DurationParam(), help="Only rows older than this (e.g. 30d).")
@click.option("--actor", required=True, help="Who redacts (kept in the chained record).")
@json_option
@db_option
def redact(
    tenant: str | None,
    all_tenants: bool,
    mode: str,
    older_than: float | None,
    actor: str,
    as_json: bool,
    db: Path,
) -> None:
    """Remove stored prompt text and evidence quotes; the chain stays verifiable.

    The chain commits to each text's salted digest, not the text, so removing it breaks no
    hash; a chained redaction record says who removed what, and verify accepts nothing else.
    """
    if (tenant is None) == (not all_tenants):
        raise click.UsageError("give exactly one of --tenant NAME or --all-tenants")
    log = _log(db)
    report = _guard(lambda: log.redact(tenant, mode, actor=actor, older_than_s=older_than))
    if as_json:
        _echo_json(report.as_dict())
        return
    click.echo(
        f"Redacted ({report.mode}) {report.rows} row(s) of tenant {report.tenant} "
        f"through seq {report.through_seq}."
    )


@audit.command("prompt-retention")
@click.argument("tenant", required=False)
@click.argument("mode", required=False, type=click.Choice(["keep", "hash", "drop"]))
@click.option(
    "--actor",
    default=lambda: _login_name(),
    show_default="your login name",
    help="Who changes the setting (kept in the chained settings record).",
)
@json_option
@db_option
def prompt_retention(
    tenant: str | None, mode: str | None, actor: str, as_json: bool, db: Path
) -> None:
    """Show or set how a tenant's new prompts are stored: keep, hash or drop.

    No arguments: list tenants with a setting (others keep). TENANT: show it. TENANT MODE: set
    it (stored in the database, so every gateway and worker process applies it; the change and
    its --actor are a chained record). Existing rows are unchanged; use `reelguard audit redact`
    for them.
    """
    log = _log(db) if mode is None else _log_create(db)
    if mode is not None and tenant is not None:
        _guard(lambda: log.set_prompt_retention(tenant, mode, actor=actor))
    settings = log.prompt_retentions()
    if tenant is not None:
        settings = {tenant: settings.get(tenant, "keep")}
    if as_json:
        _echo_json(settings)
        return
    _table("prompt retention", ["tenant", "prompts"], sorted(settings.items()))


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _log_create(db: Path) -> Any:
    from audit.log import AuditLog

    return AuditLog(db)
