"""The HTTP server's own limits (issue 10, item 8), against a real uvicorn server on 127.0.0.1
configured as ``reelguard serve`` configures it: request head size, the time a client has to
send its request (slowloris, half-sent bodies), idle keep-alive connections, body size; and a
client that disconnects mid-body is a one-line log, not an unhandled error (item 12).

Raw sockets, because no well-behaved HTTP client sends what these tests send.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import ClassifierFactory, LiveServer, serve_in_thread

from config.settings import Settings

pytestmark = pytest.mark.slow

READ_TIMEOUT_S = 1.0
KEEP_ALIVE_S = 1


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, text_classifiers: Mapping[str, ClassifierFactory]
) -> Iterator[LiveServer]:
    root: Path = tmp_path_factory.mktemp("limits")
    settings = Settings(
        db=root / "rg.db",
        data_dir=root / "videos",
        request_read_timeout_s=READ_TIMEOUT_S,
        keep_alive_timeout_s=KEEP_ALIVE_S,
        max_body_bytes=4096,
    )
    with serve_in_thread(settings, text_classifiers) as live:
        yield live


def _connect(server: LiveServer) -> socket.socket:
    url = urlsplit(server.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    return sock


def _head(server: LiveServer, length: int) -> bytes:
    return (
        "POST /v1/moderations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _closed_after(sock: socket.socket, limit_s: float) -> float:
    """Seconds until the server closes ``sock`` (EOF or reset); fails after ``limit_s``."""
    sock.settimeout(limit_s)
    started = time.monotonic()
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for over {limit_s} s")
    return time.monotonic() - started


def test_a_50_mb_header_is_refused_without_being_read(server: LiveServer) -> None:
    sock = _connect(server)
    sent = 0
    chunk = b"a" * 65536
    started = time.monotonic()
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        while sent < 50 * 2**20:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    assert sent < 10 * 2**20, f"the server read {sent / 2**20:.0f} MB of one header"
    assert time.monotonic() - started < 10


def test_an_ordinary_large_header_still_works(server: LiveServer) -> None:
    r = httpx.get(f"{server.url}/healthz", headers={"X-Trace": "t" * 16_000}, timeout=10)
    assert r.status_code == 200


def test_a_half_sent_body_is_closed_within_the_read_timeout(server: LiveServer) -> None:
    sock = _connect(server)
    sock.sendall(_head(server, 1000) + b'{"input": "a')  # then nothing more
    took = _closed_after(sock, READ_TIMEOUT_S + 5)
    sock.close()
    assert took < READ_TIMEOUT_S + 2


def test_headers_sent_too_slowly_are_closed(server: LiveServer) -> None:
    sock = _connect(server)
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    try:
        for _ in range(20):  # one header byte every 0.2 s: never a whole request
            time.sleep(0.2)
            sock.sendall(b"X")
    except (BrokenPipeError, ConnectionResetError):
        pass
    _closed_after(sock, 5)
    sock.close()
    assert time.monotonic() - started < READ_TIMEOUT_S + 2


def test_an_idle_keep_alive_connection_is_closed(server: LiveServer) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    took = _closed_after(sock, KEEP_ALIVE_S + 5)
    sock.close()
    assert took < KEEP_ALIVE_S + 2


def test_a_body_over_max_body_bytes_is_413(server: LiveServer) -> None:
    r = httpx.post(
        f"{server.url}/v1/moderations",
        json={"input": "a cat " * 900},  # 5,400 characters: within the item limit
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=10,
    )
    assert r.status_code == 413
    assert r.json()["type"] == "urn:reelguard:problem:input-too-large"


def test_a_client_that_disconnects_mid_body_is_not_an_unhandled_error(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sock = _connect(server)
    sock.sendall(_head(server, 1000) + b'{"input": "a')
    time.sleep(0.2)
    sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(
        "disconnected" in r.getMessage() for r in caplog.records
    ):
        time.sleep(0.05)
    ours = [r for r in caplog.records if r.name.startswith("reelguard")]
    assert any("client disconnected before sending the whole body" in r.getMessage() for r in ours)
    assert not [r for r in ours if r.levelno >= logging.ERROR or r.exc_info], [
        r.getMessage() for r in ours
    ]
