"""Training-time data the kit lacks: video-style prompts and an obfuscator.

The kit's harmful rows are mostly tweets and LLM-written requests, and its benign rows mostly
captions; a model trained on it alone learns "social-media style means unsafe" and has almost no
video-style sexual, violent or self-harm prompts (52 self-harm rows in all). The templated rows
below are **training only** (never in the dev split or its metrics); they pair harmful prompts
with hard benign look-alikes (knives in kitchens, swimsuits on beaches, identity terms in
ordinary scenes) so the heads learn content rather than style.

:func:`obfuscate` makes the leetspeak / confusable / zero-width / spacing copies used both for
training augmentation and for the obfuscated-copy recall in ``benchmarks/eval_text.py``.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

__all__ = ["SynthRow", "obfuscate", "synthetic_rows"]


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
