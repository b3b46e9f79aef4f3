"""Celebrity and IP matching against the shipped gazetteer (``data/gazetteer.tsv.gz``).

:func:`load_gazetteer` builds the lookup once per process (about a second); after that one
prompt is matched against all ~60k names in tens of microseconds:

* **Exact phrases** over normalised words: a dict from space-joined word keys to entries, plus
  the set of key prefixes so a scan stops after one or two lookups per word.
* **CJK names** (Chinese, Japanese, Korean) as substrings of the prompt's words joined without
  spaces, dots or other punctuation ("泰勒·斯威夫特在跳舞" finds 泰勒斯威夫特).
* **Misspellings** of well-known multi-word names ("Taylor Swfit", "Tayler Swift"): each word
  of 4+ letters may be one edit (Damerau/OSA) away, found through a deletion-neighbourhood
  index, at most two edited words per name, never a word that is itself an ordinary word
  ("Tom hands" is not Tom Hanks).
* **Ordinary text** (keys stored with ``~``: an everyday word or phrase, "storm", "the rock";
  ``?``: an ordinary proper noun, "Persian", "Sandra", "Elsa"; marked at build time) counts
  only with context tied to the entity within :data:`CONTEXT_WINDOW` words: its franchise,
  group or curated phrases ("Storm from the X-Men", "Jennie from BLACKPINK", "Ariel the
  mermaid"), another well-known hit from its franchise, and for well-known entries their
  class's words ("Apple logo") or a person's role words ("Drake" + "on stage"). A ``~`` name
  that is no everyday single word, written as a name (a capital in mid-sentence, or every word
  capitalised: "The Rock") in a prompt not in Title Case, scores :data:`CAPITALISED_SCORE`
  (review); otherwise it is ignored ("storm clouds over the sea", "a Persian cat").
* **Someone else's name**: a one-word person or brand after a given name ("Raphael Lacoste"),
  or a one-word person before a word that is no everyday word ("Sandra Chevrier"), is skipped.
* **Mentions**: a brand hit is tagged ``brand``; a creator (:data:`CREDIT_KINDS`) or an anime
  title named as a credit ("by X, Y and Z", "in the style of X", "X-style") and a brand after
  "shot on" are tagged ``credit``. They become separate verdicts whose ``mention`` the
  policy's ``names:`` settings act on (see :mod:`policies.engine`).
* **Descriptions** of iconic characters without their name
  (:mod:`classifiers.text.descriptions`) score at review level.

Scores come from the entry's tier (see :mod:`classifiers.text.build_gazetteers`): well-known
names 0.85-0.95, weak tiers below the review threshold. Evidence quotes the matched span of
the original prompt, with the entity, its franchise/kind and tier in ``detail``.
"""

from __future__ import annotations

import bisect
import gc
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rapidfuzz.distance import OSA

from classifiers.base import Category, Evidence, Mention, PromptText, Verdict
from classifiers.text.build_gazetteers import OUTPUT_NAME
from classifiers.text.curated_names import CREDIT_KINDS
from classifiers.text.descriptions import DESCRIPTION_SCORE, DescriptionHit
from classifiers.text.gazetteer_context import (
    CreditZones,
    NearWords,
    capitalised_name,
)
from classifiers.text.gazetteer_index import (
    FUZZY_MIN_SCORE,
    FUZZY_MIN_WORD_LEN,
    Entity,
    Found,
    GazetteerError,
    GazetteerIndex,
    Key,
    deletion_variants,
)
from classifiers.text.gazetteer_keys import CJK_RE
from classifiers.text.normalize import WORD_RE, word_range

__all__ = [
    "CAPITALISED_SCORE",
    "DATA_PATH",
    "Entity",
    "Gazetteer",
    "GazetteerClassifier",
    "GazetteerError",
    "Hit",
    "load_gazetteer",
]

DATA_PATH = Path(__file__).parent / "data" / OUTPUT_NAME
CAPITALISED_SCORE = 0.4
"""Score of a name that needs context, written with a capital mid-sentence but without context
(only for well-known entries, and never for an ordinary word: "Storm", "Queen", "Deco")."""
CAPITALISED_MIN_SCORE = 0.85
CONTEXT_WINDOW = 8
"""Context words count within this many words either side of a name."""
FUZZY_PENALTY = 0.95
MAX_EVIDENCE = 5


@dataclass(frozen=True, slots=True)
class Hit:
    """One match in a prompt: a ``[start, end)`` span of the normalised text and its entity."""

    entity: Entity
    start: int
    end: int
    score: float
    how: str  # exact | fuzzy | context | capitalised | description
    mention: Mention = "depicted"


class Gazetteer(GazetteerIndex):
    """The in-memory lookup built from ``gazetteer.tsv.gz``. Immutable and thread-safe.

    Its tables are those of :class:`~classifiers.text.gazetteer_index.GazetteerIndex`; this
    class matches prompts against them.
    """

    def find(self, prompt: PromptText) -> list[Hit]:
        """Every entity named in ``prompt`` (longest match wins where spans overlap)."""
        spans = [m.span() for m in WORD_RE.finditer(prompt.normalized)]
        words = [prompt.normalized[a:b] for a, b in spans]
        found: Found = []
        self._exact(words, spans, found)
        self._cjk_substrings(words, spans, found)
        self._fuzzy(words, spans, found)
        hits = self._resolve(prompt, words, spans, found) if found else []
        named = {h.entity.name for h in hits if h.entity.category == "ip"}
        for d in self.descriptions.find(words):
            if d.character not in named:
                hits.append(_description_hit(d, spans))
        return hits

    def _exact(self, words: list[str], spans: list[tuple[int, int]], found: Found) -> None:
        n = len(words)
        for i in range(n):
            key = words[i]
            j = i
            while True:
                for code in self.phrases.get(key, ()):
                    found.append((spans[i][0], spans[j][1], Key.decode(code), "exact"))
                j += 1
                if j >= n or key not in self.prefixes:
                    break
                key = f"{key} {words[j]}"

    def _cjk_substrings(self, words: list[str], spans: list[tuple[int, int]], found: Found) -> None:
        if not self.cjk or not any(CJK_RE.search(w) for w in words):
            return
        stream = "".join(words)
        where = [a + k for (a, b) in spans for k in range(b - a)]
        size = len(stream)
        for p in range(size - 1):
            key_lengths = self.cjk_lengths.get(stream[p : p + 2])
            if key_lengths is None or not CJK_RE.match(stream[p]):
                continue
            for length in key_lengths:
                if p + length > size:
                    break
                for code in self.cjk.get(stream[p : p + length], ()):
                    found.append((where[p], where[p + length - 1] + 1, Key.decode(code), "exact"))

    def _fuzzy(self, words: list[str], spans: list[tuple[int, int]], found: Found) -> None:
        n = len(words)
        if n < 2:
            return
        near = [self._near(w) for w in words]
        for i in range(n - 1):
            if not (near[i] or near[i + 1]):
                continue
            for c1 in (words[i], *near[i]):
                for c2 in (words[i + 1], *near[i + 1]):
                    for key_words, idx in self.fuzzy_pairs.get((c1, c2), ()):
                        end = i + len(key_words)
                        if end > n:
                            continue
                        edits = sum(words[i + t] != kw for t, kw in enumerate(key_words))
                        if not 1 <= edits <= 2:
                            continue
                        if all(
                            words[i + t] == kw or kw in near[i + t]
                            for t, kw in enumerate(key_words)
                        ):
                            found.append((spans[i][0], spans[end - 1][1], Key(idx, False), "fuzzy"))

    def _near(self, word: str) -> tuple[str, ...]:
        """Name words one edit away from ``word`` (never for ordinary words or short ones)."""
        if (
            len(word) < FUZZY_MIN_WORD_LEN
            or word in self.ordinary_words
            or word in self.given_names  # "jean", "hubert": another name, not a misspelling
            or not word.isalpha()
        ):
            return ()
        cands: set[str] = set(self.fuzzy_deletes.get(word, ()))
        for d in deletion_variants(word):
            cands.update(self.fuzzy_deletes.get(d, ()))
        cands.discard(word)
        return tuple(c for c in cands if OSA.distance(word, c, score_cutoff=1) <= 1)

    def _resolve(
        self,
        prompt: PromptText,
        words: list[str],
        spans: list[tuple[int, int]],
        found: Found,
    ) -> list[Hit]:
        # Longest span first, then the best score: a span inside an accepted one (or the same
        # span again, for the same category) is the same mention.
        scores = self.entities.scores
        found.sort(key=lambda f: (f[0] - f[1], -scores[f[2].entity], f[0]))
        strong: dict[str, list[tuple[int, int]]] = {}  # franchise -> a few well-known hits
        for a, b, k, _ in found:
            if not k.needs_context and scores[k.entity] >= FUZZY_MIN_SCORE:
                franchise = self.entities[k.entity].franchise
                if franchise and len(spans_of := strong.setdefault(franchise, [])) < 3:
                    spans_of.append((a, b))
        taken: dict[tuple[int, int], set[str]] = {}
        max_end: dict[int, int] = {}  # accepted span start -> furthest end
        longest = 0
        hits: list[Hit] = []
        credits = CreditZones(prompt.normalized, words, spans)
        person_at: dict[tuple[int, int], float] = {}  # span -> accepted celebrity score
        for start, end, key, how in found:
            entity = self.entities[key.entity]
            if entity.category in taken.get((start, end), ()) or max_end.get(start, -1) > end:
                continue
            if _shadowed_by_person(entity, person_at.get((start, end), 0.0)):
                continue
            if any(max_end.get(a, -1) >= end for a in range(max(0, start - longest), start)):
                continue  # inside a longer accepted span: the same mention
            w0, w1 = word_range(spans, start, end)
            if self._part_of_longer_name(entity, prompt, words, w0, w1) or self._common_noun(
                entity, prompt, words, w0, w1
            ):
                continue
            score = entity.score * (FUZZY_PENALTY if how == "fuzzy" else 1.0)
            if key.needs_context:
                judged = self._judge_common(prompt, words, spans, start, end, entity, strong, key)
                if judged is None:
                    continue
                how, score = judged[0], min(score, judged[1])
            taken.setdefault((start, end), set()).add(entity.category)
            max_end[start] = max(max_end.get(start, -1), end)
            longest = max(longest, end - start)
            hits.append(
                Hit(entity, start, end, score, how, _mention(entity, credits, w0, w1, prompt))
            )
            if entity.category == "celebrity":
                person_at[(start, end)] = max(person_at.get((start, end), 0.0), score)
        return hits

    def _part_of_longer_name(
        self, entity: Entity, prompt: PromptText, words: list[str], w0: int, w1: int
    ) -> bool:
        """A one-word person or brand name inside someone else's name: after a given name
        ("Raphael Lacoste", "Chris Riddell"), or (people) before a word that is no everyday
        word and looks like a surname ("Sandra Chevrier", "Ayami Kojima")."""
        if w1 - w0 != 1 or not (entity.category == "celebrity" or entity.is_brand):
            return False
        if CJK_RE.match(words[w0]):
            return False
        if w0 > 0 and words[w0 - 1] in self.given_names and words[w0 - 1] != words[w0]:
            return True
        if w1 < len(words) and entity.category == "celebrity":
            nxt = words[w1]
            return (
                nxt not in _LIKENESS_AFTER
                and len(nxt) >= 3
                and nxt.isalpha()
                and nxt.isascii()
                and nxt not in self.plain_words
                and nxt not in self.given_names
                and nxt not in self.phrases
            )
        return False

    def _common_noun(
        self, entity: Entity, prompt: PromptText, words: list[str], w0: int, w1: int
    ) -> bool:
        """A one-word name after "a"/"an" names a thing, not the person ("a toddler walks a
        pitbull", "a Drake swimming"), unless the words around it are the person's role
        ("a Drake concert"). For characters, only where the name is an everyday word (not
        "a Pikachu plush"). Brands are left alone: "a Porsche" is a product request."""
        if w1 - w0 != 1 or w0 == 0 or words[w0 - 1] not in ("a", "an") or entity.is_brand:
            return False
        if CJK_RE.match(words[w0]):
            return False
        if entity.category != "celebrity" and words[w0] not in self.ordinary_words:
            return False
        if w1 < len(words) and words[w1] in _LIKENESS_AFTER:
            return False  # "a Beyonce lookalike" is the person's likeness
        near = words[max(0, w0 - CONTEXT_WINDOW - 1) : w0 - 1] + words[w1 : w1 + CONTEXT_WINDOW]
        return not self._has_context(entity, NearWords(near), generic=True)

    def _judge_common(
        self,
        prompt: PromptText,
        words: list[str],
        spans: list[tuple[int, int]],
        start: int,
        end: int,
        entity: Entity,
        strong: dict[str, list[tuple[int, int]]],
        key: Key,
    ) -> tuple[str, float] | None:
        """A name that is also ordinary text: ("context", 1.0) with context tied to the entity
        (its franchise, group or role words; for well-known entries also their class words),
        ("capitalised", CAPITALISED_SCORE) for a well-known ``~`` name written with a capital
        in mid-sentence, else ``None``."""
        o_start, o_end = prompt.original_span(start, end)
        # "its", "on", "v": only as written in capitals ("BTS", "KFC") or with context tied to
        # the entity. Not for CJK, where two characters are a whole name (宝可梦里的九尾).
        short = end - start <= 3 and not CJK_RE.match(prompt.normalized[start])
        upper = prompt.original[o_start:o_end].isupper()
        first = bisect.bisect_right(spans, (start, len(prompt.normalized) + 1)) - 1
        last = bisect.bisect_left(spans, (end, -1)) - 1
        lo, hi = max(0, first - CONTEXT_WINDOW), last + 1 + CONTEXT_WINDOW
        others = strong.get(entity.franchise, ()) if entity.franchise else ()
        near = words[lo:first] + words[last + 1 : hi]
        if CJK_RE.match(prompt.normalized[start]):
            # Chinese runs are one "word" however long: the rest of the run is context too.
            text = prompt.normalized
            near += [text[spans[first][0] : start], text[end : spans[last][1]]]
        context = NearWords(near)
        # Class words ("superhero", "logo") and a person's role words ("singer", "on stage")
        # are not tied to one entity: they count for well-known names only, and for a name
        # that is an everyday word only when the class words are specific ("Apple logo") or
        # a person's name is typed with a capital ("Drake" on stage, not "green" stage light).
        ordinary = prompt.normalized[start:end] in self.ordinary_words
        generic = (
            not short
            and entity.score >= CAPITALISED_MIN_SCORE
            and (
                not ordinary
                or entity.context_class in ("brand", "pokemon")  # "logo", "pokemon"
                or (entity.context_class == "person" and prompt.original[o_start].isupper())
            )
        )
        if any(b <= start or a >= end for a, b in others) or self._has_context(
            entity, context, generic=generic
        ):
            return "context", 1.0
        if short and not upper:
            return None
        # A capital is evidence for a "~" name ("The Rock", "Jennie"), never for a "?" one
        # (names, places, nationalities are always capitalised: "a Persian cat"), nor for a
        # single everyday word ("Queen", "Storm", "Deco"): art prompts capitalise those.
        if (
            not key.proper
            and entity.score >= CAPITALISED_MIN_SCORE
            and prompt.normalized[start:end] not in self.ordinary_words
            and capitalised_name(prompt, start, end)
        ):
            return "capitalised", CAPITALISED_SCORE
        return None

    def _has_context(self, entity: Entity, context: NearWords, *, generic: bool) -> bool:
        """Context tied to the entity (its own franchise/group words), or with ``generic`` its
        class's words ("logo" for a brand) or, for a person, their role words ("rapper")."""
        if any(context.has(p) for p in entity.context):
            return True
        if not generic:
            return False
        words = self.context_phrases.get(entity.context_class, frozenset())
        if entity.context_class == "person":
            words = self.role_phrases.get(entity.detail, frozenset())
        return any(context.has(p) for p in words)


_LIKENESS_AFTER = frozenset(
    {"lookalike", "look", "impersonator", "impersonation", "double", "doppelganger", "clone"}
    | {"deepfake", "cosplay", "cosplayer", "costume", "wannabe"}
)


def _mention(entity: Entity, credits: CreditZones, w0: int, w1: int, prompt: PromptText) -> Mention:
    """How a name is used: a brand (or camera credit), an artist credit, or depicted."""
    if entity.is_brand:
        return "credit" if credits.equipment(w0, w1, prompt) else "brand"
    if entity.category == "celebrity" and entity.detail in CREDIT_KINDS:
        return "credit" if credits.covers(w0, w1) else "depicted"
    if entity.context_class == "anime" and credits.covers(w0, w1):
        # A show named as a style ("in the style of Ghost in the Shell", "Made in Abyss
        # style") asks for its look, which is no one's likeness; its characters by name
        # still count as depicted.
        return "credit"
    return "depicted"


def _shadowed_by_person(entity: Entity, person_score: float) -> bool:
    """A character hit on the very span a better-scored person took: "Barack Obama" is the
    president, not the minor comic-book character of that name."""
    return entity.category == "ip" and not entity.is_brand and entity.score < person_score


def _description_hit(d: DescriptionHit, spans: list[tuple[int, int]]) -> Hit:
    entity = Entity(
        "ip", d.character, d.franchise, "description", DESCRIPTION_SCORE, "film", (),
    )  # fmt: skip
    how = "description: " + " + ".join(repr(m) for m in d.matched)
    return Hit(entity, spans[d.start][0], spans[d.end - 1][1], DESCRIPTION_SCORE, how)


@cache
def load_gazetteer(path: Path = DATA_PATH) -> Gazetteer:
    """The process-wide gazetteer (built on first call, then shared)."""
    gazetteer = Gazetteer(path)
    # Its ~1M long-lived objects would otherwise be rescanned by every full GC pass (a pause
    # of hundreds of ms in the middle of some request); frozen objects are never scanned.
    gc.freeze()
    return gazetteer


class GazetteerClassifier:
    """A :class:`~classifiers.base.TextClassifier` for ``celebrity`` and/or ``ip`` names.

    One verdict per covered category: the best hit's score (0 when nothing matched) and up to
    five evidence spans. Build through :data:`classifiers.registry.TEXT_CLASSIFIERS`.
    """

    model_id = "gazetteer"

    def __init__(
        self,
        categories: tuple[Category, ...] = ("celebrity", "ip"),
        gazetteer: Gazetteer | None = None,
        name: str | None = None,
    ) -> None:
        self.gazetteer = gazetteer or load_gazetteer()
        self.categories = categories
        self.name = name or "+".join(categories)
        self.model_version = self.gazetteer.version

    def classify(self, prompt: PromptText) -> list[Verdict]:
        """Score ``prompt`` for each covered category.

        One verdict per category for the names the video would depict (score 0 when none),
        plus, when there are any, one verdict per other kind of mention (``brand``,
        ``credit``; see :data:`classifiers.base.Mention`) for the policy's ``names:``
        settings to decide.
        """
        hits = self.gazetteer.find(prompt)
        out = []
        for category in self.categories:
            mine = sorted(
                (h for h in hits if h.entity.category == category), key=lambda h: -h.score
            )
            for mention in _MENTIONS:
                these = [h for h in mine if h.mention == mention]
                if not these and mention != "depicted":
                    continue
                out.append(
                    Verdict(
                        classifier=self.name,
                        category=category,
                        score=round(these[0].score, 4) if these else 0.0,
                        model_id=self.model_id,
                        model_version=self.model_version,
                        evidence=tuple(_evidence(prompt, h) for h in these[:MAX_EVIDENCE]),
                        mention=mention,
                    )
                )
        return out


_MENTIONS: tuple[Mention, ...] = ("depicted", "brand", "credit")


def _evidence(prompt: PromptText, hit: Hit) -> Evidence:
    e = hit.entity
    mention = "" if hit.mention == "depicted" else f"; {hit.mention}"
    return prompt.evidence(
        hit.start, hit.end, f"{e.name} ({e.detail}); tier={e.tier}; {hit.how}{mention}"
    )
