"""``reelguard provenance FILE``: show a video's C2PA manifest and whether it still holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from generator.provenance import ProvenanceError, read_manifest

UNTRUSTED = "signingCredential.untrusted"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the whole C2PA store as JSON.")
def provenance(file: Path, as_json: bool) -> None:
    """Print FILE's C2PA manifest (who made it, how, from which sources, the audit reference)
    and whether its signature and content hash hold.

    Exit status: 0 when the manifest is intact (a signer outside the C2PA trust list, e.g. a
    test CA, is reported, not failed); 1 when it is invalid (the file was cut, re-encoded or
    edited after signing, or the signature does not verify) or FILE carries no manifest.
    """
    try:
        store = read_manifest(file)
    except ProvenanceError as exc:
        raise click.ClickException(
            f"{exc}: it was not signed, or the manifest was stripped"
        ) from None
    if as_json:
        click.echo(json.dumps(store, indent=2, sort_keys=True))
    else:
        click.echo(_summary(file, store))
    if store.get("validation_state") not in ("Valid", "Trusted"):
        raise SystemExit(1)


def _summary(file: Path, store: dict[str, Any]) -> str:
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    assertions = {a.get("label"): a.get("data", {}) for a in manifest.get("assertions", [])}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {}).get(
        "actions", []
    )
    signature = manifest.get("signature_info", {})
    problems = [s for s in store.get("validation_status", []) if s.get("code") != UNTRUSTED]
    untrusted = any(s.get("code") == UNTRUSTED for s in store.get("validation_status", []))
    state = store.get("validation_state", "unknown")
    makers = ", ".join(i.get("name", "?") for i in manifest.get("claim_generator_info", []))
    lines = [
        f"{file}: C2PA manifest {store.get('active_manifest')}",
        f"  state:      {state}"
        + (" (signer not on the trust list)" if untrusted and not problems else ""),
        f"  signed by:  {signature.get('common_name')} ({signature.get('issuer')}), "
        f"{signature.get('alg')}",
        f"  generator:  {makers}",
    ]
    for action in actions:
        agent = (action.get("softwareAgent") or {}).get("name", "")
        lines.append(
            f"  action:     {action.get('action')} {agent} "
            f"({action.get('digitalSourceType', '').rsplit('/', 1)[-1]})"
        )
    lines += [_ingredient(i, store) for i in manifest.get("ingredients", [])]
    for label in ("org.reelguard.generation", "org.reelguard.audit"):
        if label in assertions:
            lines.append(f"  {label.rsplit('.', 1)[-1] + ':':11} {json.dumps(assertions[label])}")
    for problem in problems:
        lines.append(f"  problem:    {problem.get('code')}: {problem.get('explanation', '')}")
    return "\n".join(lines)


def _ingredient(ingredient: dict[str, Any], store: dict[str, Any]) -> str:
    """One line per source: relationship, title, identity, content hash, own manifest."""
    own = ingredient.get("active_manifest")
    signed = ""
    if own:
        maker = store.get("manifests", {}).get(own, {}).get("claim_generator_info", [{}])
        signed = f"; its manifest {own} by {maker[0].get('name', '?') if maker else '?'}"
    digest = ingredient.get("description") or "no content hash (no longer stored)"
    return (
        f"  ingredient: {ingredient.get('relationship')} {ingredient.get('title')} "
        f"({ingredient.get('instance_id')}; {digest}{signed})"
    )
