"""The SQLite audit log (sqlite-utils) and the reviewer CLI.

Public API: :class:`audit.log.AuditLog` with the records in :mod:`audit.records`
(:class:`~audit.records.ModerationRecord`, :class:`~audit.records.FrameAuditRecord`,
:class:`~audit.records.FrameRef`), evidence thumbnails in :mod:`audit.evidence`, errors in
:mod:`audit.errors`, the chain format in :mod:`audit.chain`, the tables in :mod:`audit.schema`,
and the ``reelguard audit`` commands in :mod:`audit.cli`.
"""
