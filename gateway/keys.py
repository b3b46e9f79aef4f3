"""API keys: bearer tokens that map a caller to a tenant, stored hashed in the database.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage import Database

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


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS idx_api_keys_key_hash ON api_keys (key_hash)",
)


class KeyStore:
    """API keys in the ``api_keys`` table of the gateway's database.

    Thread-safe: each call is one short transaction (key operations are tiny indexed queries).
    """

    def __init__(self, database: Database | Path | str) -> None:
        if isinstance(database, Database):
            self.database = database
        else:
            self.database = Database.from_url(database, durable=True)
        self.path = self.database.path
        self.database.create_schema(_SCHEMA)

    def close(self) -> None:
        """Close the database connections (a later call reopens them)."""
        self.database.close()

    def create(self, tenant: str) -> CreatedKey:
        """Create a key for ``tenant``; the returned token is the only copy of the secret."""
        validate_tenant(tenant)
        key_id = secrets.token_hex(4)
        token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(key_id=key_id, tenant=tenant, created_at=_now())
        with self.database.transaction(write=True) as tx:
            tx.execute(
                "INSERT INTO api_keys (key_id, tenant, key_hash, created_at, revoked_at) "
                "VALUES (?, ?, ?, ?, NULL)",
                (key.key_id, key.tenant, hash_token(token), key.created_at),
            )
        return CreatedKey(key=key, token=token)

    def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        """All keys, oldest first."""
        where = "" if include_revoked else " WHERE revoked_at IS NULL"
        with self.database.transaction() as tx:
            rows = tx.records(f"SELECT * FROM api_keys{where} ORDER BY rowid")
        return [_row_to_key(r) for r in rows]

    def count_active(self) -> int:
        """How many keys are not revoked."""
        with self.database.transaction() as tx:
            return int(tx.value("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL"))

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key by id (idempotent); raise :class:`UnknownKey` if there is none."""
        with self.database.transaction(write=True) as tx:
            row = tx.record("SELECT * FROM api_keys WHERE key_id = ?", (key_id,))
            if row is None:
                raise UnknownKey(
                    f"no API key with id {key_id!r}; `reelguard keys list` shows the ids"
                )
            if row["revoked_at"] is None:
                row["revoked_at"] = _now()
                tx.execute(
                    "UPDATE api_keys SET revoked_at = ? WHERE key_id = ?",
                    (row["revoked_at"], key_id),
                )
        return _row_to_key(row)

    def authenticate(self, token: str) -> ApiKey | None:
        """The active key matching ``token``, or None (unknown, malformed or revoked)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 256:
            return None
        wanted = hash_token(token)
        with self.database.transaction() as tx:
            row = tx.record("SELECT * FROM api_keys WHERE key_hash = ? LIMIT 1", (wanted,))
        if row is None:
            return None
        # The lookup is by hash already; the constant-time compare keeps the check itself
        # free of timing differences should the lookup ever change (e.g. by key id).
        if not hmac.compare_digest(row["key_hash"], wanted) or row["revoked_at"] is not None:
            return None
        return _row_to_key(row)


def _row_to_key(row: dict[str, Any]) -> ApiKey:
    return ApiKey(
        key_id=str(row["key_id"]),
        tenant=str(row["tenant"]),
        created_at=str(row["created_at"]),
        revoked_at=row["revoked_at"],
    )
