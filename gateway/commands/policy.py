"""``reelguard policy ...``: validate, show and explain policy files (for trust & safety staff)."""

from __future__ import annotations

import difflib
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from classifiers.base import CATEGORIES, TextClassifier
from config.settings import get_settings
from gateway.commands.common import db_option, settings_from_flags
from policies.decision import Action
from policies.evaluate import (
    CheckMany,
    Miss,
    PromptFileError,
    PromptRow,
    Report,
    RowResult,
    StaticPolicies,
    compare,
    misses,
    read_prompts,
    redecide,
    result_json,
    run,
    score,
)
from policies.loader import PolicyError, PolicyLoader, display_path
from policies.resolved import ResolvedPolicy
from policies.schema import policy_json_schema
from policies.store import BASE_TENANT, TENANT_FILE_RE

F = TypeVar("F", bound=Callable[..., Any])


def _default_policy() -> Path:
    return get_settings().policy


def _default_tenant_dir() -> Path | None:
    return get_settings().tenant_policy_dir


def _loader(base: Path | None) -> PolicyLoader:
    """A loader for ``base`` (default: the configured base) with the configured file cap."""
    settings = get_settings()
    return PolicyLoader(
        base if base is not None else settings.policy, max_file_bytes=settings.policy_max_bytes
    )


def base_option(func: F) -> F:
    """``--policy FILE``: the base policy (what ``extends: default`` means)."""
    return click.option(
        "--policy",
        "--base",
        "base",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Base policy, what 'extends: default' means "
        "[default: REELGUARD_POLICY or the packaged policies/default.yaml].",
    )(func)


def tenant_dir_option(func: F) -> F:
    """``--tenant-dir DIR``: the folder of tenant overlays."""
    return click.option(
        "--tenant-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder of tenant overlays, <tenant>.yaml each "
        "[default: REELGUARD_TENANT_POLICY_DIR].",
    )(func)


NO_TENANT_DIR = (
    "no tenant policy folder is configured here (--tenant-dir, or REELGUARD_TENANT_POLICY_DIR "
    "as `reelguard serve` reads it)"
)


def tenant_overlay_note(tenant: str, tenant_dir: Path | None, *, strict: bool) -> str | None:
    """What to tell a user who names ``tenant`` on the command line, or ``None`` if it has an
    overlay in ``tenant_dir`` (or is the base tenant).

    With ``strict`` (the command's result depends on the tenant's policy: ``moderate``,
    ``policy show``), naming a tenant when no folder is configured at all is surely a mistake and
    raises :class:`click.ClickException`; so does a folder that does not exist. A tenant with no
    overlay in an existing folder is a warning (it gets the base policy), with the overlays there.
    """
    if tenant == BASE_TENANT:
        return None
    if tenant_dir is None:
        if strict:
            raise click.ClickException(
                f"--tenant {tenant}: {NO_TENANT_DIR}, so every tenant gets the base policy and "
                "naming one changes nothing; give the folder the server uses, or leave out "
                "--tenant"
            )
        return (
            f"Warning: {NO_TENANT_DIR}, so it cannot be checked whether tenant {tenant!r} has an "
            "overlay; the server's folder decides which policy this key gets."
        )
    if not tenant_dir.is_dir():
        raise click.ClickException(
            f"tenant policy folder {display_path(tenant_dir)} not found; fix --tenant-dir or "
            "REELGUARD_TENANT_POLICY_DIR"
        )
    if (tenant_dir / f"{tenant}.yaml").is_file():
        return None
    known = sorted(p.stem for p in tenant_dir.glob("*.yaml") if TENANT_FILE_RE.match(p.stem))
    close = difflib.get_close_matches(tenant, known, n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(known) if known else "none"
    return (
        f"Warning: no {tenant}.yaml in {display_path(tenant_dir)}, so tenant {tenant!r} gets the "
        f"base policy (tenants with an overlay there: {listed}){hint}"
    )


def resolve_tenant(base: Path | None, tenant_dir: Path | None, tenant: str) -> ResolvedPolicy:
    """The policy ``tenant`` gets: its overlay in ``tenant_dir``, else the base policy.

    Raises :class:`click.ClickException` with the located errors for an invalid file, and for a
    tenant named when no tenant folder is configured (see :func:`tenant_overlay_note`); prints a
    warning for a tenant without an overlay.
    """
    base = base if base is not None else _default_policy()
    tenant_dir = tenant_dir if tenant_dir is not None else _default_tenant_dir()
    if not TENANT_FILE_RE.match(tenant):
        raise click.ClickException(
            f"invalid tenant name {tenant!r}: use lower-case letters, digits, '-' or '_'"
        )
    note = tenant_overlay_note(tenant, tenant_dir, strict=True)
    if note is not None:
        click.echo(note, err=True)
    loader = _loader(base)
    path = base
    if tenant != BASE_TENANT and tenant_dir is not None:
        candidate = tenant_dir / f"{tenant}.yaml"
        if os.path.lexists(candidate):  # a FIFO or a bad link is refused by the loader, not skipped
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
    loader = _loader(base)
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


# --- impact tools: test a policy on prompts, diff two policies ----------------------------------


def _load_or_explain(loader: PolicyLoader, path: Path) -> ResolvedPolicy:
    try:
        return loader.load(path)
    except PolicyError as exc:
        raise click.ClickException(f"invalid policy:\n{exc}") from None


def _read_prompts_or_explain(path: Path) -> list[PromptRow]:
    try:
        return read_prompts(path)
    except PromptFileError as exc:
        raise click.ClickException(str(exc)) from None


def _moderators(*policies: ResolvedPolicy) -> list[CheckMany]:
    """One text moderator per policy, sharing classifier instances (each is built once)."""
    import threading

    from classifiers.registry import TEXT_CLASSIFIERS
    from gateway.pipeline import TextModerator

    built: dict[str, TextClassifier] = {}
    lock = threading.Lock()

    def shared(name: str) -> Callable[[], TextClassifier]:
        def factory() -> TextClassifier:
            with lock:
                if name not in built:
                    built[name] = TEXT_CLASSIFIERS[name]()
                return built[name]

        return factory

    factories = {name: shared(name) for name in TEXT_CLASSIFIERS}
    budget = get_settings().classifier_timeout_ms
    return [
        TextModerator(StaticPolicies(p), classifiers=factories, time_budget_ms=budget)
        for p in policies
    ]


def _run_with_progress(
    moderators: Sequence[CheckMany], rows: Sequence[PromptRow], batch_size: int
) -> list[list[RowResult]]:
    import sys

    from rich.progress import Progress, TaskID

    out = []
    with Progress(disable=not sys.stderr.isatty(), transient=True) as progress:

        def advance(task: TaskID) -> Callable[[int], None]:
            return lambda n: progress.advance(task, n)

        for i, moderator in enumerate(moderators, 1):
            label = "checking" if len(moderators) == 1 else f"policy {i} of {len(moderators)}"
            task = progress.add_task(label, total=len(rows))
            out.append(run(moderator, rows, batch_size=batch_size, on_progress=advance(task)))
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_report(report: Report, policy_path: Path) -> None:
    click.echo(
        f"policy {display_path(policy_path)} (version {report.policy_version}) on "
        f"{report.rows} prompt(s)"
    )
    click.echo(
        "actions: " + ", ".join(f"{a.value} {report.actions.get(a.value, 0)}" for a in Action)
    )
    if report.failed_closed:
        click.echo(
            f"WARNING: {report.failed_closed} prompt(s) blocked because a classifier failed; "
            "their results say nothing about the policy"
        )
    head = f"{'category':<18}{'flagged':>8}{'labelled':>10}{'support':>9}"
    click.echo("\n" + head + f"{'precision':>11}{'recall':>8}{'f1':>8}")
    for category in CATEGORIES:
        stats = report.per_category.get(category)
        flagged = report.categories_flagged.get(category, 0)
        if stats is None:
            click.echo(f"{category:<18}{flagged:>8}{'-':>10}{'-':>9}{'-':>11}{'-':>8}{'-':>8}")
            continue
        click.echo(
            f"{category:<18}{flagged:>8}{stats.labelled:>10}{stats.support:>9}"
            f"{_fmt(stats.precision):>11}{_fmt(stats.recall):>8}{_fmt(stats.f1):>8}"
        )
    if not report.per_category:
        click.echo('(no "labels" in the prompts file, so no precision/recall)')
    if report.expected_total:
        share = report.expected_correct / report.expected_total
        click.echo(
            f"\nexpected action: {report.expected_correct}/{report.expected_total} correct "
            f"({share:.1%})"
        )
        for (expected, got), n in sorted(report.action_confusion.items()):
            if expected != got:
                click.echo(f"  expected {expected}, got {got}: {n}")


def _print_misses(found: Sequence[Miss], limit: int) -> None:
    if not found or limit == 0:
        return
    shown = found[:limit]
    click.echo(f"\nmisses: {len(found)} prompt(s) decided against their labels or expected action")
    for miss in shown:
        row = miss.result.row
        click.echo(f"\n{row.id}: {_short(row.text)}")
        for line in miss.why():
            click.echo(f"  {line}")
    if len(shown) < len(found):
        click.echo(
            f"\n... {len(found) - len(shown)} more; --misses 0 hides them, --output lists every "
            "decision"
        )


def _miss_json(miss: Miss) -> dict[str, Any]:
    return {
        "id": miss.result.row.id,
        "text": miss.result.row.text,
        "action": miss.result.decision.action.value,
        "expected": miss.result.row.expected.value if miss.result.row.expected else None,
        "missed": list(miss.missed),
        "flagged_clean": list(miss.extra),
        "why": miss.why(),
    }


@policy.command("test")
@click.argument("policy_file", metavar="POLICY", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--prompts",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help='JSONL, one {"id", "text", "labels"?, "expected"?} per line (see policies/evaluate.py).',
)
@base_option
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write one JSON decision per prompt to this JSONL file.",
)
@click.option(
    "--positive",
    type=click.Choice(["review", "block"]),
    default="review",
    show_default=True,
    help="What counts as flagging a category for precision/recall.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--misses",
    "show_misses",
    type=click.IntRange(0),
    default=20,
    show_default=True,
    help="Wrongly decided prompts (against their labels or expected action) to print after the "
    "counts, with the reasons (0: none).",
)
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True)
def test_policy(
    policy_file: Path,
    prompts: Path,
    base: Path | None,
    output: Path | None,
    positive: str,
    as_json: bool,
    show_misses: int,
    batch_size: int,
) -> None:
    """Run POLICY over a prompts file: decisions, and precision/recall per labelled category.

    Each prompt goes through the real text pipeline (normaliser and classifiers) under POLICY,
    so the numbers are what the gateway would do. After the counts it lists the first --misses
    prompts decided against their labels or expected action, with the reasons. Nothing is
    written to the audit log.
    """
    resolved = _load_or_explain(_loader(base), policy_file)
    rows = _read_prompts_or_explain(prompts)
    (results,) = _run_with_progress(_moderators(resolved), rows, batch_size)
    report = score(results, resolved.version, Action(positive))
    if output is not None:
        with output.open("w", encoding="utf-8") as fh:
            for res in results:
                fh.write(json.dumps(result_json(res), ensure_ascii=False) + "\n")
    found = misses(results, Action(positive))
    if as_json:
        summary = report.to_json()
        summary["misses"] = {
            "count": len(found),
            "shown": [_miss_json(m) for m in found[:show_misses]],
        }
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print_report(report, policy_file)
        _print_misses(found, show_misses)


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


@policy.command("diff")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--prompts",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help='JSONL, one {"id", "text"} per line (labels are ignored here).',
)
@base_option
@click.option("--json", "as_json", is_flag=True, help="Print each change as a JSON line.")
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=50,
    show_default=True,
    help="Most changed prompts to list (0: all); the counts always cover every prompt.",
)
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True)
def diff(
    old: Path,
    new: Path,
    prompts: Path,
    base: Path | None,
    as_json: bool,
    limit: int,
    batch_size: int,
) -> None:
    """Show which prompts change decision between OLD and NEW policy files, and how.

    Run it before a policy change goes live. When both policies run the same classifiers, the
    prompts are classified once and both policies decide on the same scores.
    """
    loader = _loader(base)
    before, after = _load_or_explain(loader, old), _load_or_explain(loader, new)
    rows = _read_prompts_or_explain(prompts)
    if before.version == after.version:
        click.echo(
            f"{display_path(old)} and {display_path(new)} resolve to the same policy "
            f"(version {before.version}); no decision can change",
            err=True,
        )
        return
    if before.policy.classifiers.prompt == after.policy.classifiers.prompt:
        # Same classifiers, same scores: run the pipeline once and let NEW decide on them too.
        from classifiers.text.lexicon import find_minor_mentions

        (old_results,) = _run_with_progress(_moderators(before), rows, batch_size)
        new_results = redecide(old_results, after, find_minor_mentions)
    else:
        old_results, new_results = _run_with_progress(_moderators(before, after), rows, batch_size)
    changes = compare(old_results, new_results)
    if as_json:
        for change in changes:
            click.echo(json.dumps(change.to_json(), ensure_ascii=False))
        return
    click.echo(f"old: {display_path(old)} (version {before.version})")
    click.echo(f"new: {display_path(new)} (version {after.version})")
    counts = Counter(c.kind for c in changes)
    stricter = sum(c.stricter for c in changes)
    click.echo(
        f"{len(changes)} of {len(rows)} prompt(s) change decision "
        f"({stricter} stricter, {len(changes) - stricter} looser or re-categorised)"
    )
    for kind, n in counts.most_common():
        click.echo(f"  {kind:<18}{n:>6}")
    shown = changes if limit == 0 else changes[:limit]
    for change in shown:
        cats_old = ",".join(sorted({r.category for r in change.old.reasons})) or "-"
        cats_new = ",".join(sorted({r.category for r in change.new.reasons})) or "-"
        click.echo(f"\n{change.row.id}: {change.kind} ({cats_old} -> {cats_new})")
        click.echo(f"  text: {_short(change.row.text)}")
        side = change.new if change.new.reasons else change.old
        label = "new" if change.new.reasons else "old"
        click.echo(f"  {label}: {side.reasons[0].message}")
    if len(shown) < len(changes):
        click.echo(f"\n... {len(changes) - len(shown)} more; use --limit 0 or --json for all")


# -- policy changes in the audit chain (the commands that need the database) --


@policy.command("ack")
@click.argument("tenant")
@click.option("--actor", required=True, help="Who acknowledges (kept in the chained record).")
@db_option
def policy_ack(tenant: str, actor: str, db: Path) -> None:
    """Acknowledge that TENANT's overlay was removed on purpose (it now gets the base policy).

    A running server shows an overlay removed while it ran in /healthz (status degraded) until
    this is recorded; the acknowledgement is a chained audit record naming --actor.
    """
    from gateway.policy_audit import acknowledge
    from gateway.serve import open_audit_or_explain

    if not actor.strip():
        raise click.UsageError("--actor must name who acknowledges")
    log = open_audit_or_explain(settings_from_flags(db=db))
    try:
        removal = acknowledge(log, tenant, actor)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        log.close()
    click.echo(
        f"Acknowledged: tenant {tenant!r} gets the base policy (version {removal['version']}, "
        f"was {removal['previous']}); recorded for {actor}."
    )


@policy.command("history")
@click.option("--tenant", default=None, help="Only this tenant's changes.")
@db_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def policy_history(tenant: str | None, db: Path, as_json: bool) -> None:
    """Policy changes the servers recorded in the audit chain (loads, edits, removals, acks)."""
    import json
    from datetime import UTC, datetime

    from gateway.serve import open_audit_or_explain

    log = open_audit_or_explain(settings_from_flags(db=db))
    try:
        rows = log.policy_changes(tenant)
    finally:
        log.close()
    for r in rows:
        if as_json:
            click.echo(json.dumps(r))
            continue
        when = datetime.fromtimestamp(r["recorded_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(
            f"{when}  {r['tenant']:<16} {r['change']:<8} {r['previous'] or '-':>12} -> "
            f"{r['version']:<12}  {r['actor']}"
        )
    if not rows and not as_json:
        click.echo("No policy changes recorded (a server records them when it starts).", err=True)
