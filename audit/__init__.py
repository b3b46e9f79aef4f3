"""The hash-chained audit log.

Public API: :class:`audit.log.AuditLog` with the records in :mod:`audit.records`
(:class:`~audit.records.ModerationRecord`, :class:`~audit.records.FrameAuditRecord`,
:class:`~audit.records.FrameRef`), evidence thumbnails in :mod:`audit.evidence`, errors in
:mod:`audit.errors`, the chain format in :mod:`audit.chain` and the tables in :mod:`audit.schema`.
The ``reelguard audit`` commands live with the other commands, in :mod:`gateway.commands.audit`.
"""
