"""Load policy YAML (with line numbers), merge tenant overlays, validate, and hash.

A **base** policy names every category. An **overlay** starts with ``extends:`` and names only
what it changes; it is deep-merged onto its parent and the result is validated as a whole:

- mappings merge key by key; any other value (number, text, list) replaces the parent's;
- ``blocklist``/``allowlist`` ``terms`` and ``patterns`` *add to* the parent's, unless the list
  block says ``replace: true``;
- ``sexual/minors`` may only be tightened: lower thresholds, more blocklist entries, more or
  stricter frame concepts. Classifiers may be added but not removed (removing one could switch
  off the checks that find sexual content with minors).

Every file, base or overlay, must also hold the child-safety floor (:mod:`policies.floor`) and
the limits of :mod:`policies.limits`.

``extends: default`` means the base policy this process was given (``--policy``, or the packaged
``policies/default.yaml``); another name means ``<name>.yaml`` in the overlay's own folder.
Nothing else: no paths, no ``..``, and a file (or a symlink) that resolves outside its folder is
refused, so a tenant folder can never pull in a file from elsewhere. Files are read only when
they are regular files under the size cap (:mod:`policies.files`); YAML anchors and aliases are
refused before anything is expanded (a few hundred bytes of aliases can expand to gigabytes).

Every problem becomes a :class:`PolicyIssue` (file, line, field path, message ending with the
fix); :class:`PolicyError` carries them all, e.g.::

    policies/default.yaml:12: categories.sexual.prompt.block_at: must be between 0 and 1
    (got 1.5); set a value from 0 to 1

(one line each; wrapped here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from classifiers.base import STAGES
from policies.files import resolves_inside
from policies.floor import floor_breaches
from policies.issues import Loc, PolicyError, PolicyIssue, display_path, format_loc
from policies.limits import (
    MAX_FILE_BYTES,
    MAX_PATTERN_PROGRAM,
    MAX_PATTERNS,
    MAX_TERMS,
)
from policies.messages import issue_from_error, line_for, shown_value
from policies.patterns import compile_pattern
from policies.resolved import ResolvedPolicy
from policies.schema import MINORS_CATEGORY, Policy
from policies.yaml_doc import PolicyDoc, read_yaml

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "default.yaml"
"""The packaged base policy."""

_LIST_KEYS = ("blocklist", "allowlist")

__all__ = [
    "DEFAULT_POLICY_PATH",
    "Loc",
    "PolicyError",
    "PolicyIssue",
    "PolicyLoader",
    "display_path",
    "format_loc",
    "load_policy",
]


# --- overlays ---------------------------------------------------------------------------------


def _merge(parent: Any, overlay: Any, loc: Loc, doc: PolicyDoc) -> Any:
    """Deep-merge ``overlay`` onto ``parent``; re-key list-item line numbers that shift."""
    if not (isinstance(parent, dict) and isinstance(overlay, dict)):
        return overlay
    is_list_block = bool(loc) and loc[-1] in _LIST_KEYS
    if is_list_block and overlay.get("replace") is True:
        return dict(overlay)
    out = dict(parent)
    for key, value in overlay.items():
        if key not in out:
            out[key] = value
        elif is_list_block and key in ("terms", "patterns") and isinstance(value, list):
            out[key] = _union(out[key], value, (*loc, key), doc, fold=key == "terms")
        else:
            out[key] = _merge(out[key], value, (*loc, key), doc)
    return out


def _union(old: Any, new: list[Any], loc: Loc, doc: PolicyDoc, *, fold: bool) -> list[Any]:
    """The parent's list plus the overlay's new items (line numbers follow the items)."""
    merged = list(old) if isinstance(old, list | tuple) else []
    seen = {str(v).casefold() if fold else v for v in merged}
    sources = [doc.lines.pop((*loc, i), None) for i in range(len(new))]
    for item, src in zip(new, sources, strict=True):
        probe = str(item).casefold() if fold else item
        if probe in seen:
            continue
        seen.add(probe)
        if src is not None:
            doc.lines[(*loc, len(merged))] = src
        merged.append(item)
    return merged


def _minors_issues(parent: Policy, merged: Policy, doc: PolicyDoc, name: str) -> list[PolicyIssue]:
    """An overlay may only tighten ``sexual/minors`` and may not drop classifiers."""
    issues: list[PolicyIssue] = []

    def issue(loc: Loc, message: str) -> None:
        issues.append(PolicyIssue(name, line_for(loc, doc, name)[1], format_loc(loc), message))

    old, new = parent.categories.get(MINORS_CATEGORY), merged.categories.get(MINORS_CATEGORY)
    for stage in STAGES:
        for knob in ("review_at", "block_at"):
            was, now = getattr(old.stage(stage), knob), getattr(new.stage(stage), knob)
            if now > was:
                issue(
                    ("categories", MINORS_CATEGORY, stage, knob),
                    f"sexual/minors can only be tightened by an overlay (parent {was:g}, got "
                    f"{now:g}); set {was:g} or lower",
                )
    for kind in ("terms", "patterns"):
        missing = set(getattr(old.blocklist, kind)) - set(getattr(new.blocklist, kind))
        if missing:
            issue(
                ("categories", MINORS_CATEGORY, "blocklist", kind),
                f"an overlay cannot remove sexual/minors blocklist {kind} "
                f"({', '.join(sorted(map(repr, missing)))}); remove 'replace: true' and only add",
            )
    old_concepts = {
        c.prompt: c.threshold for c in parent.frame_audit.concepts.get(MINORS_CATEGORY, ())
    }
    new_concepts = {
        c.prompt: c.threshold for c in merged.frame_audit.concepts.get(MINORS_CATEGORY, ())
    }
    for prompt, threshold in old_concepts.items():
        if prompt not in new_concepts or new_concepts[prompt] > threshold:
            issue(
                ("frame_audit", "concepts", MINORS_CATEGORY),
                f"sexual/minors concept {prompt!r} must stay, with threshold {threshold:g} or "
                "lower; overlays may only add concepts or lower thresholds",
            )
    for stage in STAGES:
        dropped = [
            c
            for c in getattr(parent.classifiers, stage)
            if c not in getattr(merged.classifiers, stage)
        ]
        if dropped:
            issue(
                ("classifiers", stage),
                f"an overlay cannot remove classifiers ({', '.join(dropped)}); list the parent's "
                "classifiers too (removing one could switch off sexual/minors checks)",
            )
    return issues


# --- loading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    resolved: ResolvedPolicy
    doc: PolicyDoc


_PARENT_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")
"""What ``extends:`` may name besides ``default``: a file stem in the overlay's own folder."""


class PolicyLoader:
    """Loads policy files against one base; parents are read once per loader.

    ``base`` is what ``extends: default`` means (the packaged default when ``None``);
    ``max_file_bytes`` is the largest file read (``REELGUARD_POLICY_MAX_BYTES``).
    """

    def __init__(
        self, base: Path | str | None = None, *, max_file_bytes: int = MAX_FILE_BYTES
    ) -> None:
        self.base = Path(base) if base is not None else DEFAULT_POLICY_PATH
        self.max_file_bytes = max_file_bytes
        self._cache: dict[Path, _Loaded] = {}

    def load(self, path: Path | str) -> ResolvedPolicy:
        """Load, merge and validate ``path``; raises :class:`PolicyError`."""
        return self._load(Path(path), ()).resolved

    def _parent_path(self, value: Any, path: Path, doc: PolicyDoc, name: str) -> Path:
        line = line_for(("extends",), doc, name)[1]
        if not isinstance(value, str) or not value.strip():
            raise PolicyError(
                [
                    PolicyIssue(
                        name,
                        line,
                        "extends",
                        f"must name a policy (got {shown_value(value)}); write 'extends: default'",
                    )
                ]
            )
        if value == "default":
            return self.base
        if not _PARENT_NAME_RE.match(value):
            stem = Path(value).stem if value.endswith((".yaml", ".yml")) else ""
            hint = (
                f"write 'extends: {stem}'"
                if stem and _PARENT_NAME_RE.match(stem) and "/" not in value
                else "copy the parent into this folder and write 'extends: NAME'"
            )
            raise PolicyError(
                [
                    PolicyIssue(
                        name,
                        line,
                        "extends",
                        "must be 'default' (the base policy) or the name of a policy file in "
                        f"this file's folder without '.yaml' (got {shown_value(value)}); paths, "
                        f"'..' and files elsewhere are not allowed: {hint}",
                    )
                ]
            )
        return path.parent / f"{value}.yaml"

    def _load(self, path: Path, chain: tuple[Path, ...]) -> _Loaded:
        key = path.resolve()
        if key in self._cache:
            return self._cache[key]
        name = display_path(path)
        if key in chain:
            cycle = " -> ".join(display_path(p) for p in (*chain, key))
            raise PolicyError(
                [PolicyIssue(name, None, "extends", f"circular extends ({cycle}); break the loop")]
            )
        if key != self.base.resolve() and not resolves_inside(path, path.parent):
            raise PolicyError(
                [
                    PolicyIssue(
                        name,
                        None,
                        "",
                        "is a symbolic link to a file outside its folder; policy files must "
                        "lie in their folder: copy the file here instead of linking to it",
                    )
                ]
            )
        doc = read_yaml(path, self.max_file_bytes)
        parent: _Loaded | None = None
        data: dict[str, Any] = doc.data
        if "extends" in doc.data:
            parent_path = self._parent_path(doc.data["extends"], path, doc, name)
            try:
                parent = self._load(parent_path, (*chain, key))
            except PolicyError as exc:
                line = line_for(("extends",), doc, name)[1]
                raise PolicyError(
                    [
                        PolicyIssue(
                            name, line, "extends", "the parent policy is invalid; fix it first"
                        ),
                        *exc.issues,
                    ]
                ) from None
            merged_lines = dict(parent.doc.lines)
            merged_doc = PolicyDoc(doc.data, dict(doc.lines))
            data = _merge(parent.resolved.policy.canonical(), doc.data, (), merged_doc)
            merged_lines.update(merged_doc.lines)
            doc = PolicyDoc(data, merged_lines)
        try:
            policy = Policy.model_validate(data)
        except ValidationError as exc:
            found = [issue_from_error(e, doc, name) for e in exc.errors()]
            found.sort(key=lambda i: (i.file != name, i.file, i.line or 0))
            raise PolicyError(found) from None
        issues = _minors_issues(parent.resolved.policy, policy, doc, name) if parent else []
        if not issues:  # the parent held the floor, so only a file without one can break it
            issues = [
                PolicyIssue(name, line_for(b.loc, doc, name)[1], format_loc(b.loc), b.message)
                for b in floor_breaches(policy)
            ]
        issues += _limit_issues(policy, doc, name)
        if issues:
            raise PolicyError(issues)
        policy = policy.model_copy(update={"extends": None})
        sources = (*(parent.resolved.sources if parent else ()), key)
        loaded = _Loaded(ResolvedPolicy.build(policy, sources), doc)
        self._cache[key] = loaded
        return loaded


def _limit_issues(policy: Policy, doc: PolicyDoc, name: str) -> list[PolicyIssue]:
    """Terms and patterns over :mod:`policies.limits` (each costs a scan of every prompt)."""
    terms: list[Loc] = []
    patterns: list[tuple[Loc, str]] = []
    for category, cat in policy.categories.items():
        for kind in _LIST_KEYS:
            block = getattr(cat, kind)
            loc: Loc = ("categories", category, kind)
            terms += [(*loc, "terms", i) for i in range(len(block.terms))]
            patterns += [((*loc, "patterns", i), p) for i, p in enumerate(block.patterns)]
    issues: list[PolicyIssue] = []

    def over(at: Loc, message: str) -> None:
        issues.append(PolicyIssue(name, line_for(at, doc, name)[1], format_loc(at), message))

    if len(terms) > MAX_TERMS:
        over(
            terms[MAX_TERMS],
            f"the policy has {len(terms)} terms (all blocklists and allowlists, with its "
            f"parents'), over the limit of {MAX_TERMS}; remove some, or cover them with patterns",
        )
    if len(patterns) > MAX_PATTERNS:
        over(
            patterns[MAX_PATTERNS][0],
            f"the policy has {len(patterns)} patterns (all lists, with its parents'), over the "
            f"limit of {MAX_PATTERNS}; merge some into one pattern with (a|b)",
        )
    total = 0
    for at, pattern in patterns:
        total += compile_pattern(pattern).programsize
        if total > MAX_PATTERN_PROGRAM:
            over(
                at,
                f"the policy's patterns compile to {total} RE2 instructions up to here, over the "
                f"limit of {MAX_PATTERN_PROGRAM}; use fewer or simpler patterns (smaller repeat "
                "counts such as {n})",
            )
            break
    return issues


def load_policy(path: Path | str, *, base: Path | str | None = None) -> ResolvedPolicy:
    """Load one policy file (base or overlay); ``base`` is what ``extends: default`` means."""
    return PolicyLoader(base).load(path)
