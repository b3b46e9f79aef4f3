"""Every ``/v1`` error, seen through the official ``openai`` SDK, says what to fix.

The SDK puts ``error.message`` of the body into ``str(e)`` and ``error.code``/``error.param``
into ``e.code``/``e.param``; without OpenAI's envelope it can only print ``Error code: 422``.
A real uvicorn server on 127.0.0.1 (no workers: queued videos stay queued).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import openai
import pytest
import uvicorn
from conftest import ClassifierFactory, free_port

from config.settings import Settings
from gateway.keys import KeyStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, text_classifiers: Mapping[str, ClassifierFactory]
) -> Iterator[tuple[str, str]]:
    from gateway.app import create_app

    root: Path = tmp_path_factory.mktemp("sdk-errors")
    settings = Settings(
        db=root / "rg.db",
        data_dir=root / "videos",
        video_queue_max=1,
        video_workers=0,
        video_default_size="64x64",
    )
    keys = KeyStore(settings.db)
    key = keys.create("default").token
    keys.close()
    port = free_port()
    app = create_app(settings, classifiers=text_classifiers)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1", key
    finally:
        server.should_exit = True
        thread.join(10)


def sdk(server: tuple[str, str], key: str | None = None) -> openai.OpenAI:
    url, good = server
    return openai.OpenAI(base_url=url, api_key=key or good, max_retries=0)


def raised(call: Callable[[], Any], kind: type[openai.APIStatusError]) -> openai.APIStatusError:
    with pytest.raises(kind) as info:
        call()
    return info.value


def test_401_says_how_to_get_a_key(server: tuple[str, str]) -> None:
    e = raised(
        lambda: sdk(server, "rg_nope").moderations.create(input="x"), openai.AuthenticationError
    )
    assert str(e) == "Error code: 401 - Unknown or revoked API key."
    assert e.code == "invalid_api_key"


def test_404_names_the_video(server: tuple[str, str]) -> None:
    e = raised(lambda: sdk(server).videos.retrieve("video_nope"), openai.NotFoundError)
    assert str(e) == "Error code: 404 - No video 'video_nope'."
    assert e.code == "not_found"


def test_413_says_the_limit_and_the_setting(server: tuple[str, str]) -> None:
    e = raised(lambda: sdk(server).moderations.create(input=["a"] * 33), openai.APIStatusError)
    assert e.status_code == 413
    assert "input has 33 items; the limit is 32 (REELGUARD_MAX_INPUT_ITEMS)" in str(e)
    assert e.code == "input_too_large" and e.param == "input"


def test_422_names_the_field_and_the_fix(server: tuple[str, str]) -> None:
    e = raised(
        lambda: sdk(server).videos.create(prompt="a red circle", size="big"),  # type: ignore[arg-type]
        openai.UnprocessableEntityError,
    )
    assert "#/size: must be WIDTHxHEIGHT, e.g. '256x256'; got 'big'" in str(e), str(e)
    assert e.code == "validation_error" and e.param == "size"
    # The problem details are still there for clients that read RFC 9457.
    body = e.response.json()
    assert body["type"] == "urn:reelguard:problem:validation-error"
    assert body["errors"] == [
        {"pointer": "#/size", "detail": "must be WIDTHxHEIGHT, e.g. '256x256'; got 'big'"}
    ]


def test_409_and_429_say_why_and_when(server: tuple[str, str]) -> None:
    client = sdk(server)
    video = client.videos.create(prompt="a red circle bouncing on a blue background")
    e = raised(lambda: client.videos.download_content(video.id), openai.ConflictError)
    assert f"Video {video.id} is queued (0 %)" in str(e) and e.code == "not_ready"
    full = raised(
        lambda: client.videos.create(prompt="a green square moving left"), openai.RateLimitError
    )
    assert "the video queue is full (1 of 1 jobs waiting); retry after" in str(full), str(full)
    assert full.code == "queue_full"
    assert int(full.response.headers["retry-after"]) >= 1
