"""Hand-curated gazetteer additions the public lists lack, and the matcher's curated word lists.

The kit's lists are strong on breadth but miss many of the names a video prompt actually uses:
superhero names (fivethirtyeight lists most characters by their real names), mainstream
cartoon, film and game characters, big consumer brands, a few contemporary celebrities, and
almost every Chinese rendering of a Western name (no openly licensed list maps them). These
entries are factual names with their common Chinese forms, all tier ``curated`` (well known).
They live in ``data/curated_names.json`` (shipped as package data) and only the gazetteer
build reads them, through :func:`load_curated`; the product's matcher reads the built
``gazetteer.tsv.gz`` and, from this module, only :data:`ROLE_WORDS`, :data:`CREDIT_KINDS` and
:data:`CONTEXT_WORDS`.

The JSON file holds five tables:

* ``people`` and ``ip``: ``[name, [aliases...], detail]`` each. ``detail`` is the
  franchise/owner (IP) or a short description (people). Aliases may be English or Chinese;
  the build normalises all of them. A leading ``~`` marks a form that is also an ordinary
  word ("Storm", 超人 "superhuman"), a leading ``?`` one that is also an ordinary proper noun
  (a given name such as "Elsa" or "Ariel"): both count only with supporting context nearby
  (``context`` for the entry, :data:`CONTEXT_WORDS` for its class); ``~`` forms written with
  a capital in mid-sentence also count, at review level.
* ``brands``: the names of ``ip`` entries that are brands (their context words are logos and
  adverts).
* ``context``: entity-specific context for curated names that need it, matched as phrases:
  name (without its ``~``/``?``) -> phrases near a ``~``/``?`` form that show the character is
  meant: its film, show or game, its team, its role ("the mermaid"), its sidekicks. Written as
  phrases, since an everyday word alone ("frozen", "mermaid"...) is weak: "Elsa walking on a
  frozen lake".
* ``not_names``: names the kit lists that are no one's IP and no living person's likeness,
  each with the reason: public-domain works ("Mona Lisa" is a painting, listed as a brand by a
  logo dataset). The build leaves them out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_PATH = Path(__file__).parent / "data" / "curated_names.json"

CuratedEntry = tuple[str, tuple[str, ...], str]
"""``(name, aliases, detail)``; see the module docstring for the ``~``/``?`` marks."""


@dataclass(frozen=True, slots=True)
class CuratedNames:
    """The curated names table of ``data/curated_names.json``, in file order."""

    people: tuple[CuratedEntry, ...]
    ip: tuple[CuratedEntry, ...]
    brands: frozenset[str]
    """Curated IP entries that are brands (their context words are logos and adverts)."""
    context: dict[str, tuple[str, ...]]
    """Entity-specific context for curated names that need it (matched as phrases)."""
    not_names: dict[str, str]
    """Kit names left out of the build -> why (public-domain works)."""


@cache
def load_curated(path: Path = DATA_PATH) -> CuratedNames:
    """Read the curated names table (once per process; the gazetteer build's input)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return CuratedNames(
            people=tuple((n, tuple(a), d) for n, a, d in data["people"]),
            ip=tuple((n, tuple(a), d) for n, a, d in data["ip"]),
            brands=frozenset(data["brands"]),
            context={k: tuple(v) for k, v in data["context"].items()},
            not_names=dict(data["not_names"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(
            f"{path}: cannot read the curated names table ({exc!r}); restore it from git "
            "(it ships with the package)"
        ) from exc


ROLE_WORDS: dict[str, tuple[str, ...]] = {
    # A person's kind -> words near a one-word name that is also a word or given name
    # ("Drake", "Madonna") that show the person is meant.
    "musician": (
        "singer", "rapper", "pop star", "popstar", "concert", "on stage", "stage", "album",
        "music video", "microphone", "mic", "performing", "performs", "perform", "tour",
        "grammy", "grammys", "band", "song", "songs", "sings", "rapping", "raps", "duet",
        "歌手", "演唱会",
    ),
    "actor": (
        "actor", "actress", "movie star", "film star", "red carpet", "premiere", "oscars",
        "oscar", "hollywood", "starring", "演员",
    ),
    "athlete": (
        "player", "athlete", "stadium", "match", "jersey", "scoring", "scores", "dunk",
        "dunking", "goal", "striker", "quarterback", "olympic", "olympics", "world cup",
        "球员", "运动员",
    ),
    "politician": (
        "president", "senator", "prime minister", "politician", "campaign", "rally",
        "congress", "parliament", "white house", "election", "总统",
    ),
    "business": ("ceo", "billionaire", "founder", "entrepreneur"),
    "media personality": ("influencer", "reality star", "reality tv", "selfie"),
}  # fmt: skip
ROLE_WORDS["musician_or_group"] = ROLE_WORDS["musician"]
ROLE_WORDS["kpop_idol"] = ROLE_WORDS["musician"]

CREDIT_KINDS = frozenset(
    {
        "artist", "photographer", "film_director", "comic_artist", "designer",
        "fashion_designer", "game_designer", "writer", "critic", "producer", "journalist",
        "celebrity", "news_figure", "zh_famous_person_unverified",
    }
)  # fmt: skip
"""People kinds whose name after "by ..." or before "... style" is an artist credit (policy
``names.artist_credits``), not a depiction: creators, and people the lists give no occupation
("celebrity" in VGGFace2). Performers, politicians and athletes named as a credit ("in the
style of Taylor Swift") still count as depicted: their style is their likeness."""


# Words that, near a name that is also an ordinary word, show the name is meant.
CONTEXT_WORDS: dict[str, tuple[str, ...]] = {
    "comic": (
        "marvel comics", "marvel movie", "marvel studios", "dc comics", "comic", "comics",
        "superhero", "superheroes", "super hero", "supervillain", "x men", "xmen", "avengers",
        "justice league", "mutant", "mutants", "cosplay", "mcu",
    ),
    "pokemon": ("pokemon", "pokémon", "pikachu", "pokeball", "poke ball", "宝可梦"),
    "brand": (
        "logo", "logos", "brand", "branded", "trademark", "can of", "bottle of", "advert",
        "advertisement", "billboard", "merch", "sponsor", "sponsored", "headquarters", "ceo",
    ),
    "film": ("disney", "pixar", "dreamworks", "cartoon", "cosplay"),
}  # fmt: skip
"""Generic context per class. People and anime titles have none: only their own group or
franchise counts ("anime style" and "performing on stage" are everyday prompt phrases)."""
