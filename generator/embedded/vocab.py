"""The embedded model's closed vocabulary, and the prompt parser that maps free text onto it.

The model is conditioned on four slots (object colour, shape, motion, background colour), each
filled with one known concept or left unspecified. The parser maps synonyms ("crimson" -> red),
near-miss spellings ("circel" -> circle) and word order ("on a blue background") onto the slots,
and reports which words it understood and which it ignored.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 50),
    "green": (40, 170, 70),
    "blue": (40, 90, 225),
    "purple": (140, 55, 190),
    "white": (240, 240, 240),
    "black": (25, 25, 25),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
MOTIONS: tuple[str, ...] = ("left", "right", "up", "down", "bounce", "grow", "shrink")
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

SLOTS: tuple[str, ...] = ("colour", "shape", "motion", "background")
"""Conditioning slots, in the order the model reads them."""

SLOT_VALUES: dict[str, tuple[str, ...]] = {
    "colour": COLOUR_NAMES,
    "shape": SHAPES,
    "motion": MOTIONS,
    "background": COLOUR_NAMES,
}

_SYNONYMS: dict[str, str] = {
    # colours
    "crimson": "red", "scarlet": "red", "maroon": "red", "ruby": "red", "cherry": "red",
    "amber": "orange", "tangerine": "orange", "peach": "orange",
    "gold": "yellow", "golden": "yellow", "lemon": "yellow", "mustard": "yellow",
    "lime": "green", "emerald": "green", "olive": "green", "jade": "green", "mint": "green",
    "navy": "blue", "azure": "blue", "cobalt": "blue", "sapphire": "blue", "teal": "blue",
    "cyan": "blue", "turquoise": "blue",
    "violet": "purple", "magenta": "purple", "lavender": "purple", "indigo": "purple",
    "lilac": "purple", "plum": "purple", "pink": "purple",
    "ivory": "white", "snow": "white", "cream": "white", "pale": "white",
    "ebony": "black", "jet": "black", "dark": "black", "charcoal": "black",
    # shapes
    "ball": "circle", "disc": "circle", "disk": "circle", "dot": "circle", "sphere": "circle",
    "orb": "circle", "ring": "circle", "round": "circle", "oval": "circle", "circular": "circle",
    "box": "square", "cube": "square", "block": "square", "rectangle": "square", "tile": "square",
    "squares": "square", "boxes": "square",
    "pyramid": "triangle", "wedge": "triangle", "triangular": "triangle", "cone": "triangle",
    "circles": "circle", "triangles": "triangle", "balls": "circle",
    # motions
    "leftward": "left", "leftwards": "left", "west": "left", "westward": "left",
    "rightward": "right", "rightwards": "right", "east": "right", "eastward": "right",
    "upward": "up", "upwards": "up", "rising": "up", "rises": "up", "rise": "up",
    "ascending": "up", "ascends": "up", "climbing": "up", "climbs": "up", "north": "up",
    "floating": "up", "floats": "up", "lifting": "up",
    "downward": "down", "downwards": "down", "falling": "down", "falls": "down", "fall": "down",
    "sinking": "down", "sinks": "down", "descending": "down", "descends": "down",
    "dropping": "down", "drops": "down", "south": "down",
    "bouncing": "bounce", "bounces": "bounce", "bouncy": "bounce", "jumping": "bounce",
    "jumps": "bounce", "hopping": "bounce", "hops": "bounce",
    "growing": "grow", "grows": "grow", "expanding": "grow", "expands": "grow",
    "enlarging": "grow", "bigger": "grow", "inflating": "grow", "zooming": "grow",
    "shrinking": "shrink", "shrinks": "shrink", "contracting": "shrink", "smaller": "shrink",
    "deflating": "shrink", "contracts": "shrink",
}  # fmt: skip

_CONCEPTS: dict[str, str] = {w: w for w in (*COLOUR_NAMES, *SHAPES, *MOTIONS)} | _SYNONYMS

_BACKGROUND_CUES = frozenset({"background", "backdrop", "bg", "backgrounds", "field", "screen"})
_ON_CUES = frozenset({"on", "over", "against", "atop", "onto"})

_FUNCTION_TEXT = """a an the on over against in into onto of to and with is are that which its
    it this
    moving moves move going goes travelling traveling traveling heading heads drifting drifts
    sliding slides gliding glides toward towards from across slowly quickly fast slow
    coloured colored color colour plain solid single one shape object video clip"""
_FUNCTION_WORDS = frozenset(_FUNCTION_TEXT.split())

_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True, slots=True)
class ParsedPrompt:
    """A prompt mapped onto the model's slots (``None`` = unspecified: the model chooses)."""

    colour: str | None
    shape: str | None
    motion: str | None
    background: str | None
    understood: tuple[str, ...]
    ignored: tuple[str, ...]

    def slot(self, name: str) -> str | None:
        """The value of slot ``name`` (one of :data:`SLOTS`)."""
        value: str | None = getattr(self, name)
        return value

    def describe(self) -> str:
        """A canonical prompt for these slots ("a red circle moving left on a blue background")."""
        return canonical_prompt(self.colour, self.shape, self.motion, self.background)


def canonical_prompt(
    colour: str | None, shape: str | None, motion: str | None, background: str | None
) -> str:
    """The training template for a slot combination."""
    parts = ["a"]
    if colour:
        parts.append(colour)
    parts.append(shape or "shape")
    if motion in {"left", "right", "up", "down"}:
        parts.append(f"moving {motion}")
    elif motion:
        parts.append({"bounce": "bouncing", "grow": "growing", "shrink": "shrinking"}[motion])
    if background:
        parts.append(f"on a {background} background")
    return " ".join(parts)


def _lookup(word: str) -> str | None:
    if word in _CONCEPTS:
        return _CONCEPTS[word]
    if word.endswith("s") and word[:-1] in _CONCEPTS:
        return _CONCEPTS[word[:-1]]
    if len(word) >= 4:
        close = difflib.get_close_matches(word, list(_CONCEPTS), n=1, cutoff=0.8)
        if close:
            return _CONCEPTS[close[0]]
    return None


def _is_background(words: list[str], i: int) -> bool:
    after = words[i + 1 : i + 3]
    before = [w for w in words[max(0, i - 3) : i] if w not in {"a", "an", "the"}]
    return bool(_BACKGROUND_CUES.intersection(after)) or bool(before and before[-1] in _ON_CUES)


def parse_prompt(prompt: str) -> ParsedPrompt:
    """Map ``prompt`` onto the four slots; the first mention of each slot wins."""
    words = _WORD.findall(prompt.lower())
    slots: dict[str, str] = {}
    understood: list[str] = []
    ignored: list[str] = []
    object_colours: list[str] = []
    for i, word in enumerate(words):
        concept = _lookup(word)
        if concept is None:
            if word in _BACKGROUND_CUES:
                understood.append(word)
            elif word not in _FUNCTION_WORDS:
                ignored.append(word)
            continue
        if concept in COLOURS:
            if _is_background(words, i):
                slots.setdefault("background", concept)
            else:
                object_colours.append(concept)
        elif concept in SHAPES:
            slots.setdefault("shape", concept)
        else:
            slots.setdefault("motion", concept)
        understood.append(word)
    if object_colours:
        slots["colour"] = object_colours[0]
        # "a red circle, blue" -> the second bare colour is the background.
        if len(object_colours) > 1 and "background" not in slots:
            slots["background"] = object_colours[1]
    return ParsedPrompt(
        colour=slots.get("colour"),
        shape=slots.get("shape"),
        motion=slots.get("motion"),
        background=slots.get("background"),
        understood=tuple(dict.fromkeys(understood)),
        ignored=tuple(dict.fromkeys(ignored)),
    )
