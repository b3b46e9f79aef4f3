"""End to end over a real uvicorn server on 127.0.0.1: health, moderation, auth, errors, audit."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def headers(live_server: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {live_server.key}"}


def test_healthz_over_http(live_server: Any) -> None:
    response = httpx.get(f"{live_server.url}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_moderation_over_http(live_server: Any) -> None:
    response = httpx.post(
        f"{live_server.url}/v1/moderations",
        json={"input": ["a cat on a sofa", "a hardcore p0rn scene"]},
        headers=headers(live_server),
        timeout=10,
    )
    assert response.status_code == 200
    body = response.json()
    assert [r["action"] for r in body["results"]] == ["allow", "block"]
    rows = (
        sqlite3.connect(live_server.settings.db)
        .execute(
            "select request_id, action from requests where request_id like ?", (body["id"] + "%",)
        )
        .fetchall()
    )
    assert sorted(rows) == [(f"{body['id']}.0", "allow"), (f"{body['id']}.1", "block")]


def test_wrong_key_over_http_is_problem_details(live_server: Any) -> None:
    response = httpx.post(
        f"{live_server.url}/v1/moderations",
        json={"input": "x"},
        headers={"Authorization": "Bearer rg_nope_nope"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:reelguard:problem:unauthorized"


def test_invalid_json_over_http_is_problem_details(live_server: Any) -> None:
    response = httpx.post(
        f"{live_server.url}/v1/moderations",
        content=b'{"input": ',
        headers={**headers(live_server), "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["type"] == "urn:reelguard:problem:invalid-json"


def test_concurrent_requests_all_get_answers_and_audit_rows(live_server: Any) -> None:
    texts = [f"a cat number {i} on a sofa" for i in range(40)]

    def one(text: str) -> dict[str, Any]:
        r = httpx.post(
            f"{live_server.url}/v1/moderations",
            json={"input": text},
            headers=headers(live_server),
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(one, texts))
    ids = {b["id"] for b in bodies}
    assert len(ids) == 40
    db = sqlite3.connect(live_server.settings.db)
    stored = {r[0] for r in db.execute("select request_id from requests")}
    assert ids <= stored


def test_schema_over_http(live_server: Any) -> None:
    response = httpx.get(f"{live_server.url}/schema/openapi.json", timeout=10)
    assert response.status_code == 200
    assert "/v1/moderations" in response.json()["paths"]


def test_reelguard_serve_first_start_prints_a_working_key(tmp_path: Path) -> None:
    """What `make run` does: start `reelguard serve` on an empty database and use its key."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGUARD_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from gateway.cli import main; main()",
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "fresh.db"),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        seen: list[str] = []
        token = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"\b(rg_[0-9a-f]{8}_[\w-]+)", line)
            token = token or (found.group(1) if found else None)
            if "Uvicorn running" in line:
                break
        assert token, "".join(seen)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/moderations",
            json={"input": "a cat on a sofa"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["action"] == "allow"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
