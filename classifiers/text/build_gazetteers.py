"""Build the shipped celebrity/IP lookup table from the gazetteer kit.

    python -m classifiers.text.build_gazetteers \\
        --source /work/shared/datasets/gazetteers --out classifiers/text/data

(also ``reelguard build-gazetteers``). Reads ``people.tsv`` (-> ``celebrity``), ``ip.tsv`` and
``brands.tsv`` (-> ``ip``), plus :mod:`classifiers.text.curated_names`, and writes one compact
``gazetteer.tsv.gz`` with normalised match keys, a tier and a score per entry. The product
loads only that file. Decisions taken here (each one is a tier, so it shows in evidence):

* **Scores by tier.** Contemporary, well-known names (TMDb/Spotify popularity, K-pop idols,
  Pantheon people born 1900 or later, VGGFace2, comic characters with 100+ appearances,
  Pokémon, curated names) score 0.85-0.95; anime titles 0.75, characters with 50-99
  appearances 0.6 (all block at the default 0.5). Kit brands (0.45) and characters with 20-49
  appearances review. Weak sources score below the default review threshold (0.35) so they
  are evidence, not blocks: LFW-only news figures (some are private people), characters with
  fewer than 20 appearances, Pantheon artists ("in the style of ..." is benign) and people
  born before 1900 (``historical``: Napoleon, Van Gogh are not deepfake targets).
  THUOCL's unverified Chinese names score 0.4 (review), and 2-character ones are dropped (they
  are mostly ordinary words: 孙子, 陆军, 星光). Six-CD artist styles are benign and not read.
* **Common words.** A form that is also ordinary text only fires with supporting context. Two
  marks: ``~`` (an ordinary *word*: "slash", "the rock", "beach house"; written with a capital
  in mid-sentence it may still mean the name) and ``?`` (an ordinary *proper noun*: a given name,
  place or nationality such as "Sandra", "Madonna", "Persian", where a capital is no evidence).
  Sources: the kit's ``common_word``/``stage_name_single_token`` flags; forms of 4 letters or
  fewer; words and phrases of the benign caption/prompt rows of ``train.jsonl`` (the *tune* half
  only, see :func:`half_of`, so the benchmark's report half stays unseen); and, since the kit
  screened names out of those rows, an English lexicon (:class:`EnglishLexicon`: ``wordfreq``
  frequencies, Webster's 1934 word list from ``english-words`` with its capitalisation, and the
  people list's own given names): a single word that is a frequent lowercase word, a frequent
  proper noun or a given name; "the" + a frequent word; several frequent words that do not
  start with a given name ("beach house", but not "will smith"); and foreign Pokémon names that
  are English words ("lucky", "spear"). Curated entries mark their forms by hand.
* **Extra forms.** ``Anthony "Tony" Stark`` also yields ``Tony Stark``; well-known multi-word
  names also match written as one word ("taylorswift", "spiderman"). CJK forms (Chinese,
  Japanese, Korean) are stored as substrings without spaces or dots (``=`` prefix).

Output rows (tab separated): category, name, detail, tier, score, context class, context words
(``|``), keys (``|``). Header lines start with ``#``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from classifiers.text.curated_names import load_curated
from classifiers.text.normalize import WORD_RE, normalize

FORMAT_VERSION = "2"
OUTPUT_NAME = "gazetteer.tsv.gz"
BENIGN_SOURCES = frozenset(
    {"coco_captions_esd", "didemo", "parti", "t2i_compbench", "vbench_aug", "opensora"}
)
CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff]")
MIN_CJK_LEN = 2
MAX_KEY_TOKENS = 12
MAX_CJK_LEN = 24
ORDINARY_ZIPF = 3.0
"""wordfreq Zipf frequency (log10 of uses per billion words) from which a word is everyday text."""
PROPER_ZIPF = 2.5
"""...and from which a capitalised dictionary word (a name, place, nationality) is ordinary."""
EVERYDAY_ZIPF = 3.3
"""...and from which any word (in or out of the dictionary: "logo", "selfie") is everyday."""
LESSER_SCORE = 0.9
"""Entries scoring below this (brands, comic characters under 500 appearances, anime titles)
need context for any dictionary word or name, however rare."""
LESSER_ZIPF = 2.0
"""...and for any word seen in today's text this often ("anthro")."""
GIVEN_NAME_MIN = 2
"""A first word shared by this many people in the kit's people list is a given name."""

csv.field_size_limit(sys.maxsize)


@dataclass
class Entry:
    """One name being built: forms are raw strings; a leading ``~`` forces "needs context"."""

    category: str
    name: str
    detail: str
    tier: str
    score: float
    context_class: str
    forms: list[str]
    context: list[str] = field(default_factory=list)
    common_forms: set[str] = field(default_factory=set)  # raw forms the kit flags as common
    keys: list[str] = field(default_factory=list)
    fixed_context: list[str] = field(default_factory=list)  # curated phrases, kept as written
    lesser_forms: set[str] = field(default_factory=set)  # judged as if the entry were lesser


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


def read_tsv(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a kit TSV (header row, ``|``-joined multi-values, no CSV quoting)."""
    if not path.is_file():
        raise click.ClickException(
            f"{path}: not found; pass --source pointing at the kit's gazetteers/"
        )
    with path.open(encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)


def parse_notes(notes: str) -> dict[str, str]:
    """``a=1;historical;b=x`` -> ``{"a": "1", "historical": "", "b": "x"}``."""
    out = {}
    for part in notes.split(";"):
        if part:
            k, _, v = part.partition("=")
            out[k.strip()] = v.strip()
    return out


def split_multi(value: str) -> list[str]:
    return [v.strip() for v in value.split("|") if v.strip()]


def nickname_forms(form: str) -> list[str]:
    """``Anthony "Tony" Stark`` -> ``["Anthony Stark", "Tony Stark"]`` (else ``[]``)."""
    clean = re.sub(r'[\\"]+', '"', form).strip('"')
    nick = re.search(r'"([^"]+)"', clean)
    if not nick:
        return []
    rest = (clean[: nick.start()] + clean[nick.end() :]).split()
    if not rest:
        return []
    return [" ".join(rest), f"{nick.group(1)} {rest[-1]}"]


def person_tier(
    row: dict[str, str], notes: dict[str, str], sources: set[str]
) -> tuple[str, float] | None:
    """(tier, score) of a people.tsv row, or ``None`` to drop it."""
    birth = int(row["birth_year"]) if row["birth_year"].lstrip("-").isdigit() else None
    if "zh_only" in notes:
        # 2-character THUOCL entries are mostly ordinary words (孙子, 陆军, 星光)
        return None if len(row["name"]) < 3 else ("zh_famous_person_unverified", 0.4)
    if "historical" in notes or (birth is not None and birth < 1900):
        return "historical", 0.2
    if row["kind"] == "artist":
        return "artist", 0.3  # "in the style of <artist>" is benign in this taxonomy
    if "popularity" in notes:
        return "popular", 0.95
    if "kpop_idols" in sources:
        return "kpop_idol", 0.9
    if "pantheon" in sources:
        return "pantheon", 0.9
    if "vggface2" in sources or "tmdb_top_actors" in sources:
        return "vggface2", 0.85
    return "lfw_news_figure", 0.3


def people_entries(rows: Iterable[dict[str, str]]) -> Iterator[Entry]:
    """``people.tsv`` rows -> celebrity entries with a tier and score each."""
    for row in rows:
        notes = parse_notes(row["notes"])
        sources = set(row["source"].split("|"))
        forms = [row["name"], *split_multi(row["aliases"])]
        context: list[str] = []
        if "group" in notes:
            context.append(notes["group"])
        made = person_tier(row, notes, sources)
        if made is None:
            continue
        tier, score = made
        entry = Entry("celebrity", row["name"], row["kind"], tier, score, "person", forms, context)
        if "common_word" in notes:
            entry.common_forms.add(row["name"])
        if "stage_name_single_token" in notes:
            # Stage names count with their group only, as the kit advises ("?").
            entry.forms = [f"?{f}" if len(f.split()) == 1 else f for f in forms]
        yield entry


def ip_entries(rows: Iterable[dict[str, str]]) -> Iterator[Entry]:
    """``ip.tsv`` rows -> IP entries (comic characters, Pokémon, anime titles)."""
    for row in rows:
        notes = parse_notes(row["notes"])
        popularity = parse_notes(row["popularity"])
        forms = [row["name"], *split_multi(row["aliases"])]
        forms += [n for f in list(forms) if '"' in f for n in nickname_forms(f)]
        kind = row["kind"]
        detail = row["franchise"] or row["owner"] or kind
        if kind == "comic_character":
            appearances = int(popularity.get("appearances", "0") or 0)
            if appearances >= 500:
                tier, score = "major_character", 0.95
            elif appearances >= 100:
                tier, score = "character", 0.85
            elif appearances >= 50:
                tier, score = "minor_character", 0.6
            elif appearances >= 20:
                tier, score = "rare_character", 0.45
            else:
                tier, score = "obscure_character", 0.25
            ctx_class = "comic"
        elif kind == "game_character":
            tier, score, ctx_class = "pokemon", 0.9, "pokemon"
            foreign = set(forms[1:])  # French, German... names: rare in English prompts
        else:
            tier, score, ctx_class = "anime_title", 0.75, "anime"
        context = [w for w in (row["franchise"], row["owner"]) if w]
        entry = Entry("ip", row["name"], detail, tier, score, ctx_class, forms, context)
        if "common_word" in notes:
            entry.common_forms.add(row["name"])
        if kind == "game_character":
            entry.lesser_forms = foreign
        yield entry


def brand_entries(rows: Iterable[dict[str, str]]) -> Iterator[Entry]:
    """``brands.tsv`` rows -> IP entries (logos and trademarks)."""
    for row in rows:
        notes = parse_notes(row["notes"])
        forms = [row["name"], *split_multi(row["aliases"])]
        # Brand names in a prompt are usually props ("a BMW motorcycle"): review, not block.
        entry = Entry("ip", row["name"], "brand", "brand", 0.45, "brand", forms)
        if "common_word" in notes:
            entry.common_forms.add(row["name"])
        yield entry


def curated_entries() -> Iterator[Entry]:
    """The hand-curated additions (:mod:`classifiers.text.curated_names`)."""
    curated = load_curated()
    for name, aliases, detail in curated.people:
        yield Entry(
            "celebrity", name.lstrip("~?"), detail, "curated", 0.95, "person", [name, *aliases]
        )
    for name, aliases, detail in curated.ip:
        bare = name.lstrip("~?")
        ctx = "brand" if bare in curated.brands else "film"
        if "Marvel" in detail or detail.startswith("DC"):
            ctx = "comic"
        entry = Entry("ip", bare, detail, "curated", 0.95, ctx, [name, *aliases], [detail])
        entry.fixed_context = list(curated.context.get(bare, ()))
        yield entry


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
    return "~" if _ordinary_phrase(entry, tokens, vocab, lex) else ""


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
    # Titles and brands made only of everyday words ("Golden Time", "Blue Lock").
    if entry.context_class in ("anime", "brand") and len(tokens) <= 3 and vocab.all_words(key):
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


def build(source: Path, benign: Path | None) -> tuple[list[Entry], dict[str, list[str]]]:
    """Read the kit; return the finished entries (keys filled in) and three word lists.

    ``ordinary``: words of 4+ letters never read as a misspelt name (seen in benign prompts, or
    frequent English words). ``plain``: everyday lowercase words, and ``given``: given names
    and other ordinary proper nouns; the matcher reads a one-word name next to a word that is
    neither, or after a given name, as part of someone else's name ("Sandra Chevrier",
    "Raphael Lacoste").
    """
    vocab = benign_vocabulary(benign)
    people = list(read_tsv(source / "people.tsv"))
    lex = english_lexicon(people)
    entries = [
        *curated_entries(),
        *people_entries(people),
        *ip_entries(read_tsv(source / "ip.tsv")),
        *brand_entries(read_tsv(source / "brands.tsv")),
    ]
    out = []
    for e in entries:
        e.keys = entry_keys(e, vocab, lex)
        e.context = context_keys(e, vocab, lex)
        for phrase in e.fixed_context:
            made = form_key(phrase)
            if made is not None and made[0] not in e.context:
                e.context.append(made[0])
        if e.keys:
            out.append(e)
    ordinary = {w for w, n in vocab.words.items() if n >= 2 and len(w) >= 4 and w.isalpha()}
    ordinary |= {w for w in lex.everyday | lex.frequent_names if len(w) >= 4}
    ordinary |= {
        w for w in lex.dictionary if len(w) >= 4 and lex.frequency(w) >= LESSER_ZIPF
    }  # "arcane", "paladin", "cyborg": words, so a capital is no sign of a name
    lists = {
        "ordinary": sorted(ordinary),
        "plain": sorted(
            lex.everyday | {w for w, n in vocab.words.items() if n >= 2 and w.isalpha()}
        ),
        "given": sorted((lex.given | lex.proper) - lex.everyday),
    }
    return out, lists


def _clean(value: str) -> str:
    return re.sub(r"[\t\n\r|]+", " ", value).strip()


def write(entries: list[Entry], lists: dict[str, list[str]], out_dir: Path, source: Path) -> Path:
    """Write ``gazetteer.tsv.gz`` deterministically (gzip mtime 0) and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for e in entries:
        cols = [
            e.category,
            _clean(e.name),
            _clean(e.detail),
            e.tier,
            f"{e.score:.2f}",
            e.context_class,
            "|".join(_clean(c) for c in e.context),
            "|".join(_clean(k) for k in e.keys),
        ]
        lines.append("\t".join(cols))
    for name, words in lists.items():
        lines.append(f"_{name}\t" + "|".join(words))
    body = "\n".join(lines) + "\n"
    digest = hashlib.sha256(body.encode()).hexdigest()[:12]
    header = (
        f"# reelguard gazetteer format={FORMAT_VERSION} content={digest} entries={len(entries)}\n"
        f"# built from {source.name}/ (people.tsv, ip.tsv, brands.tsv) + curated_names.py "
        "by classifiers.text.build_gazetteers; do not edit by hand\n"
        "# category\tname\tdetail\ttier\tscore\tcontext_class\tcontext\tkeys "
        "(~ an ordinary word, ? an ordinary proper noun: both need context; = CJK substring)\n"
        "# last rows: _ordinary (never read as misspelt names), _plain (everyday words), "
        "_given (given names and other ordinary proper nouns)\n"
    )
    path = out_dir / OUTPUT_NAME
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write((header + body).encode("utf-8"))
    return path


@click.command("build-gazetteers", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--source",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The kit's gazetteers/ folder (people.tsv, ip.tsv, brands.tsv).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(__file__).parent / "data",
    show_default="classifiers/text/data",
    help="Folder for gazetteer.tsv.gz.",
)
@click.option(
    "--benign",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Benign prompts (train.jsonl) used to detect names that are ordinary words "
    "[default: SOURCE/../train.jsonl].",
)
@click.option("--no-benign", is_flag=True, help="Skip the benign-vocabulary check.")
def build_gazetteers_command(source: Path, out: Path, benign: Path | None, no_benign: bool) -> None:
    """Derive the compact celebrity/IP lookup table the product ships (gazetteer.tsv.gz)."""
    if not no_benign and benign is None:
        benign = source.parent / "train.jsonl"
    entries, lists = build(source, None if no_benign else benign)
    path = write(entries, lists, out, source)
    n_keys = sum(len(e.keys) for e in entries)
    tiers = Counter(e.tier for e in entries)
    click.echo(
        f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): {len(entries)} entries, {n_keys} keys"
    )
    click.echo("tiers: " + ", ".join(f"{t}={n}" for t, n in sorted(tiers.items())))


def main() -> None:
    """Entry point for ``python -m classifiers.text.build_gazetteers``."""
    build_gazetteers_command()


if __name__ == "__main__":
    main()
