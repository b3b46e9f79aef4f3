"""Weighted-term lexicons for the harm categories, and minor mentions for the sexual/minors rule.

The terms live in ``data/lexicon.yaml`` (commented for trust & safety readers; its syntax is
described there). :func:`load_lexicon` validates it (pydantic, ``extra="forbid"``; errors name
the file, field and fix) and builds a word-phrase index once. Matching is over the normalised
prompt's words, so "p0rn", "s.e.x", "ѕех" and "seeeex" hit, whole words only ("ass" is never
found in "class", "cock" never in "cocktail"), with harmless phrases listed as exceptions
("breast stroke", "shoot a video", "killer whale"). Chinese terms match as substrings.

:class:`LexiconClassifier` gives one verdict per category it covers; the score is the
strongest term's weight, raised a little by further distinct terms. It is the always-on
baseline; the learned heads (``classifiers/text/learned.py``) use the same protocol.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from classifiers.base import Category, Evidence, PromptText, Verdict
from classifiers.text.normalize import WORD_RE, normalize_key, word_range, word_spans

__all__ = [
    "LEXICON_CATEGORIES",
    "LEXICON_PATH",
    "Lexicon",
    "LexiconClassifier",
    "LexiconError",
    "find_minor_mentions",
    "load_lexicon",
]

LEXICON_PATH = Path(__file__).parent / "data" / "lexicon.yaml"
LEXICON_CATEGORIES: tuple[Category, ...] = (
    "sexual",
    "violence",
    "violence/graphic",
    "hate",
    "harassment",
    "self-harm",
)
EXTRA_TERM_FACTOR = 0.5
MENTION_FACTOR = 0.2
"""A term that is *mentioned* ("what does the term 'X' mean?", "a film titled 'X'") rather than
used scores this share of its weight: below every shipped review threshold, the sexual/minors
one included, so a question about a word is not treated as a request for what it names."""
MENTION_CUE_GAP = 3
"""How many words before a mention cue are searched for a verb that makes it a use again
("shouting the word 'X'", "a sign with the word 'X'")."""
_QUOTES = "'\"‘’“”«»`"
MAX_EVIDENCE = 5
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3]")
_GROUP = re.compile(r"\(([^()]*)\)")
_CN_AGE = "十[一二三四五六七]?|[一二三四五六七八九]"
_AGE = re.compile(
    r"(?<![\d.])(1[0-7]|0?[1-9])\s*(?:-\s*)?(?:"
    r"(?:years?|yrs?)\s*-?\s*old|yo|y/o|yr old|yrs old"
    r")(?![^\W_])"
    r"|(?<![^\W_])(?:aged?|age of)\s*(1[0-7]|0?[1-9])(?![\d.])"
    rf"|(?:1[0-7]|[1-9]|{_CN_AGE})\s*岁"
)


class LexiconError(ValueError):
    """The lexicon file is missing or invalid; the message names the file, field and fix."""


class _MentionCues(BaseModel):
    model_config = ConfigDict(extra="forbid")

    before: list[str] = []
    before_quoted: list[str] = []
    after: list[str] = []
    used_if_before: list[str] = []


class _LexiconFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    categories: dict[Category, dict[str, float]]
    exceptions: list[str] = []
    minors: list[str] = []
    mentions: _MentionCues = _MentionCues()


@dataclass(frozen=True, slots=True)
class _Term:
    text: str  # as written in the lexicon (before expansion)
    category: str  # a category, "minor" or "exception"
    weight: float


@dataclass(frozen=True, slots=True)
class _Match:
    start: int
    end: int
    term: _Term
    mentioned: bool = False


def expand(term: str) -> list[str]:
    """``(a|b) c*`` -> ``["a c*", "b c*"]``: every combination of the alternatives."""
    parts = _GROUP.split(term)
    # split() alternates literal text and group contents: literal, group, literal, ...
    choices = [[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)]
    return [re.sub(r"\s+", " ", "".join(c)).strip() for c in itertools.product(*choices)]


class _PhraseIndex:
    """Whole-word phrases (with an optional prefix ``*`` on the last word) and CJK substrings."""

    def __init__(self) -> None:
        self.exact: dict[str, list[_Term]] = {}
        self.stems: dict[str, list[_Term]] = {}
        self.stem_lengths: set[int] = set()
        self.prefixes: set[str] = set()
        self.cjk: dict[str, list[_Term]] = {}
        self.cjk_lengths: set[int] = set()

    def add(self, raw: str, term: _Term, where: str) -> None:
        for form in expand(raw):
            stem = form.endswith("*")
            body = form.rstrip("*")
            if "*" in body or "(" in body or ")" in body or "|" in body:
                raise LexiconError(
                    f"{where}: {raw!r}: '*' may only end a term and '(...|...)' must be closed"
                )
            if _CJK.search(body):
                key = "".join(WORD_RE.findall(normalize_key(body)))
                self.cjk.setdefault(key, []).append(term)
                self.cjk_lengths.add(len(key))
                continue
            key = normalize_key(body)
            if not key:
                raise LexiconError(f"{where}: {raw!r} has no letters or digits to match")
            words = key.split(" ")
            written = body.split()
            collapsed = len(written) == len(words) and any(
                len(w) == 1 and len(o) > 1 for w, o in zip(words, written, strict=True)
            )
            if collapsed or len(key) == 1:
                # One letter matches far too much ("8 k", "x-ray"); a term like "kkk" must keep
                # its letters through normalisation.
                raise LexiconError(f"{where}: {raw!r} normalises to a one-letter word ({key!r})")
            for n in range(1, len(words)):
                self.prefixes.add(" ".join(words[:n]))
            if stem:
                if len(words[-1]) < 3:
                    raise LexiconError(f"{where}: {raw!r}: a prefix term needs 3+ letters")
                self.stems.setdefault(key, []).append(term)
                self.stem_lengths.add(len(words[-1]))
                if len(words) > 1:
                    self.prefixes.add(" ".join(words[:-1]))
            else:
                self.exact.setdefault(key, []).append(term)

    def find(self, words: list[str], spans: list[tuple[int, int]]) -> Iterator[_Match]:
        n = len(words)
        lengths = sorted(self.stem_lengths)
        for i in range(n):
            key = words[i]
            base = ""
            j = i
            while True:
                for t in self.exact.get(key, ()):
                    yield _Match(spans[i][0], spans[j][1], t)
                last = words[j]
                for length in lengths:
                    if length > len(last):
                        break
                    for t in self.stems.get(base + last[:length], ()):
                        yield _Match(spans[i][0], spans[j][1], t)
                j += 1
                if j >= n or key not in self.prefixes:
                    break
                base = key + " "
                key = f"{key} {words[j]}"

    def find_cjk(self, words: list[str], spans: list[tuple[int, int]]) -> Iterator[_Match]:
        if not self.cjk:
            return
        stream = "".join(words)
        if not _CJK.search(stream):
            return
        where = [a + k for (a, b) in spans for k in range(b - a)]
        lengths = sorted(self.cjk_lengths)
        for p in range(len(stream)):
            if not _CJK.match(stream[p]):
                continue
            for length in lengths:
                if p + length > len(stream):
                    break
                for t in self.cjk.get(stream[p : p + length], ()):
                    yield _Match(where[p], where[p + length - 1] + 1, t)


class Lexicon:
    """The validated lexicon with its phrase index. Immutable and thread-safe once built."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            raw_bytes = path.read_bytes()
        except OSError as exc:
            raise LexiconError(f"{path}: cannot read the lexicon ({exc})") from exc
        self.version = hashlib.sha256(raw_bytes).hexdigest()[:12]
        data = _parse(path, raw_bytes)
        self.categories: tuple[Category, ...] = tuple(data.categories)
        self._index = _PhraseIndex()
        for category, terms in data.categories.items():
            for text, weight in terms.items():
                if not 0.0 <= weight <= 1.0:
                    raise LexiconError(
                        f"{path}: categories.{category}.{text}: weight {weight} must be in [0, 1]"
                    )
                self._index.add(
                    text, _Term(text, category, weight), f"{path}: categories.{category}"
                )
        for text in data.exceptions:
            self._index.add(text, _Term(text, "exception", 0.0), f"{path}: exceptions")
        for text in data.minors:
            self._index.add(text, _Term(text, "minor", 0.0), f"{path}: minors")
        self._cues = _CueIndex(path, data.mentions)

    def matches(self, prompt: PromptText) -> list[_Match]:
        """Every term hit in ``prompt`` that no exception phrase covers."""
        spans = word_spans(prompt.normalized)
        words = [prompt.normalized[a:b] for a, b in spans]
        found = [*self._index.find(words, spans), *self._index.find_cjk(words, spans)]
        if not found:
            return []
        # A hit inside an exception phrase is ignored, and a word inside a longer matched phrase
        # is that phrase's business: "kill" in "kill myself" is self-harm, not violence.
        exception_end: dict[int, int] = {}
        longer_end: dict[int, int] = {}
        for m in found:
            if m.term.category == "exception":
                exception_end[m.start] = max(exception_end.get(m.start, -1), m.end)
            if m.term.category != "minor":
                longer_end[m.start] = max(longer_end.get(m.start, -1), m.end)
        longest = max(m.end - m.start for m in found)
        kept = [
            m
            for m in found
            if m.term.category != "exception"
            and not _inside(exception_end, m.start, m.end, longest, strictly_longer=False)
            and (
                m.term.category == "minor"
                or not _inside(longer_end, m.start, m.end, longest, strictly_longer=True)
            )
        ]
        return [
            m
            if m.term.category == "minor" or not self._cues.mentioned(prompt, words, spans, m)
            else _Match(m.start, m.end, m.term, mentioned=True)
            for m in kept
        ]


class _CueIndex:
    """The lexicon's ``mentions`` cues: when a matched term is talked *about*, not used.

    ``before``: words right before the term ("the term", "the slur", "titled", "known as");
    ``before_quoted``: the same, but only when the term is in quotes ("the movie 'X'");
    ``after``: words right after it ("X means", "X stands for"), when the term is quoted or a
    question follows. A cue does not count when one of
    ``used_if_before`` comes in the few words before it ("shouting the word", "a sign with the
    word"): then the prompt depicts the word being used.
    """

    def __init__(self, path: Path, cues: _MentionCues) -> None:
        def keys(field: str, phrases: list[str]) -> frozenset[tuple[str, ...]]:
            out = set()
            for raw in phrases:
                for form in expand(raw):
                    key = tuple(normalize_key(form).split())
                    if not key or "*" in form:
                        raise LexiconError(
                            f"{path}: mentions.{field}: {raw!r} must be plain words "
                            "(alternatives in '(a|b)' allowed; '*' only in used_if_before)"
                        )
                    out.add(key)
            return frozenset(out)

        self.before = keys("before", cues.before)
        self.before_quoted = keys("before_quoted", cues.before_quoted)
        self.after = keys("after", cues.after)
        used = [f for raw in cues.used_if_before for f in expand(raw)]
        self.used_words = frozenset(normalize_key(f) for f in used if not f.endswith("*"))
        self.used_prefixes = tuple(normalize_key(f[:-1]) for f in used if f.endswith("*"))
        lengths = [len(k) for k in (*self.before, *self.before_quoted, *self.after)]
        self.longest = max(lengths, default=0)

    def mentioned(
        self,
        prompt: PromptText,
        words: list[str],
        spans: list[tuple[int, int]],
        m: _Match,
    ) -> bool:
        if not self.longest:
            return False
        first, end = word_range(spans, m.start, m.end)
        last = end - 1
        text = prompt.normalized
        gap_start = spans[first - 1][1] if first > 0 else 0
        quoted = any(q in text[gap_start : m.start] for q in _QUOTES)
        for n in range(1, self.longest + 1):
            if first - n < 0:
                break
            cue = tuple(words[first - n : first])
            if cue in self.before or (quoted and cue in self.before_quoted):
                return not self._used(words, first - n)
        if not (quoted or "?" in text[m.end :]):
            return False
        for n in range(1, self.longest + 1):
            if tuple(words[last + 1 : last + 1 + n]) in self.after:
                return not self._used(words, first)
        return False

    def _used(self, words: list[str], cue_start: int) -> bool:
        """A speech or display verb shortly before the cue: the word is depicted in use."""
        window = words[max(0, cue_start - MENTION_CUE_GAP) : cue_start]
        return any(w in self.used_words or w.startswith(self.used_prefixes) for w in window)


def _inside(
    ends: dict[int, int], start: int, end: int, longest: int, strictly_longer: bool
) -> bool:
    """Does a span in ``ends`` (start -> furthest end) contain ``[start, end)``?"""
    for a in range(max(0, start - longest), start + 1):
        b = ends.get(a, -1)
        if b >= end and (not strictly_longer or b - a > end - start):
            return True
    return False


def _parse(path: Path, raw: bytes) -> _LexiconFile:
    try:
        loaded: Any = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise LexiconError(f"{path}{line}: not valid YAML ({exc}); fix the syntax") from exc
    try:
        return _LexiconFile.model_validate(loaded)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise LexiconError(
            f"{path}: {field}: {first['msg']} (expected keys: version, categories, exceptions, "
            "minors, mentions; categories are policy category names)"
        ) from exc


@cache
def load_lexicon(path: Path = LEXICON_PATH) -> Lexicon:
    """The process-wide lexicon (validated and indexed on first call, then shared)."""
    return Lexicon(path)


def combine(weights: list[float]) -> float:
    """The strongest weight, raised by each further distinct term (never above 0.99)."""
    if not weights:
        return 0.0
    ordered = sorted(weights, reverse=True)
    remaining = 1.0 - ordered[0]
    for w in ordered[1:]:
        remaining *= 1.0 - EXTRA_TERM_FACTOR * w
    return round(min(0.99, 1.0 - remaining), 4)


class LexiconClassifier:
    """A :class:`~classifiers.base.TextClassifier` over :data:`LEXICON_PATH`.

    Graphic-violence terms also count towards ``violence`` (at 0.9 of their weight), as in
    OpenAI's moderation categories. Build through :data:`classifiers.registry.TEXT_CLASSIFIERS`.
    """

    name = "lexicon"
    model_id = "lexicon"

    def __init__(self, lexicon: Lexicon | None = None) -> None:
        self.lexicon = lexicon or load_lexicon()
        self.model_version = self.lexicon.version
        self.categories: tuple[Category, ...] = tuple(
            c for c in LEXICON_CATEGORIES if c in self.lexicon.categories
        )

    def classify(self, prompt: PromptText) -> list[Verdict]:
        """One verdict per category: combined term weights and the matched spans as evidence."""
        by_cat: dict[str, dict[str, tuple[float, _Match]]] = {}
        for m in self.lexicon.matches(prompt):
            cats = [m.term.category]
            if m.term.category == "violence/graphic":
                cats.append("violence")
            for cat in cats:
                w = m.term.weight * (0.9 if cat != m.term.category else 1.0)
                if m.mentioned:
                    w *= MENTION_FACTOR
                best = by_cat.setdefault(cat, {})
                if m.term.text not in best or best[m.term.text][0] < w:
                    best[m.term.text] = (w, m)
        out = []
        for category in self.categories:
            hits = sorted(by_cat.get(category, {}).values(), key=lambda h: -h[0])
            evidence = tuple(
                prompt.evidence(
                    m.start,
                    m.end,
                    f"term {m.term.text!r} ({m.term.category}, {w:g}"
                    + (", mentioned, not used)" if m.mentioned else ")"),
                )
                for w, m in hits[:MAX_EVIDENCE]
            )
            out.append(
                Verdict(
                    classifier=self.name,
                    category=category,
                    score=combine([w for w, _ in hits]),
                    model_id=self.model_id,
                    model_version=self.model_version,
                    evidence=evidence,
                )
            )
        return out


def find_minor_mentions(prompt: PromptText) -> tuple[Evidence, ...]:
    """Evidence of every reference to a child in ``prompt`` (words, "12 year old", 未成年 ...).

    Used by the policy engine's sexual/minors rule: sexual content plus any of these blocks.
    Deliberately broad ("kid", "teen", "boy", "baby"); harmless phrases such as "minor key" or
    "child process" are exceptions in the lexicon file.
    """
    lexicon = load_lexicon()
    out = [
        prompt.evidence(m.start, m.end, f"minor: {m.term.text!r}")
        for m in lexicon.matches(prompt)
        if m.term.category == "minor"
    ]
    for m in _AGE.finditer(prompt.normalized):
        out.append(prompt.evidence(m.start(), m.end(), "minor: age under 18"))
    out.sort(key=lambda e: (e.start or 0, e.end or 0))
    return tuple(out)
