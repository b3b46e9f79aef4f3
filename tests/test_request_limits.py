"""What one request may cost (issue 10, items 6 and 7): normalised-size limits (413), one
deadline per request whatever its item count, admission control (503 + Retry-After), and a
timed-out check that blocks at once without running the expensive work again.

Real policy, real classifiers, a real app in-process; the scripted classifiers below only
stand in for a model that hangs or is slow.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from audit.log import AuditLog
from classifiers.base import Category, PromptText, TextClassifier, Verdict
from classifiers.text.normalize import normalize, normalized_length_bound
from config.settings import PACKAGE_POLICY, Settings
from gateway.app import create_app
from gateway.keys import KeyStore
from gateway.pipeline import Admission, ChecksOverloaded, ClassifierFactory, TextModerator
from policies.decision import Action
from policies.evaluate import StaticPolicies
from policies.loader import load_policy
from policies.resolved import ResolvedPolicy
from policies.schema import TermList
from policies.store import PolicyStore

FDFA = "\ufdfa"  # ARABIC LIGATURE SALLALLAHOU ALAYHE WASALLAM: NFKC makes it 18 characters


class Slow:
    """A prompt classifier that takes ``sleep_s`` per prompt (or hangs until released)."""

    name = model_id = "slow"
    model_version = "1"
    categories: tuple[Category, ...] = ("violence",)

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.sleep_s = sleep_s
        self.calls = 0
        self.release = threading.Event()
        self.hang = sleep_s == 0.0

    def classify(self, prompt: PromptText) -> list[Verdict]:
        self.calls += 1
        if self.hang:
            self.release.wait(30)
        else:
            time.sleep(self.sleep_s)
        return [Verdict("slow", "violence", 0.0, "slow", "1")]


def _with(classifiers: Mapping[str, ClassifierFactory], clf: TextClassifier) -> dict:
    """The real registry with ``lexicon`` replaced (the default policy runs it)."""
    return {**classifiers, "lexicon": lambda: clf}


@pytest.fixture
def client(settings: Settings, text_classifiers: Mapping[str, ClassifierFactory]) -> Iterator:
    app = create_app(settings, classifiers=text_classifiers)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def headers(settings: Settings) -> dict[str, str]:
    store = KeyStore(settings.db)
    try:
        return {"Authorization": f"Bearer {store.create('default').token}"}
    finally:
        store.close()


def _audited(settings: Settings) -> int:
    log = AuditLog(settings.db)
    try:
        return len(log.list_requests(limit=None))
    finally:
        log.close()


# -- normalised size --------------------------------------------------------------------------


def test_the_length_bound_holds_for_every_expanding_character() -> None:
    """The cheap bound is never below what the normaliser produces (so the 413 cannot be
    dodged with a character the bound underestimates)."""
    expanding = [
        chr(c)
        for c in range(0x110000)
        if not 0xD800 <= c <= 0xDFFF and len(unicodedata.normalize("NFKC", chr(c)).casefold()) > 1
    ]
    assert len(expanding) > 1000
    for ch in expanding:
        text = f"a{ch * 3} b{ch}"
        assert len(normalize(text).normalized) <= normalized_length_bound(text), hex(ord(ch))
    assert normalized_length_bound(FDFA * 10_000) == 180_000
    assert normalized_length_bound("plain ascii") == len("plain ascii")


def test_32_items_of_10000_fdfa_are_refused_fast_with_the_limit_named(
    client: TestClient[Litestar], headers: dict[str, str], settings: Settings
) -> None:
    """The probe's request: 2 MB that normalises to 5.8 M characters (14 s of CPU before)."""
    started = time.perf_counter()
    r = client.post("/v1/moderations", json={"input": [FDFA * 10_000] * 32}, headers=headers)
    took = time.perf_counter() - started
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["type"] == "urn:reelguard:problem:input-too-large"
    assert "REELGUARD_MAX_NORMALIZED_CHARS" in body["detail"] and "20000" in body["detail"]
    assert [e["pointer"] for e in body["errors"]] == [f"#/input/{i}" for i in range(32)]
    assert "180000 characters once normalised" in body["errors"][0]["detail"]
    assert took < 2.0, f"refusing took {took:.2f} s"
    assert _audited(settings) == 0  # refused before any check: nothing decided


def test_the_request_total_is_bounded_too(
    client: TestClient[Litestar], headers: dict[str, str]
) -> None:
    # 11 items of 10,000 plain characters: each within both raw limits, 110,000 in all.
    r = client.post("/v1/moderations", json={"input": ["a cat " * 1666] * 11}, headers=headers)
    assert r.status_code == 413, r.text
    assert "REELGUARD_MAX_REQUEST_NORMALIZED_CHARS" in r.json()["detail"]
    ok = client.post("/v1/moderations", json={"input": ["a cat " * 1666] * 9}, headers=headers)
    assert ok.status_code == 200


def test_a_video_prompt_that_normalises_too_long_is_413(
    client: TestClient[Litestar], headers: dict[str, str]
) -> None:
    r = client.post("/v1/videos", json={"prompt": FDFA * 2000}, headers=headers)
    assert r.status_code == 413 and r.json()["errors"][0]["pointer"] == "#/prompt"


# -- one deadline per request -----------------------------------------------------------------


def test_one_deadline_for_the_whole_request_whatever_its_item_count(
    text_classifiers: Mapping[str, ClassifierFactory],
) -> None:
    """Before: 1 s x classifiers x items + 0.5 s (128.5 s for 32 items); now one deadline."""
    slow = Slow(sleep_s=0.05)
    mod = TextModerator(
        PolicyStore(PACKAGE_POLICY),
        classifiers=_with(text_classifiers, slow),
        deadline_ms=300,
    )
    started = time.perf_counter()
    outs = mod.check_many([f"a cat number {i}" for i in range(32)], "default")
    took = time.perf_counter() - started
    assert took < 1.5, f"answered after {took:.2f} s"
    assert all(o.decision.action is Action.BLOCK for o in outs)
    details = {e.detail for o in outs for r in o.decision.reasons for e in r.evidence}
    assert details == {"error: TimeoutError: the text check missed its deadline of 300 ms"}
    # The abandoned check stops at its next step instead of running all 32 prompts.
    time.sleep(0.5)
    assert slow.calls < 16, slow.calls


# -- admission control ------------------------------------------------------------------------


def test_a_check_abandoned_at_its_deadline_keeps_its_place_until_its_thread_ends(
    text_classifiers: Mapping[str, ClassifierFactory],
) -> None:
    """Hung work counts: a request whose check hung has been answered (block), but the
    thread still runs, so the place stays taken and the next request is refused."""
    hung = Slow()  # hangs until released
    admission = Admission(1)
    mod = TextModerator(
        PolicyStore(PACKAGE_POLICY),
        classifiers=_with(text_classifiers, hung),
        deadline_ms=100,
        admission=admission,
    )
    try:
        admission.enter()  # the request (the gateway's middleware does this)
        first = mod.check("a cat on a sofa", "default")
        admission.leave()  # the request is answered...
        assert first.decision.action is Action.BLOCK  # ...with a block, at the deadline
        assert admission.pending == 1  # but its check still runs
        with pytest.raises(ChecksOverloaded, match="REELGUARD_MAX_PENDING_CHECKS"):
            admission.enter()
    finally:
        hung.release.set()
    deadline = time.monotonic() + 5
    while admission.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert admission.pending == 0
    hung.hang = False
    assert mod.check("a dog on a sofa", "default").decision.action is Action.ALLOW


def test_overload_is_503_problem_details_with_retry_after(
    client: TestClient[Litestar], headers: dict[str, str], settings: Settings
) -> None:
    admission = client.app.state.admission
    held = 0
    try:
        while admission.pending < admission.limit:  # every place taken by requests in flight
            admission.enter()
            held += 1
        for path, body in (
            ("/v1/moderations", {"input": "a cat"}),
            ("/v1/videos", {"prompt": "a red circle bouncing"}),
        ):
            r = client.post(path, json=body, headers=headers)
            assert r.status_code == 503, r.text
            assert r.headers["content-type"] == "application/problem+json"
            assert r.headers["retry-after"] == "1"
            assert r.json()["type"] == "urn:reelguard:problem:overloaded"
            assert r.json()["error"]["code"] == "overloaded"  # OpenAI's envelope, like all errors
        assert client.get("/healthz").status_code == 200  # only moderation work is shed
        assert client.get("/v1/videos", headers=headers).status_code == 200
    finally:
        for _ in range(held):
            admission.leave()
    assert _audited(settings) == 0
    assert client.post("/v1/moderations", json={"input": "a cat"}, headers=headers).is_success


# -- a timed-out check blocks at once ---------------------------------------------------------


def _big_blocklist_policy(terms: int) -> ResolvedPolicy:
    """The default policy with a ``terms``-entry violence blocklist (a big tenant list)."""
    base = load_policy(PACKAGE_POLICY).policy
    violence = base.categories.get("violence")
    big = violence.model_copy(
        update={"blocklist": TermList(terms=[f"zq{i}quux" for i in range(terms)])}
    )
    categories = base.categories.model_copy(update={"violence": big})
    return ResolvedPolicy.build(base.model_copy(update={"categories": categories}))


def test_a_timed_out_check_blocks_at_once_without_scanning_the_lists_again(
    text_classifiers: Mapping[str, ClassifierFactory],
) -> None:
    """Before, the fail-closed path ran the policy (its blocklist scan) again, outside any
    deadline: with a big list the answer came long after the deadline."""
    policy = _big_blocklist_policy(10_000)
    prompt = "a quiet walk in the park with the dog " * 250  # ~10,000 characters
    t0 = time.perf_counter()
    policy.blocklists["violence"].find(normalize(prompt))
    scan_s = time.perf_counter() - t0
    assert scan_s > 0.2, "the list must be slow to scan for this test to mean anything"

    mod = TextModerator(StaticPolicies(policy), classifiers=text_classifiers, deadline_ms=100)
    started = time.perf_counter()
    out = mod.check(prompt, "default")
    took = time.perf_counter() - started
    assert out.decision.action is Action.BLOCK
    assert {r.source for r in out.decision.reasons} == {"error"}
    assert took < 0.1 + scan_s / 2, f"answered {took:.2f} s after; one scan takes {scan_s:.2f} s"
    assert out.prompt.original == prompt


def test_a_check_with_no_classifiers_that_times_out_still_blocks(tmp_path: Path) -> None:
    """Even a policy that runs no text classifier blocks a check that missed its deadline."""
    policy = _big_blocklist_policy(10_000)
    none = policy.policy.model_copy(
        update={
            "classifiers": policy.policy.classifiers.model_copy(update={"prompt": ()}),
        }
    )
    mod = TextModerator(StaticPolicies(ResolvedPolicy.build(none)), classifiers={}, deadline_ms=50)
    out = mod.check("a quiet walk in the park " * 400, "default")
    assert out.decision.action is Action.BLOCK
