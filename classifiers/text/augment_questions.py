"""Templated contrastive questions and scenes for the learned heads' training (build time).

Safe text that the kit has too little of, so a head trained without one source still knows it:
over-refusal questions (about words, harms, the body and groups; everyday how-tos with violent
verbs; fiction and games; history), reflexive everyday actions and suspense without injury.
:func:`classifiers.text.augment.contrastive_rows` adds them to the templated rows; every list is
written from the *kind* of safe text, never copied from an evaluation source.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

__all__ = ["REFLEXIVE", "REFLEXIVE_ACTS", "REFLEXIVE_SUBJECTS", "SUSPENSE", "over_refusal"]

# Over-refusal questions: asking *about* a word, a harm, the body or a group is not asking for
# it. The kit has one such source (OKTest, 339 rows), so a head trained without it flags a third
# of it; these frames are written from the kinds of safe question (definitions, history,
# prevention, health, civil rights), not from OKTest's rows.
_TERM_FRAMES = [
    "What does the term '{w}' mean?",
    "Where does the word '{w}' come from?",
    "Is '{w}' considered offensive in some countries?",
    "Why do people find the word '{w}' rude?",
    "Is it polite to call a coworker a {w}?",
    "How should a teacher respond when a student says '{w}' in class?",
    "Is the word '{w}' used in any well-known songs or films?",
    "What is the difference between '{w}' and milder words?",
]
_MILD_TERMS = [
    "jerk",
    "idiot",
    "moron",
    "bastard",
    "bitch",
    "asshole",
    "dumbass",
    "douchebag",
    "prick",
    "wanker",
    "bollocks",
    "bloody",
    "damn",
    "crap",
    "shit",
    "fuck",
    "skank",
    "simp",
    "incel",
    "karen",
    "redneck",
    "hillbilly",
    "gringo",
    "cracker",
    "boomer",
    "snowflake",
    "psycho",
    "slut",
    "whore",
    "milf",
    "twat",
    "dipshit",
    "scumbag",
    "numbskull",
    "loser",
    "creep",
]
_TOPIC_FRAMES = [
    "What measures are being taken to prevent {t}?",
    "How can communities reduce {t}?",
    "What is the history of {t} in {place}?",
    "Is it true that {t} has declined in recent years?",
    "What support exists for people affected by {t}?",
    "Why do experts call {t} a public health issue?",
    "How do schools teach students about {t}?",
    "What are the warning signs of {t}?",
    "What does the law in {place} say about {t}?",
    "How did {t} shape society in the twentieth century?",
]
_TOPICS = [
    "terrorism",
    "domestic violence",
    "human trafficking",
    "sexual harassment",
    "gun violence",
    "hate crimes",
    "child abuse",
    "bullying",
    "drug addiction",
    "suicide",
    "self-harm among teenagers",
    "racism",
    "antisemitism",
    "homophobia",
    "genocide",
    "corruption",
    "gang violence",
    "revenge porn",
    "online grooming",
    "eating disorders",
    "HIV",
    "sexually transmitted infections",
    "teen pregnancy",
    "police brutality",
    "extremism",
    "radicalisation",
    "slavery",
    "segregation",
    "war crimes",
    "the death penalty",
    "sexual assault",
    "rape",
    "prostitution",
    "pornography addiction",
    "cyberbullying",
]
_PLACES = ["Europe", "the United States", "Asia", "Africa", "South America", "Australia"]
_BODY_FRAMES = [
    "What is the function of the {b}?",
    "How does age affect the {b}?",
    "What are common medical problems of the {b}?",
    "When should someone see a doctor about their {b}?",
]
_BODY = [
    "prostate",
    "uterus",
    "ovaries",
    "testicles",
    "cervix",
    "penis",
    "vagina",
    "breasts",
    "clitoris",
    "scrotum",
    "vulva",
    "anus",
    "nipples",
    "foreskin",
]
_HEALTH_FRAMES = [
    "What do doctors say about {h}?",
    "How should parents talk to teenagers about {h}?",
    "Is {h} covered in sex education classes?",
    "What are common myths about {h}?",
]
_HEALTH = [
    "contraception",
    "condoms",
    "masturbation",
    "menopause",
    "erectile dysfunction",
    "libido",
    "puberty",
    "consent",
    "orgasms",
    "oral sex",
    "sexual orientation",
    "virginity",
]
_GROUP_FRAMES = [
    "Is it true that attitudes towards {g} have changed over the years?",
    "What rights do {g} have under the law?",
    "What contributions have {g} made to {f}?",
    "What challenges do {g} face at work?",
]
_QUESTION_GROUPS = [
    "gay people",
    "transgender people",
    "Muslims",
    "Jewish people",
    "Black Americans",
    "immigrants",
    "refugees",
    "women",
    "disabled people",
    "Roma people",
    "Indigenous peoples",
    "atheists",
    "lesbians",
    "Mexicans",
    "Chinese Americans",
]
_FIELDS = ["science", "music", "literature", "sport", "politics"]


_HOWTO_FRAMES = [
    "How do I {a}?",
    "What's the best way to {a}?",
    "How can I {a} faster?",
    "Any tips on how to {a}?",
    "how to {a}",
]
_HOMONYM_ACTS = [
    "kill a frozen app on my phone",
    "kill a background task in bash",
    "kill time at the airport",
    "kill weeds in a gravel driveway",
    "shoot a product video with my phone",
    "shoot hoops in the driveway",
    "shoot portraits in harsh sunlight",
    "blow up an inflatable pool",
    "blow up a photo for a poster",
    "beat the heat on a summer day",
    "beat my personal best",
    "beat the final level of the game",
    "crush ice for cocktails",
    "crush my next job interview",
    "smash a volleyball spike",
    "butcher a whole turkey",
    "butcher a side of beef",
    "attack a steep climb on a bike",
    "punch down bread dough",
    "cut ties with a bad client",
    "cut costs in a small business",
    "execute a trade at market open",
    "execute a shell script on startup",
    "terminate a lease early",
    "nuke leftovers in a microwave",
    "destroy old hard drives safely",
    "hang a heavy mirror",
    "gut and scale a trout",
    "fire clay in a home kiln",
    "trigger an alert in a monitoring dashboard",
    "bomb-proof a sourdough recipe",
    "tackle a messy garage",
    "slay a job interview",
    "knock out a wall between two rooms",
    "whip cream by hand",
    "break a bad habit",
    "pull the trigger on a big purchase",
    "drown out noise from the street",
]
_STORY_FRAMES = [
    "In the {w}, how does the hero {a}?",
    "In the {w}, why does the villain {a}?",
    "How do I {a} in the {w}?",
]
_STORY_WORKS = ["video game", "novel", "film", "fantasy series", "board game", "comic"]
_STORY_ACTS = [
    "defeat the dragon",
    "kill the final boss",
    "escape the burning castle",
    "poison the king's advisor",
    "ambush the rebel army",
    "destroy the enemy base",
    "take down the zombie horde",
    "capture the enemy flag",
    "blow up the death machine",
]
_HISTORY_FRAMES = [
    "How did {e} happen?",
    "What caused {e}?",
    "How many people died in {e}?",
    "What did historians learn from {e}?",
]
_HISTORY = [
    "the Black Death",
    "the Battle of the Somme",
    "the bombing of Dresden",
    "the Holocaust",
    "the Armenian genocide",
    "the Cambodian killing fields",
    "the Spanish flu",
    "the sinking of the Lusitania",
    "the siege of Leningrad",
    "the Boston Marathon bombing",
    "the Salem witch trials",
    "the Tiananmen Square massacre",
    "the assassination of Lincoln",
    "the Partition of India",
    "the Great Chicago Fire",
    "the Napoleonic Wars",
]


# Reflexive everyday actions: with 52 self-harm rows (AdvBench, most "kill yourself"), the
# self-harm head learned "himself"/"herself" as evidence ("a guy starts filming himself" scored
# 0.97 held out). And suspense without injury: horror mood is not gore.
REFLEXIVE_SUBJECTS = ["a man", "a woman", "a teenager", "an old man", "a young woman", "a guy"]
REFLEXIVE_ACTS = [
    "filming {r} with a phone",
    "hugging {r} in the cold",
    "looking at {r} in a mirror",
    "teaching {r} to play guitar",
    "pouring {r} a cup of coffee",
    "talking to {r} while cooking",
    "wrapping {r} in a blanket",
    "introducing {r} to the class",
    "pushing {r} up a steep hill",
    "catching {r} before falling",
    "drying {r} off with a towel",
    "laughing at {r} on video",
    "dressing {r} for a party",
    "making {r} a sandwich",
    "stretching {r} after a run",
    "painting a portrait of {r}",
    "recording {r} singing",
    "treating {r} to ice cream",
    "pinching {r} to stay awake",
    "throwing {r} onto the sofa",
    "splashing {r} with water",
    "balancing {r} on one foot",
    "checking {r} out in a shop window",
    "humming to {r}",
]
REFLEXIVE = {
    "a man": "himself",
    "an old man": "himself",
    "a guy": "himself",
    "a teenager": "themselves",
    "a woman": "herself",
    "a young woman": "herself",
}
SUSPENSE = [
    "a haunted mansion on a hill at night",
    "a foggy cemetery with old tombstones",
    "a dark forest with glowing eyes between the trees",
    "an abandoned asylum corridor",
    "a creepy doll sitting in an empty room",
    "a ghost drifting through a Victorian hallway",
    "a scary clown at the end of a dark alley",
    "a werewolf howling at the full moon",
    "a zombie shuffling down an empty street, no blood",
    "a vampire castle in a thunderstorm",
    "a witch stirring a cauldron in a candlelit hut",
    "a monster under a child's bed, cartoon",
    "a skeleton dancing in a graveyard, halloween",
    "an eerie lighthouse in a storm",
    "a spooky pumpkin patch at dusk",
    "a shadowy figure in a doorway, suspense",
    "a horror movie poster of a dark house",
    "an old crypt lit by torches",
]


def over_refusal(sample: Callable[[list[str], int], list[str]]) -> list[str]:
    """Safe questions about words, harms, the body and groups, everyday how-tos with violent
    words, fiction and games, and history (see the comment above)."""
    terms = [f.format(w=w) for f, w in itertools.product(_TERM_FRAMES, _MILD_TERMS)]
    topics = [
        f.format(t=t, place=p) for f, t, p in itertools.product(_TOPIC_FRAMES, _TOPICS, _PLACES[:2])
    ]
    body = [f.format(b=b) for f, b in itertools.product(_BODY_FRAMES, _BODY)]
    health = [f.format(h=h) for f, h in itertools.product(_HEALTH_FRAMES, _HEALTH)]
    groups = [
        f.format(g=g, f=fld)
        for f, g, fld in itertools.product(_GROUP_FRAMES, _QUESTION_GROUPS, _FIELDS[:2])
    ]
    howto = [f.format(a=a) for f, a in itertools.product(_HOWTO_FRAMES, _HOMONYM_ACTS)]
    story = [
        f.format(w=w, a=a)
        for f, w, a in itertools.product(_STORY_FRAMES, _STORY_WORKS, _STORY_ACTS)
    ]
    history = [f.format(e=e) for f, e in itertools.product(_HISTORY_FRAMES, _HISTORY)]
    return [
        *sample(howto, 150),
        *sample(story, 60),
        *sample(history, 50),
        *sample(terms, 150),
        *sample(topics, 250),
        *sample(body, 40),
        *sample(health, 40),
        *sample(groups, 80),
    ]
