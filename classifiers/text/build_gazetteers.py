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
  only, see :func:`~classifiers.text.gazetteer_words.half_of`, so the benchmark's report half
  stays unseen); and, since the kit screened names out of those rows, an English lexicon
  (:class:`~classifiers.text.gazetteer_words.EnglishLexicon`: ``wordfreq`` frequencies,
  Webster's 1934 word list from ``english-words`` with its capitalisation, and the people
  list's own given names): a single word that is a frequent lowercase word, a frequent
  proper noun or a given name; "the" + a frequent word; several frequent words that do not
  start with a given name ("beach house", but not "will smith"); and foreign Pokémon names that
  are English words ("lucky", "spear"). Curated entries mark their forms by hand.
* **Extra forms.** ``Anthony "Tony" Stark`` also yields ``Tony Stark``; well-known multi-word
  names also match written as one word ("taylorswift", "spiderman"). CJK forms (Chinese,
  Japanese, Korean) are stored as substrings without spaces or dots (``=`` prefix).

Output rows (tab separated): category, name, detail, tier, score, context class, context words
(``|``), keys (``|``). Header lines start with ``#``.

The stages live in their own modules: reading the kit (:mod:`classifiers.text.gazetteer_kit`),
the ordinary-text references (:mod:`classifiers.text.gazetteer_words`), keys and context
(:mod:`classifiers.text.gazetteer_keys`); this module joins them (:func:`build`), writes the
file (:func:`write`) and is the ``build-gazetteers`` command.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections import Counter
from pathlib import Path

import click

from classifiers.text.curated_names import load_curated
from classifiers.text.gazetteer_keys import LESSER_ZIPF, context_keys, entry_keys, form_key
from classifiers.text.gazetteer_kit import (
    Entry,
    brand_entries,
    curated_entries,
    ip_entries,
    people_entries,
    read_tsv,
)
from classifiers.text.gazetteer_words import benign_vocabulary, english_lexicon

__all__ = ["FORMAT_VERSION", "OUTPUT_NAME", "build", "build_gazetteers_command", "main", "write"]

FORMAT_VERSION = "2"
OUTPUT_NAME = "gazetteer.tsv.gz"


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
    # The kit's lists, less the curated ``not_names`` (public-domain works a list happens to
    # carry, such as a logo dataset's "Mona Lisa").
    not_names = load_curated().not_names
    kit = [
        *people_entries(people),
        *ip_entries(read_tsv(source / "ip.tsv")),
        *brand_entries(read_tsv(source / "brands.tsv")),
    ]
    entries = [*curated_entries(), *(e for e in kit if e.name not in not_names)]
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
