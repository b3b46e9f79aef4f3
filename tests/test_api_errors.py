"""One error shape for the whole API (RFC 9457 problem details), checked for every error kind.

Each row: how to provoke the error, the expected status and problem type, why.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from audit.log import AuditLog
from config.settings import Settings
from gateway.keys import KeyStore

Send = Callable[[TestClient[Litestar], dict[str, str]], Any]
URL = "/v1/moderations"
JSON = {"Content-Type": "application/json"}


def post_raw(body: bytes, *, auth: bool = True) -> Send:
    def send(client: TestClient[Litestar], headers: dict[str, str]) -> Any:
        return client.post(URL, content=body, headers={**JSON, **(headers if auth else {})})

    return send


def post_json(body: Any) -> Send:
    return lambda client, headers: client.post(URL, json=body, headers=headers)


def with_header(value: str) -> Send:
    return lambda client, _: client.post(URL, json={"input": "x"}, headers={"Authorization": value})


# (send, status, problem type, pointer expected in errors or None, why)
CASES: list[tuple[str, Send, int, str, str | None]] = [
    ("no key", post_raw(b'{"input": "x"}', auth=False), 401, "unauthorized", None),
    ("unknown key", with_header("Bearer rg_deadbeef_nope"), 401, "unauthorized", None),
    ("basic auth", with_header("Basic dXNlcjpwYXNz"), 401, "unauthorized", None),
    ("empty bearer", with_header("Bearer "), 401, "unauthorized", None),
    ("not json", post_raw(b"{input: x"), 400, "invalid-json", None),
    ("empty body", post_raw(b""), 400, "bad-request", None),
    ("input is a number", post_json({"input": 3}), 422, "validation-error", "#/input"),
    ("item is a number", post_json({"input": ["a", 3]}), 422, "validation-error", "#/input/1"),
    ("missing input", post_json({"model": "m"}), 422, "validation-error", "#"),
    ("unknown field", post_json({"inputs": "a"}), 422, "validation-error", "#"),
    ("body is a list", post_json(["a"]), 422, "validation-error", "#"),
    (
        "model not a string",
        post_json({"input": "a", "model": 1}),
        422,
        "validation-error",
        "#/model",
    ),
    ("empty list", post_json({"input": []}), 422, "validation-error", "#/input"),
    (
        "image part",
        post_json({"input": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}),
        422,
        "validation-error",
        "#/input/0",
    ),
    ("bad part type", post_json({"input": [{"type": "audio"}]}), 422, "validation-error", None),
    (
        "text part without text",
        post_json({"input": [{"type": "text"}]}),
        422,
        "validation-error",
        "#/input/0",
    ),
    ("33 items", post_json({"input": ["a"] * 33}), 413, "input-too-large", "#/input"),
    ("10,001 chars", post_json({"input": "a" * 10_001}), 413, "input-too-large", "#/input"),
    (
        "one long item in a list",
        post_json({"input": ["ok", "a" * 10_001]}),
        413,
        "input-too-large",
        "#/input/1",
    ),
    (
        "body over the byte limit",
        post_raw(b'{"input": "' + b"a" * 3_000_000 + b'"}'),
        413,
        "input-too-large",
        None,
    ),
    ("no such route", lambda c, h: c.get("/v1/nothing", headers=h), 404, "not-found", None),
    ("wrong method", lambda c, h: c.get(URL, headers=h), 405, "method-not-allowed", None),
    ("a bug", lambda c, h: c.get("/boom", headers=h), 500, "internal-error", None),
]


@pytest.fixture
def error_client(app: Litestar) -> Any:
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    app.register(boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    ("send", "status", "kind", "pointer"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_every_error_is_problem_details(
    error_client: TestClient[Litestar],
    auth: dict[str, str],
    send: Send,
    status: int,
    kind: str,
    pointer: str | None,
) -> None:
    response = send(error_client, auth)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == f"urn:reelguard:problem:{kind}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert set(body) <= {"type", "title", "status", "detail", "instance", "errors", "error"}
    # OpenAI's envelope beside the problem details: what the openai SDK shows in str(e).
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"].startswith(body["detail"].rstrip(".")), error
    assert error["code"] == ("invalid_api_key" if status == 401 else kind.replace("-", "_"))
    assert error["type"] == {401: "authentication_error", 500: "server_error"}.get(
        status, "invalid_request_error"
    )
    if pointer is not None and pointer != "#":
        assert pointer in error["message"], error
    for err in body.get("errors", []):
        assert set(err) == {"pointer", "detail"}
        assert err["pointer"].startswith("#")
    if pointer is not None:
        assert pointer in [e["pointer"] for e in body["errors"]], body
    assert "Traceback" not in response.text
    assert "secret internal detail" not in response.text
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_revoked_key_gets_401(
    error_client: TestClient[Litestar], api_key: str, settings: Settings
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    assert error_client.post(URL, json={"input": "x"}, headers=headers).status_code == 200
    store = KeyStore(settings.db)
    store.revoke(store.list()[0].key_id)
    store.close()
    response = error_client.post(URL, json={"input": "x"}, headers=headers)
    assert response.status_code == 401
    assert response.json()["type"] == "urn:reelguard:problem:unauthorized"


def test_auth_is_checked_before_the_body(error_client: TestClient[Litestar]) -> None:
    response = error_client.post(URL, content=b"{not json", headers=JSON)
    assert response.status_code == 401


def test_a_validation_error_names_the_field(
    error_client: TestClient[Litestar], auth: dict[str, str]
) -> None:
    body = error_client.post(URL, json={"input": ["a", 3]}, headers=auth).json()
    (err,) = body["errors"]
    assert err["pointer"] == "#/input/1"
    assert "str" in err["detail"]


def test_the_500_is_logged_with_its_traceback(
    error_client: TestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="reelguard.gateway"):
        error_client.get("/boom")
    assert any(
        r.exc_info and "secret internal detail" in str(r.exc_info[1]) for r in caplog.records
    )


def test_an_unwritable_audit_log_withholds_the_decision(
    app: Litestar, auth: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the audit folder should be")
    app.state.audit = AuditLog(blocker / "audit.db")
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(URL, json={"input": "a cat on a sofa"}, headers=auth)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["type"] == "urn:reelguard:problem:audit-unavailable"
    assert "results" not in body


def test_every_problem_type_the_gateway_raises_is_in_the_documented_table() -> None:
    """``gateway/problems.py`` lists the problem types clients can branch on; a type raised
    anywhere in the gateway but missing from that table is undocumented API."""
    import re

    import gateway
    from gateway import problems

    raised: dict[str, int] = {}
    for path in Path(gateway.__file__).parent.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for status, kind in re.findall(r'Problem\(\s*(\d{3}),\s*"([a-z-]+)"', text):
            raised[kind] = int(status)
        for kind in re.findall(r'TYPE_PREFIX \+ "([a-z-]+)"', text):
            raised.setdefault(kind, 400)
    documented = dict(
        (kind, int(status))
        for kind, status in re.findall(r"- ``([a-z-]+)`` \((\d{3})", problems.__doc__ or "")
    )
    assert len(raised) >= 15  # the scan finds the gateway's problems
    missing = {k: s for k, s in raised.items() if documented.get(k) != s}
    assert missing == {}, f"document these in gateway/problems.py: {missing}"
