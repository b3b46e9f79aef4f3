"""Remote backend: an OpenAI-compatible video API upstream.

Protocol (the OpenAI Videos API)::

    POST {base}/videos                 {"model", "prompt", "seconds", "size"} -> video object
    GET  {base}/videos/{id}            -> {"id", "status": queued|in_progress|completed|failed,
                                           "progress": 0..100, "error": {"message"}}
    GET  {base}/videos/{id}/content    -> the MP4 bytes

Each HTTP call has a timeout; connection errors, timeouts, 429 and 5xx are retried with
exponential backoff (``Retry-After`` is honoured); the whole job has its own deadline. The MP4
is decoded to frames with PyAV so the gateway's frame audit sees exactly what the upstream made.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import httpx

from config.settings import Settings
from generator.base import (
    BackendError,
    BackendUnavailable,
    ProgressCallback,
    VideoOutput,
    VideoRequest,
    check_common,
    resolve_seed,
)

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class RemoteBackend:
    """:class:`generator.base.VideoBackend` over an OpenAI-compatible ``/v1/videos`` upstream."""

    name = "remote"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        model: str = "sora-2",
        timeout_s: float = 30.0,
        job_timeout_s: float = 900.0,
        poll_interval_s: float = 2.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_seconds: float = 60.0,
        max_side: int = 1920,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self.base_url = base if base.endswith("/v1") else f"{base}/v1"
        self.model = model
        self.model_id = f"remote/{model}"
        self.job_timeout_s = job_timeout_s
        self.poll_interval_s = poll_interval_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_seconds = max_seconds
        self.max_side = max_side
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout_s, transport=transport
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RemoteBackend:
        """Build from ``REELGUARD_REMOTE_*`` settings."""
        if not settings.remote_url:
            raise BackendUnavailable(
                "the remote backend needs REELGUARD_REMOTE_URL, e.g. https://api.openai.com/v1"
            )
        return cls(
            settings.remote_url,
            api_key=settings.remote_api_key,
            model=settings.remote_model,
            timeout_s=settings.remote_timeout_s,
            job_timeout_s=settings.remote_job_timeout_s,
            poll_interval_s=settings.remote_poll_interval_s,
            retries=settings.remote_retries,
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def check_inputs(self, request: VideoRequest) -> None:
        """Shared checks (the upstream applies its own rules and its errors are passed on)."""
        check_common(request, max_seconds=self.max_seconds, max_side=self.max_side)

    # ---- HTTP with retries ---------------------------------------------------------------
    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise BackendError(
                        f"upstream {self.base_url}: {method} {url} failed after {attempt + 1} "
                        f"tries: {type(exc).__name__}: {exc}"
                    ) from exc
                delay = self._delay(attempt, None)
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in _RETRY_STATUS or attempt >= self.retries:
                    raise self._error(method, url, response)
                delay = self._delay(attempt, response.headers.get("retry-after"))
            attempt += 1
            time.sleep(delay)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), 60.0)
            except ValueError:
                pass
        # Full jitter keeps many workers from retrying in lockstep.
        return float(self.backoff_s * 2**attempt * (0.5 + random.random() / 2))

    def _error(self, method: str, url: str, response: httpx.Response) -> BackendError:
        detail = _error_message(response)
        where = f"upstream {self.base_url}: {method} {url} -> HTTP {response.status_code}"
        if response.status_code in (401, 403):
            return BackendUnavailable(f"{where}: check REELGUARD_REMOTE_API_KEY ({detail})")
        return BackendError(f"{where}: {detail}")

    # ---- the job ---------------------------------------------------------------------------
    def generate(self, request: VideoRequest, progress: ProgressCallback) -> VideoOutput:
        """Create the upstream job, poll it to completion, download and decode the MP4."""
        from generator.encode import EncodeError, decode_mp4

        self.check_inputs(request)
        seed = resolve_seed(request)
        seconds = (
            str(int(request.seconds)) if request.seconds.is_integer() else f"{request.seconds:g}"
        )
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            "seconds": seconds,
            "size": f"{request.width}x{request.height}",
        }
        created = self._json(
            self._request(
                "POST", "/videos", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
            )
        )
        video_id = str(created.get("id") or "")
        if not video_id:
            raise BackendError(f"upstream {self.base_url}: POST /videos returned no id: {created}")
        job = self._wait(video_id, created, progress)
        content = self._request("GET", f"/videos/{video_id}/content").content
        try:
            frames, fps = decode_mp4(content)
        except EncodeError as exc:
            raise BackendError(f"upstream video {video_id}: {exc}") from exc
        progress(1.0)
        return VideoOutput(
            frames=frames,
            fps=fps,
            seed=seed,
            backend=self.name,
            model_id=f"remote/{job.get('model') or self.model}",
        )

    def _wait(
        self, video_id: str, job: dict[str, Any], progress: ProgressCallback
    ) -> dict[str, Any]:
        deadline = time.monotonic() + self.job_timeout_s
        while True:
            status = job.get("status")
            if isinstance(job.get("progress"), int | float):
                progress(0.9 * min(max(float(job["progress"]) / 100.0, 0.0), 1.0))
            if status == "completed":
                return job
            if status == "failed":
                error = job.get("error") or {}
                message = error.get("message") if isinstance(error, dict) else str(error)
                raise BackendError(
                    f"upstream video {video_id} failed: {message or 'no reason given'}"
                )
            if status not in ("queued", "in_progress", "processing", None):
                raise BackendError(f"upstream video {video_id}: unknown status {status!r}")
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"upstream video {video_id} not done after {self.job_timeout_s:g} s "
                    f"(status {status}); raise REELGUARD_REMOTE_JOB_TIMEOUT_S"
                )
            time.sleep(self.poll_interval_s)
            job = self._json(self._request("GET", f"/videos/{video_id}"))

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise BackendError(
                f"upstream {self.base_url}: {response.request.url.path} did not return JSON"
            ) from exc
        if not isinstance(data, dict):
            raise BackendError(f"upstream {self.base_url}: expected a JSON object, got {data!r}")
        return data


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("detail", "title", "message"):
            if data.get(key):
                return str(data[key])
    return str(data)[:200]
