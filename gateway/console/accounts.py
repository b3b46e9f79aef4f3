"""Reviewer accounts and console sessions, in the gateway's database (:mod:`storage`).

Reviewer accounts are separate from tenant API keys: a person signs in to the review console
(``/review``) with a name and password; an API key only ever calls ``/v1``. A ``reviewer``
sees the tenants it is assigned, an ``admin`` sees every tenant.

Passwords are stored as scrypt hashes (``scrypt$<log2 n>$<r>$<p>$<salt>$<hash>``, about 0.1 s
and 32 MiB per check, so a stolen table is slow to attack); a sign-in with an unknown name
spends the same time on a dummy hash, so timing does not tell which names exist. After
``lockout_failures`` wrong passwords in a row an account is locked for ``lockout_s`` seconds
(even the right password is refused meanwhile). Session tokens are 256-bit random strings;
only their SHA-256 is stored, with a CSRF token per session.

Errors::

    AccountError
    ├── InvalidAccount   a bad name, role, tenant or password
    ├── UnknownReviewer  no account with that name
    └── SignInFailed     wrong name or password, locked or disabled account (one message)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gateway.keys import validate_tenant
from storage import Database, StorageConflict
from storage.database import split_statements

Role = Literal["reviewer", "admin"]
ROLES: tuple[Role, ...] = ("reviewer", "admin")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 256

SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
"""scrypt cost: n = 2**15, r = 8 (32 MiB of memory per check), p = 1."""

LAST_SEEN_WRITE_S = 30.0
"""A session's ``last_seen`` is written at most this often (not on every request)."""

_SCHEMA = split_statements("""
CREATE TABLE IF NOT EXISTS reviewers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('reviewer', 'admin')),
    tenants TEXT NOT NULL DEFAULT '[]',
    password_hash TEXT NOT NULL,
    blur_flagged INTEGER NOT NULL DEFAULT 1,
    created_at REAL NOT NULL,
    password_set_at REAL NOT NULL,
    disabled_at REAL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until REAL
);
CREATE TABLE IF NOT EXISTS reviewer_sessions (
    token_hash TEXT PRIMARY KEY,
    reviewer_id INTEGER NOT NULL REFERENCES reviewers (id),
    csrf_token TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reviewer_sessions_reviewer ON reviewer_sessions (reviewer_id);
""")


class AccountError(Exception):
    """Base class of reviewer account errors; the message says how to fix the problem."""


class InvalidAccount(AccountError):
    """A name, role, tenant or password the account store refuses."""


class UnknownReviewer(AccountError):
    """No reviewer account with that name."""


class SignInFailed(AccountError):
    """Wrong name or password, or a locked or disabled account (deliberately one message)."""


@dataclass(frozen=True, slots=True)
class Reviewer:
    """A reviewer account, without its password hash."""

    id: int
    name: str
    role: Role
    tenants: tuple[str, ...]
    blur_flagged: bool
    created_at: float
    disabled_at: float | None
    locked_until: float | None

    @property
    def active(self) -> bool:
        """True until the account is disabled."""
        return self.disabled_at is None

    @property
    def all_tenants(self) -> bool:
        """Admins see every tenant."""
        return self.role == "admin"

    def can_see(self, tenant: str) -> bool:
        """Whether this reviewer may see (and review) ``tenant``'s items."""
        return self.all_tenants or tenant in self.tenants

    def scope(self) -> tuple[str, ...] | None:
        """The tenants this reviewer sees, or ``None`` for all of them (an admin)."""
        return None if self.all_tenants else self.tenants


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in console session: whose it is and the CSRF token its forms carry."""

    reviewer: Reviewer
    csrf_token: str
    created_at: float


@dataclass(frozen=True, slots=True)
class NewAccount:
    """A created account (or a password reset) and its one-time password (never stored)."""

    reviewer: Reviewer
    password: str


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The stored form of ``password``: ``scrypt$<log2 n>$<r>$<p>$<salt>$<hash>`` (base64)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return (
        f"scrypt${SCRYPT_LOG2_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"
    )


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time compare; False if malformed)."""
    try:
        kind, log2_n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = _scrypt(password, base64.b64decode(salt), int(log2_n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    if not 10 <= log2_n <= 20 or not 1 <= r <= 32 or not 1 <= p <= 16:
        raise ValueError("scrypt parameters out of range")
    n = 1 << log2_n
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * n * r + (1 << 20),
        dklen=32,
    )


_DUMMY_HASH = hash_password("not a password of anyone", salt=b"reelguard-dummy!")


def new_password() -> str:
    """A random one-time password (16 URL-safe characters, 96 bits)."""
    return secrets.token_urlsafe(12)


def token_hash(token: str) -> str:
    """The stored form of a session token: hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidAccount(
            f"invalid reviewer name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise InvalidAccount(
            f"a password needs {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )


class ReviewerStore:
    """Reviewer accounts and sessions (tables ``reviewers``, ``reviewer_sessions``) in the
    gateway's database (a :class:`~storage.Database`, shared with the audit log, jobs and keys;
    or a path or URL to open one).

    Every method runs its own short transaction, so one store is safe to share between threads
    and processes. ``idle_s``/``max_s`` bound a session's life; ``lockout_failures`` wrong
    passwords in a row lock an account for ``lockout_s``. The tables are created with
    :meth:`storage.Database.create_schema`, as the job queue and the key store create theirs.
    """

    def __init__(
        self,
        database: Database | Path | str,
        *,
        idle_s: float = 3600.0,
        max_s: float = 12 * 3600.0,
        lockout_failures: int = 5,
        lockout_s: float = 900.0,
    ) -> None:
        if isinstance(database, Database):
            self.database = database
        else:
            self.database = Database.from_url(database, durable=True)
        self.idle_s, self.max_s = idle_s, max_s
        self.lockout_failures, self.lockout_s = lockout_failures, lockout_s
        self.database.create_schema(_SCHEMA)

    def _row(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        with self.database.transaction() as tx:
            return tx.record(sql, params)

    # -- administration (the `reelguard reviewers` commands) --------------------------------

    def create(self, name: str, role: str = "reviewer", tenants: Sequence[str] = ()) -> NewAccount:
        """Create an account and return it with its one-time password.

        A ``reviewer`` needs at least one tenant; an ``admin`` sees every tenant (``tenants``
        must then be empty). Names are never reused, even of disabled accounts, so a name in
        the audit log always means one account.
        """
        _check_name(name)
        if role not in ROLES:
            raise InvalidAccount(f"role {role!r} is not one of {', '.join(ROLES)}")
        scope = sorted({validate_tenant_or_explain(t) for t in tenants})
        if role == "reviewer" and not scope:
            raise InvalidAccount(
                "a reviewer sees only the tenants it is given: pass --tenant T (repeatable), "
                "or --role admin for an account that sees every tenant"
            )
        if role == "admin" and scope:
            raise InvalidAccount("an admin sees every tenant; drop --tenant or use --role reviewer")
        password = new_password()
        now = time.time()
        try:
            with self.database.transaction(write=True) as tx:
                tx.execute(
                    "INSERT INTO reviewers (name, role, tenants, password_hash, created_at, "
                    "password_set_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, role, json.dumps(scope), hash_password(password), now, now),
                )
        except StorageConflict:
            raise InvalidAccount(
                f"a reviewer named {name!r} exists already (names are never reused, even of "
                "disabled accounts); choose another name"
            ) from None
        return NewAccount(self.get(name), password)

    def get(self, name: str) -> Reviewer:
        """The account called ``name``; :class:`UnknownReviewer` if there is none."""
        row = self._row("SELECT * FROM reviewers WHERE name = ?", (name,))
        if row is None:
            raise UnknownReviewer(
                f"no reviewer named {name!r}; `reelguard reviewers list` shows the accounts"
            )
        return _reviewer(row)

    def list(self) -> list[Reviewer]:
        """Every account, oldest first."""
        with self.database.transaction() as tx:
            rows = tx.records("SELECT * FROM reviewers ORDER BY id")
        return [_reviewer(r) for r in rows]

    def disable(self, name: str) -> Reviewer:
        """Disable an account (idempotent): its sessions end now and it cannot sign in."""
        reviewer = self.get(name)
        with self.database.transaction(write=True) as tx:
            tx.execute(
                "UPDATE reviewers SET disabled_at = coalesce(disabled_at, ?) WHERE id = ?",
                (time.time(), reviewer.id),
            )
            tx.execute("DELETE FROM reviewer_sessions WHERE reviewer_id = ?", (reviewer.id,))
        return self.get(name)

    def reset_password(self, name: str) -> NewAccount:
        """A new one-time password for ``name``; ends its sessions and lifts a lockout."""
        reviewer = self.get(name)
        password = new_password()
        now = time.time()
        with self.database.transaction(write=True) as tx:
            tx.execute(
                "UPDATE reviewers SET password_hash = ?, password_set_at = ?, failed_logins = 0, "
                "locked_until = NULL WHERE id = ?",
                (hash_password(password), now, reviewer.id),
            )
            tx.execute("DELETE FROM reviewer_sessions WHERE reviewer_id = ?", (reviewer.id,))
        return NewAccount(self.get(name), password)

    # -- signing in and out -------------------------------------------------------------------

    def sign_in(self, name: str, password: str, *, now: float | None = None) -> tuple[str, Session]:
        """Check the password and open a session: ``(session token, session)``.

        Raises :class:`SignInFailed` (one message whatever the cause) for an unknown name, a
        wrong password, a disabled account or one locked after too many failures.
        """
        now = time.time() if now is None else now
        row = self._row("SELECT * FROM reviewers WHERE name = ?", (name,))
        if row is None or len(password) > MAX_PASSWORD_CHARS:
            verify_password(password[:MAX_PASSWORD_CHARS], _DUMMY_HASH)  # same time either way
            raise SignInFailed("unknown account")
        # The slow hash runs outside any transaction: it must not hold the write lock.
        good = verify_password(password, row["password_hash"])
        if row["disabled_at"] is not None:
            raise SignInFailed(f"account {name!r} is disabled")
        with self.database.transaction(write=True) as tx:
            fresh = tx.record(
                "SELECT failed_logins, locked_until FROM reviewers WHERE id = ?", (row["id"],)
            )
            if fresh is None:  # deleted meanwhile (no command deletes accounts)
                raise SignInFailed("unknown account")
            if fresh["locked_until"] is not None and fresh["locked_until"] > now:
                raise SignInFailed(f"account {name!r} is locked")
            if not good:
                failures = fresh["failed_logins"] + 1
                locked = now + self.lockout_s if failures >= self.lockout_failures else None
                tx.execute(
                    "UPDATE reviewers SET failed_logins = ?, locked_until = ? WHERE id = ?",
                    (0 if locked else failures, locked, row["id"]),
                )
        if not good:
            raise SignInFailed(f"wrong password for {name!r}")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.database.transaction(write=True) as tx:
            tx.execute(
                "UPDATE reviewers SET failed_logins = 0, locked_until = NULL WHERE id = ?",
                (row["id"],),
            )
            tx.execute(
                "INSERT INTO reviewer_sessions (token_hash, reviewer_id, csrf_token, created_at, "
                "last_seen) VALUES (?, ?, ?, ?, ?)",
                (token_hash(token), row["id"], csrf, now, now),
            )
            tx.execute(
                "DELETE FROM reviewer_sessions WHERE last_seen < ? OR created_at < ?",
                (now - self.idle_s, now - self.max_s),
            )
        return token, Session(self.get(name), csrf, now)

    def session(self, token: str, *, now: float | None = None) -> Session | None:
        """The live session of ``token``, or None (unknown, expired, or the account disabled)."""
        if not token or len(token) > 128:
            return None
        now = time.time() if now is None else now
        key = token_hash(token)
        row = self._row(
            "SELECT s.csrf_token, s.created_at AS s_created, s.last_seen, r.* FROM "
            "reviewer_sessions s JOIN reviewers r ON r.id = s.reviewer_id "
            "WHERE s.token_hash = ?",
            (key,),
        )
        if row is None:
            return None
        expired = now - row["last_seen"] > self.idle_s or now - row["s_created"] > self.max_s
        if expired or row["disabled_at"] is not None:
            with self.database.transaction(write=True) as tx:
                tx.execute("DELETE FROM reviewer_sessions WHERE token_hash = ?", (key,))
            return None
        if now - row["last_seen"] > LAST_SEEN_WRITE_S:
            with self.database.transaction(write=True) as tx:
                tx.execute(
                    "UPDATE reviewer_sessions SET last_seen = ? WHERE token_hash = ?", (now, key)
                )
        return Session(_reviewer(row), row["csrf_token"], row["s_created"])

    def sign_out(self, token: str) -> None:
        """End the session of ``token`` (nothing happens for an unknown token)."""
        with self.database.transaction(write=True) as tx:
            tx.execute("DELETE FROM reviewer_sessions WHERE token_hash = ?", (token_hash(token),))

    # -- the account's own settings --------------------------------------------------------

    def set_blur(self, reviewer_id: int, blur_flagged: bool) -> None:
        """The per-account setting: blur and grey flagged frame thumbnails until clicked."""
        with self.database.transaction(write=True) as tx:
            tx.execute(
                "UPDATE reviewers SET blur_flagged = ? WHERE id = ?",
                (int(blur_flagged), reviewer_id),
            )

    def change_password(
        self, reviewer_id: int, current: str, new: str, *, keep_token: str | None = None
    ) -> None:
        """Replace the password after checking the current one; every session but
        ``keep_token``'s (the one making the change) ends."""
        _check_password(new)
        row = self._row("SELECT password_hash FROM reviewers WHERE id = ?", (reviewer_id,))
        if row is None or not verify_password(current, row["password_hash"]):
            raise InvalidAccount("the current password is not right")
        with self.database.transaction(write=True) as tx:
            tx.execute(
                "UPDATE reviewers SET password_hash = ?, password_set_at = ? WHERE id = ?",
                (hash_password(new), time.time(), reviewer_id),
            )
            tx.execute(
                "DELETE FROM reviewer_sessions WHERE reviewer_id = ? AND token_hash != ?",
                (reviewer_id, token_hash(keep_token or "")),
            )


def validate_tenant_or_explain(tenant: str) -> str:
    """A tenant name as API keys use it, or :class:`InvalidAccount` saying what is wrong."""
    try:
        return validate_tenant(tenant)
    except Exception as exc:
        raise InvalidAccount(str(exc)) from None


def _reviewer(row: Mapping[str, Any]) -> Reviewer:
    return Reviewer(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        tenants=tuple(json.loads(row["tenants"])),
        blur_flagged=bool(row["blur_flagged"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
        locked_until=row["locked_until"],
    )
