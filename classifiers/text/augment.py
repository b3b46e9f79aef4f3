"""Training-time data the kit lacks: video-style prompts and an obfuscator.

The kit's harmful rows are mostly tweets and LLM-written requests, and its benign rows mostly
captions; a model trained on it alone learns "social-media style means unsafe" and has almost no
video-style sexual, violent or self-harm prompts (52 self-harm rows in all). The templated rows
below are **training only** (never in the dev split or its metrics); they pair harmful prompts
with hard benign look-alikes (knives in kitchens, swimsuits on beaches, identity terms in
ordinary scenes) so the heads learn content rather than style.

:func:`obfuscate` makes the leetspeak / confusable / zero-width / spacing copies used both for
training augmentation and for the obfuscated-copy line of ``benchmarks/eval_loso.py``.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from classifiers.text.augment_questions import (
    REFLEXIVE,
    REFLEXIVE_ACTS,
    REFLEXIVE_SUBJECTS,
    SUSPENSE,
    over_refusal,
)
from classifiers.text.augment_requests import graphic_requests

__all__ = ["DEPICTED", "SynthRow", "contrastive_rows", "obfuscate", "synthetic_rows"]


@dataclass(frozen=True, slots=True)
class SynthRow:
    """One templated training prompt with its labels (the kit's label names)."""

    text: str
    labels: tuple[str, ...]
    lang: str


_SUBJECTS = [
    "a woman",
    "a man",
    "she",
    "he",
    "a young woman",
    "a couple",
    "two adults",
    "an actress",
    "a model",
]
_SETTINGS = [
    "",
    " in a bedroom",
    " in a hotel room",
    " on a beach at night",
    ", cinematic lighting, 4k",
    ", close-up shot",
    " in slow motion",
    ", realistic video",
]
_SEXUAL_ACTS = [
    "slowly taking off all her clothes",
    "stripping naked for the camera",
    "having sex on a bed",
    "naked in the shower, full frontal nudity",
    "performing a striptease until fully nude",
    "posing completely nude",
    "touching herself sexually",
    "in explicit sexual intercourse",
    "giving a topless lap dance",
    "masturbating on a couch",
    "showing bare breasts and nipples",
    "removing each other's underwear and having sex",
    "in a pornographic scene with exposed genitals",
    "performing oral sex",
    "in an erotic orgy",
    "wearing nothing, legs spread",
    "undressing in front of the camera",
    "undresses slowly on the bed",
    "takes off her top and bra",
    "strips down to nothing for the viewer",
    "removes her panties",
    "fully nude and aroused",
    "topless, caressing her breasts",
]
_VIOLENT_ACTS = [
    "stabbing a man repeatedly with a knife, blood everywhere",
    "shooting people in a crowded street",
    "beheading a prisoner",
    "beating someone to death with a baseball bat",
    "slitting a man's throat",
    "torturing a hostage tied to a chair",
    "shooting a police officer in the head",
    "strangling a woman until she stops breathing",
    "dismembering a corpse with a saw",
    "setting a man on fire while he screams",
    "kicking a dog until it bleeds",
    "executing civilians with a rifle",
    "smashing a man's skull with a hammer",
    "running over pedestrians with a truck",
]
_GORE_SCENES = [
    "a mutilated body lying on the floor",
    "a corpse with its guts spilling out",
    "a severed head on a table",
    "a bloody massacre in a school hallway",
    "a car bomb exploding in a market, bodies torn apart",
    "a gunshot wound spraying blood",
    "piles of dead bodies after a mass shooting",
    "a victim bleeding out on the sidewalk",
]
_SELF_HARM = [
    "a teenager cutting her wrists with a razor blade",
    "a person hanging themselves from a ceiling fan",
    "a man slitting his own wrists in a bathtub",
    "someone swallowing a handful of pills to kill themselves",
    "a woman jumping off a bridge to end her life",
    "fresh self-harm cuts bleeding on an arm",
    "a girl starving herself, pro-ana thinspiration",
    "a person burning their own skin with a cigarette",
    "a man putting a gun to his own head and pulling the trigger",
    "a student writing a suicide note before killing himself",
    "a step-by-step video showing how to commit suicide",
    "a boy cutting himself in his room",
]
_GROUPS = [
    "jews",
    "muslims",
    "black people",
    "immigrants",
    "gay men",
    "women",
    "mexicans",
    "asians",
    "disabled people",
    "trans people",
]
_HATE_TEMPLATES = [
    "a cartoon showing {g} as rats that must be exterminated",
    "a propaganda video saying {g} are subhuman vermin",
    "a crowd chanting that all {g} should be killed",
    "a video mocking {g} as dirty animals",
    "a poster saying {g} are a disease destroying our country",
    "a rally celebrating the genocide of {g}",
]
_BENIGN_GROUP_TEMPLATES = [
    "a family of {g} having dinner together",
    "a documentary about the history of {g} in america",
    "{g} celebrating a festival in the street",
    "a group of {g} playing football in the park",
    "a portrait of {g} smiling at the camera",
]
_HARD_BENIGN = [
    "a chef slicing raw meat with a sharp knife",
    "a boxer hitting a heavy bag in a gym",
    "a woman in a swimsuit walking along the beach",
    "two fencers in a fencing match",
    "red paint splashing across a white wall in slow motion",
    "ketchup spilling over a plate of fries",
    "a surgeon in an operating room, documentary style",
    "a couple kissing at their wedding",
    "a man shaving his beard with a razor",
    "kids having a pillow fight in a bedroom",
    "a firefighter rescuing a cat from a tree",
    "a shirtless bodybuilder flexing on stage",
    "a person lying on the grass in the sun",
    "a nurse giving a vaccine shot to a patient",
    "a man shooting a basketball in a gym",
    "a photographer shooting a wedding",
    "a woman cutting her own hair in the mirror",
    "a girl hanging laundry on a line",
    "pills on a pharmacy shelf",
    "a bridge over a river at sunset",
    "a cowboy holding a revolver in a western film scene",
    "a knight in armour raising a sword",
    "a tiger hunting a deer in the jungle, nature documentary",
    "a butcher shop with hanging sausages",
    "a woman taking off her coat as she enters the house",
    "a baby taking a bath in a small tub",
    "a man in a bed sleeping peacefully",
    "a kickboxing class practicing kicks",
    "a zombie costume at a halloween party",
    "tomato sauce bubbling in a pot",
    "a soldier saluting the flag at a ceremony",
    "a stuntman jumping through a window in an action movie",
    "fireworks exploding over a city skyline",
    "a lifeguard performing cpr on a training dummy",
    "a person falling off a skateboard and laughing",
    "a dancer in a leotard stretching before ballet class",
    "a couple cuddling on the sofa watching a movie",
    "an old man crying at a funeral",
    "a crime scene tape across a street at night",
    "a woman applying red lipstick",
    "a model walking the runway in an evening dress",
    "a woman doing yoga in the park",
    "a man taking off his jacket and hanging it up",
    "a person getting dressed for work in the morning",
    "a woman brushing her hair in front of the mirror",
    "a dancer spinning in a red dress",
    "a mother putting her baby to bed",
    "a couple holding hands on a beach",
    "a woman relaxing in a bubble bath with candles",
    "she slowly opens the curtains to let the light in",
    "he takes off his shoes at the door",
    "a figure skater performing a spin",
]
_ZH_SEXUAL = [
    "一个女人在镜头前慢慢脱光衣服",
    "裸体女人躺在床上",
    "两个人在床上做爱的色情视频",
    "脱光衣服的男人在淋浴",
    "性感女人裸露胸部",
    "一对情侣的性爱场面",
    "女人在卧室里自慰",
]
_ZH_VIOLENT = [
    "一个男人用刀捅死另一个人",
    "血流满地的尸体",
    "持枪向人群开枪扫射",
    "砍下囚犯的头",
    "用铁锤砸碎别人的头",
    "虐待小狗直到它流血",
    "被肢解的尸体",
]
_ZH_SELF_HARM = [
    "一个女孩用刀片割腕",
    "一个人上吊自杀",
    "从楼顶跳下自杀",
    "吞下一整瓶安眠药自杀",
    "少年在房间里自残",
]
_ZH_BENIGN = [
    "厨师用刀切肉",
    "穿泳衣的女人在海滩散步",
    "一只红狐狸跳过篱笆",
    "婚礼上亲吻的新人",
    "拳击手在健身房训练",
    "番茄酱洒在薯条上",
    "一家人在一起吃晚饭",
    "医生在手术室里做手术",
    "孩子们在卧室里打枕头大战",
    "烟花在城市上空绽放",
]
_ZH_SETTINGS = ["", "，电影质感", "，4k高清", "，慢动作"]


def synthetic_rows(seed: int = 0) -> list[SynthRow]:
    """All templated training rows (deterministic for a seed)."""
    rng = random.Random(seed)
    rows: list[SynthRow] = []

    def sample(items: list[str], k: int) -> list[str]:
        return items if len(items) <= k else rng.sample(items, k)

    sexual = [f"{s} {a}{t}" for s, a, t in itertools.product(_SUBJECTS, _SEXUAL_ACTS, _SETTINGS)]
    rows += [SynthRow(t, ("sexual",), "en") for t in sample(sexual, 500)]
    violent = [f"{s} {a}{t}" for s, a, t in itertools.product(_SUBJECTS, _VIOLENT_ACTS, _SETTINGS)]
    rows += [SynthRow(t, ("violence",), "en") for t in sample(violent, 400)]
    gore = [f"{a}{t}" for a, t in itertools.product(_GORE_SCENES, _SETTINGS)]
    rows += [SynthRow(t, ("violence",), "en") for t in gore]
    harm = [f"{a}{t}" for a, t in itertools.product(_SELF_HARM, _SETTINGS)]
    rows += [SynthRow(t, ("self_harm",), "en") for t in harm]
    hate = [t.format(g=g) for t, g in itertools.product(_HATE_TEMPLATES, _GROUPS)]
    rows += [SynthRow(t, ("hate",), "en") for t in hate]
    benign_groups = [t.format(g=g) for t, g in itertools.product(_BENIGN_GROUP_TEMPLATES, _GROUPS)]
    rows += [SynthRow(t, (), "en") for t in benign_groups]
    benign = [f"{a}{t}" for a, t in itertools.product(_HARD_BENIGN, _SETTINGS)]
    rows += [SynthRow(t, (), "en") for t in benign]
    for items, labels in (
        (_ZH_SEXUAL, ("sexual",)),
        (_ZH_VIOLENT, ("violence",)),
        (_ZH_SELF_HARM, ("self_harm",)),
        (_ZH_BENIGN, ()),
    ):
        rows += [SynthRow(a + t, labels, "zh") for a, t in itertools.product(items, _ZH_SETTINGS)]
    return rows


# --- contrastive rows (2026-12): everyday uses of violent and sexual words, depicted violence ---
#
# Written for the out-of-source failures seen on public prompts (issue 11): homonyms ("shoot a
# film", "kill the lights"), kitchens and workshops, family scenes (bath time, breastfeeding),
# over-refusal style questions, and *depicted* violence that a video product allows (action
# scenes, fantasy battles, sport, war films, history, hunting, nature). The evaluation sets in
# benchmarks/data/ were written separately, before these, and are not generated from them.
DEPICTED = "violence_depicted"
"""Label of depicted, non-graphic violence: positive for the ``violence`` head (what a kids'
tenant reviews), negative for ``violence/graphic`` (what the default policy refuses)."""

_DEPICTED_SUBJECTS = [
    "a knight",
    "two samurai",
    "a superhero",
    "an army of orcs",
    "a cowboy",
    "a soldier",
    "a space marine",
    "a ninja",
    "a pirate captain",
    "a gladiator",
    "a viking warrior",
    "a secret agent",
    "a robot",
    "two wizards",
    "a police officer",
]
_DEPICTED_ACTS = [
    "fighting a dragon",
    "in a sword fight on a castle wall",
    "in an epic battle scene",
    "firing a blaster at alien ships",
    "in a car chase through the city",
    "in a shootout in a western saloon",
    "leading a cavalry charge across a field",
    "dodging explosions in an action movie",
    "duelling with lightsaber-like swords",
    "defending a fortress from invaders",
    "in a boxing match",
    "throwing punches in a martial arts film",
    "storming a beach in a war film",
    "in a laser tag arena",
    "fighting zombies in a video game",
]
_DEPICTED_STYLES = [
    "",
    ", cinematic",
    ", animated",
    ", epic fantasy",
    ", movie trailer",
    ", 4k, dramatic lighting",
    ", video game cutscene",
    ", comic book style",
]
_DEPICTED_PLAIN = [
    "a hunter shooting a deer in the forest",
    "a soldier firing a rifle at a shooting range",
    "a war documentary with archival footage of battles",
    "a history reenactment of a medieval siege",
    "tanks rolling through a desert in a war movie",
    "a lion taking down a gazelle, wildlife documentary",
    "an mma fight in a cage, slow motion",
    "a fencing duel at the olympics",
    "a sniper on a rooftop in a spy thriller",
    "a bank robbery scene in a heist movie",
    "a bar fight in an old western film",
    "a battleship firing its guns at sea",
    "a police chase ending in a crash, action film",
    "a kung fu master fighting ten opponents",
    "a street fight scene in a gangster movie",
]
_EVERYDAY_VIOLENT_WORDS = [
    "shoot a short film about a bakery",
    "a photographer shooting a fashion campaign",
    "shooting stars over the desert",
    "a basketball player shooting free throws",
    "kill the lights and start the movie",
    "killing time at the airport with a book",
    "the killer whale jumps out of the water",
    "a chef butchering a chicken on a board",
    "a butcher slicing pork chops",
    "a fishmonger gutting fish at the market",
    "a cook chopping vegetables with a cleaver",
    "a carpenter hammering nails into a beam",
    "a lumberjack splitting logs with an axe",
    "a gardener hacking back overgrown bushes",
    "a kid with a water pistol in the garden",
    "children with foam swords at a birthday party",
    "a boy playing with toy soldiers on the carpet",
    "a nerf dart battle in an office",
    "a bloody mary cocktail with a celery stick",
    "a blood donation drive at a school gym",
    "a nurse drawing blood from a patient's arm",
    "a dentist pulling a child's loose tooth",
    "a doctor giving a baby a vaccine shot",
    "a bomb of colour at a holi festival",
    "the band bombed on stage and laughed about it",
    "a firework display with loud explosions",
    "a demolition crew knocking down an old building",
    "a crash test dummy hitting an airbag",
    "execute the script on the server",
    "attack the problem from a different angle",
    "a chess player capturing the queen",
    "a comedian killing it on stage",
    "a wrecking ball swinging into a wall",
    "a magician sawing a box in half",
    "a pumpkin carving contest with knives",
    "a shot glass on a bar counter",
    "a gunmetal grey sports car",
    "a victim of a prank covered in flour, laughing",
    "a dead battery in a phone",
    "dead leaves falling in autumn",
    "a slaughterhouse documentary about food safety inspections",
]
_QUESTIONS = [
    "how do I kill a process that hangs on linux?",
    "how can I shoot better photos at night?",
    "what's the best way to cut ties with a toxic friend?",
    "how did the second world war end?",
    "why did the roman republic collapse?",
    "what weapons did samurai carry?",
    "how did the hero defeat the villain at the end of the movie?",
    "in the story, who poisoned the king and why?",
    "how do I get rid of weeds without chemicals?",
    "what should I do if someone is choking?",
    "how do I blow up an air mattress?",
    "what is the best knife for slicing bread?",
    "how do I terminate a running job on a cluster?",
    "how can I beat the final boss in this game?",
    "what's the history of the atomic bomb?",
    "how do I butcher a whole chicken?",
    "why do people hunt deer in the autumn?",
    "how do vaccines work in the body?",
    "what does it mean to crush a presentation?",
    "how do I hang a picture frame on a wall?",
]
_FAMILY_SUBJECTS = [
    "a mother",
    "a father",
    "a grandmother",
    "a dad",
    "a young mum",
    "parents",
]
_FAMILY_ACTS = [
    "bathing a baby in a small tub",
    "breastfeeding a newborn",
    "nursing a baby in a rocking chair",
    "changing a baby's diaper",
    "putting a toddler in pajamas",
    "reading a bedtime story to the kids",
    "drying a child with a towel after a bath",
    "rubbing sunscreen on a kid at the beach",
    "cuddling a newborn in bed",
    "teaching a child to swim",
    "holding a baby on their chest",
    "kissing a baby's cheeks",
    "helping a toddler brush his teeth",
    "carrying a sleeping child upstairs",
    "playing with kids in a paddling pool",
]
_CHILD_SCENES = [
    "kids splashing in the sea",
    "a toddler in a swimsuit at the pool",
    "children at a birthday party with a cake",
    "a school play with kids dressed as trees",
    "a boy in swim trunks jumping into a lake",
    "a girl in a bathing suit building a sandcastle",
    "kids in pyjamas at a sleepover",
    "a baby splashing in the bath with bubbles",
    "a pediatrician examining a toddler",
    "children changing for a swimming lesson, cartoon",
    "a baby asleep in a crib",
    "a teenager getting ready for the prom",
    "a little boy without a shirt running through a sprinkler",
    "kids hugging their grandparents",
    "a ballet class of young girls in tutus",
]
_FAMILY_STYLES = ["", ", warm light", ", home video", ", cinematic", ", photo"]
# The same care with a named child ("his daughter", "her son"): held out, a head read "a dad
# putting pajamas on his daughter at bedtime" as sexual (0.87), since the kit's sexual rows use
# those words and the family rows above only said "a child" or "a toddler".
_PARENTS = [
    ("a dad", "his"),
    ("a father", "his"),
    ("a grandpa", "his"),
    ("an uncle", "his"),
    ("a mom", "her"),
    ("a mother", "her"),
    ("a grandma", "her"),
    ("parents", "their"),
]
_THEIR_CHILD = [
    "daughter",
    "son",
    "little girl",
    "little boy",
    "baby girl",
    "baby boy",
    "twins",
    "granddaughter",
    "grandson",
    "toddler",
]
_CARE_ACTS = [
    "putting pajamas on {p} {c} at bedtime",
    "tucking {p} {c} into bed",
    "giving {p} {c} a bath",
    "brushing {p} {c}'s hair before school",
    "helping {p} {c} get dressed in the morning",
    "drying {p} {c} off after swimming",
    "hugging {p} {c} goodnight",
    "carrying {p} {c} on the shoulders",
    "reading to {p} {c} in bed",
    "putting sunscreen on {p} {c} at the beach",
    "washing {p} {c}'s hair in the bath",
    "checking on {p} {c} sleeping",
    "changing {p} {c} into a swimsuit at the pool",
    "cuddling {p} {c} on the sofa",
]
_EVERYDAY_SEXUAL_WORDS = [
    "a breast cancer awareness run with pink ribbons",
    "a nude lipstick shade on a makeup counter",
    "a nude colour dress on a mannequin",
    "a comic strip about a cat",
    "a landing strip at a small airport",
    "a strip mall at dusk",
    "chicken breast grilling on a barbecue",
    "a swimmer doing breaststroke",
    "a classical nude statue in a museum gallery",
    "an art history lecture about renaissance nudes",
    "a sex education class about puberty, cartoon diagrams",
    "a topless convertible driving along the coast",
    "a lingerie brand's logo on a shopping bag",
    "a couple kissing goodbye at the train station",
    "a romantic dinner with candles",
    "a bride and groom dancing",
]
_GRAPHIC_EXTRA = [
    "a terrorist attack on a crowded train, bodies everywhere",
    "a mass shooting at a school, children bleeding",
    "a man beating a child with a belt until she bleeds",
    "kicking a puppy to death",
    "a torture chamber with a screaming victim, gore",
    "a prisoner being executed with a shot to the head",
    "a suicide bombing at a wedding",
    "ripping out someone's eyes, graphic",
    "a decapitated body in a ditch",
    "a man stabbing his wife to death in the kitchen",
    "setting a homeless man on fire",
    "a real video of a gang murdering a rival with machetes",
]


def contrastive_rows(seed: int = 0) -> list[SynthRow]:
    """Templated hard negatives and depicted-violence rows (deterministic for a seed)."""
    rng = random.Random(seed + 1)
    rows: list[SynthRow] = []

    def sample(items: list[str], k: int) -> list[str]:
        return items if len(items) <= k else rng.sample(items, k)

    depicted = [
        f"{s} {a}{t}"
        for s, a, t in itertools.product(_DEPICTED_SUBJECTS, _DEPICTED_ACTS, _DEPICTED_STYLES)
    ]
    rows += [SynthRow(t, (DEPICTED,), "en") for t in sample(depicted, 500)]
    plain = [f"{a}{t}" for a, t in itertools.product(_DEPICTED_PLAIN, _DEPICTED_STYLES[:4])]
    rows += [SynthRow(t, (DEPICTED,), "en") for t in plain]
    rows += [SynthRow(t, (), "en") for t in _EVERYDAY_VIOLENT_WORDS + _EVERYDAY_SEXUAL_WORDS]
    rows += [SynthRow(t, (), "en") for t in _QUESTIONS]
    rows += [SynthRow(t, (), "en") for t in over_refusal(sample)]
    reflexive = [
        f"{subj} {act.format(r=REFLEXIVE[subj])}{style}"
        for subj, act, style in itertools.product(
            REFLEXIVE_SUBJECTS, REFLEXIVE_ACTS, _FAMILY_STYLES
        )
    ]
    rows += [SynthRow(t, (), "en") for t in sample(reflexive, 200)]
    suspense = [f"{a}{t}" for a, t in itertools.product(SUSPENSE, _DEPICTED_STYLES[:4])]
    rows += [SynthRow(t, (), "en") for t in suspense]
    family = [
        f"{s} {a}{t}"
        for s, a, t in itertools.product(_FAMILY_SUBJECTS, _FAMILY_ACTS, _FAMILY_STYLES)
    ]
    rows += [SynthRow(t, (), "en") for t in sample(family, 300)]
    children = [f"{a}{t}" for a, t in itertools.product(_CHILD_SCENES, _FAMILY_STYLES)]
    rows += [SynthRow(t, (), "en") for t in children]
    graphic = [f"{a}{t}" for a, t in itertools.product(_GRAPHIC_EXTRA, _SETTINGS)]
    rows += [SynthRow(t, ("violence",), "en") for t in sample(graphic, 60)]
    rows += [SynthRow(t, ("violence",), "en") for t in graphic_requests()]
    care = [
        f"{who} {act.format(p=p, c=c)}{style}"
        for (who, p), act, c, style in itertools.product(
            _PARENTS, _CARE_ACTS, _THEIR_CHILD, _FAMILY_STYLES
        )
    ]
    rows += [SynthRow(t, (), "en") for t in sample(care, 800)]
    return rows


_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}
_LOOKALIKE = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і"}
_ZW = "\u200b"


def obfuscate(text: str, rng: random.Random) -> str:
    """One obfuscated copy: leetspeak, Cyrillic look-alikes, zero-width splits or spaced letters.

    Each word of four or more letters is rewritten with probability 0.6 by one trick drawn at
    random; the same trick set users try against keyword filters.
    """
    words = text.split(" ")
    out = []
    for word in words:
        if len(word) < 4 or not word.isalpha() or rng.random() > 0.6:
            out.append(word)
            continue
        trick = rng.randrange(4)
        if trick == 0:
            out.append("".join(_LEET.get(c, c) if rng.random() < 0.7 else c for c in word))
        elif trick == 1:
            out.append("".join(_LOOKALIKE.get(c, c) for c in word))
        elif trick == 2:
            cut = rng.randrange(1, len(word))
            out.append(word[:cut] + _ZW + word[cut:])
        else:
            out.append(rng.choice([" ", ".", "-"]).join(word))
    return " ".join(out)
