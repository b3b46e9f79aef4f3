"""The HTTP API in-process: /v1/moderations, /healthz, /schema, audit rows, policy hot reload."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from audit.log import AuditLog
from config.settings import Settings
from gateway.app import ROUTE_HANDLERS, create_app
from gateway.moderations import OPENAI_CATEGORIES
from gateway.pipeline import ClassifierFactory

OPENAI_FIELDS = {
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
}


def moderate(client: TestClient[Litestar], auth: dict[str, str], body: Any) -> dict[str, Any]:
    response = client.post("/v1/moderations", json=body, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_string_input_gives_one_openai_shaped_result(
    client: TestClient[Litestar], auth: dict[str, str]
) -> None:
    response = client.post("/v1/moderations", json={"input": "a cat on a sofa"}, headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["id"].startswith("modr-")
    assert response.headers["x-request-id"] == body["id"]
    assert body["model"] == "reelguard-text-1"
    (result,) = body["results"]
    assert result["flagged"] is False
    assert result["action"] == "allow"
    assert result["reasons"] == []
    assert len(result["policy_version"]) == 12
    assert set(result["categories"]) == OPENAI_FIELDS | {"celebrity", "ip"}
    assert set(result["category_scores"]) == set(result["categories"])
    assert all(isinstance(v, bool) for v in result["categories"].values())
    assert all(0.0 <= v <= 1.0 for v in result["category_scores"].values())
    applied = result["category_applied_input_types"]
    for name, ours in OPENAI_CATEGORIES.items():
        assert applied[name] == (["text"] if ours else []), name


def test_a_blocked_prompt_names_category_classifier_threshold_and_span(
    client: TestClient[Litestar], auth: dict[str, str]
) -> None:
    text = "a hardcore p0rn scene"
    (result,) = moderate(client, auth, {"input": text})["results"]
    assert result["flagged"] is True
    assert result["action"] == "block"
    assert result["categories"]["sexual"] is True
    assert result["category_scores"]["sexual"] >= 0.5
    reason = next(r for r in result["reasons"] if r["category"] == "sexual")
    assert reason["action"] == "block"
    assert reason["classifier"]
    assert reason["threshold"] is not None and reason["score"] >= reason["threshold"]
    spans = [e for e in reason["evidence"] if "start" in e]
    assert spans
    for e in spans:
        assert text[e["start"] : e["end"]] == e["text"]


def test_a_list_input_keeps_order(client: TestClient[Litestar], auth: dict[str, str]) -> None:
    texts = ["a cat on a sofa", "a hardcore p0rn scene", "sunrise over the alps"]
    results = moderate(client, auth, {"input": texts, "model": "omni-moderation-latest"})["results"]
    assert [r["action"] for r in results] == ["allow", "block", "allow"]


def test_text_parts_are_accepted(client: TestClient[Litestar], auth: dict[str, str]) -> None:
    body = {"input": [{"type": "text", "text": "a cat on a sofa"}, "sunrise"]}
    assert [r["action"] for r in moderate(client, auth, body)["results"]] == ["allow", "allow"]


def test_every_decision_is_written_to_the_audit_log(
    client: TestClient[Litestar], auth: dict[str, str], settings: Settings
) -> None:
    body = moderate(client, auth, {"input": ["a cat", "a hardcore p0rn scene"]})
    rows = (
        sqlite3.connect(settings.db)
        .execute(
            "select request_id, tenant, endpoint, action, policy_version, original, "
            "model_versions, latency_ms from requests order by seq"
        )
        .fetchall()
    )
    assert [r[0] for r in rows] == [f"{body['id']}.0", f"{body['id']}.1"]
    assert [r[3] for r in rows] == ["allow", "block"]
    assert {r[1] for r in rows} == {"default"} and {r[2] for r in rows} == {"moderations"}
    assert rows[1][4] == body["results"][1]["policy_version"]
    assert rows[1][5] == "a hardcore p0rn scene"
    assert "lexicon" in rows[1][6]
    assert all(r[7] > 0 for r in rows)
    log = AuditLog(settings.db)
    assert log.verify().ok
    story = log.story(f"{body['id']}.1")
    log.close()
    assert story.verdicts and story.reasons


def test_the_key_decides_the_tenant_policy(
    settings: Settings,
    text_classifiers: Mapping[str, ClassifierFactory],
    make_key: Callable[[str], str],
) -> None:
    assert settings.tenant_policy_dir is not None
    (settings.tenant_policy_dir / "kids.yaml").write_text(
        "extends: default\ncategories:\n  violence:\n    blocklist:\n      terms: [water pistol]\n"
    )
    kids = {"Authorization": f"Bearer {make_key('kids')}"}
    adults = {"Authorization": f"Bearer {make_key('studio')}"}
    text = {"input": "two kids with a water pistol"}
    with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
        assert moderate(client, kids, text)["results"][0]["action"] == "block"
        assert moderate(client, adults, text)["results"][0]["action"] == "allow"


def test_policy_edit_is_hot_reloaded_and_a_bad_edit_is_refused(
    settings: Settings,
    text_classifiers: Mapping[str, ClassifierFactory],
    make_key: Callable[[str], str],
) -> None:
    assert settings.tenant_policy_dir is not None
    overlay = settings.tenant_policy_dir / "acme.yaml"
    overlay.write_text("extends: default\n")
    auth = {"Authorization": f"Bearer {make_key('acme')}"}
    text = {"input": "a bowl of blue ramen"}
    with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
        first = moderate(client, auth, text)["results"][0]
        assert first["action"] == "allow"

        overlay.write_text(
            "extends: default\ncategories:\n  ip:\n    blocklist:\n      terms: [blue ramen]\n"
        )
        result = _wait_for(lambda: moderate(client, auth, text)["results"][0], "block")
        assert result["policy_version"] != first["policy_version"]
        assert client.get("/healthz").json()["policy"]["last_reload_error"] is None

        overlay.write_text("extends: default\ncategories:\n  ip:\n    block_at: 2\n")
        health = _wait_for(lambda: client.get("/healthz").json(), "degraded", key="status")
        assert "acme.yaml" in health["policy"]["last_reload_error"]
        still = moderate(client, auth, text)["results"][0]
        assert still["action"] == "block"
        assert still["policy_version"] == result["policy_version"]


def _wait_for(fetch: Any, want: str, key: str = "action", timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if got[key] == want or time.monotonic() > deadline:
            assert got[key] == want, got
            return got
        time.sleep(0.05)


def test_healthz_reports_policy_and_models(client: TestClient[Litestar]) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["policy"]["versions"]) == {"default"}
    assert body["policy"]["base_sources"][0].endswith("default.yaml")
    assert body["policy"]["last_reload_error"] is None
    assert {"lexicon", "celebrity", "ip"} <= set(body["models"])
    assert all("@" in v for v in body["models"].values())


def test_healthz_is_503_when_a_classifier_cannot_load(
    settings: Settings,
    text_classifiers: Mapping[str, ClassifierFactory],
    make_key: Callable[[str], str],
) -> None:
    def broken() -> Any:
        raise FileNotFoundError("gazetteer.bin is missing")

    app = create_app(settings, classifiers={**text_classifiers, "celebrity": broken})
    with TestClient(app) as client:
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["status"] == "failing"
        assert "gazetteer.bin" in response.json()["models"]["celebrity"]
        key = {"Authorization": f"Bearer {make_key('default')}"}
        (result,) = moderate(client, key, {"input": "a cat on a sofa"})["results"]
        assert result["action"] == "block"
        assert {r["source"] for r in result["reasons"]} == {"error"}


def test_openapi_schema_is_served(client: TestClient[Litestar]) -> None:
    schema = client.get("/schema/openapi.json")
    assert schema.status_code == 200
    doc = schema.json()
    assert "/v1/moderations" in doc["paths"]
    assert "/healthz" in doc["paths"]
    assert doc["info"]["title"] == "ReelGuard"
    responses = doc["paths"]["/v1/moderations"]["post"]["responses"]
    for status in ("401", "413", "422"):
        assert "application/problem+json" in responses[status]["content"], status


def test_route_registry_lists_every_route() -> None:
    names = {getattr(r, "__name__", None) for r in ROUTE_HANDLERS}
    assert "ModerationController" in names


@pytest.mark.parametrize("n", [1, 32])
def test_up_to_the_item_limit_is_accepted(
    client: TestClient[Litestar], auth: dict[str, str], n: int
) -> None:
    results = moderate(client, auth, {"input": ["a cat"] * n})["results"]
    assert len(results) == n


def test_exactly_max_chars_is_accepted(
    client: TestClient[Litestar], auth: dict[str, str], settings: Settings
) -> None:
    text = ("a quiet lake " * 1000)[: settings.max_input_chars]
    assert moderate(client, auth, {"input": text})["results"][0]["action"] == "allow"
