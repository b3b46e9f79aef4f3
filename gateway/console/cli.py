"""``reelguard reviewers ...``: the review console's accounts (create, list, disable, reset)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from gateway.commands.common import DbTarget, db_label, db_option


@click.group("reviewers", context_settings={"help_option_names": ["-h", "--help"]})
def reviewers() -> None:
    """Reviewer accounts for the review console (/review), separate from API keys.

    A reviewer sees only the tenants it is given; an admin sees every tenant. Passwords are
    printed once and stored as scrypt hashes.
    """


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@reviewers.command("create")
@click.option("--name", required=True, help="Sign-in name (recorded with every review).")
@click.option(
    "--role",
    type=click.Choice(["reviewer", "admin"]),
    default="reviewer",
    show_default=True,
    help="admin: sees every tenant.",
)
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    help="A tenant this reviewer sees (repeat for several); needed for --role reviewer.",
)
@db_option
def create(name: str, role: str, tenants: tuple[str, ...], db: DbTarget) -> None:
    """Create an account and print its one-time password (stdout); only a hash is stored."""
    from gateway.console.accounts import AccountError, ReviewerStore

    store = ReviewerStore(db)
    try:
        made = store.create(name, role, tenants)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(made.password)
    scope = "every tenant" if role == "admin" else ", ".join(made.reviewer.tenants)
    click.echo(
        f"Created {role} {name!r} ({scope}) in {db_label(db)}. The password is shown only now; "
        "sign in at /review and change it under Account.",
        err=True,
    )


@reviewers.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@db_option
def list_cmd(as_json: bool, db: DbTarget) -> None:
    """List accounts: name, role, tenants, created, status (passwords are never shown)."""
    from gateway.console.accounts import ReviewerStore

    rows = ReviewerStore(db).list()
    if as_json:
        for r in rows:
            click.echo(
                json.dumps(
                    {
                        "name": r.name,
                        "role": r.role,
                        "tenants": list(r.tenants),
                        "created_at": r.created_at,
                        "disabled_at": r.disabled_at,
                        "locked_until": r.locked_until,
                    }
                )
            )
        return
    if not rows:
        click.echo(
            "No reviewer accounts. Create one with: reelguard reviewers create --name N --tenant T",
            err=True,
        )
        return
    click.echo(f"{'NAME':<24} {'ROLE':<9} {'TENANTS':<30} {'CREATED (UTC)':<20} STATUS")
    for r in rows:
        status = "active" if r.active else f"disabled {_when(r.disabled_at)}"
        tenants = "*" if r.all_tenants else ",".join(r.tenants)
        click.echo(f"{r.name:<24} {r.role:<9} {tenants:<30} {_when(r.created_at):<20} {status}")


@reviewers.command("disable")
@click.argument("name")
@db_option
def disable(name: str, db: DbTarget) -> None:
    """Disable an account: its sessions end now and it can no longer sign in."""
    from gateway.console.accounts import AccountError, ReviewerStore

    try:
        reviewer = ReviewerStore(db).disable(name)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Disabled reviewer {reviewer.name!r} at {_when(reviewer.disabled_at)} UTC.")


@reviewers.command("reset-password")
@click.argument("name")
@db_option
def reset_password(name: str, db: DbTarget) -> None:
    """Print a new one-time password for NAME (ends its sessions, lifts a lockout)."""
    from gateway.console.accounts import AccountError, ReviewerStore

    try:
        made = ReviewerStore(db).reset_password(name)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(made.password)
    click.echo(f"New password for {name!r}; it is shown only now.", err=True)
