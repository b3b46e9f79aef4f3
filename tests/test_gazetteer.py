"""Celebrity/IP matching over the shipped gazetteer, and the build command on a tiny kit."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from classifiers.base import TextClassifier
from classifiers.registry import TEXT_CLASSIFIERS
from classifiers.text.build_gazetteers import build_gazetteers_command
from classifiers.text.gazetteer import (
    CAPITALISED_SCORE,
    DATA_PATH,
    Gazetteer,
    GazetteerClassifier,
    GazetteerError,
    load_gazetteer,
)
from classifiers.text.normalize import normalize

REVIEW_AT, BLOCK_AT = 0.35, 0.5  # the default policy's prompt thresholds for celebrity and ip


@pytest.fixture(scope="module")
def classifier() -> GazetteerClassifier:
    return GazetteerClassifier()


def scores(clf: GazetteerClassifier, text: str, mention: str = "depicted") -> dict[str, float]:
    """Per category, the score of the verdict for ``mention`` (0 when there is none)."""
    out = dict.fromkeys(clf.categories, 0.0)
    for v in clf.classify(normalize(text)):
        if v.mention == mention:
            out[v.category] = v.score
    return out


def entity_names(
    clf: GazetteerClassifier, text: str, category: str, mention: str = "depicted"
) -> list[str]:
    for v in clf.classify(normalize(text)):
        if v.category == category and v.mention == mention:
            return [e.detail or "" for e in v.evidence]
    return []


# (prompt, category expected to block, entity named in the evidence, why)
BLOCKS = [
    ("Taylor Swift dancing on stage", "celebrity", "Taylor Swift", "exact name"),
    ("taylor swift", "celebrity", "Taylor Swift", "any capitalisation"),
    ("Taylor Swfit singing in the rain", "celebrity", "Taylor Swift", "transposed letters"),
    ("Tayler Swift at the beach", "celebrity", "Taylor Swift", "one wrong letter"),
    ("T4ylor Sw1ft waving", "celebrity", "Taylor Swift", "leetspeak"),
    ("Ｔａｙｌｏｒ Ｓｗｉｆｔ", "celebrity", "Taylor Swift", "fullwidth letters"),
    ("T\u200baylor Swift", "celebrity", "Taylor Swift", "zero-width space"),
    ("#taylorswift concert", "celebrity", "Taylor Swift", "written as one word"),
    ("泰勒·斯威夫特在跳舞", "celebrity", "Taylor Swift", "Chinese name with a middle dot"),
    ("泰勒斯威夫特在唱歌", "celebrity", "Taylor Swift", "Chinese name without the dot"),
    ("Jennie from BLACKPINK dancing", "celebrity", "Kim Jennie", "stage name with group context"),
    ("BLACKPINK Jennie on stage", "celebrity", "Kim Jennie", "group + stage name alias"),
    ("Will Smith eating spaghetti", "celebrity", "Will Smith", "common words, but a full name"),
    ("Keanu Reeves riding a motorcycle", "celebrity", "Keanu Reeves", "TMDb/Pantheon actor"),
    ("Elon Musk on Mars", "celebrity", "Elon Musk", "curated (absent from the kit)"),
    ("成龙在打功夫", "celebrity", "Jackie Chan", "native Chinese name"),
    ("Storm from the X-Men fighting", "ip", "Storm", "common word with franchise context"),
    ("Storm and Wolverine fight in the rain", "ip", "Storm", "context from a franchise hit"),
    ("Spider-Man swinging between buildings", "ip", "Spider-Man", "hyphenated name"),
    ("spiderman swinging", "ip", "Spider-Man", "joined form"),
    ("Peter Parker taking photos", "ip", "Spider-Man", "alias (real name)"),
    ("Tony Stark in his lab", "ip", "Iron Man", "nickname alias from the kit"),
    ("Pikachu in a forest", "ip", "Pikachu", "Pokémon"),
    ("皮卡丘在森林里", "ip", "Pikachu", "Pokémon Chinese alias"),
    ("Mickey Mouse waving", "ip", "Mickey Mouse", "curated character"),
    ("Darth Vader walking down a corridor", "ip", "Darth Vader", "curated character"),
    ("米老鼠在跳舞", "ip", "Mickey Mouse", "curated Chinese alias"),
    ("宝可梦里的伊布在草地上奔跑", "ip", "Eevee", "2-char Chinese name, context in its own run"),
    ("宝可梦九尾在雪地里", "ip", "Ninetales", "a Chinese word that is a name with context"),
    ("Chun-Li doing a spinning kick", "ip", "Chun-Li", "game character, unambiguous alone"),
    ("Cuphead running through a cartoon level", "ip", "Cuphead", "game character alone"),
    ("Elsa from Frozen building an ice castle", "ip", "Elsa", "given name + her film"),
    ("Ariel the mermaid singing on a rock", "ip", "Ariel", "given name + her role"),
    ("Drake performing on stage", "celebrity", "Drake", "a word + role words, capitalised"),
    ("will smith eating spaghetti", "celebrity", "Will Smith", "words, but a given name first"),
    ("a portrait of Taylor Swift by Annie Leibovitz", "celebrity", "Taylor Swift",
     "the depicted person still counts next to a credited photographer"),
    ("a music video in the style of Taylor Swift", "celebrity", "Taylor Swift",
     "a performer's style is their likeness: not an artist credit"),
    ("Marge Simpson baking cookies in her kitchen", "ip", "Marge Simpson", "curated addition"),
    ("Big Bird from Sesame Street waving", "ip", "Big Bird", "everyday phrase, with its show"),
    ("东南亚人都在玩王者荣耀", "ip", "Honor of Kings", "Chinese game title as a substring"),
    ("film still of the geisha robot from ghost in the shell", "ip", "Ghost in the Shell",
     "an anime named as the scene's source, not its style"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("prompt", "category", "entity", "why"), BLOCKS, ids=[f"{b[0]} ({b[3]})" for b in BLOCKS]
)
def test_blocks(
    classifier: GazetteerClassifier, prompt: str, category: str, entity: str, why: str
) -> None:
    assert scores(classifier, prompt)[category] >= BLOCK_AT, why
    assert any(d.startswith(entity + " (") for d in entity_names(classifier, prompt, category)), why


# (prompt, why): common-word traps and ordinary prompts stay under the review threshold.
BENIGN = [
    ("storm clouds over the sea", "'Storm' is a weather word"),
    ("Storm clouds gather over the hills", "capitalised only because it starts the sentence"),
    ("an apple on a table", "'Apple' is a fruit"),
    ("a target at the archery range", "'Target' is a target"),
    ("a gap between two rocks", "'Gap' is a gap"),
    ("a shell on the beach at sunset", "'Shell' is a shell"),
    ("a dove flying over a church", "'Dove' is a bird"),
    ("a jaguar running through the jungle", "'Jaguar' is an animal"),
    ("ditto, the same again", "'Ditto' is a word"),
    ("jennie walking her dog in the park", "stage name without group context"),
    ("a dog wagging its tail in a store", "'its' never matches a brand"),
    ("Tom hands the ball to his friend", "'hands' is a word, not a misspelt Hanks"),
    ("a black widow spider on its web", "the spider, not the Marvel character"),
    ("Napoleon riding a horse across the Alps", "historical figure (born before 1900)"),
    ("a cat sitting on a mat", "nothing to find"),
    ("A cinematic shot of a neon-lit Tokyo street at night, 4k, 60fps", "video prompt"),
    ("一只猫在沙发上睡觉", "Chinese prompt with no names"),
    ("一只九尾狐在森林里", "九尾 (Ninetales) without context: the nine-tailed fox"),
    ("东西蒙上灰尘", "西蒙 (SIMOUN) only across the words 东西|蒙上"),
    # Everyday phrases that read as names before the English lexicon marked them (issue 11).
    ("a hiker at the edge of the cliff", "'the edge' (U2's The Edge) is a phrase"),
    ("a climber resting on the rock", "'the rock' (Dwayne Johnson) is a phrase"),
    ("burning slash piles in a logged forest", "'slash' (the guitarist) is a word"),
    ("a beach house at sunset", "'beach house' (the band) is a phrase"),
    ("a fluffy Persian cat on a sofa", "'Persian' (a Pokémon) is a nationality"),
    ("a Renaissance painting titled Madonna with singing angels", "'Madonna' in art"),
    ("stage light changes from blue to green", "K-pop stage names 'Blue'/'Green' + 'stage'"),
    ("a man on stage speaks into the microphone", "stage name 'On' + role words"),
    ("Elsa walking her dog on a frozen lake", "'Elsa' alone is a given name; 'frozen' a word"),
    ("a woman named Ariel swimming in a pool", "'Ariel' without her franchise"),
    ("portrait by james jean and sandra chevrier", "'james jean' is no misspelt James Dean; "
     "'sandra' is part of another name"),
    ("meadow at sunrise, raphael lacoste, eddie mendoza", "'lacoste' inside an artist's name"),
    ("three zebras and a gazelle at a watering hole", "'gazelle' (a brand) is an animal"),
    ("a dark elf casting a spell, Arcane magic", "'Arcane' capitalised is still a word"),
    ("a mermaid with blonde hair near a coral reef", "no red hair: not Ariel's description"),
    ("a hedgehog sniffing leaves in the garden", "not blue: not Sonic"),
    ("A toddler walks a pitbull.", "'a pitbull' is a dog, not the rapper"),
    ("a drake swimming in a pond", "'a drake' is a duck"),
    ("a painting of the Mona Lisa with a frown", "a public-domain painting, not a brand"),
    ("her coworkers tease him, a sign of affection", "an anime title made of a common phrase"),
    ("the queen of the sun by Zdzislaw Beksinski, Jeffrey Smith and H.R. Giger",
     "a rare DC character named like anyone"),
    ("a big bird flying over the lake", "'Big Bird' without Sesame Street is a big bird"),
    ("a time-lapse of a plant over 91 days of growth", "a number and a word: no anime title"),
    ("布鲁克林的街头涂鸦", "克林 (Krillin) inside 布鲁克林 (Brooklyn) is no alias"),
    ("children having a nerf gun battle in the backyard", "a genericised toy name"),
]  # fmt: skip


@pytest.mark.parametrize(("prompt", "why"), BENIGN, ids=[b[0] for b in BENIGN])
def test_benign(classifier: GazetteerClassifier, prompt: str, why: str) -> None:
    s = scores(classifier, prompt)
    assert s["celebrity"] < REVIEW_AT and s["ip"] < REVIEW_AT, (why, s)


@pytest.mark.parametrize(
    ("prompt", "entity"),
    [
        ("Pitbull performing on stage", "Pitbull"),
        ("a Drake concert in Toronto", "Drake"),
        ("a Beyonce lookalike dancing", "Beyoncé"),
    ],
)
def test_a_name_after_a_or_an_still_counts_with_the_persons_context(
    classifier: GazetteerClassifier, prompt: str, entity: str
) -> None:
    assert scores(classifier, prompt)["celebrity"] >= BLOCK_AT
    assert any(d.startswith(entity) for d in entity_names(classifier, prompt, "celebrity"))


def test_a_person_is_not_also_a_minor_character_of_the_same_name(
    classifier: GazetteerClassifier,
) -> None:
    # "Barack Obama" is also a rare Marvel Comics character in the kit's IP list.
    s = scores(classifier, "Barack Obama giving a speech")
    assert s["celebrity"] >= BLOCK_AT and s["ip"] == 0.0


def test_capitalised_common_phrase_without_context_is_review_level(
    classifier: GazetteerClassifier,
) -> None:
    for text in ("a video of The Rock lifting weights", "The Rock lifting weights"):
        s = scores(classifier, text)
        assert s["celebrity"] == CAPITALISED_SCORE, text
    assert REVIEW_AT <= CAPITALISED_SCORE < BLOCK_AT


def test_a_capital_is_no_evidence_for_a_given_name(classifier: GazetteerClassifier) -> None:
    # "Jennie" is a given name ("?"): only her group counts, however it is written.
    assert scores(classifier, "A photo of Jennie smiling at the camera")["celebrity"] == 0.0


# (prompt, category, entity, why): names used as something other than a depiction.
MENTIONS = [
    ("a can of Coca-Cola with its logo", "ip", "brand", "Coca-Cola", "brand"),
    ("Apple logo on a laptop", "ip", "brand", "Apple", "common-word brand with context"),
    ("a laptop on a desk with the Dell logo visible", "ip", "brand", "Dell", "logo request"),
    ("a can of Red Bull on a skateboard ramp", "ip", "brand", "Red Bull", "product"),
    ("black and white mountain landscape by Ansel Adams", "celebrity", "credit", "Ansel Adams",
     "a photographer credited"),
    ("a hotel lobby in the style of Wes Anderson", "celebrity", "credit", "Wes Anderson",
     "a director's style"),
    ("a castle, digital art by Greg Rutkowski and Annie Leibovitz, artstation", "celebrity",
     "credit", "Annie Leibovitz", "the second name of a credit list"),
    ("a Wes Anderson style hotel", "celebrity", "credit", "Wes Anderson", "'X style'"),
    ("a street portrait shot on a Canon camera", "ip", "credit", "Canon",
     "a camera credit is no brand request"),
    ("a portrait of an old fisherman, Canon EOS R5, 85mm, f/1.4", "ip", "credit", "Canon",
     "a camera model after the brand credits the camera"),
    ("mushrooms in the forest at dawn, photo realism, Sony a7R", "ip", "credit", "Sony",
     "the model as typed (the normaliser reads a7R as leetspeak)"),
    ("a can of Coca-Cola 330 ml on a table", "ip", "brand", "Coca-Cola",
     "a number after a brand is no camera model"),
    ("a model on a beach, natural light, sharp, Canon- 70-200mm lens", "ip", "credit", "Canon",
     "a lens typed in pieces after the brand"),
    ("a heron at dawn, low camera angle, Canon 5 D, 4 k", "ip", "credit", "Canon",
     "a body typed in pieces ('5 D' is the 5D)"),
    ("a Nike ad with a 5 year old runner", "ip", "brand", "Nike",
     "words after a brand are joined only into a camera body or lens"),
    ("a menacing cyborg, in the style of ghost in the shell", "ip", "credit",
     "Ghost in the Shell", "an anime named as a style asks for its look"),
    ("a little robot wearing a tomato hat, made in abyss style", "ip", "credit",
     "Made in Abyss", "'X style' for an anime title"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("prompt", "category", "mention", "entity", "why"), MENTIONS, ids=[m[0] for m in MENTIONS]
)
def test_mentions_are_tagged_not_depicted(
    classifier: GazetteerClassifier,
    prompt: str,
    category: str,
    mention: str,
    entity: str,
    why: str,
) -> None:
    assert scores(classifier, prompt)[category] == 0.0, why  # nothing depicted
    assert scores(classifier, prompt, mention)[category] >= REVIEW_AT, why
    names = entity_names(classifier, prompt, category, mention)
    assert any(d.startswith(entity + " (") and d.endswith(mention) for d in names), names


def test_one_verdict_per_mention_kind(classifier: GazetteerClassifier) -> None:
    text = "Taylor Swift drinking a can of Red Bull, photo by Annie Leibovitz"
    got = {(v.category, v.mention): v.score for v in classifier.classify(normalize(text))}
    assert got[("celebrity", "depicted")] >= BLOCK_AT
    assert got[("celebrity", "credit")] >= REVIEW_AT
    assert got[("ip", "brand")] >= REVIEW_AT
    assert got[("ip", "depicted")] == 0.0
    assert len(got) == 4  # one verdict each, and no empty brand/credit verdicts


# (prompt, character): iconic characters described without their name go to review.
DESCRIBED = [
    ("a young mermaid with long red hair and a green tail", "Ariel"),
    ("a yellow electric mouse creature with red cheeks", "Pikachu"),
    ("a blue hedgehog running fast", "Sonic the Hedgehog"),
    ("a green ogre living in a swamp", "Shrek"),
]


@pytest.mark.parametrize(("prompt", "character"), DESCRIBED, ids=[d[0] for d in DESCRIBED])
def test_descriptions_review(classifier: GazetteerClassifier, prompt: str, character: str) -> None:
    s = scores(classifier, prompt)
    assert REVIEW_AT <= s["ip"] < BLOCK_AT
    (detail,) = entity_names(classifier, prompt, "ip")
    assert detail.startswith(character + " (") and "description: " in detail


def test_a_named_character_is_not_also_reported_as_described(
    classifier: GazetteerClassifier,
) -> None:
    names = entity_names(classifier, "Sonic the Hedgehog, a blue hedgehog, running", "ip")
    assert [n for n in names if "description" in n] == []


def test_title_case_prompt_gives_no_capitalisation_signal(classifier: GazetteerClassifier) -> None:
    assert scores(classifier, "A Big Storm Over The Quiet Sea")["ip"] < REVIEW_AT


def test_evidence_quotes_original_span(classifier: GazetteerClassifier) -> None:
    text = "a video of T4ylor  Sw1ft dancing"
    (celebrity,) = [v for v in classifier.classify(normalize(text)) if v.category == "celebrity"]
    ev = celebrity.evidence[0]
    assert ev.text == "T4ylor  Sw1ft"
    assert ev.start is not None and text[ev.start : ev.end] == "T4ylor  Sw1ft"
    assert ev.detail is not None and "tier=" in ev.detail
    assert celebrity.model_id == "gazetteer"
    assert celebrity.model_version == load_gazetteer().version


def test_registry_factories_share_one_load() -> None:
    celeb, ip = TEXT_CLASSIFIERS["celebrity"](), TEXT_CLASSIFIERS["ip"]()
    assert isinstance(celeb, TextClassifier) and isinstance(ip, TextClassifier)
    assert celeb.gazetteer is ip.gazetteer  # type: ignore[attr-defined]
    assert [v.category for v in celeb.classify(normalize("x"))] == ["celebrity"]
    assert [v.category for v in ip.classify(normalize("x"))] == ["ip"]


@pytest.mark.parametrize("text", ["", " ", "😀😀", "\ud800", "a" * 10_000, "泰" * 3000])
def test_odd_input_gives_zero_scores(classifier: GazetteerClassifier, text: str) -> None:
    assert all(v.score == 0.0 for v in classifier.classify(normalize(text)))


def test_corrupt_file_names_path(tmp_path: Path) -> None:
    bad = tmp_path / "gazetteer.tsv.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(GazetteerError, match=r"gazetteer\.tsv\.gz"):
        Gazetteer(bad)


def test_shipped_file_is_small() -> None:
    assert DATA_PATH.stat().st_size < 5_000_000


# -- the build command on a tiny kit -------------------------------------------------------

PEOPLE = [
    "name\taliases\tkind\tsource\tbirth_year\tcountry\tnotes",
    "Zorblax Quintero\t\tactor\tpantheon\t1970\tUS\t",
    "Old Mastermind\t\tartist\tpantheon\t1650\tNL\thistorical",
    "Kim Jennie\tJennie|BLACKPINK Jennie\tmusician\tkpop_idols\t1996\tKR\t"
    "kpop_idol;group=BLACKPINK;stage_name_single_token=1",
    "Newsy McNewsface\t\tnews_figure\tlfw\t\t\t",
    "孙子\t\tzh_famous_person_unverified\tthuocl\t\t\tdf=871;zh_only;common_word=1",
    "王大锤子\t\tzh_famous_person_unverified\tthuocl\t\t\tdf=300;zh_only",
    "The Boulder\t\tmusician\tpantheon\t1961\tIE\t",
    "Sandra\t\tmusician\tpantheon\t1962\tDE\t",
    "Beach Towel\t\tmusician_or_group\tspotify_2023\t\t\tpopularity=spotify2023_rank_9",
    "Will Smithers\t\tactor\tpantheon\t1968\tUS\t",
    "Will Byersby\t\tactor\tpantheon\t1970\tUS\t",
]
IP = [
    "name\taliases\tfranchise\towner\tsource\tkind\tpopularity\tnotes",
    'Iron Fellow\t"Anthony \\""Tony\\"" Starkweather"\tMarvel Comics\tMarvel\t'
    "fivethirtyeight_comics\tcomic_character\tappearances=900\t",
    "Cloudy\t\tMarvel Comics\tMarvel\tfivethirtyeight_comics\tcomic_character\tappearances=300\t",
    "107\t\tMarvel Comics\tMarvel\tfivethirtyeight_comics\tcomic_character\tappearances=1\t"
    "common_word=1",
    "Zappachu\tLucky|Zappachou\tPokémon\tGame Freak\tpokeapi\tgame_character\t\t",
]
BRANDS = ["name\taliases\tcategory\tsource\tnotes", "Pebble\t\t\tlogodet3k\tcommon_word=1"]
TRAIN = [
    {"text": "cloudy skies over a calm lake", "labels": [], "source": "coco_captions_esd"},
    {"text": "a cloudy morning in the city", "labels": [], "source": "didemo"},
]


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory: pytest.TempPathFactory) -> Gazetteer:
    root = tmp_path_factory.mktemp("kit")
    src = root / "gazetteers"
    src.mkdir()
    (src / "people.tsv").write_text("\n".join(PEOPLE) + "\n", encoding="utf-8")
    (src / "ip.tsv").write_text("\n".join(IP) + "\n", encoding="utf-8")
    (src / "brands.tsv").write_text("\n".join(BRANDS) + "\n", encoding="utf-8")
    (root / "train.jsonl").write_text("\n".join(json.dumps(r) for r in TRAIN) + "\n")
    out = root / "data"
    result = CliRunner().invoke(build_gazetteers_command, ["--source", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "entries" in result.output
    return Gazetteer(out / "gazetteer.tsv.gz")


def _rows(g: Gazetteer) -> dict[str, tuple[str, float, str]]:
    with gzip.open(g.path, "rt", encoding="utf-8") as f:
        lines = [line.split("\t") for line in f if not line.startswith(("#", "_"))]
    return {c[1]: (c[3], float(c[4]), c[7].strip()) for c in lines}


def test_build_tiers_and_drops(tiny_build: Gazetteer) -> None:
    rows = _rows(tiny_build)
    assert rows["Zorblax Quintero"][:2] == ("pantheon", 0.9)
    assert rows["Old Mastermind"][0] == "historical" and rows["Old Mastermind"][1] < REVIEW_AT
    assert rows["Newsy McNewsface"][1] < REVIEW_AT  # LFW-only: evidence, not a block
    assert "孙子" not in rows  # 2-character THUOCL entries are dropped
    assert rows["王大锤子"][0] == "zh_famous_person_unverified"
    assert "107" not in rows  # digits only: not a name


def test_build_marks_common_words_and_extra_forms(tiny_build: Gazetteer) -> None:
    rows = _rows(tiny_build)
    assert "?jennie" in rows["Kim Jennie"][2].split("|")  # stage name: only with its group
    assert "~cloudy" in rows["Cloudy"][2].split("|")  # an ordinary word in benign captions
    assert "~pebble" in rows["Pebble"][2].split("|")  # kit common_word flag
    assert "tony starkweather" in rows["Iron Fellow"][2].split("|")  # nickname form
    assert "zorblaxquintero" in rows["Zorblax Quintero"][2].split("|")  # joined form


def test_build_marks_names_that_are_ordinary_english(tiny_build: Gazetteer) -> None:
    """The English lexicon (wordfreq + Webster's list + the list's given names) at build time."""
    rows = _rows(tiny_build)
    assert rows["The Boulder"][2].split("|")[0] == "~the boulder"  # "the" + an everyday word
    assert rows["Sandra"][2] == "?sandra"  # a given name: a capital is no evidence
    assert rows["Beach Towel"][2].split("|")[0] == "~beach towel"  # two everyday words
    assert rows["Will Smithers"][2].split("|")[0] == "will smithers"  # starts with a given name
    keys = rows["Zappachu"][2].split("|")
    assert "zappachu" in keys and "~lucky" in keys and "zappachou" in keys  # foreign names


def test_build_without_the_lexicon_packages_says_how_to_install_them(
    tiny_build: Gazetteer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wordfreq", None)  # import fails as if not installed
    src = tiny_build.path.parent.parent / "gazetteers"
    result = CliRunner().invoke(
        build_gazetteers_command, ["--source", str(src), "--out", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert "wordfreq" in result.output and "pip install" in result.output, result.output


def test_built_file_is_deterministic(tiny_build: Gazetteer, tmp_path: Path) -> None:
    src = tiny_build.path.parent.parent / "gazetteers"
    result = CliRunner().invoke(
        build_gazetteers_command, ["--source", str(src), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "gazetteer.tsv.gz").read_bytes() == tiny_build.path.read_bytes()


def test_build_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        build_gazetteers_command, ["--source", str(tmp_path), "--no-benign"]
    )
    assert result.exit_code != 0
    assert "people.tsv: not found" in result.output


def test_tiny_build_matches(tiny_build: Gazetteer) -> None:
    clf = GazetteerClassifier(gazetteer=tiny_build)
    assert {v.category: v.score for v in clf.classify(normalize("Zorblax Quintero waves"))}[
        "celebrity"
    ] == 0.9
    assert all(v.score == 0 for v in clf.classify(normalize("a cloudy day")))
    (ip,) = [
        v
        for v in clf.classify(normalize("Cloudy, a superhero from Marvel Comics"))
        if v.category == "ip"
    ]
    assert any(
        e.text == "Cloudy" and "tier=character; context" in (e.detail or "") for e in ip.evidence
    )


def test_cli_registers_build_gazetteers() -> None:
    from gateway.cli import COMMANDS, main

    assert COMMANDS["build-gazetteers"] is build_gazetteers_command
    result = CliRunner().invoke(main, ["build-gazetteers", "-h"])
    assert result.exit_code == 0 and "--source" in result.output, result.output


def test_shipped_keys_match_the_current_normaliser() -> None:
    """The shipped keys were made by normalize(); if it changes, rebuild the file."""
    from classifiers.text.curated_names import load_curated
    from classifiers.text.normalize import normalize_key

    g = load_gazetteer()
    curated = load_curated()
    for name, _, _ in curated.people + curated.ip:
        key = normalize_key(name.lstrip("~"))
        assert key in g.phrases, f"{name!r} -> {key!r} missing: run `reelguard build-gazetteers`"


def test_curated_table_ships_as_data_and_a_broken_file_is_named(tmp_path: Path) -> None:
    """The curated names live in data/curated_names.json (package data); a missing or
    malformed copy is an error naming the file, not a KeyError from deep in the build."""
    from classifiers.text.curated_names import DATA_PATH, load_curated

    curated = load_curated()
    assert DATA_PATH.parent.name == "data" and DATA_PATH.is_file()
    assert ("Taylor Swift", ("泰勒·斯威夫特", "泰勒斯威夫特", "霉霉", "泰勒絲"), "musician") in (
        curated.people
    )
    assert "Canon" in curated.brands and "camera" in curated.context["Canon"]
    assert all(isinstance(a, tuple) for _, a, _ in curated.people + curated.ip)
    for text in (None, '{"people": []}'):
        path = tmp_path / "curated_names.json"
        if text is not None:
            path.write_text(text, encoding="utf-8")
        with pytest.raises(RuntimeError, match=r"curated_names\.json: cannot read"):
            load_curated(path)
