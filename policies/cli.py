"""``reelguard policy ...``: validate, show and explain policy files (for trust & safety staff)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml

from policies.loader import PolicyError, PolicyLoader, display_path
from policies.resolved import ResolvedPolicy
from policies.schema import policy_json_schema
from policies.store import BASE_TENANT


def _default_policy() -> Path:
    from gateway.settings import get_settings

    return get_settings().policy


def _default_tenant_dir() -> Path | None:
    from gateway.settings import get_settings

    return get_settings().tenant_policy_dir


def base_option(func):
    """``--policy FILE``: the base policy (what ``extends: default`` means)."""
    return click.option(
        "--policy",
        "base",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Base policy, what 'extends: default' means "
        "[default: REELGUARD_POLICY or the packaged policies/default.yaml].",
    )(func)


def tenant_dir_option(func):
    """``--tenant-dir DIR``: the folder of tenant overlays."""
    return click.option(
        "--tenant-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder of tenant overlays, <tenant>.yaml each "
        "[default: REELGUARD_TENANT_POLICY_DIR].",
    )(func)


def resolve_tenant(base: Path | None, tenant_dir: Path | None, tenant: str) -> ResolvedPolicy:
    """The policy ``tenant`` gets: its overlay in ``tenant_dir``, else the base policy.

    Raises :class:`click.ClickException` with the located errors for an invalid file.
    """
    base = base if base is not None else _default_policy()
    tenant_dir = tenant_dir if tenant_dir is not None else _default_tenant_dir()
    loader = PolicyLoader(base)
    path = base
    if tenant != BASE_TENANT and tenant_dir is not None:
        if not tenant_dir.is_dir():
            raise click.ClickException(
                f"tenant policy folder {display_path(tenant_dir)} not found; fix --tenant-dir"
            )
        candidate = tenant_dir / f"{tenant}.yaml"
        if candidate.is_file():
            path = candidate
    try:
        return loader.load(path)
    except PolicyError as exc:
        raise click.ClickException(f"invalid policy:\n{exc}") from None


@click.group("policy")
def policy() -> None:
    """Validate, inspect and test policy files (see policies/default.yaml for the format)."""


@policy.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@base_option
def validate(files: tuple[Path, ...], base: Path | None) -> None:
    """Check policy FILES (base policies or tenant overlays) before they go live.

    Prints "OK FILE version V" per valid file, and every problem in an invalid one as
    FILE:LINE: FIELD: MESSAGE; FIX. Exits with status 1 if any file is invalid.
    """
    loader = PolicyLoader(base if base is not None else _default_policy())
    bad = 0
    for path in files:
        try:
            resolved = loader.load(path)
        except PolicyError as exc:
            bad += 1
            click.echo(str(exc), err=True)
            continue
        click.echo(f"OK {display_path(path)} version {resolved.version}")
    if bad:
        raise click.ClickException(f"{bad} of {len(files)} policy file(s) invalid; see above")


@policy.command("show")
@click.option(
    "--tenant",
    default=BASE_TENANT,
    show_default=True,
    help="Tenant whose resolved policy to show (a tenant without an overlay gets the base).",
)
@base_option
@tenant_dir_option
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML.")
def show(tenant: str, base: Path | None, tenant_dir: Path | None, as_json: bool) -> None:
    """Print the policy a tenant actually gets (overlays merged) and its version."""
    resolved = resolve_tenant(base, tenant_dir, tenant)
    sources = [display_path(p) for p in resolved.sources]
    if tenant != BASE_TENANT and len(resolved.sources) == 1:
        click.echo(f"tenant {tenant!r} has no overlay; it gets the base policy", err=True)
    if as_json:
        doc = {
            "tenant": tenant,
            "version": resolved.version,
            "sources": sources,
            "policy": resolved.policy.canonical(),
        }
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    click.echo(f"# tenant: {tenant}\n# version: {resolved.version}")
    click.echo(f"# from: {' <- '.join(reversed(sources))}")
    click.echo(
        yaml.safe_dump(
            resolved.policy.canonical(),
            sort_keys=False,
            allow_unicode=True,
            width=100,
            default_flow_style=None,
        ).rstrip()
    )


@policy.command("schema")
@click.option(
    "--overlay",
    is_flag=True,
    help="Schema for tenant overlays (every field optional) instead of base policies.",
)
def schema(overlay: bool) -> None:
    """Print the policy JSON Schema (for editor autocompletion and CI checks)."""
    click.echo(json.dumps(policy_json_schema(overlay=overlay), indent=2))
