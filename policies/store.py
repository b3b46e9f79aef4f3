"""The policies a running gateway serves: a base policy plus one overlay per tenant, hot-reloaded.

:class:`PolicyStore` loads ``base_path`` and every ``<tenant>.yaml`` in ``tenant_dir`` at
construction (an invalid file there is an error: a server must not start on a broken policy).
Files in ``tenant_dir`` whose name starts with ``_`` are shared parents (``extends: _school``),
not tenants; any other file must be named like a tenant (lower case, digits, ``-``, ``_``).
:meth:`PolicyStore.reload_if_changed` re-reads them when any file changed; an invalid edit is
refused and logged, the previous policy keeps serving, and :attr:`PolicyStore.last_error` says
why until the file is fixed. :class:`PolicyWatcher` calls it on a timer in a background thread.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path

from policies.loader import PolicyError, PolicyIssue, PolicyLoader, display_path
from policies.resolved import ResolvedPolicy

log = logging.getLogger("reelguard.policy")

BASE_TENANT = "default"
"""The name the base policy is served under (and what unknown tenants get)."""

TENANT_FILE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
"""A tenant overlay's file stem: the tenant name as API keys spell it (``gateway.keys``)."""
_Fingerprint = tuple[tuple[str, int, int], ...]


class PolicyStore:
    """Thread-safe map from tenant to :class:`ResolvedPolicy`, with hot reload.

    ``base_path`` is the base policy (what ``extends: default`` means); ``tenant_dir`` holds
    tenant overlays named ``<tenant>.yaml``. Raises :class:`PolicyError` if any file is invalid
    at construction.
    """

    def __init__(self, base_path: Path | str, tenant_dir: Path | str | None = None) -> None:
        self.base_path = Path(base_path)
        self.tenant_dir = Path(tenant_dir) if tenant_dir is not None else None
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.reloads = 0
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

    def reload_if_changed(self) -> bool:
        """Re-read the files if any changed; True when a served policy changed.

        Every tenant whose files are valid gets the new version; a tenant whose overlay is
        invalid keeps its previous policy; an invalid base keeps *everything* as it was.
        """
        with self._lock:
            fingerprint = self._scan()
            if fingerprint == self._fingerprint:
                return False
            digests = self._hash_files(fingerprint)
            self._fingerprint = fingerprint
            if digests == self._digests:  # touched, not edited
                return False
            self._digests = digests
            base, tenants, errors = self._load_all(self._tenants)
            self.reloads += 1
            changed = False
            if base is not None:
                changed = base.version != self._base.version or set(tenants) != set(self._tenants)
                changed = changed or any(
                    tenants[t].version != self._tenants[t].version for t in tenants
                )
                self._base, self._tenants = base, tenants
            if errors:
                self.last_error = "\n".join(str(e) for e in errors.values())
                log.error(
                    "policy reload refused; still serving the previous policy:\n%s", self.last_error
                )
            else:
                self.last_error = None
            if changed:
                log.info("policy reloaded: %s", self.versions())
            return changed

    def _load_all(
        self, previous: Mapping[str, ResolvedPolicy]
    ) -> tuple[ResolvedPolicy | None, dict[str, ResolvedPolicy], dict[str, PolicyError]]:
        loader = PolicyLoader(self.base_path)
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

    @staticmethod
    def _hash_files(fingerprint: _Fingerprint) -> dict[str, str]:
        out = {}
        for name, _, _ in fingerprint:
            try:
                out[name] = hashlib.sha256(Path(name).read_bytes()).hexdigest()
            except OSError:
                out[name] = "missing"
        return out


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
