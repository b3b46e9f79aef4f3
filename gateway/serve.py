"""Start-up helpers for the CLI: build the app or explain what is wrong, and the first-run key."""

from __future__ import annotations

import click
from litestar import Litestar

from audit.errors import AuditError
from audit.log import AuditLog
from config.settings import Settings
from gateway.keys import KeyStore
from gateway.pipeline import TextModerator
from policies.loader import PolicyError
from policies.store import PolicyStore
from storage import StorageError


def build_app_or_explain(settings: Settings) -> Litestar:
    """``create_app(settings)``, turning a bad policy file into a message that names the fix."""
    from gateway.app import create_app

    open_audit_or_explain(settings).close()  # refuse to start on a database it cannot write
    signing_key_or_explain(settings)
    watermark_or_explain(settings)
    check_store_or_explain(settings)
    try:
        return create_app(settings)
    except PolicyError as exc:
        raise click.ClickException(
            f"the policy does not load, so nothing is served:\n{exc}"
        ) from None


def signing_key_or_explain(settings: Settings) -> None:
    """Check the C2PA signing settings before any worker starts: a required key that is
    missing or unreadable stops here with the fix, not in a worker restart loop; no key at
    all is logged (videos are released unsigned)."""
    from gateway.worker.components import load_signing_key
    from generator.provenance import ProvenanceError

    try:
        load_signing_key(settings)
    except ProvenanceError as exc:
        raise click.ClickException(f"{exc}; no video could be released") from None


def watermark_or_explain(settings: Settings) -> None:
    """Load the configured watermark before any worker starts: an image that cannot be used
    stops here with the file and the fix named."""
    from generator.watermark import WatermarkError, load_watermark

    try:
        load_watermark(settings)
    except WatermarkError as exc:
        raise click.ClickException(f"{exc}; no video could be watermarked") from None


def check_store_or_explain(settings: Settings) -> None:
    """Stop with a message naming the fix when the video store (an S3 bucket) cannot be
    reached; a local folder is created on first write, so it is not checked."""
    from storage.objects import LocalFolderStore, ObjectStoreUnavailable, object_store

    files = object_store(settings)
    if isinstance(files, LocalFolderStore):
        return
    try:
        files.exists("released/.reelguard-start-check")
    except ObjectStoreUnavailable as exc:
        raise click.ClickException(f"the video store cannot be used: {exc}") from None


def check_policy_or_explain(settings: Settings) -> None:
    """Load the policy files once, or stop with a message naming the fix."""
    try:
        PolicyStore(
            settings.policy, settings.tenant_policy_dir, max_file_bytes=settings.policy_max_bytes
        )
    except PolicyError as exc:
        raise click.ClickException(
            f"the policy does not load, so nothing is served:\n{exc}"
        ) from None


def open_audit_or_explain(settings: Settings) -> AuditLog:
    """The audit log, opened (schema created or migrated), or a message saying how to fix it."""
    try:
        log = AuditLog(
            settings.database
        ).open()  # creates or migrates the schema, checks its version
    except AuditError as exc:
        raise click.ClickException(str(exc)) from None
    except StorageError as exc:
        raise click.ClickException(
            f"{settings.database_label}: cannot open the database ({exc}); check the path and "
            "permissions (--db or REELGUARD_DB), or the server (REELGUARD_DATABASE_URL)"
        ) from None
    return log


def build_moderator_or_explain(settings: Settings) -> tuple[TextModerator, AuditLog]:
    """The text moderator and audit log for batch mode, or a message naming the policy fix."""
    try:
        policies = PolicyStore(
            settings.policy, settings.tenant_policy_dir, max_file_bytes=settings.policy_max_bytes
        )
    except PolicyError as exc:
        raise click.ClickException(f"the policy does not load:\n{exc}") from None
    moderator = TextModerator(policies, time_budget_ms=settings.classifier_timeout_ms)
    return moderator, open_audit_or_explain(settings)


def first_run_key(settings: Settings) -> str:
    """What ``serve`` tells the operator about API keys, creating the first one if allowed.

    With no active key in the database and ``bootstrap_key`` on, a key for tenant ``default`` is
    created and shown once (only its hash is stored). Otherwise the message says how to create
    keys, or just how many are active.
    """
    store = KeyStore(settings.database)
    where = settings.database_label
    try:
        active = store.count_active()
        if active:
            return f"{active} active API key(s) in {where}; `reelguard keys list` shows them."
        if not settings.bootstrap_key:
            return (
                f"No active API key in {where}: every request will get 401. Create one with\n"
                "  reelguard keys create --tenant NAME"
                + ("" if settings.database_url else f" --db {settings.db}")
            )
        created = store.create("default")
    finally:
        store.close()
    url = f"http://{settings.host}:{settings.port}/v1/moderations"
    return (
        f"First start: created API key {created.key.key_id} for tenant 'default' in {where}."
        "\nIt is shown only now (only its hash is stored):\n\n"
        f"  {created.token}\n\nTry it:\n\n"
        f"  curl -s {url} -H 'Authorization: Bearer {created.token}' \\\n"
        "       -H 'Content-Type: application/json' -d '{\"input\": \"a cat surfing a wave\"}'\n"
    )
