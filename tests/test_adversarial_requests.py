"""The reliability probe's request cases (issue 10), as a corpus: each hostile request gets the
4xx problem details it deserves, never a 500, a hang or a job.

Each row: what the probe sent, the status and problem type expected, and why. The server-level
cases (a 50 MB header, a half-sent body, slow headers) need a real socket and live in
``test_http_limits.py``; the cost cases (admission control, deadlines) in
``test_request_limits.py``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from config.settings import Settings
from gateway.app import create_app
from gateway.jobs import JobStore
from gateway.keys import KeyStore
from gateway.pipeline import ClassifierFactory

FDFA = "\ufdfa"
DEEP = 100_000


def _deep(key: str) -> bytes:
    return b'{"' + key.encode() + b'": ' + b"[" * DEEP + b"]" * DEEP + b"}"


def _multipart(*parts: tuple[str, bytes, str | None]) -> dict[str, Any]:
    """httpx ``files=`` for form parts: (name, bytes, filename or None for a text field)."""
    return {"files": [(name, (filename, data)) for name, data, filename in parts]}


@dataclass(frozen=True)
class Case:
    """One hostile request and the answer it must get."""

    name: str
    path: str
    request: Callable[[], dict[str, Any]]
    status: int
    kind: str
    why: str
    pointer: str | None = None


JSON = {"Content-Type": "application/json"}
CASES = [
    Case(
        "32 x 10,000 x U+FDFA",
        "/v1/moderations",
        lambda: {"json": {"input": [FDFA * 10_000] * 32}},
        413,
        "input-too-large",
        "2 MB that normalises to 5.8 M characters: 14 s of CPU per request before",
        "#/input/0",
    ),
    Case(
        "U+FDFA video prompt",
        "/v1/videos",
        lambda: {"json": {"prompt": FDFA * 5_000}},
        413,
        "input-too-large",
        "the same expansion through the video endpoint",
        "#/prompt",
    ),
    Case(
        "JSON 100,000 deep (moderations)",
        "/v1/moderations",
        lambda: {"content": _deep("input"), "headers": JSON},
        400,
        "invalid-json",
        "RecursionError in the JSON decoder was a 500",
    ),
    Case(
        "JSON 100,000 deep (videos)",
        "/v1/videos",
        lambda: {"content": _deep("prompt"), "headers": JSON},
        400,
        "invalid-json",
        "RecursionError in json.loads was a 500",
    ),
    Case(
        "a bare array 100,000 deep (videos)",
        "/v1/videos",
        lambda: {"content": b"[" * DEEP + b"]" * DEEP, "headers": JSON},
        400,
        "invalid-json",
        "the same without an object around it",
    ),
    Case(
        "lone surrogate (moderations)",
        "/v1/moderations",
        lambda: {"content": b'{"input": "a cat \\ud800"}', "headers": JSON},
        400,
        "invalid-json",
        "not Unicode text; the reference answer",
    ),
    Case(
        "lone surrogate (videos)",
        "/v1/videos",
        lambda: {"content": b'{"prompt": "a cat \\ud800"}', "headers": JSON},
        400,
        "invalid-json",
        "UnicodeEncodeError when storing the job was a 500",
    ),
    Case(
        "NaN (videos)",
        "/v1/videos",
        lambda: {"content": b'{"prompt": "a cat", "seconds": NaN}', "headers": JSON},
        400,
        "invalid-json",
        "not JSON",
    ),
    Case(
        "prompt sent as a file part",
        "/v1/videos",
        lambda: _multipart(("prompt", b"a red circle", "prompt.txt")),
        422,
        "validation-error",
        "created a job whose prompt was the string '<file>'",
        "#/prompt",
    ),
    Case(
        "seconds sent as a file part",
        "/v1/videos",
        lambda: _multipart(("prompt", b"a red circle", None), ("seconds", b"2", "s.txt")),
        422,
        "validation-error",
        "any field but input_reference must be text",
        "#/seconds",
    ),
    Case(
        "a form field that is not UTF-8",
        "/v1/videos",
        lambda: _multipart(("prompt", b"a \xed\xa0\x80 circle \xff", None)),
        400,
        "bad-request",
        "UnicodeDecodeError in the form parser was a 500",
    ),
    Case(
        "full-width digits in size",
        "/v1/videos",
        lambda: {"json": {"prompt": "a red circle", "size": "１２８x１２８"}},
        422,
        "validation-error",
        "\\d matched them and the job stored the size as sent",
        "#/size",
    ),
    Case(
        "a trailing newline in size",
        "/v1/videos",
        lambda: {"json": {"prompt": "a red circle", "size": "256x256\n"}},
        422,
        "validation-error",
        "$ matched before the newline and the job stored it",
        "#/size",
    ),
    Case(
        "an array body",
        "/v1/videos",
        lambda: {"json": ["a red circle"]},
        422,
        "validation-error",
        "the body must be an object",
    ),
]


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, text_classifiers: Mapping[str, ClassifierFactory]
) -> Iterator[tuple[TestClient[Litestar], dict[str, str], Settings]]:
    root = tmp_path_factory.mktemp("adversarial")
    settings = Settings(db=root / "rg.db", data_dir=root / "videos")
    store = KeyStore(settings.db)
    headers = {"Authorization": f"Bearer {store.create('default').token}"}
    store.close()
    with TestClient(
        create_app(settings, classifiers=text_classifiers), raise_server_exceptions=False
    ) as client:
        yield client, headers, settings


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_request_gets_its_problem(
    env: tuple[TestClient[Litestar], dict[str, str], Settings], case: Case
) -> None:
    client, headers, settings = env
    request = case.request()
    request["headers"] = {**headers, **request.get("headers", {})}
    started = time.perf_counter()
    r = client.post(case.path, **request)
    assert r.status_code == case.status, (case.why, r.text[:300])
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == f"urn:reelguard:problem:{case.kind}", case.why
    if case.pointer is not None:
        assert case.pointer in [e["pointer"] for e in body["errors"]], body
    assert time.perf_counter() - started < 5, "refusing must be quick"
    assert JobStore(settings.db).list("default").jobs == (), "no job from a refused request"


def test_size_is_stored_in_canonical_form(
    env: tuple[TestClient[Litestar], dict[str, str], Settings],
) -> None:
    client, headers, _ = env
    r = client.post(
        "/v1/videos", json={"prompt": "a red circle", "size": "064x0064"}, headers=headers
    )
    assert r.status_code == 202, r.text
    assert r.json()["size"] == "64x64"


# -- a database that cannot be written ---------------------------------------------------------


def read_only_database(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """From now on, every new SQLite connection of this process is read-only, the way SQLite
    opens a file it may not write. (Tests run as root, whom file modes do not stop, so this
    says it with ``PRAGMA query_only``: SQLite then refuses every write with the same error,
    "attempt to write a readonly database".) Returns a function that ends it."""
    real = sqlite3.connect
    state = {"on": True}

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real(*args, **kwargs)
        if state["on"]:
            conn.execute("PRAGMA query_only = ON")
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect)
    return lambda: state.update(on=False)


def test_a_read_only_database_is_503_everywhere_and_healthz_says_so(
    settings: Settings,
    text_classifiers: Mapping[str, ClassifierFactory],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = KeyStore(settings.db)
    headers = {"Authorization": f"Bearer {store.create('default').token}"}
    store.close()
    app = create_app(settings, classifiers=text_classifiers)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").json()["database"] == {"writable": True, "error": None}
        assert client.post(
            "/v1/videos", json={"prompt": "a red circle bouncing"}, headers=headers
        ).is_success
        app.state.audit.close()  # its next write reopens the file, read-only from now on
        app.state.write_probe.ttl_s = 0
        writable_again = read_only_database(monkeypatch)

        video = client.post("/v1/videos", json={"prompt": "a blue square growing"}, headers=headers)
        assert video.status_code == 503, video.text  # was a 500
        assert video.json()["type"] == "urn:reelguard:problem:audit-unavailable"
        assert video.headers["retry-after"] == "1"
        text = client.post("/v1/moderations", json={"input": "a dog"}, headers=headers)
        assert text.status_code == 503
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "failing"
        assert health.json()["database"]["writable"] is False
        assert "readonly" in health.json()["database"]["error"]

        writable_again()
        app.state.audit.close()
        assert client.get("/healthz").json()["status"] == "ok"
    jobs = JobStore(settings.db).list("default").jobs
    assert [j.prompt for j in jobs] == ["a red circle bouncing"]  # nothing half-created since
