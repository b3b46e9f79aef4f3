"""Reading the gazetteer kit into build entries (build time only).

:func:`people_entries`, :func:`ip_entries` and :func:`brand_entries` turn the rows of the kit's
``people.tsv``, ``ip.tsv`` and ``brands.tsv`` (read by :func:`read_tsv`) into :class:`Entry`
objects with their tier, score, context class and raw forms; :func:`curated_entries` does the
same for the hand-curated table (:mod:`classifiers.text.curated_names`). The tiers and scores
are the ones :mod:`classifiers.text.build_gazetteers` documents; match keys are filled in
later by :mod:`classifiers.text.gazetteer_keys`.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from classifiers.text.curated_names import load_curated

__all__ = [
    "Entry",
    "brand_entries",
    "curated_entries",
    "ip_entries",
    "nickname_forms",
    "parse_notes",
    "people_entries",
    "person_tier",
    "read_tsv",
    "split_multi",
]

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
