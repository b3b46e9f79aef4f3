"""Which objects a store holds under a key prefix, with their size and age (for sweeps)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from storage import s3_client
from storage.objects import LocalFolderStore, ObjectStore, S3Store, check_key


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object: its key, length in bytes and last-modified time (Unix seconds)."""

    key: str
    size: int
    modified: float


def list_objects(store: ObjectStore, prefix: str) -> Iterator[ObjectInfo]:
    """The objects whose key starts with ``prefix/`` (a key like ``evidence``), in no set
    order. A local folder skips half-written temporary files (``.tmp-*``) and names that are
    not keys; an S3 store pages through the listing (raises
    :class:`~storage.errors.ObjectStoreUnavailable` when it cannot)."""
    check_key(prefix)
    if isinstance(store, LocalFolderStore):
        yield from _local(Path(store.root), prefix)
    elif isinstance(store, S3Store):
        yield from _s3(store, prefix)
    else:
        raise TypeError(f"cannot list a {type(store).__name__}")


def _local(root: Path, prefix: str) -> Iterator[ObjectInfo]:
    for folder, _dirs, names in os.walk(root / prefix):
        for name in names:
            path = Path(folder) / name
            if name.startswith(".tmp-") or path.is_symlink() or not path.is_file():
                continue
            key = path.relative_to(root).as_posix()
            try:
                check_key(key)
            except ValueError:
                continue
            stat = path.stat()
            yield ObjectInfo(key, stat.st_size, stat.st_mtime)


def _s3(store: S3Store, prefix: str) -> Iterator[ObjectInfo]:
    client = s3_client.s3_client(store.endpoint_url, store.region, store.timeout_s)
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=f"{store.prefix}{prefix}/"
    )
    try:
        for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"])[len(store.prefix) :]
                yield ObjectInfo(key, int(item["Size"]), item["LastModified"].timestamp())
    except Exception as exc:
        ours = s3_client.translate(exc, store.label, "list", prefix)
        if ours is exc:
            raise
        raise ours from exc
