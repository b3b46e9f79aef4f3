"""The text check orchestration: real policy and classifiers, plus scripted failing classifiers.

The scripted classifiers only exercise the fail-closed paths (raise, overrun, garbage out,
cannot load); every other test runs the real registry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from classifiers.base import Category, PromptText, TextClassifier, Verdict
from config.settings import PACKAGE_POLICY
from gateway.pipeline import ClassifierFactory, TextModerator
from policies.decision import Action, Reason
from policies.store import PolicyStore


@pytest.fixture(scope="module")
def policies() -> PolicyStore:
    return PolicyStore(PACKAGE_POLICY)


@pytest.fixture(scope="module")
def moderator(
    policies: PolicyStore, text_classifiers: Mapping[str, ClassifierFactory]
) -> TextModerator:
    return TextModerator(policies, classifiers=text_classifiers)


class Scripted:
    """A classifier whose behaviour the test chooses: raise, sleep, return bad verdicts."""

    name = "scripted"
    model_id = "scripted"
    model_version = "1"
    categories: tuple[Category, ...] = ("violence",)

    def __init__(
        self,
        *,
        raises: Exception | None = None,
        sleep_s: float = 0.0,
        score: float = 0.0,
        wrong: object = None,
    ) -> None:
        self.raises, self.sleep_s, self.score, self.wrong = raises, sleep_s, score, wrong
        self.calls = 0
        self.batch_calls = 0

    def classify(self, prompt: PromptText) -> list[Verdict]:
        self.calls += 1
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.raises is not None:
            raise self.raises
        if self.wrong is not None:
            return self.wrong  # type: ignore[return-value]
        return [Verdict(self.name, "violence", self.score, self.model_id, self.model_version)]


class BatchScripted(Scripted):
    def classify_many(self, prompts: Sequence[PromptText]) -> list[list[Verdict]]:
        self.batch_calls += 1
        return [self.classify(p) for p in prompts]


def with_scripted(
    base: Mapping[str, ClassifierFactory], clf: TextClassifier | Exception
) -> dict[str, ClassifierFactory]:
    """The real registry with the ``lexicon`` slot replaced by ``clf`` (or a failing factory)."""

    def factory() -> TextClassifier:
        if isinstance(clf, Exception):
            raise clf
        return clf

    return {**base, "lexicon": factory}


def error_reasons(reasons: Sequence[Reason]) -> list[Reason]:
    return [r for r in reasons if r.source == "error"]


# -- the real path -------------------------------------------------------------------------


def test_clean_prompt_is_allowed_with_versions(
    moderator: TextModerator, policies: PolicyStore
) -> None:
    out = moderator.check("a golden retriever surfing a wave at sunset", "default")
    assert out.decision.action is Action.ALLOW
    assert not out.decision.reasons
    assert out.decision.policy_version == policies.base.version
    assert set(out.model_versions) == set(policies.base.policy.classifiers.prompt)
    assert all("@" in v for v in out.model_versions.values())
    assert out.latency_ms > 0
    assert out.prompt.original == "a golden retriever surfing a wave at sunset"


def test_obfuscated_prompt_is_blocked_with_evidence_in_the_original(
    moderator: TextModerator,
) -> None:
    text = "a video of p0rn with n\u200baked people"
    out = moderator.check(text, "default")
    assert out.decision.action is Action.BLOCK
    sexual = [r for r in out.decision.reasons if r.category == "sexual"]
    assert sexual, out.decision.reasons
    spans = [(e.start, e.end, e.text) for r in sexual for e in r.evidence if e.start is not None]
    assert spans
    for start, end, quoted in spans:
        assert text[start:end] == quoted


def test_check_many_keeps_order_and_matches_single_checks(moderator: TextModerator) -> None:
    texts = ["a cat on a sofa", "graphic gore, a decapitated body", "a red apple on a table"]
    many = moderator.check_many(texts, "default")
    assert [o.prompt.original for o in many] == texts
    singles = [moderator.check(t, "default") for t in texts]
    assert [o.decision.action for o in many] == [o.decision.action for o in singles]
    assert [o.decision.category_scores for o in many] == [
        o.decision.category_scores for o in singles
    ]


def test_empty_batch_is_empty(moderator: TextModerator) -> None:
    assert moderator.check_many([], "default") == []


# -- fail closed ---------------------------------------------------------------------------


def _only_error_block(out_reasons: Sequence[Reason], category: str, needle: str) -> None:
    errs = error_reasons(out_reasons)
    assert errs, out_reasons
    assert {r.category for r in errs} == {category}
    details = [e.detail for r in errs for e in r.evidence]
    assert any(d and d.startswith("error: ") and needle in d for d in details), details


def test_a_classifier_that_raises_blocks(
    policies: PolicyStore, text_classifiers: Mapping[str, ClassifierFactory]
) -> None:
    clf = Scripted(raises=RuntimeError("model exploded"))
    mod = TextModerator(policies, classifiers=with_scripted(text_classifiers, clf))
    out = mod.check("a cat on a sofa", "default")
    assert out.decision.action is Action.BLOCK
    _only_error_block(out.decision.reasons, "violence", "RuntimeError: model exploded")


def test_a_classifier_over_its_time_budget_blocks(
    policies: PolicyStore, text_classifiers: Mapping[str, ClassifierFactory]
) -> None:
    # The budget applies to the real classifiers too: 5 ms failed the real learned heads once
    # on a loaded machine, so the budget is generous, the scripted one far over it, and the
    # whole check's deadline (by default the budgets' sum) out of the way.
    clf = Scripted(sleep_s=0.3)
    mod = TextModerator(
        policies,
        classifiers=with_scripted(text_classifiers, clf),
        time_budget_ms=100,
        deadline_ms=10_000,
    )
    out = mod.check("a cat on a sofa", "default")
    assert out.decision.action is Action.BLOCK
    _only_error_block(out.decision.reasons, "violence", "over its budget")


@pytest.mark.parametrize(
    ("wrong", "why"),
    [
        ("not a list", "not a list"),
        (["not a verdict"], "not a Verdict"),
        ([Verdict("scripted", "violence", float("nan"), "m", "1")], "score nan"),
        ([Verdict("scripted", "violence", 1.5, "m", "1")], "score 1.5"),
        ([Verdict("scripted", "gore", 0.1, "m", "1")], "unknown category"),  # type: ignore[arg-type]
    ],
)
def test_garbage_from_a_classifier_blocks(
    policies: PolicyStore,
    text_classifiers: Mapping[str, ClassifierFactory],
    wrong: object,
    why: str,
) -> None:
    mod = TextModerator(
        policies, classifiers=with_scripted(text_classifiers, Scripted(wrong=wrong))
    )
    out = mod.check("a cat on a sofa", "default")
    assert out.decision.action is Action.BLOCK, why
    _only_error_block(out.decision.reasons, "violence", "InvalidVerdict")


def test_a_classifier_that_cannot_load_blocks_every_category_and_shows_in_models(
    policies: PolicyStore, text_classifiers: Mapping[str, ClassifierFactory]
) -> None:
    mod = TextModerator(
        policies, classifiers=with_scripted(text_classifiers, FileNotFoundError("weights.bin"))
    )
    out = mod.check("a cat on a sofa", "default")
    assert out.decision.action is Action.BLOCK
    errs = error_reasons(out.decision.reasons)
    assert len({r.category for r in errs}) == 9  # unknown coverage: all categories
    assert mod.models()["lexicon"].startswith("error: FileNotFoundError")
    assert out.model_versions["lexicon"] == "lexicon@error"


def test_batch_uses_classify_many_once(
    policies: PolicyStore, text_classifiers: Mapping[str, ClassifierFactory]
) -> None:
    clf = BatchScripted(score=0.0)
    mod = TextModerator(policies, classifiers=with_scripted(text_classifiers, clf))
    outs = mod.check_many(["a", "b", "c"], "default")
    assert clf.batch_calls == 1 and clf.calls == 3
    assert all(o.decision.action is Action.ALLOW for o in outs)


def test_a_failing_batch_blocks_every_prompt_in_it(
    policies: PolicyStore, text_classifiers: Mapping[str, ClassifierFactory]
) -> None:
    clf = BatchScripted(raises=ValueError("bad batch"))
    mod = TextModerator(policies, classifiers=with_scripted(text_classifiers, clf))
    outs = mod.check_many(["a", "b"], "default")
    assert [o.decision.action for o in outs] == [Action.BLOCK, Action.BLOCK]


def test_classifiers_are_built_once(
    policies: PolicyStore, text_classifiers: Mapping[str, ClassifierFactory]
) -> None:
    built = []

    def factory() -> TextClassifier:
        built.append(1)
        return Scripted()

    mod = TextModerator(policies, classifiers={**text_classifiers, "lexicon": factory})
    for _ in range(3):
        mod.check("a cat", "default")
    assert built == [1]


def test_tenant_overlay_changes_the_decision(
    tmp_path: Path, text_classifiers: Mapping[str, ClassifierFactory]
) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "kids.yaml").write_text(
        "extends: default\ncategories:\n  violence:\n    blocklist:\n      terms: [water pistol]\n"
    )
    store = PolicyStore(PACKAGE_POLICY, tenants)
    mod = TextModerator(store, classifiers=text_classifiers)
    text = "two kids with a water pistol in the garden"
    assert mod.check(text, "default").decision.action is Action.ALLOW
    kids = mod.check(text, "kids").decision
    assert kids.action is Action.BLOCK
    assert kids.policy_version == store.get("kids").version != store.base.version
    assert [r.source for r in kids.reasons] == ["blocklist"]


class Hanging(Scripted):
    """Blocks inside classify until the test releases it (a deadlocked model)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def classify(self, prompt: PromptText) -> list[Verdict]:
        self.entered.set()
        self.release.wait()
        return super().classify(prompt)


def test_a_hanging_classifier_still_gets_a_block_by_the_deadline(
    policies: PolicyStore, text_classifiers: Mapping[str, ClassifierFactory]
) -> None:
    clf = Hanging()
    mod = TextModerator(
        policies, classifiers=with_scripted(text_classifiers, clf), time_budget_ms=20
    )
    try:
        out = mod.check("a cat on a sofa", "default")
        assert clf.entered.is_set() and not clf.release.is_set()  # returned while still hung
        assert out.decision.action is Action.BLOCK
        errs = error_reasons(out.decision.reasons)
        assert errs
        details = [e.detail or "" for r in errs for e in r.evidence]
        assert all("missed its deadline" in d for d in details)
        assert out.prompt.original == "a cat on a sofa"
    finally:
        clf.release.set()
