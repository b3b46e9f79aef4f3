"""How :class:`storage.objects.S3Store` moves large objects and survives a flaky store, on the
real SeaweedFS server (:mod:`s3server`): multipart uploads round-trip byte-exact with their
SHA-256 recorded, a failed one leaves no object and no open upload."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from s3server import S3Server

from config.settings import Settings
from storage.objects import (
    LocalFolderStore,
    S3Store,
    object_store,
)
from storage.s3_client import MIB

SMALL_PARTS = {"s3_multipart_threshold_mib": 1, "s3_multipart_chunk_mib": 5}
"""A tiny threshold: an 11 MiB file goes up in three parts (S3's smallest part is 5 MiB)."""


def s3_store(s3_url: str, s3_server: S3Server, **fields: Any) -> S3Store:
    store = object_store(Settings(storage_url=s3_url, s3_endpoint_url=s3_server.endpoint, **fields))
    assert isinstance(store, S3Store)
    return store


def open_uploads(s3_server: S3Server, store: S3Store) -> list[str]:
    listed = s3_server.client().list_multipart_uploads(  # type: ignore[attr-defined]
        Bucket=store.bucket, Prefix=store.prefix
    )
    return [u["Key"] for u in listed.get("Uploads", [])]


def test_settings_default_to_16_mib_parts(s3_url: str) -> None:
    store = object_store(Settings(storage_url=s3_url))
    assert isinstance(store, S3Store)
    assert store.multipart_threshold == 16 * MIB and store.multipart_chunk == 16 * MIB
    with pytest.raises(ValueError, match="s3_multipart_chunk_mib"):
        Settings(s3_multipart_chunk_mib=1)  # S3 refuses parts under 5 MiB


def test_a_multipart_object_round_trips_with_its_sha256(
    s3_url: str, s3_server: S3Server, tmp_path: Path
) -> None:
    store = s3_store(s3_url, s3_server, **SMALL_PARTS)
    source = tmp_path / "video.mp4"
    source.write_bytes(os.urandom(11 * MIB + 12345))
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    store.put_file("quarantine/video.mp4", source)
    head = s3_server.client().head_object(  # type: ignore[attr-defined]
        Bucket=store.bucket, Key=store.name("quarantine/video.mp4")
    )
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # three parts, not one PUT
    assert head["ContentLength"] == source.stat().st_size
    assert store.recorded_sha256("quarantine/video.mp4") == expected
    assert store.sha256("quarantine/video.mp4") == expected
    assert store.get_bytes("quarantine/video.mp4") == source.read_bytes()
    with store.writing("released/w.mp4") as path:  # the encoder's path goes up in parts too
        path.write_bytes(source.read_bytes())
    assert store.sha256("released/w.mp4") == expected
    assert open_uploads(s3_server, store) == []
    small = s3_store(s3_url, s3_server)  # the 16 MiB default: one PUT
    small.put_file("released/small.mp4", source)
    assert (
        "-"
        not in s3_server.client().head_object(  # type: ignore[attr-defined]
            Bucket=store.bucket, Key=store.name("released/small.mp4")
        )["ETag"]
    )
    assert small.recorded_sha256("released/small.mp4") == expected


class FailingDisk:
    """A readable stream whose disk fails (EIO) after ``good`` bytes."""

    def __init__(self, good: int) -> None:
        self.left = good

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError(5, "Input/output error")
        n = self.left if size < 0 else min(size, self.left)
        self.left -= n
        return os.urandom(n)


def test_an_interrupted_upload_leaves_no_object_and_no_open_upload(
    s3_url: str, s3_server: S3Server
) -> None:
    store = s3_store(s3_url, s3_server, **SMALL_PARTS)
    with pytest.raises(OSError, match="Input/output error"):
        store.put_stream("quarantine/cut.mp4", FailingDisk(12 * MIB))  # type: ignore[arg-type]
    assert not store.exists("quarantine/cut.mp4")
    assert open_uploads(s3_server, store) == []


def test_local_store_reports_sha256(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path)
    store.put_bytes("evidence/v/frame.jpg", b"jpeg bytes")
    assert store.sha256("evidence/v/frame.jpg") == hashlib.sha256(b"jpeg bytes").hexdigest()
