"""API keys: bearer tokens that map a caller to a tenant, stored hashed in SQLite.

A key is ``rg_<key id>_<secret>``. Only the SHA-256 of the whole token is stored (the token has
256 bits of entropy, so a plain hash is enough; no salt or slow hash is needed), and lookups
compare hashes in constant time. The key id is public: ``reelguard keys list`` shows it and
``reelguard keys revoke`` takes it.

Errors::

    KeyStoreError
    ├── InvalidTenant   the tenant name is not a safe policy file name
    └── UnknownKey      no key with that id
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from audit.sqlite_open import connect_wal

TABLE = "api_keys"
TOKEN_PREFIX = "rg_"
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
"""Tenant names double as overlay file names (``<tenant>.yaml``), so keep them boring."""


class KeyStoreError(Exception):
    """Base class for key store errors; the message says how to fix the problem."""


class InvalidTenant(KeyStoreError):
    """The tenant name is not lower-case letters, digits, ``-`` and ``_`` (1-63 characters)."""


class UnknownKey(KeyStoreError):
    """No key with the given id exists."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key, without its secret."""

    key_id: str
    tenant: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        """True until the key is revoked."""
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A freshly created key. ``token`` is shown once and never stored."""

    key: ApiKey
    token: str


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def validate_tenant(tenant: str) -> str:
    """Return ``tenant`` if it is a valid tenant name, else raise :class:`InvalidTenant`."""
    if not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidTenant(
            f"invalid tenant name {tenant!r}: use 1-63 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit (it names the tenant's policy file <tenant>.yaml)"
        )
    return tenant


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyStore:
    """API keys in the ``api_keys`` table of the gateway's SQLite database (WAL mode).

    Thread-safe: one connection guarded by a lock (key operations are tiny indexed queries).
    """

    def __init__(self, db_path: Path) -> None:
        db_path = Path(db_path)
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self.path = db_path
        self._lock = threading.Lock()
        conn = connect_wal(
            db_path, synchronous="FULL", timeout_s=30.0, autocommit=False, check_same_thread=False
        )
        self._db = sqlite_utils.Database(conn)
        table = self._db.table(TABLE)
        if not table.exists():
            table.create(
                {
                    "key_id": str,
                    "tenant": str,
                    "key_hash": str,
                    "created_at": str,
                    "revoked_at": str,
                },
                pk="key_id",
                not_null={"tenant", "key_hash", "created_at"},
            )
            table.create_index(["key_hash"], unique=True, if_not_exists=True)
        self._table = table

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def create(self, tenant: str) -> CreatedKey:
        """Create a key for ``tenant``; the returned token is the only copy of the secret."""
        validate_tenant(tenant)
        key_id = secrets.token_hex(4)
        token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id=key_id, tenant=tenant, created_at=_now())
        with self._lock, self._db.conn:
            self._table.insert(
                {
                    "key_id": key.key_id,
                    "tenant": key.tenant,
                    "key_hash": hash_token(token),
                    "created_at": key.created_at,
                    "revoked_at": None,
                }
            )
        return CreatedKey(key=key, token=token)

    def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """All keys, oldest first."""
        where = None if include_revoked else "revoked_at is null"
        with self._lock:
            rows = list(self._table.rows_where(where, order_by="rowid"))
        return [_row_to_key(r) for r in rows]

    def count_active(self) -> int:
        """How many keys are not revoked."""
        with self._lock:
            return self._table.count_where("revoked_at is null")

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by id (idempotent); raise :class:`UnknownKey` if there is none."""
        with self._lock, self._db.conn:
            try:
                row = self._table.get(key_id)
            except sqlite_utils.db.NotFoundError:
                raise UnknownKey(
                    f"no API key with id {key_id!r}; `reelguard keys list` shows the ids"
                ) from None
            if row["revoked_at"] is None:
                row["revoked_at"] = _now()
                self._table.update(key_id, {"revoked_at": row["revoked_at"]})
        return _row_to_key(row)

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key matching ``token``, or None (unknown, malformed or revoked)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
            return None
        wanted = hash_token(token)
        with self._lock:
            rows = list(self._table.rows_where("key_hash = ?", [wanted], limit=1))
        if not rows:
            return None
        row = rows[0]
        # The lookup is by hash already; the constant-time compare keeps the check itself
        # free of timing differences should the lookup ever change (e.g. by key id).
        if not hmac.compare_digest(row["key_hash"], wanted) or row["revoked_at"] is not None:
            return None
        return _row_to_key(row)


def _row_to_key(row: dict[str, str | None]) -> ApiKey:
    return ApiKey(
        key_id=str(row["key_id"]),
        tenant=str(row["tenant"]),
        created_at=str(row["created_at"]),
        revoked_at=row["revoked_at"],
    )
