"""Iconic characters described without their name ("a young mermaid with long red hair").

A compact, hand-written table: for each of the most-requested characters, one or more rules,
each a list of keyword groups that must all occur near each other in the prompt (within
:data:`WINDOW` words of the first group's match). A group is a tuple of alternatives (a word
or a phrase; a final ``s``/``es`` plural also matches). The first group of a rule is its
anchor (the rarest feature: "mermaid", "hedgehog", "plumber"), so a prompt is checked only
against the rules whose anchor word it contains: a few dictionary look-ups per word, well under
a millisecond on any prompt, and every hit is explainable by the words it matched.

A description hit scores :data:`DESCRIPTION_SCORE` (review at the default policy, not block):
a description is weaker evidence than a name, and a reviewer decides. Rules want two or three
distinctive features together ("mermaid" + "red hair", "hedgehog" + "blue"), never one
everyday word, so that "a mermaid with blonde hair" or "a hedgehog in the garden" stay clean.
English only: Chinese descriptions are not covered.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from classifiers.text.normalize import WORD_RE, normalize

__all__ = ["DESCRIPTIONS", "DESCRIPTION_SCORE", "DescriptionHit", "DescriptionMatcher"]

DESCRIPTION_SCORE = 0.4
"""Score of a description hit: at the default ip ``review_at`` (0.35), under ``block_at``."""
WINDOW = 20
"""Every group must match within this many words of the anchor's match."""

Rule = tuple[tuple[str, ...], ...]

DESCRIPTIONS: tuple[tuple[str, str, tuple[Rule, ...]], ...] = (
    # (character, franchise, rules); each rule: groups that must all match, anchor first.
    ("Ariel", "Disney (The Little Mermaid)", (
        (("mermaid",), ("red hair", "red haired", "redhead", "red headed", "ginger hair",
                        "auburn hair", "crimson hair", "flowing red", "long red")),
        (("mermaid",), ("green tail", "green fin"), ("purple shell", "seashell bra",
                                                      "shell bra", "purple bikini", "red")),
    )),
    ("Pikachu", "Pokémon", (
        (("yellow",), ("mouse", "rodent", "creature", "pokemon like"),
         ("electric", "electricity", "lightning", "thunder", "red cheeks", "rosy cheeks",
          "lightning bolt tail")),
    )),
    ("Sonic the Hedgehog", "Sega", (
        (("hedgehog",), ("blue",)),
        (("hedgehog",), ("red sneakers", "red shoes", "gold rings", "golden rings",
                         "chaos emerald", "supersonic")),
    )),
    ("Mario", "Nintendo (Super Mario)", (
        (("plumber",), ("red cap", "red hat", "italian", "mushroom", "princess", "koopa",
                        "goomba", "green pipe", "warp pipe")),
    )),
    ("Shrek", "DreamWorks", (
        (("ogre",), ("green", "swamp", "trumpet ears", "donkey")),
    )),
    ("SpongeBob SquarePants", "Nickelodeon", (
        (("sponge",), ("square pants", "squarepants", "brown pants", "pineapple",
                       "bikini bottom", "under the sea", "undersea", "krabby patty",
                       "fry cook", "jellyfishing")),
    )),
    ("Harry Potter", "Warner Bros.", (
        (("wizard",), ("lightning scar", "lightning bolt scar", "scar on his forehead",
                       "lightning shaped scar")),
        (("boy wizard", "young wizard", "teenage wizard"), ("round glasses", "broomstick",
                                                            "snowy owl", "scar")),
    )),
    ("Darth Vader", "Star Wars (Lucasfilm)", (
        (("dark lord", "sith lord", "sith"), ("black armor", "black armour", "black helmet",
                                             "black mask", "breathing mask", "respirator",
                                             "black cape", "heavy breathing")),
        (("breathing mask", "respirator mask", "mechanical breathing"),
         ("black armor", "black armour", "black helmet", "black cape")),
    )),
    ("Yoda", "Star Wars (Lucasfilm)", (
        (("pointy ears", "pointed ears", "long ears", "big ears"), ("green",),
         ("alien", "master", "wise", "jedi", "small creature", "tiny creature",
          "old creature")),
    )),
    ("Elsa", "Disney (Frozen)", (
        (("snow queen", "ice queen"), ("blonde", "platinum", "braid", "ice palace",
                                       "ice castle", "ice powers", "ice magic", "her magic",
                                       "singing")),
        (("princess", "queen"), ("ice powers", "ice magic", "freezing powers", "creates ice",
                                 "ice palace"), ("blonde", "braid", "platinum")),
    )),
    ("Woody", "Disney/Pixar (Toy Story)", (
        (("cowboy",), ("toy", "doll", "action figure"), ("pull string", "sheriff badge",
                                                        "sheriff")),
    )),
    ("Buzz Lightyear", "Disney/Pixar (Toy Story)", (
        (("space ranger",), ("toy", "action figure", "figure", "wings", "purple")),
        (("astronaut", "spaceman"), ("toy", "action figure"), ("wings",), ("purple", "green")),
    )),
    ("WALL-E", "Disney/Pixar", (
        (("robot",), ("trash", "garbage", "rubbish", "compacting", "compactor",
                      "compacts"), ("abandoned earth", "deserted earth", "binocular eyes",
                                    "treads", "rusty", "empty earth")),
    )),
    ("Nemo", "Disney/Pixar (Finding Nemo)", (
        (("clownfish", "clown fish"), ("lucky fin", "small fin", "little fin", "tiny fin",
                                       "his father", "his dad", "his son", "lost son",
                                       "searching the ocean")),
    )),
    ("Garfield", "Paws Inc.", (
        (("cat",), ("lasagna", "lasagne", "hates mondays", "hate mondays")),
    )),
    ("Mickey Mouse", "Disney", (
        (("mouse",), ("red shorts",)),
        (("mouse",), ("white gloves",), ("round ears", "round black ears", "big round ears",
                                         "black ears")),
    )),
    ("Donald Duck", "Disney", (
        (("duck",), ("sailor suit", "sailor shirt", "sailor hat", "sailor outfit",
                     "sailor cap")),
    )),
    ("Doraemon", "Fujiko Pro", (
        (("robot cat", "robotic cat", "cat robot"), ("blue", "pocket", "gadget",
                                                     "from the future")),
        (("blue cat",), ("robot", "magic pocket", "gadgets", "from the future")),
    )),
    ("Totoro", "Studio Ghibli", (
        (("forest spirit",), ("giant", "big", "grey", "gray", "fluffy", "bus stop",
                              "umbrella")),
    )),
    ("Son Goku", "Dragon Ball (Toei / Shueisha)", (
        (("saiyan", "super saiyan", "kamehameha"),),
    )),
    ("Naruto Uzumaki", "Naruto (Shueisha)", (
        (("ninja",), ("orange jumpsuit", "orange outfit", "whisker marks", "whiskers",
                      "nine tailed fox", "hidden leaf")),
    )),
    ("Monkey D. Luffy", "One Piece (Shueisha)", (
        (("straw hat",), ("pirate",), ("rubber", "stretch", "stretching", "stretchy")),
    )),
    ("Kirby", "Nintendo", (
        (("puffball", "puff ball"), ("pink",)),
        (("pink",), ("round creature", "ball creature", "blob"), ("inhale", "inhaling",
                                                                  "inhales", "swallowing")),
    )),
    ("Minions", "Illumination", (
        (("pill shaped", "capsule shaped"), ("yellow",)),
        (("goggles",), ("yellow",), ("overalls", "henchmen", "henchman")),
    )),
    ("Chewbacca", "Star Wars (Lucasfilm)", (
        (("wookiee", "wookie"),),
    )),
    ("Lightning McQueen", "Disney/Pixar (Cars)", (
        (("race car", "racecar", "racing car"), ("red",), ("lightning bolt", "big eyes",
                                                           "cartoon eyes", "talking")),
    )),
    ("Peppa Pig", "Hasbro", (
        (("pig",), ("muddy puddles", "jumping in puddles", "puddles"),
         ("pink", "cartoon", "family")),
    )),
    ("Hello Kitty", "Sanrio", (
        (("white cat", "white kitten"), ("red bow", "pink bow"),
         ("no mouth", "cartoon", "cute character")),
    )),
    ("Spider-Man", "Marvel", (
        (("red and blue suit", "red and blue costume", "red blue suit", "blue and red suit"),
         ("web", "spider", "swinging", "skyscrapers")),
        (("web slinging", "web slinger", "shoots webs", "shooting webs"),
         ("hero", "superhero", "suit", "costume", "masked")),
    )),
    ("Iron Man", "Marvel", (
        (("armored suit", "armor suit", "armoured suit", "power armor", "iron suit",
          "mech suit"), ("red and gold", "gold and red")),
        (("repulsor", "arc reactor"), ("suit", "armor", "armour", "billionaire")),
    )),
    ("Hulk", "Marvel", (
        (("green",), ("giant", "monster", "muscular", "brute"), ("smash", "smashing",
                                                                 "smashes", "rage",
                                                                 "purple shorts",
                                                                 "torn purple")),
    )),
    ("Indiana Jones", "Lucasfilm", (
        (("fedora",), ("whip", "bullwhip")),
        (("archaeologist", "adventurer"), ("bullwhip", "rolling boulder")),
    )),
    ("Kratos", "God of War (Sony)", (
        (("spartan",), ("ash", "ashen", "pale", "white skin", "chained blades",
                        "blades of chaos", "red tattoo")),
        (("red tattoo",), ("bald",), ("warrior", "beard", "axe", "blades")),
    )),
    ("Link", "The Legend of Zelda (Nintendo)", (
        (("elf", "elven", "hylian"), ("green tunic", "green cap", "pointed cap",
                                      "master sword", "green hat")),
    )),
    ("Princess Peach", "Nintendo (Super Mario)", (
        (("mushroom kingdom",), ("princess",)),
    )),
    ("Yoshi", "Nintendo (Super Mario)", (
        (("dinosaur", "dino"), ("saddle",)),
        (("dinosaur", "dino"), ("long tongue",), ("green",)),
    )),
    ("Pac-Man", "Bandai Namco", (
        (("maze",), ("ghosts",), ("dots", "pellets", "yellow")),
    )),
    ("Bugs Bunny", "Looney Tunes (Warner Bros.)", (
        (("rabbit", "bunny", "hare"), ("what s up doc", "whats up doc")),
        (("grey rabbit", "gray rabbit"), ("carrot",), ("cartoon",)),
    )),
    ("Scooby-Doo", "Warner Bros.", (
        (("great dane",), ("mystery", "mysteries", "mystery machine", "van", "detective",
                           "scooby snacks")),
        (("dog",), ("mystery machine",)),
    )),
    ("The Simpsons", "Disney", (
        (("springfield",), ("yellow",), ("family", "cartoon", "couch", "donut")),
    )),
    ("Batman", "DC", (
        (("bat costume", "bat suit", "batsuit", "bat cowl", "bat symbol", "bat emblem",
          "bat signal"), ("vigilante", "hero", "superhero", "knight", "rooftop", "cape",
                          "gotham", "night")),
        (("dark knight",), ("vigilante", "cape", "rooftop", "gothic", "city")),
    )),
    ("Superman", "DC", (
        (("s on his chest", "s emblem", "s symbol", "s shield", "letter s"),
         ("cape", "blue suit", "flying", "superhero", "hero")),
        (("blue suit",), ("red cape",), ("flying", "superhero", "hero", "alien")),
    )),
    ("Wonder Woman", "DC", (
        (("golden lasso", "lasso of truth"),),
        (("amazon", "amazonian"), ("warrior princess", "warrior"), ("lasso", "bracelets",
                                                                  "tiara")),
    )),
    ("Thanos", "Marvel", (
        (("infinity stones",),),
        (("gauntlet",), ("purple",), ("titan", "giant", "alien")),
    )),
    ("Deadpool", "Marvel", (
        (("mercenary",), ("red suit",), ("katana", "jokes", "wisecracking",
                                         "fourth wall")),
    )),
    ("Wolverine", "Marvel", (
        (("adamantium",),),
        (("claws",), ("knuckles",), ("metal", "steel", "sideburns", "mutant")),
    )),
    ("Kiki", "Studio Ghibli (Kiki's Delivery Service)", (
        (("witch",), ("broomstick", "broom"), ("black cat",), ("deliver", "delivering",
                                                              "delivery", "bread",
                                                              "bakery")),
    )),
    ("Simba", "Disney (The Lion King)", (
        (("lion cub",), ("held up", "held aloft", "presented", "raised up", "pride rock",
                         "lifted up")),
    )),
    ("Baymax", "Disney (Big Hero 6)", (
        (("inflatable",), ("robot",), ("healthcare", "nurse", "medical", "hug", "hugging")),
    )),
    ("Winnie the Pooh", "Disney", (
        (("bear",), ("honey pot", "honey jar", "hunny", "pot of honey"),
         ("red shirt", "red t shirt", "red top", "head stuck")),
    )),
    ("Stitch", "Disney (Lilo & Stitch)", (
        (("alien",), ("blue",), ("koala", "big ears", "hawaii", "hawaiian")),
        (("blue koala",),),
    )),
    ("Patrick Star", "Nickelodeon (SpongeBob SquarePants)", (
        (("starfish",), ("pink",), ("green shorts", "shorts", "cartoon", "under a rock")),
    )),
    ("Minecraft", "Mojang (Microsoft)", (
        (("blocky", "pixelated", "voxel"), ("creeper", "pickaxe", "diamond ore", "enderman")),
    )),
    ("Among Us", "Innersloth", (
        (("crewmate",),),
    )),
    ("Godzilla", "Toho", (
        (("kaiju", "giant lizard", "giant reptile"), ("atomic breath", "radioactive breath",
                                                       "blue breath")),
    )),
    ("Optimus Prime", "Hasbro (Transformers)", (
        (("robot",), ("transforms into", "transforming into", "turns into"),
         ("truck", "semi truck", "big rig")),
    )),
    ("Bumblebee", "Hasbro (Transformers)", (
        (("robot",), ("transforms into", "transforming into", "turns into"),
         ("yellow car", "yellow camaro", "camaro")),
    )),
    ("Teenage Mutant Ninja Turtles", "Paramount", (
        (("turtle",), ("ninja",), ("pizza", "sewer", "masks", "mutant", "teenage")),
    )),
    ("Ghostbusters", "Sony Pictures", (
        (("proton pack",),),
    )),
    ("Stormtrooper", "Star Wars (Lucasfilm)", (
        (("white armor", "white armour", "white armored"), ("soldier", "trooper"),
         ("empire", "imperial", "blaster")),
    )),
    ("James Bond", "Eon Productions / MGM", (
        (("secret agent", "spy"), ("tuxedo",), ("martini", "aston martin", "shaken")),
    )),
    ("Captain America", "Marvel", (
        (("star spangled", "stars and stripes"), ("shield",)),
        (("round shield",), ("star",), ("red white and blue",)),
    )),
    ("The Grinch", "Dr. Seuss Enterprises", (
        (("green",), ("christmas",), ("steal", "stealing", "stole", "hates", "grumpy"),
         ("furry", "creature", "mean one")),
    )),
    ("Gollum", "Middle-earth (Tolkien Estate / Warner Bros.)", (
        (("my precious",), ("creature", "ring")),
    )),
    ("Snoopy", "Peanuts Worldwide", (
        (("beagle",), ("doghouse", "dog house"), ("roof", "sleeping on", "cartoon",
                                                  "flying ace")),
    )),
    ("Joker", "DC (Batman)", (
        (("green hair",), ("purple suit",)),
    )),
    ("Harley Quinn", "DC", (
        (("pigtails",), ("baseball bat",), ("clown", "jester", "makeup")),
    )),
    ("Rick and Morty", "Adult Swim", (
        (("portal gun",),),
    )),
    ("Barbie", "Mattel", (
        (("fashion doll", "blonde doll"), ("pink",), ("dreamhouse", "dream house",
                                                      "convertible", "malibu")),
    )),
    ("Charizard", "Pokémon", (
        (("orange dragon",), ("flame tail", "flaming tail", "tail flame", "fire on its tail",
                              "tail on fire")),
    )),
    ("Gandalf", "Middle-earth (Tolkien Estate / Warner Bros.)", (
        (("you shall not pass",),),
    )),
    ("Jack Sparrow", "Pirates of the Caribbean (Disney)", (
        (("pirate",), ("dreadlocks",), ("eyeliner", "kohl", "beads", "black pearl")),
    )),
    ("Freddy Krueger", "New Line Cinema", (
        (("striped sweater",), ("bladed glove", "claw glove", "razor glove", "knife glove")),
    )),
    ("Jason Voorhees", "Friday the 13th", (
        (("hockey mask",), ("machete",)),
    )),
    ("Pennywise", "It (Warner Bros.)", (
        (("clown",), ("red balloon",), ("sewer", "storm drain", "killer", "creepy")),
    )),
    ("E.T.", "Universal", (
        (("alien",), ("bicycle", "bike"), ("moon",)),
        (("alien",), ("phone home", "glowing finger")),
    )),
    ("Sully", "Disney/Pixar (Monsters, Inc.)", (
        (("monster",), ("blue",), ("purple spots",)),
    )),
    ("Mike Wazowski", "Disney/Pixar (Monsters, Inc.)", (
        (("one eye", "one eyed", "single eye", "one big eye", "cyclops"), ("green",),
         ("monster", "ball", "round")),
    )),
    ("Tails", "Sega (Sonic)", (
        (("fox",), ("two tails", "twin tails"), ("orange", "flying", "propeller")),
    )),
    ("Mega Man", "Capcom", (
        (("arm cannon", "blaster arm", "mega buster"), ("blue",), ("robot", "android")),
    )),
    ("Master Chief", "Halo (Microsoft)", (
        (("gold visor", "golden visor", "orange visor"), ("green armor", "green armour",
                                                           "green armored")),
    )),
    ("Lara Croft", "Tomb Raider (Crystal Dynamics)", (
        (("dual pistols", "two pistols", "twin pistols"), ("adventurer", "explorer",
                                                           "archaeologist", "heroine",
                                                           "tomb")),
    )),
    ("Geralt of Rivia", "The Witcher (CD Projekt)", (
        (("white hair", "white haired"), ("monster hunter",), ("sword", "swords",
                                                              "medallion")),
    )),
    ("Cloud Strife", "Final Fantasy (Square Enix)", (
        (("spiky blonde hair", "spiky blond hair"), ("giant sword", "huge sword",
                                                     "buster sword", "oversized sword")),
    )),
    ("Donkey Kong", "Nintendo", (
        (("gorilla", "ape"), ("barrels",), ("tie", "red tie", "girders")),
    )),
    ("Cuphead", "Studio MDHR", (
        (("cup for a head", "teacup head", "cup headed"),),
    )),
    ("Tom and Jerry", "Warner Bros.", (
        (("cat",), ("mouse",), ("chase", "chasing", "chases"), ("cartoon",)),
    )),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DescriptionHit:
    """A rule that matched: the character, the anchor's word span, the words that matched."""

    character: str
    franchise: str
    start: int
    """Index of the anchor's first word (in the prompt's word list)."""
    end: int
    """One past the anchor's last word."""
    matched: tuple[str, ...]


def _tokens(phrase: str) -> tuple[str, ...]:
    return tuple(WORD_RE.findall(normalize(phrase).normalized))


class DescriptionMatcher:
    """The compiled table. Immutable and thread-safe after construction."""

    def __init__(self, table: Sequence[tuple[str, str, Sequence[Rule]]] = DESCRIPTIONS) -> None:
        self.rules: list[tuple[str, str, tuple[tuple[tuple[str, ...], ...], ...]]] = []
        self.anchors: dict[str, list[tuple[int, tuple[str, ...]]]] = defaultdict(list)
        for character, franchise, rules in table:
            for rule in rules:
                groups = tuple(tuple(_tokens(alt) for alt in group) for group in rule)
                index = len(self.rules)
                self.rules.append((character, franchise, groups))
                for alt in groups[0]:
                    self.anchors[alt[0]].append((index, alt))

    def find(self, words: Sequence[str]) -> list[DescriptionHit]:
        """Rules that match ``words`` (normalised words of one prompt), one hit per character."""
        hits: list[DescriptionHit] = []
        seen: set[str] = set()
        where: dict[str, list[int]] | None = None
        for i, word in enumerate(words):
            for index, alt in self.anchors.get(word, ()):
                character, franchise, groups = self.rules[index]
                if character in seen or not _at(words, i, alt):
                    continue
                if where is None:
                    where = _positions(words)
                lo, hi = i - WINDOW, i + len(alt) + WINDOW
                matched = [" ".join(alt)]
                for group in groups[1:]:
                    found = _first(words, where, lo, hi, group)
                    if found is None:
                        break
                    matched.append(found)
                else:
                    seen.add(character)
                    hits.append(DescriptionHit(character, franchise, i, i + len(alt),
                                               tuple(matched)))  # fmt: skip
        return hits


def _positions(words: Sequence[str]) -> dict[str, list[int]]:
    """Word -> its positions, with a plural's singular (``hedgehogs``, ``boxes``) as well."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, word in enumerate(words):
        out[word].append(i)
        if word.endswith("s"):
            out[word[:-1]].append(i)
            if word.endswith("es"):
                out[word[:-2]].append(i)
    return out


def _at(words: Sequence[str], i: int, alt: tuple[str, ...]) -> bool:
    """Does phrase ``alt`` start at word ``i`` (its last word may carry a plural s/es)?"""
    if i + len(alt) > len(words):
        return False
    for k, token in enumerate(alt):
        word = words[i + k]
        if word == token:
            continue
        if k == len(alt) - 1 and word in (token + "s", token + "es"):
            continue
        return False
    return True


def _first(
    words: Sequence[str],
    where: dict[str, list[int]],
    lo: int,
    hi: int,
    group: tuple[tuple[str, ...], ...],
) -> str | None:
    """The first alternative of ``group`` that occurs starting within ``[lo, hi)``."""
    for alt in group:
        for i in where.get(alt[0], ()):
            if lo <= i < hi and _at(words, i, alt):
                return " ".join(alt)
    return None
