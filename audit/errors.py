"""Errors raised by the audit log; each message says what went wrong and how to fix it.

::

    AuditError
    ├── UnknownRecord   no request, job or row with that id
    ├── BadFilter       a filter value that cannot be understood (e.g. ``--since yesterdayish``)
    ├── InvalidRecord   a record that cannot be stored as given (bad endpoint, action, tenant...)
    │   └── UnsafePath  a stored file path that leads outside the data folder
    └── SchemaTooNew    the database was written by a newer ReelGuard
"""

from __future__ import annotations


class AuditError(Exception):
    """Base class for audit log errors."""


class UnknownRecord(AuditError):
    """No request, job or row with the given id."""


class BadFilter(AuditError):
    """A filter or duration that cannot be parsed or is out of range."""


class InvalidRecord(AuditError):
    """A record with a value the audit log refuses to store."""


class UnsafePath(InvalidRecord):
    """A file path read from the database that does not resolve inside the data folder."""


class SchemaTooNew(AuditError):
    """The database's audit schema is newer than this version of ReelGuard understands."""
