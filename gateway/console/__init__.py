"""The review console: a server-rendered web UI for reviewers at ``/review``.

Reviewers sign in with accounts of their own (:mod:`gateway.console.accounts`, managed with
``reelguard reviewers``), work the queue of withheld videos and prompts sent to review, look at
an item's prompt, reasons, frame timeline and quarantined video, and approve or reject it through
the same code the CLI uses (:func:`gateway.review.apply_review`). No script or style comes from
a CDN and nothing is built: templates and static files ship in this package.
"""
