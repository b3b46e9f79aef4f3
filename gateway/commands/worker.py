"""``reelguard worker``: video workers alone, on machines that only generate."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from gateway.commands.common import DbTarget, db_option, settings_from_flags
from gateway.jobs import JobStore


@click.command("worker")
@db_option
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Video folder with released/ and quarantine/; given, it wins over "
    "REELGUARD_STORAGE_URL (default: the REELGUARD_STORAGE_URL bucket if set, else "
    "REELGUARD_DATA_DIR).",
)
@click.option(
    "-n",
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes (default: REELGUARD_VIDEO_WORKERS, at least 1).",
)
def worker_command(db: DbTarget, data_dir: Path | None, workers: int | None) -> None:
    """Run video workers alone (no HTTP): claim queued jobs from the database and run them.

    Use it on machines that only generate, next to `reelguard serve --workers 0`. Stop with
    Ctrl-C or SIGTERM: running jobs go back to the queue.
    """
    settings = settings_from_flags(
        db=db, data_dir=data_dir, storage_url="" if data_dir is not None else None
    )
    count = workers or max(1, settings.video_workers)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    JobStore(settings.database)  # create the table (and fail here, clearly, on a bad path)
    from policies.loader import PolicyError
    from policies.store import PolicyStore

    try:  # the same check `serve` makes: a bad policy stops here, not in a restart loop
        PolicyStore(
            settings.policy, settings.tenant_policy_dir, max_file_bytes=settings.policy_max_bytes
        )
    except PolicyError as exc:
        raise click.ClickException(f"the policy does not load, so no job can run:\n{exc}") from None
    from gateway.serve import (
        check_store_or_explain,
        signing_key_or_explain,
        watermark_or_explain,
    )

    signing_key_or_explain(settings)
    watermark_or_explain(settings)
    check_store_or_explain(settings)  # a worker that cannot store would fail every job
    from gateway import metrics
    from gateway.logs import configure_logging
    from gateway.worker.pool import start_workers

    configure_logging(settings)
    metrics.prepare_dir(metrics.setup(settings))  # before the workers inherit the folder
    stop_metrics = metrics.serve_port(settings)
    pool = start_workers(settings, count)
    assert pool is not None
    try:
        with pool:
            click.echo(
                f"reelguard worker: {count} process(es) on {settings.database_label}", err=True
            )
            stop.wait()
    finally:
        if stop_metrics is not None:
            stop_metrics()
