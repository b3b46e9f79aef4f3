"""The gazetteer's in-memory tables, read from ``gazetteer.tsv.gz`` (no matching here).

:class:`GazetteerIndex` parses the file written by :mod:`classifiers.text.build_gazetteers` once
into the lookups :class:`classifiers.text.gazetteer.Gazetteer` matches with: exact phrases
(and the set of their prefixes), CJK substrings (and their lengths per first two characters),
the deletion-neighbourhood index of multi-word names for misspellings, the ``_ordinary``,
``_plain`` and ``_given`` word lists, and the curated class/role context words. A missing or
malformed file raises :class:`GazetteerError` naming the file (and line) and the rebuild
command. :class:`Entities` parses an entry's row only when it is first matched.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from classifiers.base import Category
from classifiers.text.curated_names import CONTEXT_WORDS, ROLE_WORDS
from classifiers.text.descriptions import DescriptionMatcher
from classifiers.text.normalize import normalize_key

__all__ = [
    "FUZZY_MIN_KEY_LEN",
    "FUZZY_MIN_SCORE",
    "FUZZY_MIN_WORD_LEN",
    "Entities",
    "Entity",
    "Found",
    "GazetteerError",
    "GazetteerIndex",
    "Key",
    "deletion_variants",
]

FUZZY_MIN_SCORE = 0.8
FUZZY_MIN_KEY_LEN = 9
FUZZY_MIN_WORD_LEN = 4


class GazetteerError(RuntimeError):
    """The shipped gazetteer file is missing or malformed (the classifier fails closed)."""


@dataclass(frozen=True, slots=True)
class Entity:
    """One gazetteer entry."""

    category: Category
    name: str
    detail: str
    tier: str
    score: float
    context_class: str
    context: tuple[str, ...]
    franchise: str = ""
    """The first word of a character's franchise ("marvel", "dc", "pokemon"), else ``""``:
    another well-known name from the same franchise is context for a common-word one."""

    @property
    def is_brand(self) -> bool:
        return self.context_class == "brand"


@dataclass(frozen=True, slots=True)
class Key:
    """How one stored key names an entity (packed as ``index * 4 + needs_context + 2 * proper``
    in the phrase and CJK tables)."""

    entity: int
    needs_context: bool
    proper: bool = False
    """An ordinary proper noun ("Sandra", "Persian"): a capital letter is no evidence."""

    @classmethod
    def decode(cls, code: int) -> Key:
        return cls(code >> 2, bool(code & 1), bool(code & 2))


Found = list[tuple[int, int, Key, str]]  # (start, end, key, how) in the normalised text


class Entities(Sequence[Entity]):
    """Entities parsed from their file rows on first use (most are never matched)."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.scores: list[float] = []
        self._cache: dict[int, Entity] = {}

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> Entity: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Entity]: ...
    def __getitem__(self, index: int | slice) -> Entity | Sequence[Entity]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        entity = self._cache.get(index)
        if entity is None:
            category, name, detail, tier, score, ctx_class, context, _ = self.rows[index]
            franchise = ""
            if ctx_class in ("comic", "pokemon", "film"):
                franchise = next(iter(normalize_key(detail).split()), "")
            entity = Entity(
                category,  # type: ignore[arg-type]
                name, detail, tier, float(score), ctx_class,
                tuple(c for c in context.split("|") if c), franchise,
            )  # fmt: skip
            self._cache[index] = entity
        return entity


class GazetteerIndex:
    """The tables of one ``gazetteer.tsv.gz``, built once; read-only afterwards."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version = ""
        self.entities = Entities()
        self.phrases: dict[str, list[int]] = {}  # key -> [entity index * 2 + needs context]
        self.prefixes: set[str] = set()
        self.cjk: dict[str, list[int]] = {}
        self.cjk_lengths: dict[str, tuple[int, ...]] = {}  # first 2 characters -> key lengths
        self.fuzzy_deletes: dict[str, set[str]] = {}
        self.fuzzy_pairs: dict[tuple[str, str], list[tuple[tuple[str, ...], int]]] = {}
        self.ordinary_words: frozenset[str] = frozenset()
        self.plain_words: frozenset[str] = frozenset()
        self.given_names: frozenset[str] = frozenset()
        self.context_phrases: dict[str, frozenset[str]] = {}
        self.role_phrases: dict[str, frozenset[str]] = {}
        self.descriptions = DescriptionMatcher()
        self._load(path)

    # -- loading ---------------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise GazetteerError(
                f"{path}: cannot read the gazetteer ({exc}); rebuild it with "
                "`reelguard build-gazetteers --source <kit>/gazetteers`"
            ) from exc
        header = re.search(r"content=(\w+)", lines[0]) if lines else None
        if header is None:
            raise GazetteerError(f"{path}: missing '# reelguard gazetteer' header; rebuild it")
        self.version = header.group(1)
        fuzzy_keys: list[tuple[str, int]] = []
        rows, scores = self.entities.rows, self.entities.scores
        for lineno, line in enumerate(lines, 1):
            if line.startswith("#") or not line:
                continue
            if line.startswith("_"):
                name, _, words = line.partition("\t")
                lists = {"_ordinary": "ordinary_words", "_plain": "plain_words",
                         "_given": "given_names"}  # fmt: skip
                if name in lists:
                    setattr(self, lists[name], frozenset(words.split("|")))
                continue
            cols = line.split("\t")
            if len(cols) != 8 or cols[0] not in ("celebrity", "ip"):
                raise GazetteerError(
                    f"{path}:{lineno}: expected 8 columns (category..keys); rebuild it"
                )
            idx = len(rows)
            score = float(cols[4])
            rows.append(cols)
            scores.append(score)
            self._index_keys(idx, cols[7], score >= FUZZY_MIN_SCORE, fuzzy_keys)
        lengths: dict[str, set[int]] = {}
        for k in self.cjk:
            lengths.setdefault(k[:2], set()).add(len(k))
        self.cjk_lengths = {p: tuple(sorted(n)) for p, n in lengths.items()}
        self._build_fuzzy(fuzzy_keys)
        self.context_phrases = {
            cls: frozenset(normalize_key(w) for w in words) for cls, words in CONTEXT_WORDS.items()
        }
        self.role_phrases = {
            kind: frozenset(normalize_key(w) for w in words) for kind, words in ROLE_WORDS.items()
        }

    def _index_keys(
        self, idx: int, keys: str, fuzzy_ok: bool, fuzzy_keys: list[tuple[str, int]]
    ) -> None:
        phrases, cjk, prefixes = self.phrases, self.cjk, self.prefixes
        for raw in keys.split("|"):
            proper = raw[0] == "?"
            needs_ctx = proper or raw[0] == "~"
            key = raw[1:] if needs_ctx else raw
            code = idx * 4 + needs_ctx + 2 * proper
            if key[0] == "=":
                cjk.setdefault(key[1:], []).append(code)
                continue
            phrases.setdefault(key, []).append(code)
            if " " in key:
                words = key.split(" ")
                for n in range(1, len(words)):
                    prefixes.add(" ".join(words[:n]))
                if fuzzy_ok and not needs_ctx:
                    fuzzy_keys.append((key, idx))

    def _build_fuzzy(self, fuzzy_keys: list[tuple[str, int]]) -> None:
        vocab: set[str] = set()
        for key, idx in fuzzy_keys:
            if len(key) < FUZZY_MIN_KEY_LEN:
                continue
            words = tuple(key.split(" "))
            self.fuzzy_pairs.setdefault((words[0], words[1]), []).append((words, idx))
            vocab.update(w for w in words if len(w) >= FUZZY_MIN_WORD_LEN and w.isalpha())
        deletes = self.fuzzy_deletes
        for w in vocab:
            deletes.setdefault(w, set()).add(w)
            for d in deletion_variants(w):
                deletes.setdefault(d, set()).add(w)


def deletion_variants(word: str) -> Iterable[str]:
    """``word`` with one character deleted, each way (the fuzzy index's neighbourhood)."""
    return {word[:i] + word[i + 1 :] for i in range(len(word))}
