"""What every ``reelguard`` command shares: the ``--db`` option, time and duration parsing,
``--json`` / ``--data-dir`` options, readable tables, and turning audit errors into messages.

A module of its own so each command module can import it without importing ``gateway.cli``,
which imports every command module to build its registry.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from config.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


DbTarget = Path | str
"""What ``--db`` resolves to: the SQLite file (a Path), or ``REELGUARD_DATABASE_URL`` (a str)."""


def settings_from_flags(**overrides: object) -> Settings:
    """Settings from the environment, with the CLI flags that were given on top (``db``: the
    :data:`DbTarget` of :func:`db_option`)."""
    from pydantic import ValidationError

    from config.settings import database_fields

    given = {k: v for k, v in overrides.items() if v is not None}
    if "db" in given:
        given.update(database_fields(given.pop("db")))  # type: ignore[arg-type]
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise click.ClickException(f"invalid setting: {exc}") from None


def _check_db(ctx: click.Context, param: click.Parameter, value: Path | None) -> DbTarget:
    """The database a command opens: ``--db`` when given (a SQLite file; a URL there is
    refused, saying where it goes), else ``REELGUARD_DATABASE_URL``, else ``REELGUARD_DB``."""
    from pydantic import ValidationError

    from storage import Database, StorageUnsupported

    if value is None:
        try:
            return Settings().database
        except ValidationError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    try:
        Database.from_url(value)
    except StorageUnsupported as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None
    return value


def db_option(func: F) -> F:
    """The shared ``--db PATH`` option for every command that touches the database."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        show_default="REELGUARD_DATABASE_URL, else REELGUARD_DB, else var/reelguard.db",
        callback=_check_db,
        help="SQLite database file (PostgreSQL: set REELGUARD_DATABASE_URL instead).",
    )(func)


def db_label(db: DbTarget) -> str:
    """``db`` for messages (a URL's password shown as ``***``)."""
    from config.settings import database_label

    return database_label(db)


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
        help="Video folder (released/, quarantine/, evidence/); default REELGUARD_STORAGE_URL "
        "(an S3 bucket) if set, else REELGUARD_DATA_DIR or var/videos.",
    )(func)


def resolve_data_dir(given: Path | None) -> Any:
    """The object store a command reads and writes videos and evidence in: the ``--data-dir``
    folder when given, else the store the settings name (an S3 bucket or the data folder)."""
    from config.settings import get_settings
    from storage.objects import LocalFolderStore, object_store

    return LocalFolderStore(given) if given is not None else object_store(get_settings())


def open_log(db: DbTarget) -> Any:
    from audit.log import AuditLog

    if isinstance(db, Path) and not db.exists():
        raise click.ClickException(
            f"no database at {db}; pass --db PATH or set REELGUARD_DB to the gateway's database"
        )
    return AuditLog(db)


def guard(call: Callable[[], Any]) -> Any:
    """Run ``call``; turn the audit log's errors into messages that say how to fix them."""
    from audit.errors import AuditError
    from storage.objects import ObjectStoreUnavailable

    try:
        return call()
    except (AuditError, ObjectStoreUnavailable) as exc:
        raise click.ClickException(str(exc)) from None


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
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


def fmt_score(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
