"""What differs between the SQL databases ReelGuard runs on, in one small object.

The stores (audit log, job queue, API keys, webhooks) write their SQL once, with ``?``
placeholders and standard SQL where SQLite and PostgreSQL agree (``INSERT ... ON CONFLICT``,
``coalesce``, ``CASE``), and ask the :class:`Dialect` for the few pieces that differ. SQLite is
the only backend today; each member says what the PostgreSQL dialect (issue 13) returns, so the
seam is visible where it is used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Dialect:
    """The SQL that differs per database (an instance per backend; see :data:`SQLITE`)."""

    name: str
    paramstyle: str
    """``qmark`` (SQLite: ``?``) or ``format`` (psycopg: ``%s``); :meth:`sql` converts."""
    begin_write: str
    """Starts a write transaction. SQLite: ``BEGIN IMMEDIATE`` (takes the database's one write
    lock up front, so two writers never deadlock upgrading a read lock). PostgreSQL: ``BEGIN``."""
    begin_read: str
    """Starts a read transaction that sees one snapshot. SQLite (WAL): ``BEGIN``. PostgreSQL:
    ``BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY``."""
    lock_row: str
    """Appended to the ``SELECT`` of a row a write transaction is about to change (the chain
    head): empty in SQLite, where ``BEGIN IMMEDIATE`` already serialises writers; PostgreSQL:
    `` FOR UPDATE``, so concurrent appends from many processes queue on the head row."""
    skip_locked: str
    """Appended to the ``SELECT`` that claims the next job (or webhook delivery): empty in
    SQLite (one writer at a time); PostgreSQL: `` FOR UPDATE SKIP LOCKED``, so workers on
    other machines claim different rows without waiting for each other."""

    def sql(self, text: str) -> str:
        """``text`` (written with ``?`` placeholders) in this driver's placeholder style."""
        if self.paramstyle == "qmark":
            return text
        return text.replace("%", "%%").replace("?", "%s")

    def upsert(
        self, table: str, columns: Sequence[str], key: Sequence[str], update: Sequence[str]
    ) -> str:
        """``INSERT`` a row, or on a ``key`` conflict set the ``update`` columns from it
        (``ON CONFLICT ... DO UPDATE SET c = excluded.c``: the same in both databases)."""
        marks = ", ".join("?" * len(columns))
        sets = ", ".join(f"{c} = excluded.{c}" for c in update)
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
        )

    def insert_or_ignore(self, table: str, columns: Sequence[str]) -> str:
        """``INSERT`` a row unless it conflicts with an existing one (then nothing happens)."""
        marks = ", ".join("?" * len(columns))
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"

    def utc_day(self, epoch_column: str) -> str:
        """The UTC day (``YYYY-MM-DD`` text) of a column of epoch seconds. SQLite:
        ``date(col, 'unixepoch')``; PostgreSQL: ``to_char(to_timestamp(col) AT TIME ZONE 'UTC',
        'YYYY-MM-DD')``."""
        return f"date({epoch_column}, 'unixepoch')"

    def greatest(self, a: str, b: str) -> str:
        """The larger of two values. SQLite: the scalar ``max(a, b)``; PostgreSQL:
        ``GREATEST(a, b)``."""
        return f"max({a}, {b})"

    def distinct_list(self, column: str) -> str:
        """The distinct values of ``column`` in a group, comma-separated. SQLite:
        ``group_concat(DISTINCT col)``; PostgreSQL: ``string_agg(DISTINCT col, ',')``."""
        return f"group_concat(DISTINCT {column})"


SQLITE = Dialect(
    name="sqlite",
    paramstyle="qmark",
    begin_write="BEGIN IMMEDIATE",
    begin_read="BEGIN",
    lock_row="",
    skip_locked="",
)
"""The SQLite dialect (WAL mode; see :mod:`storage.sqlite`)."""
