"""Click options shared by every command group (gateway, audit, worker).

A module of its own so any command module can import them without importing ``gateway.cli``,
which imports every command module to build its registry.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from config.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


def db_option(func: F) -> F:
    """The shared ``--db PATH`` option for every command that touches the database."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=lambda: str(Settings().db),
        show_default="REELGUARD_DB or var/reelguard.db",
        help="SQLite database file.",
    )(func)
