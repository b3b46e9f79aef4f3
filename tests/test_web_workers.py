"""``reelguard serve --web-workers 2`` on 127.0.0.1: two web processes on one port. Each check
runs against each process alone (the other is paused with SIGSTOP, so only the running one
accepts from the shared socket): key revocation, policy hot reload and the queue limit hold in
every process, because they live in the shared database and the watched policy files. A web
process killed with kill -9 is replaced; SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from test_videos_e2e import env_for, free_port, start_server, stop
from test_videos_support import make_settings

from config.settings import Settings
from gateway.keys import KeyStore

pytestmark = pytest.mark.slow

BLOCKING = (
    "extends: default\ncategories:\n  violence:\n    blocklist:\n      terms: [water pistol]\n"
)


def children(pid: int) -> list[int]:
    """The web processes of ``serve`` (its spawned children; not multiprocessing's resource
    tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return sorted(found)


@contextmanager
def only(pid: int, others: list[int]) -> Iterator[None]:
    """Pause every web process but ``pid``: new connections go to ``pid``."""
    for other in others:
        if other != pid:
            os.kill(other, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in others:
            if other != pid:
                os.kill(other, signal.SIGCONT)


def start_web(settings: Settings, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return start_server(settings, log, workers=0, env=env)


def wait_for(check: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_two_web_processes_share_keys_policy_and_queue(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, port=free_port(), video_queue_max=2, policy_reload_interval_s=0.2
    )
    keys = KeyStore(settings.database)
    token, other = keys.create("acme"), keys.create("acme")
    overlay = settings.tenant_policy_dir / "acme.yaml"  # type: ignore[operator]
    env = env_for(settings)
    env.update(REELGUARD_WEB_WORKERS="2", REELGUARD_VIDEO_QUEUE_MAX="2")
    env["REELGUARD_POLICY_RELOAD_INTERVAL_S"] = "0.2"
    proc = start_web(settings, tmp_path / "serve.log", env)
    url = f"http://127.0.0.1:{settings.port}"
    try:
        wait_for(lambda: len(children(proc.pid)) == 2)
        web = children(proc.pid)

        def moderate(key: str, text: str = "a cat surfing a wave") -> httpx.Response:
            # a new connection each time, so it is accepted by a running process
            return httpx.post(
                f"{url}/v1/moderations",
                json={"input": text},
                headers={"Authorization": f"Bearer {key}", "Connection": "close"},
                timeout=60,
            )

        def wait_served(pid: int) -> None:
            with only(pid, web):
                wait_for(lambda: moderate(other.token).status_code == 200, 120)

        for pid in web:  # both answer (each loads its models on its own)
            wait_served(pid)
            with only(pid, web):
                assert moderate(token.token).status_code == 200
        keys.revoke(token.key.key_id)
        for pid in web:
            with only(pid, web):
                assert moderate(token.token).status_code == 401
                assert moderate(other.token).status_code == 200
        for pid in web:
            with only(pid, web):
                assert (
                    moderate(other.token, "a water pistol fight").json()["results"][0]["flagged"]
                    is False
                )
        overlay.write_text(BLOCKING)
        for pid in web:
            with only(pid, web):
                wait_for(
                    lambda: moderate(other.token, "a water pistol fight").json()["results"][0][
                        "flagged"
                    ],
                    10,
                )

        def create() -> int:
            return httpx.post(
                f"{url}/v1/videos",
                json={"prompt": "a red kite over a calm sea", "seconds": "1", "size": "64x64"},
                headers={"Authorization": f"Bearer {other.token}", "Connection": "close"},
                timeout=60,
            ).status_code

        with only(web[0], web):
            assert create() == 202
        with only(web[1], web):
            assert create() == 202
            assert create() == 429  # the queue holds two, whichever process took them
        with only(web[0], web):
            assert create() == 429

        os.kill(web[0], signal.SIGKILL)  # a web process dies: another takes its place
        wait_for(lambda: len(set(children(proc.pid)) - set(web)) == 1)
        now = children(proc.pid)
        assert web[0] not in now and web[1] in now, (web, now)
        replacement = next(p for p in now if p not in web)
        web = now
        wait_served(replacement)
        with only(replacement, web):
            assert moderate(token.token).status_code == 401
            assert create() == 429
    finally:
        keys.close()
        running = children(proc.pid) if proc.poll() is None else []
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        finally:
            stop(proc)
        assert running and not [p for p in running if Path(f"/proc/{p}").exists()]  # all ended
