"""``category_scores`` are the scores the decision used, through the real text pipeline.

A client that applies its own thresholds to ``category_scores`` (as OpenAI's docs suggest) must
agree with ``action``: a hit an allowlist excused does not count there, and ``reasons`` keeps
its raw score (action ``allow``, source ``allowlist``).
"""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import TestClient

from config.settings import PACKAGE_POLICY
from policies.loader import PolicyLoader


def test_an_allowlisted_phrase_does_not_score_above_the_thresholds(
    client: TestClient[Litestar], auth: dict[str, str]
) -> None:
    policy = PolicyLoader(PACKAGE_POLICY).load(PACKAGE_POLICY)
    review_at = policy.stage("sexual", "prompt").review_at
    body = client.post(
        "/v1/moderations", json={"input": "a sex education class at school"}, headers=auth
    ).json()
    (result,) = body["results"]
    assert result["action"] == "allow" and result["flagged"] is False
    assert result["category_scores"]["sexual"] < review_at, result
    excused = [r for r in result["reasons"] if r["source"] == "allowlist"]
    assert excused and all(r["action"] == "allow" and r["category"] == "sexual" for r in excused)
    assert max(r["score"] for r in excused) >= review_at  # the raw score, kept
    assert any(e["text"] == "sex education" for r in excused for e in r["evidence"])
