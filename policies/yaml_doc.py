"""Policy YAML read with a line number for every key and list item (:func:`read_yaml`).

Files are read only when they are regular files under the size cap (:mod:`policies.files`);
anchors, aliases, merge keys and deep nesting are refused while composing, before anything is
expanded. Every problem is a :class:`~policies.issues.PolicyError` naming the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from policies.files import UnsafeFileError, read_policy_bytes
from policies.issues import Loc, PolicyError, PolicyIssue, display_path, format_loc
from policies.limits import MAX_FILE_BYTES, MAX_YAML_DEPTH

# --- YAML with line numbers -------------------------------------------------------------------


@dataclass
class PolicyDoc:
    """A policy file's data and, per field path, the file and line it was written on."""

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


def read_yaml(path: Path, max_bytes: int = MAX_FILE_BYTES) -> PolicyDoc:
    """Read one policy file (a mapping at the top) with its line numbers, or raise
    :class:`~policies.issues.PolicyError`."""
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
    return PolicyDoc(data, lines)


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
