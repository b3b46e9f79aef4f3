"""What ordinary text looks like, for names that are also words (build time only).

Two sources, both read by :func:`classifiers.text.build_gazetteers.build`:

* :func:`benign_vocabulary`: word and phrase counts over the benign caption/prompt rows of the
  kit's ``train.jsonl``, the *tune* half only (:func:`half_of`), so the benchmark's report half
  stays unseen; plus CLIP's BPE words and jieba's common Chinese words when installed.
* :func:`english_lexicon`: ``wordfreq`` frequencies, Webster's 1934 word list from
  ``english-words`` with its capitalisation, and the people list's own given names (the
  ``build`` extra; a clear error says how to install them when missing).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click

from classifiers.text.normalize import WORD_RE, normalize

__all__ = [
    "BENIGN_SOURCES",
    "EVERYDAY_ZIPF",
    "GIVEN_NAME_MIN",
    "ORDINARY_ZIPF",
    "PROPER_ZIPF",
    "BenignVocabulary",
    "EnglishLexicon",
    "benign_vocabulary",
    "chinese_common_words",
    "english_lexicon",
    "english_words",
    "half_of",
]

BENIGN_SOURCES = frozenset(
    {"coco_captions_esd", "didemo", "parti", "t2i_compbench", "vbench_aug", "opensora"}
)
ORDINARY_ZIPF = 3.0
"""wordfreq Zipf frequency (log10 of uses per billion words) from which a word is everyday text."""
PROPER_ZIPF = 2.5
"""...and from which a capitalised dictionary word (a name, place, nationality) is ordinary."""
EVERYDAY_ZIPF = 3.3
"""...and from which any word (in or out of the dictionary: "logo", "selfie") is everyday."""
GIVEN_NAME_MIN = 2
"""A first word shared by this many people in the kit's people list is a given name."""


@dataclass(frozen=True)
class BenignVocabulary:
    """Word and phrase counts over benign prompts (tune half), to spot names that are words.

    ``dictionary`` adds English whole words from CLIP's BPE vocabulary (shipped inside the
    open_clip package); it is used only for lesser-known characters, titles and brands, since
    it also holds famous names ("pikachu", "rihanna"). ``zh_text`` is the benign Chinese rows
    (COLD) joined, and ``zh_words`` jieba's common non-name words, to spot Chinese title and
    Pokémon aliases that are everyday words (好朋友).
    """

    words: Counter[str]
    phrases: Counter[str]
    dictionary: frozenset[str] = frozenset()
    zh_text: str = ""
    zh_words: frozenset[str] = frozenset()

    def is_zh_word(self, key: str) -> bool:
        return key in self.zh_words or key in self.zh_text

    def is_word(self, key: str) -> bool:
        return self.words[key] >= 2

    def all_words(self, key: str) -> bool:
        return all(self.words[t] >= 2 for t in key.split())

    def is_phrase(self, key: str, min_count: int = 2) -> bool:
        return self.phrases[key] >= min_count


def half_of(text: str) -> str:
    """``tune`` or ``report``: a fixed split of benign rows by sha1 of their text.

    The build reads only the tune half; ``benchmarks/eval_names.py`` reports on the other.
    """
    return "tune" if hashlib.sha1(text.encode("utf-8")).digest()[0] % 2 == 0 else "report"


@dataclass(frozen=True)
class EnglishLexicon:
    """What ordinary English text looks like, for names that are also words (build time only).

    ``plain``: lowercase dictionary words (Webster's 1934 list, so no modern stage name is in
    it) that are frequent in today's text (``wordfreq`` Zipf >= :data:`ORDINARY_ZIPF`).
    ``proper``: capitalised dictionary entries (given names, places, nationalities) that are
    frequent (Zipf >= :data:`PROPER_ZIPF`), plus ``given``: first words shared by
    :data:`GIVEN_NAME_MIN` or more people in the people list.
    """

    plain: frozenset[str]
    proper: frozenset[str]
    given: frozenset[str]
    frequent_names: frozenset[str] = frozenset()
    """Proper nouns and given names with Zipf >= 3.5 ("william", "jean"): never a misspelling."""
    everyday: frozenset[str] = frozenset()
    """``plain`` plus frequent words Webster's lacks ("logo", "selfie"), names left out."""
    dictionary: frozenset[str] = frozenset()
    """Every lowercase word of Webster's list, however rare ("gazelle", "thermos")."""
    dictionary_proper: frozenset[str] = frozenset()
    """Every capitalised entry of Webster's list, lowercased ("hephaestus", "lilia")."""
    frequency: Callable[[str], float] = lambda word: 0.0
    """``wordfreq`` Zipf frequency of a word in English."""

    def is_plain(self, word: str) -> bool:
        return word in self.plain

    def is_proper(self, word: str) -> bool:
        return word in self.proper or word in self.given


def english_lexicon(people: list[dict[str, str]]) -> EnglishLexicon:
    """Build the lexicon from ``wordfreq`` and ``english-words`` (build-time dependencies)."""
    try:
        from english_words import get_english_words_set
        from wordfreq import iter_wordlist, zipf_frequency
    except ImportError as exc:
        raise click.ClickException(
            f"the gazetteer build needs wordfreq and english-words ({exc}); "
            "install them with: pip install -e '.[build]'"
        ) from None
    web2 = get_english_words_set(["web2"], lower=False, alpha=True)
    plain = {w for w in web2 if w.islower() and zipf_frequency(w, "en") >= ORDINARY_ZIPF}
    proper = {
        w.lower()
        for w in web2
        if w[:1].isupper() and w[1:].islower() and zipf_frequency(w, "en") >= PROPER_ZIPF
    }
    firsts: Counter[str] = Counter()
    for row in people:
        tokens = WORD_RE.findall(normalize(row["name"]).normalized)
        if len(tokens) >= 2 and row["kind"] != "musician_or_group":
            firsts[tokens[0]] += 1
    given = {w for w, n in firsts.items() if n >= GIVEN_NAME_MIN and w.isalpha() and len(w) > 1}
    frequent = {w for w in proper | given if zipf_frequency(w, "en") >= 3.5}
    everyday = set(plain)
    for word in iter_wordlist("en"):
        if zipf_frequency(word, "en") < EVERYDAY_ZIPF:
            break
        if word.isascii() and word.isalpha() and word not in proper and word not in given:
            everyday.add(word)
    return EnglishLexicon(
        frozenset(plain),
        frozenset(proper - plain),
        frozenset(given),
        frozenset(frequent),
        frozenset(everyday),
        frozenset(w for w in web2 if w.islower()),
        frozenset(w.lower() for w in web2 if w[:1].isupper()),
        lambda word: float(zipf_frequency(word, "en")),
    )


def benign_vocabulary(train_jsonl: Path | None) -> BenignVocabulary:
    """Word counts (and all 2-4 word phrases) over benign caption/prompt rows."""
    words: Counter[str] = Counter()
    phrases: Counter[str] = Counter()
    zh: list[str] = []
    if train_jsonl is None:
        return BenignVocabulary(words, phrases)
    if not train_jsonl.is_file():
        raise click.ClickException(f"{train_jsonl}: not found; pass --benign PATH or --no-benign")
    with train_jsonl.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["labels"] or half_of(row["text"]) != "tune":
                continue
            if row["source"] == "cold":
                zh.append("".join(WORD_RE.findall(normalize(row["text"]).normalized)))
            if row["source"] not in BENIGN_SOURCES:
                continue
            tokens = WORD_RE.findall(normalize(row["text"]).normalized)
            words.update(set(tokens))
            for n in (2, 3, 4):
                phrases.update({" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)})
    return BenignVocabulary(words, phrases, english_words(), "\n".join(zh), chinese_common_words())


def chinese_common_words(min_freq: int = 100) -> frozenset[str]:
    """Frequent non-name words of jieba's dictionary (a project dependency), else empty."""
    try:
        import jieba

        path = Path(jieba.__file__).parent / "dict.txt"
        lines = path.read_text(encoding="utf-8").splitlines()
    except (ImportError, OSError):
        return frozenset()
    out = set()
    for line in lines:
        parts = line.split(" ")
        if len(parts) == 3 and parts[2] not in ("nr", "nrt", "nz") and int(parts[1]) >= min_freq:
            out.add(parts[0])
    return frozenset(out)


def english_words() -> frozenset[str]:
    """Alphabetic whole-word tokens of CLIP's BPE vocabulary (~33k), or empty if unavailable."""
    try:
        import open_clip

        path = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
        with gzip.open(path, "rt", encoding="utf-8") as f:
            merges = f.read().split("\n")[1 : 49152 - 256 - 1]
    except (ImportError, OSError):
        return frozenset()
    joined = ("".join(m.split(" ")) for m in merges if " " in m)
    return frozenset(w[:-4] for w in joined if w.endswith("</w>") and w[:-4].isalpha())
