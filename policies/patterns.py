"""Policy regex ``patterns``, compiled with RE2: matching time is linear in the prompt's length.

Python's ``re`` backtracks: one pattern such as ``(a+)+$`` and a prompt of 50 ``a``\\ s and a
``!`` take exponential time while holding the GIL, which stalls every thread of the server (the
classifier deadline, ``/healthz``, the policy reloader). RE2 (``google-re2``) has no
backtracking, so every pattern costs at most a fixed amount per character of prompt.

RE2 has the syntax of Python's ``re`` minus the features that need backtracking: no
look-behind/look-ahead (``(?<!...)``, ``(?=...)``), no back-references (``\\1``), no atomic or
possessive groups. ``\\w``, ``\\d``, ``\\s`` and ``\\b`` are ASCII only; ``\\pL`` (any letter) and
``\\pN`` cover every script. :func:`compile_pattern` refuses what RE2 cannot compile, with the
reason and, for the common look-arounds, the rewrite.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import re2

from policies.limits import MAX_PATTERN_CHARS, PATTERN_MAX_MEM


class CompiledPattern(Protocol):
    """A compiled pattern: ``finditer`` and ``search`` as in ``re``."""

    def finditer(self, text: str) -> Any: ...
    def search(self, text: str) -> Any: ...
    @property
    def programsize(self) -> int: ...


class PatternError(ValueError):
    """A pattern RE2 cannot use; ``str()`` is the reason followed by the fix."""


def _options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    options.never_capture = True  # only the whole match is used; groups cost time
    options.max_mem = PATTERN_MAX_MEM
    options.log_errors = False
    return options


_OPTIONS = _options()

# Look-arounds that only say "no word character here": \b says the same next to a letter.
_WORD_EDGES = re.compile(r"\(\?<!\\w\)|\(\?!\\w\)")


def compile_pattern(pattern: str) -> CompiledPattern:
    """Compile ``pattern`` case-insensitively with RE2; raises :class:`PatternError`."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(
            f"is {len(pattern)} characters long, over the limit of {MAX_PATTERN_CHARS}; split it "
            "into shorter patterns or list literal phrases under terms:"
        )
    try:
        compiled: CompiledPattern = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise PatternError(_explain(pattern, exc)) from None
    return compiled


def _explain(pattern: str, exc: Exception) -> str:
    reason = exc.args[0] if exc.args else str(exc)
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    if _WORD_EDGES.search(pattern):
        rewrite = _WORD_EDGES.sub(r"\\b", pattern)
        return (
            "uses (?<!\\w) or (?!\\w), a look-around the linear-time regex engine (RE2) does "
            f"not support; next to a letter or digit write \\b instead: '{rewrite}'"
        )
    if "(?<" in pattern or "(?=" in pattern or "(?!" in pattern:
        return (
            f"uses a look-around ({reason}), which the linear-time regex engine (RE2) does not "
            "support; use \\b for word edges, or match the surrounding text instead"
        )
    if "pattern too large" in reason:
        return (
            f"is too complex for the linear-time regex engine ({reason}: over "
            f"{PATTERN_MAX_MEM // 1024} KiB compiled); use smaller repeat counts or split it"
        )
    return (
        f"is not a valid regular expression for RE2 ({reason}); fix it, or put a literal "
        "phrase under terms:"
    )
