"""Byte ranges on video downloads (:mod:`gateway.downloads`), on a local folder and on a real S3
server (SeaweedFS): 206 Partial Content for one satisfiable range, 416 with
``Content-Range: bytes */SIZE`` for a bad one, the whole object for what a server may ignore,
and never a byte of a withheld video whatever the range."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from test_objects import Api, product_settings
from test_videos_support import PatternBackend, run_all, runner

from config.settings import Settings
from gateway.app import create_app
from gateway.downloads import byte_range
from gateway.jobs import video_key
from gateway.problems import Problem
from storage.objects import ObjectMissing, ObjectStore, object_store

SIZE = 1000
RANGES = [
    # (Range header, the span served of a 1000-byte object; None: all of it, 200)
    (None, None),
    ("bytes=0-99", (0, 99)),
    ("bytes=500-", (500, 999)),
    ("bytes=-100", (900, 999)),
    ("bytes=-5000", (0, 999)),  # a suffix longer than the object: all of it, still 206
    ("bytes=990-5000", (990, 999)),  # a last byte past the end is cut to the end
    ("bytes=999-999", (999, 999)),
    ("BYTES = 1-2", (1, 2)),
    ("items=0-5", None),  # another unit: ignored
    ("bytes=0-1,5-9", None),  # several ranges: ignored (a server may)
]
BAD_RANGES = ["bytes=1000-", "bytes=1000-1200", "bytes=9-3", "bytes=-0", "bytes=", "bytes=abc",
              "bytes=1-2-3", "bytes=" + "9" * 5000]  # fmt: skip


@pytest.mark.parametrize(("header", "span"), RANGES)
def test_byte_range(header: str | None, span: tuple[int, int] | None) -> None:
    assert byte_range(header, SIZE) == span


@pytest.mark.parametrize("header", BAD_RANGES)
def test_a_bad_range_is_416_naming_the_size(header: str) -> None:
    with pytest.raises(Problem) as info:
        byte_range(header, SIZE)
    assert info.value.status_code == 416 and info.value.kind == "range-not-satisfiable"
    assert info.value.headers == {"Content-Range": f"bytes */{SIZE}"}


def test_an_empty_object_satisfies_no_range() -> None:
    for header in ("bytes=0-", "bytes=-1", "bytes=0-0"):
        with pytest.raises(Problem):
            byte_range(header, 0)


@pytest.fixture
def store(store_target: dict[str, object]) -> ObjectStore:
    return object_store(Settings(**store_target))  # type: ignore[arg-type]


def test_stores_open_a_span(store: ObjectStore) -> None:
    data = bytes(range(256)) * 1100  # longer than one streamed chunk
    store.put_bytes("released/v.mp4", data)
    assert store.size("released/v.mp4") == len(data)
    for first, last in [(0, 0), (10, 20), (1000, 270_000), (len(data) - 1, len(data) - 1)]:
        stream = store.open("released/v.mp4", (first, last))
        try:
            got = b"".join(stream.chunks)
        finally:
            stream.close()
        assert stream.size == last - first + 1 and got == data[first : last + 1]
    with pytest.raises(ObjectMissing):
        store.size("released/none.mp4")


@pytest.fixture
def api(
    tmp_path: Path, store_target: dict[str, object], text_classifiers: Mapping[str, Any]
) -> Iterator[Api]:
    settings = product_settings(tmp_path, store_target)
    with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
        yield Api(settings, client)


def test_downloads_answer_ranges_and_never_serve_withheld_bytes(api: Api) -> None:
    allowed, withheld = api.create("acme"), api.create("strict")
    run_all(runner(api.settings, backend=PatternBackend()))
    data = object_store(api.settings).get_bytes(video_key("released", f"{allowed}.mp4"))
    size = len(data)
    whole = api.content(allowed, "acme")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert whole.content == data

    def ranged(header: str, video_id: str = allowed, tenant: str = "acme") -> Any:
        api.headers[tenant]["Range"] = header
        try:
            return api.content(video_id, tenant)
        finally:
            del api.headers[tenant]["Range"]

    first = ranged("bytes=0-99")
    assert first.status_code == 206 and first.content == data[:100]
    assert first.headers["content-range"] == f"bytes 0-99/{size}"
    assert first.headers["content-length"] == "100"
    assert first.headers["content-type"] == "video/mp4"
    tail = ranged("bytes=-10")
    assert tail.status_code == 206 and tail.content == data[-10:]
    assert tail.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    rest = ranged(f"bytes={size // 2}-")
    assert rest.status_code == 206 and rest.content == data[size // 2 :]
    assert ranged("bytes=0-1,5-9").content == data  # several ranges: the whole video, 200

    bad = ranged(f"bytes={size}-")
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{size}"
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["error"]["code"] == "range_not_satisfiable"
    assert ranged("bytes=9-3").status_code == 416

    for header in ("bytes=0-99", "bytes=-10", "bytes=999999-"):  # withheld stays withheld
        denied = ranged(header, withheld, "strict")
        assert denied.status_code == 403 and "withheld" in denied.json()["detail"]
    thumb = api.content(allowed, "acme", variant="thumbnail")
    api.headers["acme"]["Range"] = "bytes=0-2"
    try:
        part = api.content(allowed, "acme", variant="thumbnail")
    finally:
        del api.headers["acme"]["Range"]
    assert part.status_code == 206 and part.content == thumb.content[:3] == b"\xff\xd8\xff"
    object_store(api.settings).delete(video_key("released", f"{allowed}.mp4"))
    assert ranged("bytes=0-99").status_code == 404  # gone from the store: 404, not a 500
