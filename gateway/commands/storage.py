"""``reelguard storage``: the object store, e.g. moving a data folder into an S3 bucket."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from gateway.commands.common import (
    DbTarget,
    DurationParam,
    db_option,
    echo_json,
    settings_from_flags,
)

if TYPE_CHECKING:
    from storage.migrate import MigrationReport


@click.group("storage")
def storage_group() -> None:
    """The object store that holds videos, thumbnails and evidence frames."""


@storage_group.command("migrate")
@click.option(
    "--to",
    "to_url",
    required=True,
    metavar="s3://BUCKET[/PREFIX]",
    help="The bucket to copy into (endpoint: REELGUARD_S3_ENDPOINT_URL; credentials: "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).",
)
@click.option(
    "--from",
    "from_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The data folder to copy (default: REELGUARD_DATA_DIR).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be copied; copy nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Print one line per object.")
def migrate_command(
    to_url: str, from_dir: Path | None, dry_run: bool, as_json: bool, verbose: bool
) -> None:
    """Copy every object of a local data folder into an S3 bucket, keeping its key.

    Each copy is verified by SHA-256, so the evidence digests in the audit log still verify
    against the bucket (`reelguard audit verify --check-files` with REELGUARD_STORAGE_URL set).
    Objects already in the bucket with the same size and SHA-256 are skipped: an interrupted
    run is resumed by running it again. The folder is left as it is; point
    REELGUARD_STORAGE_URL at the bucket once the summary says ok.
    """
    from storage.migrate import migrate
    from storage.objects import LocalFolderStore, ObjectStoreUnavailable, S3Store, object_store

    settings = settings_from_flags()
    source_dir = from_dir if from_dir is not None else Path(settings.data_dir)
    if not source_dir.is_dir():
        raise click.ClickException(
            f"{source_dir}: no such folder; pass --from DIR or set REELGUARD_DATA_DIR to the "
            "data folder to copy"
        )
    try:
        target = object_store(settings.model_copy(update={"storage_url": to_url}))
        if not isinstance(target, S3Store):
            raise ValueError(f"{to_url!r} is not an object store URL")
    except ValueError as exc:
        raise click.ClickException(f"--to: {exc}") from None
    source = LocalFolderStore(source_dir)

    def progress(key: str, what: str) -> None:
        if verbose:
            click.echo(f"{what}: {key}", err=True)

    try:
        target.check_bucket()
        report = migrate(source, target, dry_run=dry_run, progress=progress)
    except ObjectStoreUnavailable as exc:
        raise click.ClickException(
            f"the bucket cannot be used: {exc}\nNothing is lost: run the command again once it "
            "answers (objects already copied are skipped)."
        ) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read the data folder: {exc}") from None
    if as_json:
        echo_json(report.as_json())
    else:
        _print_summary(report, to_url)
    if not report.ok:
        raise SystemExit(1)


def _print_summary(report: MigrationReport, to_url: str) -> None:
    verb = "would copy" if report.dry_run else "copied"
    click.echo(
        f"{report.source} -> {report.target}: {verb} {report.copied} object(s) "
        f"({report.copied_bytes} bytes), skipped {report.skipped} already there, "
        f"{len(report.failed)} failed, {len(report.ignored)} file(s) ignored"
    )
    for line in report.failed:
        click.echo(f"failed: {line}")
    for line in report.ignored:
        click.echo(f"ignored: {line}")
    if report.ok and not report.dry_run:
        click.echo(f"ok: set REELGUARD_STORAGE_URL={to_url} to use the bucket")


@storage_group.command("sweep")
@db_option
@click.option(
    "--older-than",
    type=DurationParam(),
    default="1d",
    show_default=True,
    help="Only objects last written longer ago than this (so no running job is touched).",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def sweep_command(db: DbTarget, older_than: float, dry_run: bool, as_json: bool) -> None:
    """Delete objects a failed delete left behind: evidence of purged audit rows, and the
    quarantined original of a released video whose copy landed in released/.

    Reads the store the settings name (REELGUARD_STORAGE_URL, else REELGUARD_DATA_DIR) and
    deletes only what the database proves is such a leftover (see gateway/storage_sweep.py);
    withheld videos and evidence still in the audit log are never touched. Exit 1 when a
    delete fails (run it again later).
    """
    from audit.log import AuditLog
    from gateway.jobs import JobStore
    from gateway.storage_sweep import sweep
    from storage.errors import StorageError
    from storage.objects import object_store

    settings = settings_from_flags(db=db)
    try:
        AuditLog(settings.database)  # the tables exist (or the error names the database)
        database = JobStore(settings.database).database
        report = sweep(database, object_store(settings), older_than_s=older_than, dry_run=dry_run)
    except StorageError as exc:
        raise click.ClickException(f"cannot sweep: {exc}") from None
    if as_json:
        echo_json(report.as_json())
    else:
        verb = "would delete" if dry_run else "deleted"
        click.echo(
            f"{verb} {len(report.evidence)} purged evidence object(s), "
            f"{len(report.leftovers)} release leftover(s); {len(report.failed)} failed"
        )
        for key in (*report.evidence, *report.leftovers):
            click.echo(f"{verb}: {key}")
        for line in report.failed:
            click.echo(f"failed: {line}")
    if report.failed:
        raise SystemExit(1)
