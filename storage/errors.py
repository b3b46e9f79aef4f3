"""The storage layer's errors: what a driver raised, translated into what a caller can act on.

::

    StorageError
    ├── StorageUnavailable  the database cannot be opened or written now (locked past the busy
    │   │                   timeout, read-only file or disk, disk full, missing folder, not a
    │   │                   database); nothing was written by the failed transaction
    │   ├── StorageRetryable  a transient conflict with another transaction (PostgreSQL
    │   │                   serialization failure or deadlock): run the transaction again
    │   └── ObjectStoreUnavailable  the object store cannot be reached or refused the request
    ├── ObjectMissing       no object under that key (:mod:`storage.objects`)
    ├── StorageConflict     a write broke a uniqueness or integrity constraint
    └── StorageUnsupported  a database URL this version cannot use (an unknown scheme)

Driver errors that mean a bug (SQL that does not parse, a closed connection used) are not
translated: they surface as the driver's own exceptions, with their tracebacks.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of the storage layer's errors; the message names the database."""


class StorageUnavailable(StorageError):
    """The database cannot be opened or written now; the transaction was rolled back."""


class StorageRetryable(StorageUnavailable):
    """The server aborted the transaction to break a conflict with another one (PostgreSQL
    ``40001`` serialization failure, ``40P01`` deadlock); it was rolled back, and running it
    again (:meth:`storage.database.Database.write`) normally succeeds."""


class StorageConflict(StorageError):
    """A write broke a uniqueness or integrity constraint (e.g. an id used twice)."""


class StorageUnsupported(StorageError):
    """The database URL names a backend this version does not support."""


class ObjectStoreUnavailable(StorageUnavailable):
    """The object store cannot be reached now, or refused the request (credentials, bucket);
    the message names the store and what to check. Nothing was changed by the failed call."""


class ObjectMissing(StorageError):
    """No object is stored under the key (the message names the store and the key)."""
