"""The policy's ``names:`` settings: brand mentions and artist credits from the name matcher.

Golden table through the real default policy and overlays written to disk, and the real
gazetteer classifiers for the end-to-end rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from classifiers.base import Evidence, Verdict
from classifiers.registry import TEXT_CLASSIFIERS
from classifiers.text.normalize import normalize
from policies.decision import Action
from policies.engine import decide
from policies.loader import DEFAULT_POLICY_PATH, PolicyError, load_policy
from policies.resolved import ResolvedPolicy


def overlay(tmp_path: Path, body: str, name: str = "tenant.yaml") -> ResolvedPolicy:
    path = tmp_path / name
    path.write_text("extends: default\n" + body, encoding="utf-8")
    return load_policy(path)


def named(category: str, score: float, mention: str) -> Verdict:
    ev = Evidence(
        text="Dell", start=0, end=4, detail=f"Dell (Dell); tier=curated; exact; {mention}"
    )
    return Verdict(category, category, score, "gazetteer", "t", (ev,), mention=mention)  # type: ignore[arg-type]


def test_defaults_review_brands_and_allow_artist_credits() -> None:
    policy = load_policy(DEFAULT_POLICY_PATH)
    assert policy.policy.names.brands == "review"
    assert policy.policy.names.artist_credits == "allow"


# (setting, mention, score, expected action, why)
TABLE = [
    ("brands: review", "brand", 0.95, Action.REVIEW, "default: a brand reviews, even at 0.95"),
    ("brands: review", "brand", 0.45, Action.REVIEW, "a kit brand (0.45) reviews too"),
    ("brands: block", "brand", 0.45, Action.BLOCK, "a stricter tenant blocks brands"),
    ("brands: allow", "brand", 0.95, Action.ALLOW, "a tenant that allows brands"),
    ("brands: block", "brand", 0.2, Action.ALLOW, "under review_at: a weak tier never counts"),
    ("artist_credits: allow", "credit", 0.9, Action.ALLOW, "default: credits are style"),
    ("artist_credits: review", "credit", 0.9, Action.REVIEW, "a tenant reviewing credits"),
    ("artist_credits: block", "credit", 0.9, Action.BLOCK, "living artists who opted out"),
    ("artist_credits: block", "credit", 0.2, Action.ALLOW, "historical names never count"),
    ("brands: allow", "depicted", 0.95, Action.BLOCK, "a depicted name keeps its thresholds"),
]


@pytest.mark.parametrize(("setting", "mention", "score", "expected", "why"), TABLE)
def test_mentions_take_the_names_action(
    tmp_path: Path, setting: str, mention: str, score: float, expected: Action, why: str
) -> None:
    policy = overlay(tmp_path, f"names:\n  {setting}\n")
    d = decide(policy, "prompt", [named("ip", score, mention)], prompt=normalize("Dell"))
    assert d.action is expected, why
    if expected is not Action.ALLOW and mention != "depicted":
        (reason,) = d.reasons
        assert reason.category == "ip" and reason.evidence[0].text == "Dell"
        assert f"names.{setting.split(':')[0]} is {expected.value}" in reason.message


def test_allowlist_applies_before_the_names_setting(tmp_path: Path) -> None:
    policy = overlay(
        tmp_path,
        "names:\n  brands: block\ncategories:\n  ip:\n    allowlist:\n      terms: [Dell]\n",
    )
    d = decide(policy, "prompt", [named("ip", 0.95, "brand")], prompt=normalize("Dell"))
    assert d.action is Action.ALLOW


def test_overlay_keeps_the_other_setting(tmp_path: Path) -> None:
    policy = overlay(tmp_path, "names:\n  artist_credits: review\n")
    assert policy.policy.names.brands == "review"  # merged from the base policy


@pytest.mark.parametrize(
    ("body", "field", "fix"),
    [
        ("names:\n  brands: maybe\n", "names.brands", "'allow', 'review' or 'block'"),
        ("names:\n  brand: review\n", "names", "did you mean 'brands'?"),
        ("names:\n  artist_credits: 1\n", "names.artist_credits", "'allow', 'review' or 'block'"),
    ],
)
def test_bad_names_settings_are_refused_with_file_field_and_fix(
    tmp_path: Path, body: str, field: str, fix: str
) -> None:
    with pytest.raises(PolicyError) as info:
        overlay(tmp_path, body, name="bad.yaml")
    message = str(info.value)
    assert "bad.yaml:" in message and f"{field}:" in message and fix in message, message


# End to end: the real gazetteer classifiers and the default policy.
END_TO_END = [
    ("a can of Red Bull on a skateboard ramp", Action.REVIEW, "ip", "brand request"),
    ("a laptop with the Dell logo visible", Action.REVIEW, "ip", "logo request"),
    ("black and white landscape by Ansel Adams", Action.ALLOW, None, "photographer credit"),
    ("a hotel lobby in the style of Wes Anderson", Action.ALLOW, None, "director credit"),
    ("a portrait of Taylor Swift by Annie Leibovitz", Action.BLOCK, "celebrity", "depicted"),
    ("a young mermaid with long red hair and a green tail", Action.REVIEW, "ip", "description"),
    ("a climber resting on the rock", Action.ALLOW, None, "everyday phrase"),
]


@pytest.mark.parametrize(("text", "expected", "category", "why"), END_TO_END)
def test_default_policy_end_to_end(
    text: str, expected: Action, category: str | None, why: str
) -> None:
    policy = load_policy(DEFAULT_POLICY_PATH)
    prompt = normalize(text)
    verdicts = [
        v for name in ("celebrity", "ip") for v in TEXT_CLASSIFIERS[name]().classify(prompt)
    ]
    d = decide(policy, "prompt", verdicts, prompt=prompt)
    assert d.action is expected, (why, d.reasons)
    if category is not None:
        assert d.reasons[0].category == category
