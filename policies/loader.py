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

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from classifiers.base import CATEGORIES, STAGES
from policies.files import UnsafeFileError, read_policy_bytes, resolves_inside
from policies.floor import floor_breaches
from policies.limits import (
    MAX_FILE_BYTES,
    MAX_PATTERN_PROGRAM,
    MAX_PATTERNS,
    MAX_TERMS,
    MAX_YAML_DEPTH,
)
from policies.patterns import compile_pattern
from policies.resolved import ResolvedPolicy
from policies.schema import MINORS_CATEGORY, Policy

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent / "default.yaml"
"""The packaged base policy."""

Loc = tuple[str | int, ...]
_LIST_KEYS = ("blocklist", "allowlist")


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem in a policy file: where it is, which field, and how to fix it."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class PolicyError(Exception):
    """A policy file that cannot be used; ``str()`` lists every issue, one per line."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (for messages)."""
    if not path.is_absolute():
        return str(path)
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def format_loc(loc: Loc) -> str:
    """``("categories", "sexual", "blocklist", "terms", 2)``
    -> ``categories.sexual.blocklist.terms[2]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


# --- YAML with line numbers -------------------------------------------------------------------


@dataclass
class _Doc:
    data: dict[str, Any]
    lines: dict[Loc, tuple[str, int]] = field(default_factory=dict)


class _PolicyYamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases and deep nesting while composing, i.e. before
    anything is expanded or constructed."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self._name = name
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise PolicyError(
                [
                    PolicyIssue(
                        self._name,
                        line,
                        "",
                        "YAML anchors and aliases (&name, *name) are not allowed in policy "
                        "files; write the values out",
                    )
                ]
            )
        if self._depth >= MAX_YAML_DEPTH:
            raise PolicyError(
                [
                    PolicyIssue(
                        self._name,
                        line,
                        "",
                        f"nested more than {MAX_YAML_DEPTH} levels deep; a policy needs 6, "
                        "check the indentation and brackets",
                    )
                ]
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _read_text(path: Path, name: str, max_bytes: int) -> str:
    try:
        data = read_policy_bytes(path, max_bytes)
    except FileNotFoundError:
        raise PolicyError([PolicyIssue(name, None, "", "file not found; check the path")]) from None
    except UnsafeFileError as exc:
        raise PolicyError([PolicyIssue(name, None, "", str(exc))]) from None
    except OSError as exc:
        raise PolicyError(
            [
                PolicyIssue(
                    name,
                    None,
                    "",
                    f"cannot read the file ({exc.strerror or exc}); check that it is readable",
                )
            ]
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(
            [PolicyIssue(name, None, "", f"cannot read the file ({exc}); save it as UTF-8 text")]
        ) from None


def _read_yaml(path: Path, max_bytes: int = MAX_FILE_BYTES) -> _Doc:
    name = display_path(path)
    text = _read_text(path, name, max_bytes)
    loader = _PolicyYamlLoader(text, name)
    try:
        node = loader.get_single_node()
        if node is None:
            raise PolicyError(
                [PolicyIssue(name, 1, "", "the file is empty; start from policies/default.yaml")]
            )
        lines: dict[Loc, tuple[str, int]] = {}
        data = _convert(loader, node, (), name, lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "syntax error"
        raise PolicyError(
            [
                PolicyIssue(
                    name,
                    line,
                    "",
                    f"invalid YAML ({problem}); check indentation, colons and quotes near here",
                )
            ]
        ) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise PolicyError(
            [PolicyIssue(name, None, "", f"invalid YAML ({exc}); write plain values")]
        ) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise PolicyError(
            [PolicyIssue(name, 1, "", "the file must be a mapping (key: value lines) at the top")]
        )
    return _Doc(data, lines)


def _convert(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    loc: Loc,
    name: str,
    lines: dict[Loc, tuple[str, int]],
) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise PolicyError(
                    [
                        PolicyIssue(
                            name,
                            line,
                            format_loc(loc),
                            "YAML merge keys (<<) are not supported; write the keys out",
                        )
                    ]
                )
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key).lower() if isinstance(key, bool) else str(key)
            if key in out:
                raise PolicyError(
                    [
                        PolicyIssue(
                            name,
                            line,
                            format_loc((*loc, key)),
                            f"duplicate key (first on line {lines[(*loc, key)][1]}); keep one",
                        )
                    ]
                )
            lines[(*loc, key)] = (name, line)
            out[key] = _convert(loader, value_node, (*loc, key), name, lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines[(*loc, i)] = (name, item.start_mark.line + 1)
            items.append(_convert(loader, item, (*loc, i), name, lines))
        return items
    try:
        return loader.construct_object(node, deep=True)
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        reason = str(exc).split(";")[0]
        raise PolicyError(
            [
                PolicyIssue(
                    name,
                    node.start_mark.line + 1,
                    format_loc(loc),
                    f"cannot read this value ({reason}); quote it to make it text, or shorten it",
                )
            ]
        ) from None


# --- overlays ---------------------------------------------------------------------------------


def _merge(parent: Any, overlay: Any, loc: Loc, doc: _Doc) -> Any:
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


def _union(old: Any, new: list[Any], loc: Loc, doc: _Doc, *, fold: bool) -> list[Any]:
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


def _minors_issues(parent: Policy, merged: Policy, doc: _Doc, name: str) -> list[PolicyIssue]:
    """An overlay may only tighten ``sexual/minors`` and may not drop classifiers."""
    issues: list[PolicyIssue] = []

    def issue(loc: Loc, message: str) -> None:
        issues.append(PolicyIssue(name, _line_for(loc, doc, name)[1], format_loc(loc), message))

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


# --- pydantic errors -> located, fixable messages ---------------------------------------------


def _line_for(loc: Loc, doc: _Doc, name: str) -> tuple[str, int | None]:
    exact = doc.lines.get(loc)
    if exact is not None and exact[0] == name:
        return exact
    # A cross-field error in a block the overlay touched: point at the overlay's line.
    for other, where in doc.lines.items():
        if where[0] == name and len(other) == len(loc) and other[:-1] == loc[:-1] and loc:
            return where
    if exact is not None:
        return exact
    for n in range(len(loc) - 1, -1, -1):
        prefix = doc.lines.get(loc[:n])
        if prefix is not None:
            return prefix
    return name, None


def _annotation_at(loc: Loc) -> Any:
    """The type expected at ``loc`` in :class:`Policy` (for listing allowed keys)."""
    current: Any = Policy
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {(f.alias or n): f for n, f in current.model_fields.items()}
            if part not in fields:
                return None
            current = fields[part].annotation
        elif typing.get_origin(current) in (dict, Mapping):
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) in (tuple, list):
            current = typing.get_args(current)[0]
        else:
            return None
    return _unwrap(current)


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else tp
    return tp


def _allowed_keys(loc: Loc) -> list[str]:
    tp = _annotation_at(loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [(f.alias or n) for n, f in tp.model_fields.items()]
    if typing.get_origin(tp) in (dict, Mapping):
        return list(CATEGORIES)
    return []


def _got(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPE_MESSAGES = {
    "float_parsing": "must be a number (got {got}); write a number such as 0.5",
    "float_type": "must be a number (got {got}); write a number such as 0.5",
    "int_parsing": "must be a whole number (got {got}); write e.g. 3",
    "int_type": "must be a whole number (got {got}); write e.g. 3",
    "int_from_float": "must be a whole number (got {got}); drop the fraction",
    "bool_parsing": "must be true or false (got {got}); write true or false",
    "bool_type": "must be true or false (got {got}); write true or false",
    "string_type": "must be text (got {got}); put it in quotes",
    "string_too_short": "is too short (got {got}); write a longer value",
    "tuple_type": "must be a list (got {got}); write [a, b] or one '- item' per line",
    "list_type": "must be a list (got {got}); write [a, b] or one '- item' per line",
    "model_type": "must be a section of key: value lines (got {got}); indent its keys under it",
    "model_attributes_type": "must be a section of key: value lines (got {got}); indent its keys "
    "under it",
    "dict_type": "must be a section of key: value lines (got {got}); indent its keys under it",
    "string_pattern_mismatch": "must be a registry name in lowercase letters, digits, '_', '-' or "
    "'.' (got {got}); see `reelguard policy schema`",
    "greater_than": "must be greater than {gt} (got {got}); use a larger value",
    "greater_than_equal": "must be at least {ge} (got {got}); use a larger value",
    "less_than_equal": "must be at most {le} (got {got}); use a smaller value",
}


def _issue_from_error(err: Any, doc: _Doc, name: str) -> PolicyIssue:
    loc: Loc = tuple(p for p in err["loc"] if p != "[key]")
    kind = err["type"]
    got = _got(err.get("input"))
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        message = f"unknown field {loc[-1]!r}; {hint}allowed here: {', '.join(allowed)}"
        file, line = _line_for(loc, doc, name)
        return PolicyIssue(file, line, format_loc(loc[:-1]) or "(top level)", message)
    if kind == "missing":
        message = f"required; add '{loc[-1]}:'"
        if loc[:1] == ("categories",) and len(loc) == 2:
            message += " (a base policy names every category; an overlay starts with 'extends:')"
        elif len(loc) == 1:
            message += " (a base policy needs it; an overlay starts with 'extends: default')"
        file, line = _line_for(loc, doc, name)
        return PolicyIssue(file, line, format_loc(loc), message)
    if kind == "literal_error" and "[key]" in err["loc"]:
        near = difflib.get_close_matches(str(loc[-1]), CATEGORIES, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        message = f"unknown category {loc[-1]!r}; {hint}use one of {', '.join(CATEGORIES)}"
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected', '')} (got {got})"
    elif kind in _TYPE_MESSAGES:
        message = _TYPE_MESSAGES[kind].format(got=got, **ctx)
    elif ";" in err["msg"]:  # our own PydanticCustomError messages already end with the fix
        message = err["msg"]
    else:
        message = f"{err['msg']} (got {got}); see `reelguard policy schema`"
    file, line = _line_for(loc, doc, name)
    return PolicyIssue(file, line, format_loc(loc), message)


# --- loading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Loaded:
    resolved: ResolvedPolicy
    doc: _Doc


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

    def _parent_path(self, value: Any, path: Path, doc: _Doc, name: str) -> Path:
        line = _line_for(("extends",), doc, name)[1]
        if not isinstance(value, str) or not value.strip():
            raise PolicyError(
                [
                    PolicyIssue(
                        name,
                        line,
                        "extends",
                        f"must name a policy (got {_got(value)}); write 'extends: default'",
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
                        f"this file's folder without '.yaml' (got {_got(value)}); paths, '..' "
                        f"and files elsewhere are not allowed: {hint}",
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
        doc = _read_yaml(path, self.max_file_bytes)
        parent: _Loaded | None = None
        data: dict[str, Any] = doc.data
        if "extends" in doc.data:
            parent_path = self._parent_path(doc.data["extends"], path, doc, name)
            try:
                parent = self._load(parent_path, (*chain, key))
            except PolicyError as exc:
                line = _line_for(("extends",), doc, name)[1]
                raise PolicyError(
                    [
                        PolicyIssue(
                            name, line, "extends", "the parent policy is invalid; fix it first"
                        ),
                        *exc.issues,
                    ]
                ) from None
            merged_lines = dict(parent.doc.lines)
            merged_doc = _Doc(doc.data, dict(doc.lines))
            data = _merge(parent.resolved.policy.canonical(), doc.data, (), merged_doc)
            merged_lines.update(merged_doc.lines)
            doc = _Doc(data, merged_lines)
        try:
            policy = Policy.model_validate(data)
        except ValidationError as exc:
            found = [_issue_from_error(e, doc, name) for e in exc.errors()]
            found.sort(key=lambda i: (i.file != name, i.file, i.line or 0))
            raise PolicyError(found) from None
        issues = _minors_issues(parent.resolved.policy, policy, doc, name) if parent else []
        if not issues:  # the parent held the floor, so only a file without one can break it
            issues = [
                PolicyIssue(name, _line_for(b.loc, doc, name)[1], format_loc(b.loc), b.message)
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


def _limit_issues(policy: Policy, doc: _Doc, name: str) -> list[PolicyIssue]:
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
        issues.append(PolicyIssue(name, _line_for(at, doc, name)[1], format_loc(at), message))

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
