"""Every change of a served policy in the audit chain, and removed tenant overlays in /healthz.

The web process (:func:`gateway.app.create_app`) builds one :class:`PolicyAudit` over its
:class:`~policies.store.PolicyStore` and audit log:

* at start, :meth:`PolicyAudit.record_startup` compares what it serves with the last version
  the chain holds per tenant and records what differs (``policy.load``; ``policy.removed`` for a
  tenant whose overlay is gone since the last run), so edits made while the server was down are
  on record too;
* while it runs, every reload that changes a tenant's policy is chained as ``policy.added``,
  ``policy.edited`` or ``policy.removed`` with the previous and new version and the process
  that saw it (:meth:`PolicyAudit.record_changes`, a store listener), committed before the
  store serves the new version: no request is decided under a version the chain has not
  recorded yet, and ``/healthz`` never shows a version whose change is not on record.

A removed overlay silently loosens that tenant to the base policy, so besides the WARNING the
store logs, it keeps ``/healthz`` ``degraded`` (naming the tenant, file and versions) until an
operator acknowledges it with ``reelguard policy ack TENANT --actor NAME`` (a chained
``policy.ack``), or the server restarts with the new layout.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from audit.log import AuditLog
from policies.store import BASE_TENANT, PolicyChange, PolicyStore

log = logging.getLogger("reelguard.policy")


@dataclass(frozen=True, slots=True)
class RemovedOverlay:
    """A tenant overlay that disappeared while the server ran, not yet acknowledged."""

    tenant: str
    source: str
    previous_version: str | None
    version: str
    removed_at: float
    seq: int


class PolicyAudit:
    """Chains policy changes into ``audit`` and tracks unacknowledged overlay removals."""

    def __init__(self, audit: AuditLog, store: PolicyStore, actor: str | None = None) -> None:
        self.audit = audit
        self.store = store
        self.actor = actor or f"reelguard serve ({socket.gethostname()}:{os.getpid()})"
        self._removed: dict[str, RemovedOverlay] = {}
        self._lock = threading.Lock()

    def attach(self) -> PolicyAudit:
        """Record the start-up layout and listen to the store's reloads."""
        self.record_startup()
        self.store.on_change(self.record_changes)
        return self

    def record_startup(self) -> None:
        """Chain what this start serves wherever it differs from the chain's last record."""
        served = self.store.versions()
        with self.audit.transaction():  # compare and append at once: no duplicate records
            last = {r["tenant"]: r for r in self.audit.policy_changes() if r["change"] != "ack"}
            for tenant, version in served.items():
                before = last.get(tenant)
                if before is None or before["version"] != version or before["change"] == "removed":
                    previous = before["version"] if before else None
                    self.audit.record_policy_change(tenant, "load", version, previous, self.actor)
            for tenant, before in last.items():
                if tenant not in served and before["change"] != "removed":
                    log.warning(
                        "tenant %s: its policy overlay is gone since the last run; it now gets "
                        "the base policy (version %s, was %s)",
                        tenant,
                        served[BASE_TENANT],
                        before["version"],
                    )
                    self.audit.record_policy_change(
                        tenant, "removed", served[BASE_TENANT], before["version"], self.actor
                    )

    def record_changes(self, changes: list[PolicyChange]) -> None:
        """Store listener: chain each change; remember removals for ``/healthz``. The store
        calls it before it serves the new policies, so the chain holds each change before
        any decision made under it."""
        for change in changes:
            seq = self.audit.record_policy_change(
                change.tenant, change.kind, change.version, change.previous, self.actor
            )
            with self._lock:
                if change.kind == "removed":
                    self._removed[change.tenant] = RemovedOverlay(
                        change.tenant,
                        change.source,
                        change.previous,
                        change.version,
                        time.time(),
                        seq,
                    )
                else:
                    self._removed.pop(change.tenant, None)  # the overlay is back

    def removed_overlays(self) -> list[RemovedOverlay]:
        """Removals seen while running that no ``policy.ack`` has acknowledged yet."""
        with self._lock:
            pending = list(self._removed.values())
        served = self.store.tenants()
        open_ = []
        for item in pending:
            if item.tenant in served:  # chained, but the store serves the removal only next
                continue
            later = self.audit.policy_changes(item.tenant, after_seq=item.seq)
            if any(r["change"] == "ack" for r in later):
                with self._lock:
                    if self._removed.get(item.tenant) == item:
                        del self._removed[item.tenant]
            else:
                open_.append(item)
        return open_


def acknowledge(audit: AuditLog, tenant: str, actor: str) -> dict[str, object]:
    """Chain an operator's ``policy.ack`` of ``tenant``'s removed overlay; returns the removal
    record it acknowledges. Raises ``LookupError`` when the tenant's last policy change is not
    an unacknowledged removal."""
    changes = audit.policy_changes(tenant)
    last = changes[-1] if changes else None
    if last is None or last["change"] != "removed":
        what = f"its last policy change is {last['change']}" if last else "no policy change"
        raise LookupError(
            f"tenant {tenant!r} has no removed overlay to acknowledge ({what} is on record); "
            "`reelguard policy history` lists the changes"
        )
    audit.record_policy_change(tenant, "ack", last["version"], last["previous"], actor)
    return last
