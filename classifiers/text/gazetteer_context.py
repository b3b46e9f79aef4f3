"""Where a name in a prompt is credited, and the words near it (helpers of the matcher).

* :class:`CreditZones`: the spans of a prompt where a name is credited rather than depicted:
  the comma/"and" list after "by" / "in the style of" (up to a full stop, a semicolon or
  :data:`CREDIT_RUN` words), a name followed by "style", "-style", "'s style", "inspired",
  "esque", and a brand credited as the camera or film ("shot on Hasselblad", "Canon EOS R5",
  "Canon 5 D").
* :class:`NearWords`: the words within the context window of a name, for phrase look-ups.
* :func:`capitalised_name`: whether a match is written as a proper name in a prompt that is
  not in Title Case.

All work on the normalised prompt's word spans (:data:`classifiers.text.normalize.WORD_RE`)
and read the text as typed through :meth:`~classifiers.base.PromptText.original_span`.
"""

from __future__ import annotations

import itertools
import re

from classifiers.base import PromptText
from classifiers.text.gazetteer_keys import CJK_RE

__all__ = ["CREDIT_RUN", "CreditZones", "NearWords", "capitalised_name"]


_CREDIT_BEFORE = ("by", "style of", "manner of", "styled after", "inspired by", "a la", "art of")
_CREDIT_FIRST = frozenset(m.split()[0] for m in _CREDIT_BEFORE)
_CREDIT_AFTER = ("style", "styled", "inspired", "esque", "aesthetic", "s style", "like style")
_EQUIPMENT_BEFORE = (
    "shot on", "shot with", "taken with", "taken on", "filmed on", "filmed with", "photo on",
    "captured on", "captured with", "shot on a", "shot with a", "taken with a", "camera",
)  # fmt: skip
_CAMERA_MODEL = re.compile(
    r"(eos|alpha|lumix|gfx\w*|x-?t\d*|x100\w*|a\d{1,4}\w*|d\d{2,4}\w*|z\d{1,2}\w*|rx\d+\w*"
    r"|portra|ektar|ektachrome|tri-?x|velvia|provia|superia|hp5|nikkor|summilux|summicron"
    r"|\d{2,3}mm)"
)
_SPLIT_MODEL = re.compile(r"\d{1,2}d(?:s|x|\d)?|\d{2,3}(?:\d{2,3})?mm")
"""A body or lens typed in pieces after the brand: "Canon 5 D", "Canon 70-200mm"."""
"""A camera body, lens or film stock right after a brand ("Canon EOS R5", "Sony A7R",
"Nikon D850", "Kodak Portra", "Leica 50mm"): the brand credits the equipment, as after
"shot on"."""
_CREDIT_STOP = re.compile(r"[.;:!?|\n()\[\]]")
CREDIT_RUN = 40
"""A credit list ("by A, B and C") runs at most this many words after its "by"."""


class CreditZones:
    """Where names are credited, not depicted: the comma/"and" list after "by" / "in the
    style of" (up to a full stop, a semicolon or :data:`CREDIT_RUN` words), and a name
    followed by "style", "-style", "'s style", "inspired", "esque"."""

    def __init__(self, text: str, words: list[str], spans: list[tuple[int, int]]) -> None:
        self.text, self.words, self.spans = text, words, spans
        self._zones: list[tuple[int, int]] | None = None

    @property
    def zones(self) -> list[tuple[int, int]]:
        if self._zones is None:  # built on first use: most prompts credit nobody
            self._zones = self._find_zones()
        return self._zones

    def _find_zones(self) -> list[tuple[int, int]]:
        text, words, spans = self.text, self.words, self.spans
        zones = []
        n = len(words)
        for i in range(n):
            if words[i] not in _CREDIT_FIRST:
                continue
            for marker in _CREDIT_BEFORE:
                parts = marker.split()
                if words[i : i + len(parts)] != parts:
                    continue
                begin = i + len(parts)
                stop = begin
                while stop < min(n, begin + CREDIT_RUN):
                    gap = text[spans[stop - 1][1] : spans[stop][0]] if stop > begin else ""
                    if _CREDIT_STOP.search(gap):
                        break
                    stop += 1
                zones.append((begin, stop))
        return zones

    def equipment(self, w0: int, w1: int, prompt: PromptText) -> bool:
        """A brand credited as the camera or film ("shot on Hasselblad", "Kodak Portra",
        "Canon EOS R5"). The model name is read as typed too: the normaliser reads "a7R" as
        leetspeak."""
        if w1 < len(self.words):
            a, b = prompt.original_span(*self.spans[w1])
            if any(
                _CAMERA_MODEL.fullmatch(w) for w in (self.words[w1], prompt.original[a:b].lower())
            ):
                return True
        for end in range(w1 + 2, min(w1 + 3, len(self.words)) + 1):
            a, b = prompt.original_span(self.spans[w1][0], self.spans[end - 1][1])
            typed = re.sub(r"[\s-]+", "", prompt.original[a:b].lower())
            if _SPLIT_MODEL.fullmatch(typed):
                return True
        before = self.words[max(0, w0 - 3) : w0]
        return any(before[-len(m.split()) :] == m.split() for m in _EQUIPMENT_BEFORE if before)

    def covers(self, w0: int, w1: int) -> bool:
        if any(a <= w0 and w1 <= b for a, b in self.zones):
            return True
        after = self.words[w1 : w1 + 2]
        return any(after[: len(m.split())] == m.split() for m in _CREDIT_AFTER)


class NearWords:
    """The words near a name, for context look-ups."""

    def __init__(self, words: list[str]) -> None:
        self.keys = set(words) | {f"{a} {b}" for a, b in itertools.pairwise(words)}
        self.text = f" {' '.join(words)} "
        self.stream = "".join(words)

    def has(self, phrase: str) -> bool:
        if CJK_RE.search(phrase):
            return phrase.replace(" ", "") in self.stream
        if phrase.count(" ") <= 1:
            return phrase in self.keys
        return f" {phrase} " in self.text


_SENTENCE_END = re.compile(r"[.!?。！？\n:;\"“(]\s*$")


def capitalised_name(prompt: PromptText, start: int, end: int) -> bool:
    """Is the match written as a proper name in a prompt that is not in Title Case: with a
    capital in mid-sentence, or with every word capitalised ("The Rock", at any position)?"""
    o_start, o_end = prompt.original_span(start, end)
    typed = prompt.original[o_start:o_end]
    if not typed[:1].isupper():
        return False
    alpha = [w for w in prompt.original.split() if w[:1].isalpha()]
    if sum(w[0].isupper() for w in alpha) * 2 > len(alpha):
        return False  # Title Case: capitals say nothing
    words = typed.split()
    if len(words) > 1:  # every word capitalised, at any position ("The Rock", not "Black widow")
        return all(w[:1].isupper() for w in words if w[:1].isalpha())
    before = prompt.original[:o_start]
    return bool(before.strip()) and not _SENTENCE_END.search(before)
