"""The ``reelguard`` command line. Each area registers its own group in :data:`COMMANDS`."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelguard")
def main() -> None:
    """ReelGuard: a safety and moderation gateway in front of a text-to-video generator."""


def db_option(func):  # type: ignore[no-untyped-def]
    """The shared ``--db PATH`` option for every command that touches the database."""
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=lambda: str(Settings().db),
        show_default="REELGUARD_DB or var/reelguard.db",
        help="SQLite database file.",
    )(func)


# Explicit registry: every top-level command, in one place.
COMMANDS: dict[str, click.Command] = {}

for name, command in COMMANDS.items():
    main.add_command(command, name)
