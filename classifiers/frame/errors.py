"""Errors raised by frame classifiers and the frame audit.

::

    FrameAuditError
     +-- FrameModelUnavailable   a model file is missing, corrupt or cannot be loaded
     +-- FrameClassifierTimeout  a classifier did not answer within its time budget
     +-- FrameClassifierOutputError  a classifier returned the wrong shape or an out-of-range score

Any of these, or any other exception from a classifier, withholds the video (fail closed).
"""

from __future__ import annotations


class FrameAuditError(Exception):
    """Base class of frame-audit errors."""


class FrameModelUnavailable(FrameAuditError):
    """A frame model could not be loaded; the message names the file and the fix."""


class FrameClassifierTimeout(FrameAuditError):
    """A frame classifier did not finish within ``timeout_s``."""


class FrameClassifierOutputError(FrameAuditError):
    """A frame model returned output of the wrong shape or outside [0, 1]."""
