"""Match keys and context of a gazetteer entry: which forms count alone, which need context
(build time only; the rules are documented in :mod:`classifiers.text.build_gazetteers`).

:func:`entry_keys` turns an :class:`~classifiers.text.gazetteer_kit.Entry`'s raw forms into
normalised keys marked ``~`` (an ordinary word), ``?`` (an ordinary proper noun) and/or ``=``
(a CJK substring); :func:`context_keys` its group/franchise/owner names into context phrases.
:data:`CJK_RE` is shared with the matcher.
"""

from __future__ import annotations

import re

from classifiers.text.gazetteer_kit import Entry
from classifiers.text.gazetteer_words import PROPER_ZIPF, BenignVocabulary, EnglishLexicon
from classifiers.text.normalize import WORD_RE, normalize

__all__ = [
    "ARTICLES",
    "CJK_RE",
    "LESSER_SCORE",
    "LESSER_ZIPF",
    "MAX_CJK_LEN",
    "MAX_KEY_TOKENS",
    "MIN_CJK_LEN",
    "context_keys",
    "context_mark",
    "entry_keys",
    "form_key",
]

CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff]")
MIN_CJK_LEN = 2
MAX_KEY_TOKENS = 12
MAX_CJK_LEN = 24
LESSER_SCORE = 0.9
"""Entries scoring below this (brands, comic characters under 500 appearances, anime titles)
need context for any dictionary word or name, however rare."""
RARE_SCORE = 0.5
"""Entries scoring below this (rare comic characters) only reach review; named like an ordinary
person they need context."""
LESSER_ZIPF = 2.0
"""...and for any word seen in today's text this often ("anthro")."""


def form_key(form: str) -> tuple[str, bool] | None:
    """A raw form -> (key, is_cjk), or ``None`` when it cannot be matched usefully."""
    norm = normalize(form.lstrip("~?")).normalized
    tokens = WORD_RE.findall(norm)
    if not tokens or not any(c.isalpha() for t in tokens for c in t):
        return None  # digits only ("107", "88"): not a name
    if any(CJK_RE.search(t) for t in tokens):
        key = "".join(tokens)
        if not MIN_CJK_LEN <= len(key) <= MAX_CJK_LEN:
            return None
        return key, True
    if len(tokens) > MAX_KEY_TOKENS:
        return None
    key = " ".join(tokens)
    return (key, False) if len(key) >= 2 else None


ARTICLES = frozenset({"the", "a", "an"})


def context_mark(
    entry: Entry, form: str, key: str, is_cjk: bool, vocab: BenignVocabulary, lex: EnglishLexicon
) -> str:
    """How a form counts: ``""`` alone, ``"~"`` with context (an ordinary word; a capital in
    mid-sentence is some evidence), ``"?"`` with context only (an ordinary proper noun)."""
    tokens = key.split()
    single_proper = not is_cjk and len(tokens) == 1 and lex.is_proper(key) and not lex.is_plain(key)
    if form.startswith("?"):
        return "?"
    if form.startswith("~") or form in entry.common_forms:
        return "?" if single_proper else "~"
    if entry.tier == "curated":
        # Curated forms mark their ordinary-word cases with "~" or "?" by hand; for Chinese
        # character names jieba's dictionary checks too (小米 "millet", 蝎子 "scorpion"). Not
        # for people and brands: jieba lists 奥巴马 and 微软 as plain nouns.
        character = entry.category == "ip" and entry.context_class != "brand"
        return "~" if is_cjk and character and key in vocab.zh_words else ""
    if is_cjk:
        if entry.category == "ip" and vocab.is_zh_word(key):
            return "~"  # an everyday Chinese word or phrase (好朋友, 超人)
        return "~" if len(key) <= 2 else ""
    if len(tokens) == 1:
        return _single_word_mark(entry, key, vocab, lex, lesser=form in entry.lesser_forms)
    if _ordinary_person_name(entry, tokens, lex):
        return "?"
    return "~" if _ordinary_phrase(entry, tokens, vocab, lex) else ""


def _ordinary_person_name(entry: Entry, tokens: list[str], lex: EnglishLexicon) -> bool:
    """A rare character named like anyone ("Jeffrey Smith", a rare DC character, scored at
    review level): in a prompt that name is far more often an artist credit or an invented
    person. Better-known characters keep their plain name ("Wendell Vaughn")."""
    return (
        entry.category == "ip"
        and entry.score < RARE_SCORE
        and len(tokens) == 2
        and lex.is_proper(tokens[0])
        and tokens[1].isalpha()
    )


def _plain(word: str, lex: EnglishLexicon) -> bool:
    return lex.is_plain(word) or (word.endswith("s") and lex.is_plain(word[:-1]))


def _single_word_mark(
    entry: Entry, key: str, vocab: BenignVocabulary, lex: EnglishLexicon, *, lesser: bool
) -> str:
    if _plain(key, lex) or (key in lex.dictionary and lex.frequency(key) >= PROPER_ZIPF):
        return "~"  # "slash", "drake", "arcane", "lucky" (a German Pokémon name)
    if lex.is_proper(key):
        return "?"  # "Sandra", "Madonna", "Persian"
    if lesser or entry.score < LESSER_SCORE:
        # Brands and lesser characters named after any word or name, however rare in
        # Webster's ("gazelle", "thermos", "Hephaestus"), or frequent in today's text ("anthro").
        if key in lex.dictionary or lex.frequency(key) >= LESSER_ZIPF:
            return "~"
        if key in lex.dictionary_proper:
            return "?"
    if entry.category == "ip" and entry.score < 0.85 and key in vocab.dictionary:
        return "~"  # "caretaker", "citizen", "battleship": words before they are names
    if len(key) == 4 and key.isalpha():
        return "~" if vocab.is_word(key) or key in vocab.dictionary else ""  # "Snom", "Stag"
    ordinary = len(key) <= 4 or vocab.is_word(key) or (not key.isalpha() and len(key) <= 6)
    return "~" if ordinary else ""


def _ordinary_phrase(
    entry: Entry, tokens: list[str], vocab: BenignVocabulary, lex: EnglishLexicon
) -> bool:
    key = " ".join(tokens)
    # People's names were screened out of the benign rows; a character, title or brand seen
    # there even once is an everyday phrase ("santa claus", "one piece").
    if vocab.is_phrase(key, 2 if entry.category == "celebrity" else 1):
        return True
    # Titles and brands made only of everyday words and numbers ("Golden Time", "Blue Lock",
    # "91 Days", "A Sign of Affection": an article or a number adds a word but not rarity).
    short = len(tokens) <= 3 or (len(tokens) == 4 and tokens[0] in ARTICLES)
    words = [t for t in tokens if not t.isdigit()]
    if (
        entry.context_class in ("anime", "brand")
        and short
        and words
        and vocab.all_words(" ".join(words))
    ):
        return True

    def word(t: str) -> bool:
        return len(t) >= 3 and _plain(t, lex)

    if tokens[0] in ARTICLES:
        return all(word(t) for t in tokens[1:])  # "the edge", "the rock"
    if entry.score < LESSER_SCORE and all(word(t) for t in tokens):
        return True  # a lesser character named with everyday words: "Robin Hood"
    # Everyday words that do not start with a given name: "beach house", not "will smith".
    return not lex.is_proper(tokens[0]) and all(word(t) for t in tokens)


def entry_keys(entry: Entry, vocab: BenignVocabulary, lex: EnglishLexicon) -> list[str]:
    """All match keys of an entry, prefixed ``~``/``?`` (needs context) and/or ``=`` (CJK)."""
    keys: dict[str, str] = {}
    for form in entry.forms:
        made = form_key(form)
        if made is None:
            continue
        key, is_cjk = made
        stored = ("=" if is_cjk else "") + key
        mark = context_mark(entry, form, key, is_cjk, vocab, lex)
        # The same key from several forms: the most permissive mark wins ("" < "~" < "?").
        keys[stored] = min(keys.get(stored, "?"), mark, key=_MARK_ORDER.index)
        tokens = key.split()
        joined = "".join(tokens)
        if (
            not is_cjk
            and not mark
            and len(tokens) > 1
            and entry.score >= 0.8
            and joined.isalpha()
            and len(joined) >= 8
            and not vocab.is_word(joined)
        ):
            keys.setdefault(joined, "")
    return [mark + k for k, mark in keys.items()]


_MARK_ORDER = ("", "~", "?")


_GENERIC_CONTEXT = frozenset(
    {"the", "comics", "entertainment", "company", "inc", "co", "ltd", "of", "and", "group"}
)


def context_keys(entry: Entry, vocab: BenignVocabulary, lex: EnglishLexicon) -> list[str]:
    """Entry-specific context: group, franchise and owner names (whole, and their distinctive
    single words), never generic or everyday words ("game", "marvel" as in "marvel at") and
    never the entry's own names (an anime whose franchise is its own title)."""
    own = {k.lstrip("~?=") for k in entry.keys}
    generic = _GENERIC_CONTEXT | own

    def everyday(word: str) -> bool:
        return (
            word in generic
            or vocab.is_word(word)
            or word in vocab.dictionary
            or word in lex.plain
            or word in lex.dictionary
        )

    out: set[str] = set()
    for raw in entry.context:
        for part in re.split(r"[()/,;]", raw):
            made = form_key(part)
            if not made or made[1] or made[0] in generic:
                continue
            words = made[0].split()
            whole = made[0]
            if len(words) > 1 or not (
                whole in generic
                or vocab.is_word(whole)
                or whole in lex.plain
                or whole in lex.dictionary
            ):
                out.add(made[0])  # a whole group/franchise name ("blackpink", "x men")
            out.update(t for t in words if len(t) > 3 and not everyday(t))
    return sorted(out)
