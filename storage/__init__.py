"""The storage layer, at the bottom of the import graph: one database the stores share.

Public API: :class:`~storage.database.Database` (``from_url``, ``transaction(write=...)``),
:class:`~storage.database.Tx` (the transaction's connection), the
:class:`~storage.dialect.Dialect` (what differs between SQLite and PostgreSQL) and the errors in
:mod:`storage.errors`. SQLite specifics (WAL opener, error translation) are in
:mod:`storage.sqlite`, PostgreSQL specifics (psycopg 3, ``LISTEN``) in :mod:`storage.postgres`.
The stores written against it: :class:`audit.log.AuditLog`, :class:`gateway.jobs.JobStore`,
:class:`gateway.keys.KeyStore` and :mod:`gateway.webhooks`.
"""

from storage.database import Database, Tx
from storage.dialect import POSTGRES, SQLITE, Dialect
from storage.errors import (
    StorageConflict,
    StorageError,
    StorageRetryable,
    StorageUnavailable,
    StorageUnsupported,
)

__all__ = [
    "POSTGRES",
    "SQLITE",
    "Database",
    "Dialect",
    "StorageConflict",
    "StorageError",
    "StorageRetryable",
    "StorageUnavailable",
    "StorageUnsupported",
    "Tx",
]
