"""A resolved policy: the validated model, its version hash, its source files, compiled lists."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from classifiers.base import Category, PromptText, Stage
from policies.patterns import CompiledPattern, compile_pattern
from policies.schema import CategoryPolicy, Policy, StagePolicy, TermList

VERSION_LENGTH = 12


def policy_version(policy: Policy) -> str:
    """Short content hash of the resolved policy's canonical JSON (comments never count)."""
    canonical = json.dumps(
        policy.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:VERSION_LENGTH]


@dataclass(frozen=True, slots=True)
class Match:
    """One blocklist/allowlist hit, as a span of the *original* prompt."""

    start: int
    end: int
    text: str
    entry: str
    """The term or pattern (as written in the policy) that matched."""


def _term_regex(term: str) -> str:
    """Whole words only ("ass" must not fire inside "class"); spaces match any whitespace.

    The first word comes first, *then* the look-behind that checks the character before it:
    a pattern that starts with a literal lets the regex engine skip ahead quickly.

    These stay on Python's ``re`` (RE2 has no look-behind, and its ``\\w`` is ASCII only): they
    are escaped literals whose only repeat is ``\\s+`` before a literal word, so a scan is
    linear in the prompt times the term's length; :data:`policies.limits.MAX_TERMS` and
    :data:`~policies.limits.MAX_TERM_CHARS` bound how many such scans a prompt costs.
    """
    words = term.split()
    body = r"\s+".join(re.escape(w) for w in words)
    return (
        re.escape(words[0])
        + rf"(?<!\w.{{{len(words[0])}}})"
        + body[len(re.escape(words[0])) :]
        + r"(?!\w)"
    )


_Finder = re.Pattern[str] | CompiledPattern


@dataclass(frozen=True, slots=True)
class TermMatcher:
    """A compiled :class:`~policies.schema.TermList`, scanning original and normalised text."""

    entries: tuple[tuple[str, _Finder, _Finder], ...]

    @classmethod
    def compile(cls, terms: TermList) -> TermMatcher:
        """Compile every term (whole-word, ``re``) and pattern (anywhere, RE2), both
        case-insensitive."""
        entries: list[tuple[str, _Finder, _Finder]] = []
        for term in terms.terms:
            entries.append(
                (
                    term,
                    re.compile(_term_regex(term), re.IGNORECASE | re.DOTALL),
                    # Normalised text is casefolded (PromptText contract): match the casefolded
                    # term exactly there ("ß" -> "ss"), which is also much faster.
                    re.compile(_term_regex(term.casefold()), re.DOTALL),
                )
            )
        for pattern in terms.patterns:
            compiled = compile_pattern(pattern)
            entries.append((pattern, compiled, compiled))
        return cls(tuple(entries))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def find(self, prompt: PromptText) -> list[Match]:
        """Every hit in the original text and in the normalised text (mapped back), deduplicated.

        Spans always index ``prompt.original``, so evidence quotes what the user sent.
        """
        seen: set[tuple[int, int]] = set()
        out: list[Match] = []
        # A normalised text that is only the casefolded original holds no match the
        # case-insensitive scan of the original misses.
        plain = len(prompt.normalized) == len(prompt.original) and prompt.normalized in (
            prompt.original,
            prompt.original.casefold(),
        )
        for entry, on_original, on_normalized in self.entries:
            for m in on_original.finditer(prompt.original):
                if m.end() > m.start() and (m.start(), m.end()) not in seen:
                    seen.add((m.start(), m.end()))
                    out.append(Match(m.start(), m.end(), m.group(), entry))
            if plain:
                continue
            for m in on_normalized.finditer(prompt.normalized):
                if m.end() == m.start():
                    continue
                start, end = prompt.original_span(m.start(), m.end())
                if (start, end) not in seen:
                    seen.add((start, end))
                    out.append(Match(start, end, prompt.original[start:end], entry))
        out.sort(key=lambda x: (x.start, x.end))
        return out


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    """A validated, fully merged policy ready for :func:`policies.engine.decide`.

    ``version`` is a short content hash of :meth:`Policy.canonical`, stored with every decision.
    ``sources`` lists the files it was built from, base first (empty for in-memory policies).
    """

    policy: Policy
    version: str
    sources: tuple[Path, ...] = ()
    blocklists: dict[Category, TermMatcher] = field(default_factory=dict, repr=False)
    allowlists: dict[Category, TermMatcher] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, policy: Policy, sources: tuple[Path, ...] = ()) -> ResolvedPolicy:
        """Hash the policy and compile its lists (regexes compile once, here)."""
        cats = policy.categories.items()
        return cls(
            policy=policy,
            version=policy_version(policy),
            sources=sources,
            blocklists={c: TermMatcher.compile(p.blocklist) for c, p in cats},
            allowlists={c: TermMatcher.compile(p.allowlist) for c, p in cats},
        )

    def category(self, category: Category) -> CategoryPolicy:
        """The policy for one category."""
        return self.policy.categories.get(category)

    def stage(self, category: Category, stage: Stage) -> StagePolicy:
        """The thresholds for one category at one stage."""
        return self.policy.categories.get(category).stage(stage)
