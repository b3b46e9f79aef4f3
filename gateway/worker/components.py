"""What a video worker loads once and reuses for every job (:class:`Components`: policies,
audit log, frame classifiers, generator backends, the C2PA signing key, the watermark), and
the per-job inputs read from the job row (the start image to condition on, the prompt's
mentions of a child)."""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from audit.log import AuditLog
from classifiers.base import Evidence, FrameClassifier
from config.settings import Settings
from gateway.jobs import VideoJob
from generator.base import Conditioning, VideoBackend
from generator.provenance import SigningKey
from generator.watermark import Watermark, load_watermark
from policies.resolved import ResolvedPolicy
from policies.store import PolicyStore
from storage.objects import ObjectStore

if TYPE_CHECKING:
    pass

log = logging.getLogger("reelguard.worker")

FrameClassifiers = Callable[[ResolvedPolicy], Sequence[FrameClassifier]]
"""The frame classifiers a policy names, built (and cached) by the worker."""


@dataclass
class Components:
    """What a worker loads once and reuses for every job."""

    settings: Settings
    backends: dict[str, VideoBackend]
    policies: PolicyStore
    audit_log: AuditLog
    frame_classifiers: FrameClassifiers
    signing_key: SigningKey | None = None
    """The C2PA key released videos are signed with (``None``: unsigned)."""
    watermark: Watermark | None = None
    """The visible watermark burned into every video (``None``: none configured)."""

    @classmethod
    def load(cls, settings: Settings) -> Components:
        """Open the policy store, the audit log and the frame classifiers (models load here)."""
        from gateway.frame_audit import load_frame_classifiers

        policies = PolicyStore(
            settings.policy, settings.tenant_policy_dir, max_file_bytes=settings.policy_max_bytes
        )
        classifiers = load_frame_classifiers(settings)
        # Build the base policy's frame models now, not inside the first job's audit budget
        # (a model that fails to build is retried, and fails closed, at audit time).
        classifiers(policies.base)
        # Likewise the lexicon behind the minor-mention check (~60 ms on first use); if it
        # cannot load, every audit withholds and says why (JobRunner._audit).
        with contextlib.suppress(Exception):
            prompt_minor_mentions("a warm-up prompt")
        return cls(
            settings=settings,
            backends={},
            policies=policies,
            audit_log=AuditLog(settings.database),
            frame_classifiers=classifiers,
            signing_key=load_signing_key(settings),
            watermark=load_watermark(settings),
        )

    def backend(self, name: str) -> VideoBackend:
        """The generator backend ``name``, built on first use."""
        if name not in self.backends:
            from generator.registry import get_backend

            self.backends[name] = get_backend(self.settings, name)
        return self.backends[name]


def load_signing_key(settings: Settings) -> SigningKey | None:
    """The C2PA key and chain from ``REELGUARD_C2PA_KEY``/``_CERT``, or ``None`` (unsigned,
    logged). With ``REELGUARD_C2PA_REQUIRED`` a missing or unreadable key raises
    :class:`~generator.provenance.ProvenanceError`: the worker does not start."""
    from generator.provenance import ProvenanceError

    key, cert = settings.c2pa_key, settings.c2pa_cert
    if key is None or cert is None:
        if settings.c2pa_required:
            raise ProvenanceError(
                "REELGUARD_C2PA_REQUIRED is true but REELGUARD_C2PA_KEY and REELGUARD_C2PA_CERT "
                "are not both set; set them (PEM files) or set REELGUARD_C2PA_REQUIRED=false"
            )
        log.warning(
            "no C2PA key configured (REELGUARD_C2PA_KEY, REELGUARD_C2PA_CERT): videos are "
            "released without a provenance manifest"
        )
        return None
    try:
        return SigningKey.load(key, cert)
    except ProvenanceError:
        if settings.c2pa_required:
            raise
        log.exception("C2PA key unusable: videos are released without a provenance manifest")
        return None


def job_conditioning(job: VideoJob, files: ObjectStore | None = None) -> Conditioning | None:
    """What a job conditions on, read back from where the web process left it: the clip an
    extension keeps or an edit starts from (``files``, the object store), or the start image
    (its checked upload or its remix source's first frame, from the job row); ``None`` for a
    text-only job."""
    if job.source_clip is not None:
        from gateway.source_clips import source_conditioning

        assert files is not None, "a job with a source clip needs the object store"
        return source_conditioning(files, job.source_clip)
    if job.input_image is None:
        return None
    from classifiers.frame.images import decode_image

    data = base64.b64decode(job.input_image, validate=True)
    pixels = decode_image(data, max_pixels=job.width * job.height).pixels
    source = "input_reference"
    if job.remixed_from:
        source = f"remix:{job.remixed_from}"
    elif job.character_id:
        source = f"character:{job.character_id}"
    return Conditioning(start_image=pixels, source=source)


def prompt_minor_mentions(prompt: str) -> tuple[Evidence, ...]:
    """Evidence that ``prompt`` mentions a child, found exactly as the prompt stage finds it
    (normalised text, :func:`classifiers.text.lexicon.find_minor_mentions`).

    Recomputed from the job's stored prompt rather than read from its prompt record, so jobs
    queued before the record carried mentions get the rule too. Raises if the lexicon cannot
    be used (the caller withholds the video).
    """
    from classifiers.text.lexicon import find_minor_mentions
    from classifiers.text.normalize import normalize

    return tuple(find_minor_mentions(normalize(prompt)))
