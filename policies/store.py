"""The policies a running gateway serves: a base policy plus one overlay per tenant, hot-reloaded.

:class:`PolicyStore` loads ``base_path`` and every ``<tenant>.yaml`` in ``tenant_dir`` at
construction (an invalid file there is an error: a server must not start on a broken policy).
Files in ``tenant_dir`` whose name starts with ``_`` are shared parents (``extends: _school``),
not tenants; any other file must be named like a tenant (lower case, digits, ``-``, ``_``).
:meth:`PolicyStore.reload_if_changed` re-reads them when any file changed; an invalid edit is
refused and logged, the previous policy keeps serving, and :attr:`PolicyStore.last_error` says
why until the file is fixed. :class:`PolicyWatcher` calls it on a timer in a background thread.
Each reload that changes what a tenant is served is reported to the callables registered with
:meth:`PolicyStore.on_change` as :class:`PolicyChange` values (the gateway chains them into the
audit log); a removed tenant overlay is also logged as a WARNING, since that tenant silently
falls back to the base policy.

Only regular files under the size cap are read, without ever blocking (:mod:`policies.files`):
a FIFO or a link to a device in the folder is refused like any invalid file, and the other
tenants keep reloading. The full reasons (:attr:`PolicyStore.last_error`) may quote the files,
so they go to the log and the CLI; :attr:`PolicyStore.last_error_summary` names only the files
and lines, for unauthenticated ``/healthz``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from policies.files import UnsafeFileError, read_policy_bytes
from policies.limits import MAX_FILE_BYTES
from policies.loader import PolicyError, PolicyIssue, PolicyLoader, display_path
from policies.resolved import ResolvedPolicy

log = logging.getLogger("reelguard.policy")

BASE_TENANT = "default"
"""The name the base policy is served under (and what unknown tenants get)."""

TENANT_FILE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
"""A tenant overlay's file stem: the tenant name as API keys spell it (``gateway.keys``)."""
_Fingerprint = tuple[tuple[str, int, int], ...]
_SUMMARY_PLACES = 10


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """What one reload changed for one tenant (the base policy under :data:`BASE_TENANT`).

    ``kind``: ``added`` (a new overlay), ``edited`` (a new version: its file or the base
    changed), ``removed`` (its overlay is gone: the tenant now gets the base policy).
    ``previous``/``version``: the version served before and after (``previous`` is ``None`` for
    an added tenant). ``source``: the overlay file (or the base policy file), for messages.
    """

    tenant: str
    kind: Literal["added", "edited", "removed"]
    previous: str | None
    version: str
    source: str


ChangeListener = Callable[[list[PolicyChange]], None]


class PolicyStore:
    """Thread-safe map from tenant to :class:`ResolvedPolicy`, with hot reload.

    ``base_path`` is the base policy (what ``extends: default`` means); ``tenant_dir`` holds
    tenant overlays named ``<tenant>.yaml``; ``max_file_bytes`` is the largest file read
    (``REELGUARD_POLICY_MAX_BYTES``). Raises :class:`PolicyError` if any file is invalid at
    construction.
    """

    def __init__(
        self,
        base_path: Path | str,
        tenant_dir: Path | str | None = None,
        *,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self.base_path = Path(base_path)
        self.tenant_dir = Path(tenant_dir) if tenant_dir is not None else None
        self.max_file_bytes = max_file_bytes
        self._lock = threading.Lock()
        self.last_error: str | None = None
        """Why the newest edit is refused, in full (may quote the files): for logs and the CLI."""
        self.last_error_summary: str | None = None
        """The same without any content: only the files and lines (for ``/healthz``)."""
        self.reloads = 0
        self._listeners: list[ChangeListener] = []
        base, tenants, errors = self._load_all({})
        if base is None or errors:
            raise PolicyError([i for e in errors.values() for i in e.issues])
        self._base: ResolvedPolicy = base
        self._tenants: dict[str, ResolvedPolicy] = tenants
        self._fingerprint = self._scan()
        self._digests = self._hash_files(self._fingerprint)

    # -- reading ----------------------------------------------------------------------------

    def get(self, tenant: str) -> ResolvedPolicy:
        """The policy for ``tenant``; the base policy when it has no overlay."""
        return self._tenants.get(tenant, self._base)

    @property
    def base(self) -> ResolvedPolicy:
        """The base policy."""
        return self._base

    def tenants(self) -> dict[str, ResolvedPolicy]:
        """Every tenant with its own overlay (a snapshot)."""
        return dict(self._tenants)

    def versions(self) -> dict[str, str]:
        """Policy version per tenant, the base under :data:`BASE_TENANT` (for ``/healthz``)."""
        tenants = self._tenants
        return {BASE_TENANT: self._base.version} | {
            t: p.version for t, p in sorted(tenants.items())
        }

    # -- reloading --------------------------------------------------------------------------

    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener`` with the :class:`PolicyChange` list of every reload that changes
        what some tenant is served (from the reloading thread; its exceptions are logged).

        Listeners run *before* the new policies are served, so a change the gateway chains
        into the audit log is on record before any decision made under the new version (and
        before ``/healthz`` shows it)."""
        self._listeners.append(listener)

    def reload_if_changed(self) -> bool:
        """Re-read the files if any changed; True when a served policy changed.

        Every tenant whose files are valid gets the new version; a tenant whose overlay is
        invalid keeps its previous policy; an invalid base keeps *everything* as it was.
        Listeners (:meth:`on_change`) hear of each change just before the new policies serve.
        """
        with self._lock:  # one reload at a time: listeners see the changes in serving order
            loaded = self._reread()
            if loaded is None:
                return False
            base, tenants = loaded
            changes = _changes(self._base, self._tenants, base, tenants, self.base_path)
            if changes:
                self._report(changes)
            self._base, self._tenants = base, tenants
        if changes:
            log.info("policy reloaded: %s", self.versions())
        return bool(changes)

    def _report(self, changes: list[PolicyChange]) -> None:
        for change in changes:
            if change.kind == "removed":
                log.warning(
                    "tenant %s: its policy overlay %s is gone; it now gets the base policy "
                    "(version %s, was %s)",
                    change.tenant,
                    change.source,
                    change.version,
                    change.previous,
                )
        for listener in list(self._listeners):
            try:
                listener(changes)
            except Exception:  # a listener must not stop the reload (the new policy serves)
                log.exception("policy change listener failed")

    def _reread(self) -> tuple[ResolvedPolicy, dict[str, ResolvedPolicy]] | None:
        """What the files now say (caller holds the lock): the base and tenant policies to
        serve, or None when no file changed or the base is invalid (nothing changes then).
        Records why an edit was refused in :attr:`last_error`."""
        fingerprint = self._scan()
        if fingerprint == self._fingerprint:
            return None
        digests = self._hash_files(fingerprint)
        self._fingerprint = fingerprint
        if digests == self._digests:  # touched, not edited
            return None
        self._digests = digests
        base, tenants, errors = self._load_all(self._tenants)
        self.reloads += 1
        if errors:
            self.last_error = "\n".join(str(e) for e in errors.values())
            self.last_error_summary = _summary(errors.values())
            log.error(
                "policy reload refused; still serving the previous policy:\n%s", self.last_error
            )
        else:
            self.last_error = self.last_error_summary = None
        return None if base is None else (base, tenants)

    def _load_all(
        self, previous: Mapping[str, ResolvedPolicy]
    ) -> tuple[ResolvedPolicy | None, dict[str, ResolvedPolicy], dict[str, PolicyError]]:
        loader = PolicyLoader(self.base_path, max_file_bytes=self.max_file_bytes)
        errors: dict[str, PolicyError] = {}
        try:
            base = loader.load(self.base_path)
        except PolicyError as exc:
            return None, dict(previous), {BASE_TENANT: exc}
        tenants: dict[str, ResolvedPolicy] = {}
        try:
            files = self._tenant_files()
        except PolicyError as exc:
            return base, dict(previous), {"tenant_dir": exc}
        for tenant, path in files.items():
            try:
                _check_tenant_file(tenant, path)
                tenants[tenant] = loader.load(path)
            except PolicyError as exc:
                errors[tenant] = exc
                if tenant in previous:
                    tenants[tenant] = previous[tenant]
        return base, tenants, errors

    def _tenant_files(self) -> dict[str, Path]:
        if self.tenant_dir is None:
            return {}
        if not self.tenant_dir.is_dir():
            raise PolicyError(
                [
                    PolicyIssue(
                        display_path(self.tenant_dir),
                        None,
                        "",
                        "tenant policy folder not found; create it or fix the path",
                    )
                ]
            )
        return {
            p.stem: p for p in sorted(self.tenant_dir.glob("*.yaml")) if not p.stem.startswith("_")
        }

    def _watched(self) -> list[Path]:
        paths = {self.base_path.resolve()}
        for policy in (self._base, *self._tenants.values()) if hasattr(self, "_base") else ():
            paths.update(policy.sources)
        if self.tenant_dir is not None and self.tenant_dir.is_dir():
            paths.update(p.resolve() for p in self.tenant_dir.glob("*.yaml"))
        return sorted(paths)

    def _scan(self) -> _Fingerprint:
        out = []
        for path in self._watched():
            try:
                st = path.stat()
                out.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((str(path), -1, -1))
        return tuple(out)

    def _hash_files(self, fingerprint: _Fingerprint) -> dict[str, str]:
        out = {}
        for name, _, _ in fingerprint:
            try:
                data = read_policy_bytes(Path(name), self.max_file_bytes)
                out[name] = hashlib.sha256(data).hexdigest()
            except UnsafeFileError as exc:  # a FIFO, device or oversized file: never read it
                out[name] = f"refused: {exc}"
            except OSError:
                out[name] = "missing"
        return out


def _changes(
    old_base: ResolvedPolicy,
    old: Mapping[str, ResolvedPolicy],
    new_base: ResolvedPolicy,
    new: Mapping[str, ResolvedPolicy],
    base_path: Path,
) -> list[PolicyChange]:
    """Per tenant, how the served policy changed between two snapshots."""
    out = []
    if new_base.version != old_base.version:
        out.append(
            PolicyChange(
                BASE_TENANT, "edited", old_base.version, new_base.version, display_path(base_path)
            )
        )
    for tenant in sorted(set(old) | set(new)):
        before, after = old.get(tenant), new.get(tenant)
        if after is None and before is not None:
            source = display_path(before.sources[-1]) if before.sources else tenant
            out.append(PolicyChange(tenant, "removed", before.version, new_base.version, source))
        elif after is not None and (before is None or before.version != after.version):
            source = display_path(after.sources[-1]) if after.sources else tenant
            kind: Literal["added", "edited"] = "added" if before is None else "edited"
            out.append(
                PolicyChange(
                    tenant, kind, before.version if before else None, after.version, source
                )
            )
    return out


def _summary(errors: Iterable[PolicyError]) -> str:
    """Where each refused edit is wrong (file name and line), without quoting any file."""
    places: dict[str, None] = {}
    for error in errors:
        for issue in error.issues:
            where = Path(issue.file).name or issue.file
            places[f"{where}:{issue.line}" if issue.line is not None else where] = None
    shown = list(places)[:_SUMMARY_PLACES]
    more = f" and {len(places) - len(shown)} more" if len(places) > len(shown) else ""
    return (
        f"a policy edit was refused ({', '.join(shown)}{more}); the previous policy still "
        "serves. The reasons are in the server log and `reelguard policy validate FILE`."
    )


def _check_tenant_file(tenant: str, path: Path) -> None:
    """A file in the tenant folder must be named like a tenant, and not shadow the base."""
    if tenant == BASE_TENANT:
        raise PolicyError(
            [
                PolicyIssue(
                    display_path(path),
                    None,
                    "",
                    "tenant 'default' always gets the base policy (--policy); edit that file, "
                    "or rename this one",
                )
            ]
        )
    if not TENANT_FILE_RE.match(tenant):
        raise PolicyError(
            [
                PolicyIssue(
                    display_path(path),
                    None,
                    "",
                    "the file name is not a tenant name, so no tenant would get this policy; "
                    "rename it to <tenant>.yaml (lower-case letters, digits, '-', '_'), or "
                    "start it with '_' for a shared parent that is not a tenant",
                )
            ]
        )


class PolicyWatcher:
    """Calls :meth:`PolicyStore.reload_if_changed` every ``interval_s`` in a daemon thread.

    Use ``start()``/``stop()`` (or ``with PolicyWatcher(store):``). An unexpected exception in a
    reload is logged and the watcher keeps running.
    """

    def __init__(self, store: PolicyStore, interval_s: float = 2.0) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive (got {interval_s})")
        self.store = store
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PolicyWatcher:
        """Start watching (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="reelguard-policy-watcher", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching and wait for the thread to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.store.reload_if_changed()
            except Exception:  # keep watching; the previous policy keeps serving
                log.exception("policy watcher: reload failed")

    def __enter__(self) -> PolicyWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
