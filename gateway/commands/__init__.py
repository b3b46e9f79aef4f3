"""The ``reelguard`` command groups that are not the gateway's own (``gateway.cli`` registers
them all): ``audit`` (:mod:`gateway.commands.audit`, :mod:`gateway.commands.audit_chain`),
``policy`` (:mod:`gateway.commands.policy`) and ``generate`` (:mod:`gateway.commands.generate`).

Commands live with the gateway, at the top of the import graph, so they may wire any layer
together (the review command releases a video through the job system; ``policy test`` runs the
gateway's text check) while the layers below never import ``gateway/``. Shared options are in
:mod:`gateway.commands.common`.
"""
