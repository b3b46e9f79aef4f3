"""The ``reelguard`` command line. Each area registers its own group in :data:`COMMANDS`."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from classifiers.text.build_gazetteers import build_gazetteers_command
from classifiers.text.train import main as train_text_command
from config.settings import Settings
from gateway.commands.audit import audit as audit_group
from gateway.commands.common import DbTarget, F, db_label, db_option, settings_from_flags
from gateway.commands.generate import generate as generate_command
from gateway.commands.policy import policy as policy_group
from gateway.commands.provenance import provenance as provenance_command
from gateway.commands.storage import storage_group
from gateway.commands.worker import worker_command
from gateway.console.cli import reviewers as reviewers_group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reelguard")
def main() -> None:
    """ReelGuard: a safety and moderation gateway in front of a text-to-video generator."""


# -- gateway: serve, keys, moderate ---------------------------------------------------------


def policy_options(func: F) -> F:
    """``--policy FILE`` and ``--tenant-dir DIR`` (defaults from settings)."""
    func = click.option(
        "--tenant-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder of tenant overlays, <tenant>.yaml each "
        "[default: REELGUARD_TENANT_POLICY_DIR].",
    )(func)
    return click.option(
        "--policy",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Base policy YAML [default: REELGUARD_POLICY or the packaged policies/default.yaml].",
    )(func)


@click.command()
@click.option(
    "--host", default=None, help="Interface to bind [default: REELGUARD_HOST or 127.0.0.1]."
)
@click.option("--port", type=int, default=None, help="Port [default: REELGUARD_PORT or 8000].")
@db_option
@policy_options
@click.option(
    "--bootstrap-key/--no-bootstrap-key",
    default=None,
    help="On a database with no active key, create one for tenant 'default' and print it once "
    "[default: REELGUARD_BOOTSTRAP_KEY or on].",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=None,
    help="Video worker processes to start next to the web server; 0 when `reelguard worker` "
    "runs elsewhere [default: REELGUARD_VIDEO_WORKERS or 1].",
)
@click.option(
    "--web-workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Web processes answering on the port (each loads its own models) "
    "[default: REELGUARD_WEB_WORKERS or 1].",
)
def serve(
    host: str | None,
    port: int | None,
    db: DbTarget,
    policy: Path | None,
    tenant_dir: Path | None,
    bootstrap_key: bool | None,
    workers: int | None,
    web_workers: int | None,
) -> None:
    """Start the HTTP gateway (uvicorn). Ctrl-C stops it.

    On first start (no active API key in --db) it creates a key for tenant 'default' and prints
    it once, with a curl example; pass --no-bootstrap-key to create keys yourself instead.
    """
    import uvicorn

    from gateway.limits import uvicorn_config
    from gateway.serve import build_app_or_explain, first_run_key

    settings = settings_from_flags(
        host=host,
        port=port,
        db=db,
        policy=policy,
        tenant_policy_dir=tenant_dir,
        bootstrap_key=bootstrap_key,
        video_workers=workers,
        web_workers=web_workers,
    )
    if settings.web_workers > 1:
        _serve_many(settings)
        return
    from gateway import metrics
    from gateway.logs import configure_logging

    # A fresh start counts from zero: the files of processes that no longer run go first.
    metrics.prepare_dir(metrics.metrics_dir(settings))
    app = build_app_or_explain(settings)
    json_logs = configure_logging(settings)  # after the app, whose logging setup it replaces
    click.echo(first_run_key(settings), err=True)
    from gateway.worker import start_workers

    stop_metrics = metrics.serve_port(settings, app.state.database)
    pool = start_workers(settings)  # separate processes: the web process never generates
    log_options = {"log_config": None, "access_log": False} if json_logs else {}
    try:
        uvicorn.Server(uvicorn_config(app, settings, log_level="info", **log_options)).run()
    finally:
        if pool is not None:
            pool.stop()
        if stop_metrics is not None:
            stop_metrics()


def _serve_many(settings: Settings) -> None:
    """``serve`` with ``settings.web_workers`` web processes (:mod:`gateway.web_pool`)."""
    from gateway import metrics
    from gateway.logs import configure_logging
    from gateway.serve import (
        check_policy_or_explain,
        check_store_or_explain,
        first_run_key,
        open_audit_or_explain,
    )
    from gateway.web_pool import serve_many
    from gateway.worker import start_workers

    metrics.prepare_dir(metrics.metrics_dir(settings))
    open_audit_or_explain(settings).close()  # refuse to start on a database it cannot write
    check_policy_or_explain(settings)  # before N processes each fail on it
    check_store_or_explain(settings)
    configure_logging(settings)
    click.echo(first_run_key(settings), err=True)
    stop_metrics = metrics.serve_port(settings)
    pool = start_workers(settings)
    try:
        serve_many(settings, settings.web_workers)
    finally:
        if pool is not None:
            pool.stop()
        if stop_metrics is not None:
            stop_metrics()


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (stored hashed in --db)."""


def tenant_dir_option(func: F) -> F:
    """``--tenant-dir DIR`` alone (default: ``REELGUARD_TENANT_POLICY_DIR``, as for ``serve``)."""
    return click.option(
        "--tenant-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder of tenant overlays, <tenant>.yaml each, to check the tenant against "
        "[default: REELGUARD_TENANT_POLICY_DIR].",
    )(func)


@keys.command("create")
@click.option("--tenant", required=True, help="Tenant the key belongs to (names its policy).")
@db_option
@tenant_dir_option
def keys_create(tenant: str, db: DbTarget, tenant_dir: Path | None) -> None:
    """Create a key and print it once (stdout); only its hash is stored.

    Warns when the tenant has no overlay in the tenant folder (it then gets the base policy).
    """
    from gateway.commands.policy import tenant_overlay_note
    from gateway.keys import KeyStore, KeyStoreError, validate_tenant

    try:
        validate_tenant(tenant)
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from None
    folder = settings_from_flags(tenant_policy_dir=tenant_dir).tenant_policy_dir
    note = tenant_overlay_note(tenant, folder, strict=False)
    store = KeyStore(db)
    try:
        created = store.create(tenant)
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(created.token)
    click.echo(
        f"Created key {created.key.key_id} for tenant {tenant!r} in {db_label(db)}. It is shown "
        "only now; store it safely.",
        err=True,
    )
    if note is not None:
        click.echo(note, err=True)


@keys.command("list")
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def keys_list(db: DbTarget, as_json: bool) -> None:
    """List keys (id, tenant, created, status); secrets are never shown."""
    import json

    from gateway.keys import KeyStore

    store = KeyStore(db)
    try:
        rows = store.list()
    finally:
        store.close()
    if as_json:
        for k in rows:
            click.echo(
                json.dumps(
                    {
                        "key_id": k.key_id,
                        "tenant": k.tenant,
                        "created_at": k.created_at,
                        "revoked_at": k.revoked_at,
                    }
                )
            )
        return
    if not rows:
        click.echo("No API keys. Create one with: reelguard keys create --tenant NAME", err=True)
        return
    click.echo(f"{'KEY ID':<10} {'TENANT':<24} {'CREATED':<26} STATUS")
    for k in rows:
        status = "active" if k.active else f"revoked {k.revoked_at}"
        click.echo(f"{k.key_id:<10} {k.tenant:<24} {k.created_at:<26} {status}")


@keys.command("revoke")
@click.argument("key_id")
@db_option
def keys_revoke(key_id: str, db: DbTarget) -> None:
    """Revoke a key by its id (see `keys list`); requests with it get 401 from now on."""
    from gateway.keys import KeyStore, KeyStoreError

    store = KeyStore(db)
    try:
        key = store.revoke(key_id)
    except KeyStoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(f"Revoked key {key.key_id} (tenant {key.tenant!r}) at {key.revoked_at}.")


@click.command()
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='JSONL file, one {"id": ..., "text": "..."} per line.',
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSONL file to write, one result per input row, same order (replaced atomically).",
)
@click.option("--tenant", default="default", show_default=True, help="Whose policy applies.")
@db_option
@policy_options
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True)
def moderate(
    input_path: Path,
    output_path: Path,
    tenant: str,
    db: DbTarget,
    policy: Path | None,
    tenant_dir: Path | None,
    batch_size: int,
) -> None:
    """Moderate a JSONL file of prompts; every decision is also written to the audit log (--db).

    Output rows: id, the input row's other fields, flagged, action, categories, category_scores,
    reasons, policy_version. --tenant needs the tenant folder the server uses (--tenant-dir or
    REELGUARD_TENANT_POLICY_DIR); a tenant without an overlay there gets the base policy, with a
    warning. A progress bar shows on a terminal.
    """
    from rich.console import Console
    from rich.progress import Progress

    from gateway.batch import BadRow, moderate_rows, read_rows
    from gateway.commands.policy import tenant_overlay_note
    from gateway.keys import KeyStoreError, validate_tenant
    from gateway.serve import build_moderator_or_explain

    settings = settings_from_flags(db=db, policy=policy, tenant_policy_dir=tenant_dir)
    try:
        validate_tenant(tenant)
        rows = read_rows(input_path, max_chars=settings.max_input_chars)
    except (BadRow, KeyStoreError) as exc:
        raise click.ClickException(str(exc)) from None
    note = tenant_overlay_note(tenant, settings.tenant_policy_dir, strict=True)
    if note is not None:
        click.echo(note, err=True)
    moderator, audit = build_moderator_or_explain(settings)
    # SIGTERM ends the run the way Ctrl-C does (an exception), so the temporary output file
    # is removed and the audit batch in progress rolls back.
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        console = Console(stderr=True)
        with Progress(console=console, disable=not console.is_terminal, transient=True) as progress:
            task = progress.add_task("moderating", total=len(rows))
            counts = moderate_rows(
                moderator,
                rows,
                output_path,
                tenant=tenant,
                audit=audit,
                batch_size=batch_size,
                on_progress=lambda n: progress.advance(task, n),
            )
    finally:
        audit.close()
    summary = ", ".join(f"{n} {action}" for action, n in counts.items())
    click.echo(f"Wrote {len(rows)} results to {output_path} ({summary}).", err=True)


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# Explicit registry: every top-level command, in one place.
COMMANDS: dict[str, click.Command] = {
    "policy": policy_group,
    "serve": serve,
    "keys": keys,
    "reviewers": reviewers_group,
    "moderate": moderate,
    "worker": worker_command,
    "audit": audit_group,
    "generate": generate_command,
    "provenance": provenance_command,
    "storage": storage_group,
    "train-text": train_text_command,
    "build-gazetteers": build_gazetteers_command,
}

for name, command in COMMANDS.items():
    main.add_command(command, name)
