"""Pydantic validation errors turned into located, fixable :class:`PolicyIssue` messages
(the field path, the file and line it came from, what is allowed there)."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from classifiers.base import CATEGORIES
from policies.issues import Loc, PolicyIssue, format_loc
from policies.schema import Policy
from policies.yaml_doc import PolicyDoc

# --- pydantic errors -> located, fixable messages ---------------------------------------------


def line_for(loc: Loc, doc: PolicyDoc, name: str) -> tuple[str, int | None]:
    """The file and line to blame for a problem at ``loc`` (the nearest key written in ``name``
    when the exact one was inherited from a parent)."""
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


def shown_value(value: Any) -> str:
    """``value`` as a message shows it (``repr``, cut at 60 characters)."""
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


def issue_from_error(err: Any, doc: PolicyDoc, name: str) -> PolicyIssue:
    """One pydantic error (an item of ``ValidationError.errors()``) as a located issue whose
    message ends with the fix."""
    loc: Loc = tuple(p for p in err["loc"] if p != "[key]")
    kind = err["type"]
    got = shown_value(err.get("input"))
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        message = f"unknown field {loc[-1]!r}; {hint}allowed here: {', '.join(allowed)}"
        file, line = line_for(loc, doc, name)
        return PolicyIssue(file, line, format_loc(loc[:-1]) or "(top level)", message)
    if kind == "missing":
        message = f"required; add '{loc[-1]}:'"
        if loc[:1] == ("categories",) and len(loc) == 2:
            message += " (a base policy names every category; an overlay starts with 'extends:')"
        elif len(loc) == 1:
            message += " (a base policy needs it; an overlay starts with 'extends: default')"
        file, line = line_for(loc, doc, name)
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
    file, line = line_for(loc, doc, name)
    return PolicyIssue(file, line, format_loc(loc), message)
