"""The remote backend against a real HTTP server on 127.0.0.1 speaking the OpenAI videos API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from generator.base import BackendError, BackendUnavailable, VideoBackend, VideoRequest
from generator.encode import encode_mp4
from generator.remote import RemoteBackend


class Upstream(BaseHTTPRequestHandler):
    """A small video API: jobs finish after two polls; prompts steer failures for the tests."""

    jobs: ClassVar[dict[str, dict[str, Any]]] = {}
    log: ClassVar[list[str]] = []
    fail_next_posts: ClassVar[int] = 0
    mp4: ClassVar[bytes] = b""
    api_key: ClassVar[str] = "sk-test"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._send(401, {"error": {"message": "Incorrect API key provided"}})
            return False
        return True

    def do_POST(self) -> None:
        self.log.append(f"POST {self.path}")
        if not self._authorised():
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if Upstream.fail_next_posts:
            Upstream.fail_next_posts -= 1
            self._send(503, {"error": {"message": "overloaded"}})
            return
        if "forbidden" in body["prompt"]:
            self._send(400, {"error": {"message": "prompt violates upstream policy"}})
            return
        video_id = f"video_{len(self.jobs) + 1}"
        self.jobs[video_id] = {"id": video_id, "object": "video", "model": body["model"],
                               "status": "queued", "progress": 0, "polls": 0,
                               "prompt": body["prompt"], "size": body["size"],
                               "seconds": body["seconds"]}  # fmt: skip
        self._send(200, {k: v for k, v in self.jobs[video_id].items() if k != "polls"})

    def do_GET(self) -> None:
        self.log.append(f"GET {self.path}")
        if not self._authorised():
            return
        parts = self.path.strip("/").split("/")  # v1 videos {id} [content]
        job = self.jobs.get(parts[2]) if len(parts) >= 3 else None
        if job is None:
            self._send(404, {"error": {"message": "no such video"}})
        elif len(parts) == 4 and parts[3] == "content":
            if "garbage" in job["prompt"]:
                self._send(200, b"not an mp4 at all", "video/mp4")
            else:
                self._send(200, self.mp4, "video/mp4")
        else:
            job["polls"] += 1
            if "broken" in job["prompt"]:
                job.update(status="failed", error={"code": "internal", "message": "GPU fell over"})
            elif job["polls"] >= 2:
                job.update(status="completed", progress=100)
            else:
                job.update(status="in_progress", progress=50)
            self._send(200, {k: v for k, v in job.items() if k != "polls"})


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    frames = np.zeros((12, 48, 64, 3), dtype=np.uint8)
    for t in range(12):
        frames[t, 10:30, 4 * t : 4 * t + 16] = (220, 40, 40)
    path = encode_mp4(frames, 12, tmp_path_factory.mktemp("up") / "clip.mp4")
    Upstream.mp4 = Path(path).read_bytes()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _reset() -> None:
    Upstream.log.clear()
    Upstream.fail_next_posts = 0


def backend(url: str, **kwargs: Any) -> RemoteBackend:
    options: dict[str, Any] = {"api_key": "sk-test", "poll_interval_s": 0.01,
                               "backoff_s": 0.01, "timeout_s": 5.0}  # fmt: skip
    options.update(kwargs)
    return RemoteBackend(url, **options)


REQUEST = VideoRequest("a red square sliding right", 1.0, 64, 48, seed=7)


def test_completes_and_decodes_frames(upstream: str) -> None:
    remote = backend(upstream)
    assert isinstance(remote, VideoBackend)
    seen: list[float] = []
    out = remote.generate(REQUEST, seen.append)
    assert out.frames.shape == (12, 48, 64, 3)
    assert out.fps == pytest.approx(12.0)
    assert out.backend == "remote" and out.model_id == "remote/sora-2" and out.seed == 7
    # The red square is really there, moving right (decoded, not a placeholder).
    red = (out.frames[..., 0] > 150) & (out.frames[..., 1] < 100)
    xs = [np.nonzero(red[t])[1].mean() for t in (0, 11)]
    assert xs[1] - xs[0] > 30
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert Upstream.log[0] == "POST /v1/videos"
    assert Upstream.log[-1].endswith("/content")


def test_url_with_v1_is_not_doubled(upstream: str) -> None:
    out = backend(upstream + "/v1/").generate(REQUEST, lambda _: None)
    assert out.frames.shape[0] == 12
    assert Upstream.log[0] == "POST /v1/videos"


def test_5xx_is_retried_then_succeeds(upstream: str) -> None:
    Upstream.fail_next_posts = 2
    out = backend(upstream, retries=3).generate(REQUEST, lambda _: None)
    assert out.frames.shape[0] == 12
    assert Upstream.log[:3] == ["POST /v1/videos"] * 3


def test_5xx_past_the_retry_budget_is_a_clear_error(upstream: str) -> None:
    Upstream.fail_next_posts = 5
    with pytest.raises(BackendError, match=r"HTTP 503: overloaded"):
        backend(upstream, retries=1).generate(REQUEST, lambda _: None)
    assert Upstream.log == ["POST /v1/videos"] * 2


def test_failed_job_raises_with_upstream_reason(upstream: str) -> None:
    request = VideoRequest("a broken clip", 1.0, 64, 48)
    with pytest.raises(BackendError, match=r"failed: GPU fell over"):
        backend(upstream).generate(request, lambda _: None)


def test_client_error_is_not_retried(upstream: str) -> None:
    request = VideoRequest("something forbidden", 1.0, 64, 48)
    with pytest.raises(BackendError, match=r"HTTP 400: prompt violates upstream policy"):
        backend(upstream).generate(request, lambda _: None)
    assert Upstream.log == ["POST /v1/videos"]


def test_bad_api_key_names_the_setting(upstream: str) -> None:
    with pytest.raises(BackendUnavailable, match="REELGUARD_REMOTE_API_KEY"):
        backend(upstream, api_key="wrong").generate(REQUEST, lambda _: None)


def test_undecodable_content_is_an_error(upstream: str) -> None:
    request = VideoRequest("garbage please", 1.0, 64, 48)
    with pytest.raises(BackendError, match=r"not a decodable video|no frames"):
        backend(upstream).generate(request, lambda _: None)


def test_job_deadline(upstream: str) -> None:
    slow = backend(upstream, job_timeout_s=0.0, poll_interval_s=0.01)
    with pytest.raises(BackendError, match="REELGUARD_REMOTE_JOB_TIMEOUT_S"):
        slow.generate(REQUEST, lambda _: None)


def test_unreachable_upstream_fails_after_retries() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError, match=r"failed after 3 tries: ConnectError"):
        backend(f"http://127.0.0.1:{port}", retries=2).generate(REQUEST, lambda _: None)


def test_settings_without_url_is_unavailable() -> None:
    from config.settings import Settings

    with pytest.raises(BackendUnavailable, match="REELGUARD_REMOTE_URL"):
        RemoteBackend.from_settings(Settings(remote_url=None))
