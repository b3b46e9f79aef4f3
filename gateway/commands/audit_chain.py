"""``reelguard audit verify | purge | redact | prompt-retention``: the chain's own commands.

``verify`` proves nothing was edited, deleted or reordered (and, with ``--anchor``, that the
chain was not rewritten since an earlier run); ``purge`` and ``redact`` remove old rows or
prompt text with a chained record of who did it; ``prompt-retention`` sets how new prompts are
stored. Registered on the ``audit`` group by :mod:`gateway.commands.audit`.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gateway.commands.common import (
    DbTarget,
    DurationParam,
    data_dir_option,
    db_label,
    db_option,
    echo_json,
    fmt_time,
    guard,
    json_option,
    open_log,
    print_table,
    resolve_data_dir,
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


@click.command()
@click.option(
    "--check-files",
    is_flag=True,
    help="Also re-hash evidence thumbnails (under --data-dir/evidence, or evidence/ in the "
    "REELGUARD_STORAGE_URL bucket).",
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
    db: DbTarget,
) -> None:
    """Recompute the whole hash chain; name the first row edited, deleted or reordered.

    Exits 1 when the chain is broken. The database alone cannot prove that nobody rewrote a row
    and recomputed every later hash, or cut rows from the end along with the head: keep the
    head outside it. `--anchor FILE` does that: it checks every head noted in FILE and appends
    the current one after a clean run (put FILE on other storage, or copy it to a ticket).
    """
    log = open_log(db)
    anchors = read_anchors(anchor_path) if anchor_path is not None else []
    folder = resolve_data_dir(data_dir) if check_files else None
    report = guard(
        lambda: log.verify(
            check_files=check_files, workers=workers, anchors=anchors, data_dir=folder
        )
    )
    if anchor_path is not None and report.ok:
        last = anchors[-1] if anchors else None
        if last is None or (last.seq, last.hash) != (report.head_seq, report.head_hash):
            append_anchor(anchor_path, report.head_seq, report.head_hash)
    if as_json:
        echo_json(report.as_dict())
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
        print_table(
            f"{len(report.problems)} problem(s)",
            ["seq", "table", "kind", "message"],
            ([p.seq, p.table, p.kind, p.message] for p in report.problems),
        )
    if not report.ok:
        ctx.exit(1)


@click.command()
@click.option(
    "--older-than", type=DurationParam(), required=True, help="Age to remove: 90d, 12w, 36h."
)
@click.option("--actor", required=True, help="Who purges (kept in the chained purge record).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@data_dir_option
@json_option
@db_option
def purge(
    older_than: float, actor: str, yes: bool, data_dir: Path | None, as_json: bool, db: DbTarget
) -> None:
    """Delete every audit row older than a duration; the chain stays verifiable.

    The oldest rows are removed and a chained purge record commits to the last removed row's
    hash, which becomes the verified start of the chain. If any of those rows fails
    verification, nothing is purged. Their evidence thumbnails are deleted only inside
    --data-dir/evidence/ (or under evidence/ in the REELGUARD_STORAGE_URL bucket); a stored
    path that leads elsewhere is left alone and listed.
    """
    log = open_log(db)
    folder = resolve_data_dir(data_dir)
    if not yes and sys.stdin.isatty():
        click.confirm(
            f"Delete audit rows older than {older_than / 86400:g} days from {db_label(db)} (and "
            f"their evidence files under evidence/ in {folder.label})?",
            abort=True,
        )
    report = guard(lambda: log.purge(older_than, actor=actor, data_dir=folder))
    if as_json:
        echo_json(report.as_dict())
        return
    click.echo(
        f"Purged {report.rows} rows (through seq {report.through_seq}) and {report.files} "
        f"evidence file(s) recorded before {fmt_time(report.cutoff)} UTC."
    )
    for line in report.kept:
        click.echo(f"Kept {line}", err=True)


@click.command()
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
    db: DbTarget,
) -> None:
    """Remove stored prompt text and evidence quotes; the chain stays verifiable.

    The chain commits to each text's salted digest, not the text, so removing it breaks no
    hash; a chained redaction record says who removed what, and verify accepts nothing else.
    """
    if (tenant is None) == (not all_tenants):
        raise click.UsageError("give exactly one of --tenant NAME or --all-tenants")
    log = open_log(db)
    report = guard(lambda: log.redact(tenant, mode, actor=actor, older_than_s=older_than))
    if as_json:
        echo_json(report.as_dict())
        return
    click.echo(
        f"Redacted ({report.mode}) {report.rows} row(s) of tenant {report.tenant} "
        f"through seq {report.through_seq}."
    )


@click.command("prompt-retention")
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
    tenant: str | None, mode: str | None, actor: str, as_json: bool, db: DbTarget
) -> None:
    """Show or set how a tenant's new prompts are stored: keep, hash or drop.

    No arguments: list tenants with a setting (others keep). TENANT: show it. TENANT MODE: set
    it (stored in the database, so every gateway and worker process applies it; the change and
    its --actor are a chained record). Existing rows are unchanged; use `reelguard audit redact`
    for them.
    """
    log = open_log(db) if mode is None else open_log_create(db)
    if mode is not None and tenant is not None:
        guard(lambda: log.set_prompt_retention(tenant, mode, actor=actor))
    settings = log.prompt_retentions()
    if tenant is not None:
        settings = {tenant: settings.get(tenant, "keep")}
    if as_json:
        echo_json(settings)
        return
    print_table("prompt retention", ["tenant", "prompts"], sorted(settings.items()))


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def open_log_create(db: DbTarget) -> Any:
    from audit.log import AuditLog

    return AuditLog(db)


CHAIN_COMMANDS: tuple[click.Command, ...] = (verify, purge, redact, prompt_retention)
"""The commands :mod:`gateway.commands.audit` adds to the ``audit`` group."""
