"""The normaliser: evasions undone, ordinary text and IDs untouched, offsets exact, never raises."""

from __future__ import annotations

import random

import pytest

from classifiers.text.normalize import normalize, normalize_key, word_spans

# (original, expected normalised text, why)
GOLDEN = [
    ("Hello   World", "hello world", "casefold and whitespace collapse"),
    (
        "  padded\t\n text  ",
        "padded text",
        "leading/trailing whitespace dropped, tabs/newlines fold",
    ),
    ("s\u200be\u200bx", "sex", "zero-width spaces inside a word are removed"),
    ("p\u200dorn\u2060", "porn", "zero-width joiner and word joiner"),
    ("\u202enude\u202c", "nude", "bidi override controls"),
    ("n\u00adude", "nude", "soft hyphen"),
    ("ѕех", "sex", "Cyrillic look-alikes only -> Latin"),
    ("nаked", "naked", "one Cyrillic letter inside a Latin word"),
    ("ρогn", "porn", "Greek rho and Cyrillic o/g in one word"),
    ("Привет мир", "привет мир", "real Russian words are left alone"),
    ("Ｔａｙｌｏｒ Ｓｗｉｆｔ", "taylor swift", "fullwidth letters (NFKC)"),
    ("𝐬𝐞𝐱 ⓢⓔⓧ", "sex sex", "math bold and circled letters (NFKC)"),
    ("ᴘᴏʀɴ", "porn", "small capitals"),
    ("Beyoncé naïve", "beyonce naive", "accents stripped"),
    ("e\u0301te\u0301", "ete", "combining accents stripped"),
    ("z̷̢a̸l̵g̶o̴", "zalgo", "stacked combining marks stripped"),
    ("p0rn", "porn", "leetspeak 0 -> o"),
    ("s3x", "sex", "leetspeak 3 -> e"),
    ("n@ked", "naked", "leetspeak @ -> a"),
    ("5ex", "sex", "leading leet digit"),
    ("$exy", "sexy", "leading $"),
    ("sh!t", "shit", "! between letters"),
    ("k1ll b1ood 1oli", "kill blood loli", "1 -> l before a vowel, else i"),
    ("T4ylor Sw1ft", "taylor swift", "leet in names"),
    ("wow! that's it!", "wow! that's it!", "trailing ! is punctuation, not a letter"),
    ("2024 4k 60fps 3d 1080p", "2024 4k 60fps 3d 1080p", "numbers and units are never leet"),
    ("R2D2 mp4 h264 covid19 ps5", "r2d2 mp4 h264 covid19 ps5", "IDs and model numbers untouched"),
    ("$100 a 3 year old", "$100 a 3 year old", "prices and ages stay digits"),
    ("s.e.x", "sex", "dotted single letters joined"),
    ("s e x y", "sexy", "spaced single letters joined"),
    ("s-e-x scene", "sex scene", "hyphenated single letters joined"),
    ("n_u_d_e", "nude", "underscored single letters joined"),
    ("p 0 r n", "porn", "spaced letters joined, then leet"),
    ("a b", "a b", "two single letters are left alone"),
    ("a s e x y girl", "a sexy girl", "a leading article stays a word"),
    ("i a m", "iam", "three single letters join"),
    ("seeeexy", "sexy", "stretched letters collapse"),
    ("kiiiill", "kill", "a stretched run collapses; a real double stays"),
    ("book cool little", "book cool little", "ordinary double letters are kept"),
    ("xxx", "xxx", "xxx is a word of its own"),
    ("sexxxx", "sex", "stretched x inside a word collapses"),
    ("b00bs p000rn", "boobs porn", "one digit repeated between letters is stretched leetspeak"),
    ("x86 a1000 h264", "x86 a1000 h264", "numbers inside IDs stay digits"),
    ("Rocky III", "rocky iii", "roman numerals are not stretched letters"),
    ("泰勒·斯威夫特在跳舞", "泰勒·斯威夫特在跳舞", "Chinese text is kept"),
    ("一个8岁的孩子", "一个8岁的孩子", "digits inside Chinese text are not leetspeak"),
    ("김제니 ピカチュウ が", "김제니 ピカチュウ が", "Hangul and kana (with dakuten) are kept"),
    ("", "", "empty input"),
    ("😀🔥", "😀🔥", "emoji-only input is kept"),
    ("a\x00b\x07c", "abc", "control characters are dropped"),
    ("\ud800abc", "\ufffdabc", "lone surrogates are replaced"),
]


@pytest.mark.parametrize(("original", "expected", "why"), GOLDEN, ids=[g[2] for g in GOLDEN])
def test_golden(original: str, expected: str, why: str) -> None:
    assert normalize(original).normalized == expected, why


def _check_offsets(text: str) -> None:
    p = normalize(text)
    assert p.original == text
    assert len(p.offsets) == len(p.normalized) + 1
    assert p.offsets[-1] == len(text)
    assert list(p.offsets[:-1]) == sorted(p.offsets[:-1]), "offsets are monotonic"
    assert all(0 <= o < len(text) for o in p.offsets[:-1])


@pytest.mark.parametrize("original", [g[0] for g in GOLDEN])
def test_offsets_are_consistent(original: str) -> None:
    _check_offsets(original)


@pytest.mark.parametrize(
    ("original", "needle", "quoted"),
    [
        ("A video of s.e.x on a beach", "sex", "s.e.x"),
        ("nice p0rn clip", "porn", "p0rn"),
        ("show me Ｔａｙｌｏｒ Ｓｗｉｆｔ dancing", "taylor swift", "Ｔａｙｌｏｒ Ｓｗｉｆｔ"),
        ("a seeeexy   dancer", "sexy", "seeeexy"),
        ("x s\u200be\u200bx y", "sex", "s\u200be\u200bx"),
        ("ѕех tape", "sex", "ѕех"),
    ],
)
def test_evidence_quotes_the_original(original: str, needle: str, quoted: str) -> None:
    p = normalize(original)
    start = p.normalized.index(needle)
    ev = p.evidence(start, start + len(needle))
    assert ev.text == quoted
    assert ev.start is not None and original[ev.start : ev.end] == quoted


def test_never_raises_on_random_unicode() -> None:
    rng = random.Random(1234)
    pools = [
        (0x0, 0x7F),
        (0x80, 0x2FF),
        (0x300, 0x36F),
        (0x370, 0x52F),
        (0x2000, 0x206F),
        (0x3000, 0x9FFF),
        (0xD800, 0xDFFF),
        (0xFE00, 0xFFFF),
        (0x1D400, 0x1D7FF),
        (0x1F300, 0x1FAFF),
        (0xE0000, 0xE01EF),
        (0x0, 0x10FFFF),
    ]
    for _ in range(1500):
        n = rng.choice([0, 1, 2, 5, 20, 80])
        text = "".join(chr(rng.randint(*rng.choice(pools))) for _ in range(n))
        _check_offsets(text)


def test_long_input() -> None:
    text = "s.e.x p0rn Ｔａｙｌｏｒ " * 500  # 10k+ characters
    p = normalize(text)
    assert p.normalized.count("porn") == 500
    _check_offsets(text)


def test_normalize_key_and_word_spans() -> None:
    assert normalize_key("Spider-Man") == "spider man"
    assert normalize_key("  Beyoncé ") == "beyonce"
    assert word_spans("taylor swift, 4k") == [(0, 6), (7, 12), (14, 16)]
