"""Where video files, thumbnails and evidence frames live: one small object-store seam.

Every file ReelGuard keeps is an *object* named by a key relative to the store's root:
``quarantine/<job>.mp4``, ``released/<job>.jpg``, ``evidence/<job>/frame_000016.jpg``. Two
stores implement :class:`ObjectStore`:

- :class:`LocalFolderStore` (the default, ``REELGUARD_DATA_DIR``): a key is the file
  ``<root>/<key>``; writes are atomic (a temporary file renamed into place), a move is one
  ``os.replace`` (same filesystem). The files are exactly those of the releases before the seam.
- :class:`S3Store` (``REELGUARD_STORAGE_URL=s3://BUCKET[/PREFIX]``, endpoint in
  ``REELGUARD_S3_ENDPOINT_URL``, credentials from ``AWS_ACCESS_KEY_ID`` /
  ``AWS_SECRET_ACCESS_KEY`` as boto3 reads them): a key is the object ``PREFIX/<key>`` in
  the bucket; a move is a server-side copy then a delete of the source.

The meanings stay with the callers (``gateway.jobs``, ``gateway.cancel``, ``audit.evidence``):
nothing is served from ``quarantine/``, and a file moves to ``released/`` only after the audit
decision is committed. Errors (see :mod:`storage.errors`)::

    StorageError
    ├── StorageUnavailable
    │   └── ObjectStoreUnavailable  the store cannot be reached or refused the request
    └── ObjectMissing               no object under that key

Stores are frozen dataclasses that pickle (``audit verify`` hands one to its worker
processes); an S3 client is built on first use in each process and reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from storage import s3_client
from storage.errors import ObjectMissing, ObjectStoreUnavailable
from storage.s3_client import MIB

__all__ = [
    "CHUNK_BYTES",
    "LocalFolderStore",
    "ObjectMissing",
    "ObjectStore",
    "ObjectStoreSettings",
    "ObjectStoreUnavailable",
    "ObjectStream",
    "S3Store",
    "as_object_store",
    "check_key",
    "object_store",
    "parse_s3_url",
]

CHUNK_BYTES = 256 * 1024
"""Bytes per chunk when an object is streamed to a client."""

_KEY = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def check_key(key: str) -> str:
    """``key`` if it is a relative, ``/``-separated name without ``.``/``..`` parts; else
    :class:`ValueError` naming it."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"object key {key!r} is not a relative name like 'released/<id>.mp4'")
    return key


@dataclass(frozen=True, slots=True)
class ObjectStream:
    """An object (or a span of it) opened for reading: how many bytes ``chunks`` yields, and
    those bytes in chunks (close it when done)."""

    size: int
    chunks: Iterator[bytes]
    close: Callable[[], object]


@runtime_checkable
class ObjectStore(Protocol):
    """Files by key (see the module docstring). Every method raises
    :class:`ObjectStoreUnavailable` when the store cannot be reached."""

    @property
    def label(self) -> str:
        """The store for messages: a folder, or ``s3://bucket/prefix`` (no credentials)."""
        ...

    def location(self, key: str) -> str:
        """Where ``key`` lives, as the audit log records it (a file path or an ``s3://`` URL)."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def put_bytes(self, key: str, data: bytes, *, private: bool = False) -> None:
        """Store ``data`` under ``key`` (replacing it), atomically: a reader sees the old object
        or the new one. ``private``: owner-only permissions where the store has them."""
        ...

    def put_file(self, key: str, source: Path) -> None:
        """Store the file ``source`` under ``key`` (replacing it), atomically."""
        ...

    def writing(self, key: str) -> contextlib.AbstractContextManager[Path]:
        """A local path to write the object to; on a clean exit it is stored under ``key``."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; :class:`ObjectMissing` when there is none."""
        ...

    def size(self, key: str) -> int:
        """The object's length in bytes; :class:`ObjectMissing` when there is none."""
        ...

    def sha256(self, key: str) -> str:
        """The SHA-256 hex of the object's bytes, read back (streamed, not held in memory);
        :class:`ObjectMissing` when there is none."""
        ...

    def open(self, key: str, span: tuple[int, int] | None = None) -> ObjectStream:
        """The object for streaming, or only its bytes ``span[0]..span[1]`` (inclusive, within
        :meth:`size`: an HTTP range the caller resolved); :class:`ObjectMissing` when there is
        none."""
        ...

    def move(self, source: str, target: str) -> None:
        """Move ``source`` to ``target`` (replacing it); :class:`ObjectMissing` when
        ``source`` is gone."""
        ...

    def delete(self, key: str) -> bool:
        """Delete ``key``; False when there was nothing to delete."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The file behind ``key`` when the store is a local folder, else None."""
        ...

    def presigned_url(self, key: str, expires_s: int, media_type: str) -> str | None:
        """A URL that serves ``key`` without credentials for ``expires_s`` seconds (None when
        the store has none: a local folder)."""
        ...


# -- a local folder --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalFolderStore:
    """Objects as files under ``root`` (the ``REELGUARD_DATA_DIR`` folder)."""

    root: Path

    @property
    def label(self) -> str:
        return str(self.root)

    def path(self, key: str) -> Path:
        """The file behind ``key`` (which is checked, so it stays inside ``root``)."""
        return Path(self.root) / check_key(key)

    def location(self, key: str) -> str:
        return str(self.path(key))

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put_bytes(self, key: str, data: bytes, *, private: bool = False) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            if private:
                os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_file(self, key: str, source: Path) -> None:
        target = self.path(key)
        if Path(source).resolve() == target.resolve():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        # The writers (the MP4 encoder, the thumbnail writer) write the file in place, as
        # they always have: quarantine/ is never served, so a half-written file is harmless.
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        yield target

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"{self.path(key)}: no such file") from None

    def sha256(self, key: str) -> str:
        try:
            return s3_client.file_sha256(self.path(key))
        except FileNotFoundError:
            raise ObjectMissing(f"{self.path(key)}: no such file") from None

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectMissing(f"{self.path(key)}: no such file") from None

    def open(self, key: str, span: tuple[int, int] | None = None) -> ObjectStream:
        try:
            fh = self.path(key).open("rb")
        except FileNotFoundError:
            raise ObjectMissing(f"{self.path(key)}: no such file") from None
        if span is None:
            size = os.fstat(fh.fileno()).st_size
            return ObjectStream(size, iter(lambda: fh.read(CHUNK_BYTES), b""), fh.close)
        first, last = span
        fh.seek(first)

        def chunks() -> Iterator[bytes]:
            left = last - first + 1
            while left > 0 and (data := fh.read(min(CHUNK_BYTES, left))):
                left -= len(data)
                yield data

        return ObjectStream(last - first + 1, chunks(), fh.close)

    def move(self, source: str, target: str) -> None:
        dest = self.path(target)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self.path(source), dest)
        except FileNotFoundError:
            raise ObjectMissing(f"{self.path(source)}: no such file") from None

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    def presigned_url(self, key: str, expires_s: int, media_type: str) -> str | None:
        return None


# -- S3 and S3-compatible servers ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Store:
    """Objects in ``bucket`` under ``prefix`` (empty, or ending in ``/``), through boto3.

    Objects of ``multipart_threshold`` bytes and more are uploaded in ``multipart_chunk``-byte
    parts streamed from disk (a failed upload is aborted); every upload records the object's
    SHA-256 in its metadata (:meth:`recorded_sha256`). A delete that fails transiently is tried
    ``delete_attempts`` times with a bounded backoff."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    timeout_s: float = 10.0
    multipart_threshold: int = 16 * MIB
    multipart_chunk: int = 16 * MIB
    delete_attempts: int = 4

    @property
    def label(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return where + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def name(self, key: str) -> str:
        """The object name of ``key`` in the bucket."""
        return self.prefix + check_key(key)

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.name(key)}"

    def _client(self) -> Any:
        return s3_client.s3_client(self.endpoint_url, self.region, self.timeout_s)

    def _call(self, what: str, key: str, call: Any, *, attempts: int = 1, **kwargs: Any) -> Any:
        """``call(**kwargs)`` (tried ``attempts`` times while it fails transiently) with
        boto3's errors translated (see :func:`storage.s3_client.translate`)."""
        try:
            return s3_client.with_retries(
                lambda: call(**kwargs), attempts, f"{self.label}: {what} {key!r}"
            )
        except Exception as exc:
            ours = s3_client.translate(exc, self.label, what, key)
            if ours is exc:
                raise  # not boto3's: a bug, with its own traceback
            raise ours from exc

    def exists(self, key: str) -> bool:
        try:
            self._call(
                "head", key, self._client().head_object, Bucket=self.bucket, Key=self.name(key)
            )
        except ObjectMissing:
            return False
        return True

    def put_bytes(self, key: str, data: bytes, *, private: bool = False) -> None:
        c = self._client()
        self._call(
            "put",
            key,
            c.put_object,
            Bucket=self.bucket,
            Key=self.name(key),
            Body=data,
            Metadata={"sha256": hashlib.sha256(data).hexdigest()},
        )

    def put_file(self, key: str, source: Path) -> None:
        digest = s3_client.file_sha256(Path(source))
        self._upload(key, Path(source), {"sha256": digest})

    def put_stream(self, key: str, source: IO[bytes]) -> None:
        """Store what ``source`` (a readable binary stream) yields under ``key``, in parts once
        it passes the multipart threshold; a failure part-way leaves no object and no open
        upload. No SHA-256 is recorded (it is known only at the end)."""
        self._upload(key, source, {})

    def _upload(self, key: str, source: Path | IO[bytes], metadata: dict[str, str]) -> None:
        self._call(
            "put",
            key,
            s3_client.upload,
            client=self._client(),
            bucket=self.bucket,
            name=self.name(key),
            source=source,
            threshold=self.multipart_threshold,
            chunk=self.multipart_chunk,
            metadata=metadata,
        )

    def check_bucket(self) -> None:
        """Raise :class:`ObjectStoreUnavailable` (naming the fix) unless the bucket can be
        listed: the endpoint answers, the credentials are accepted and the bucket exists."""
        c = self._client()
        self._call("list", self.prefix or "/", c.list_objects_v2, Bucket=self.bucket, MaxKeys=1)

    def recorded_sha256(self, key: str) -> str | None:
        """The SHA-256 recorded with the object when it was uploaded (None for an object
        written without one); :class:`ObjectMissing` when there is none. Compare it with
        :meth:`sha256` (the bytes read back) where the answer must be trusted."""
        c = self._client()
        answer = self._call("head", key, c.head_object, Bucket=self.bucket, Key=self.name(key))
        recorded = answer.get("Metadata", {}).get("sha256")
        return str(recorded) if recorded else None

    @contextlib.contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="reelguard-obj-"))
        try:
            path = folder / Path(check_key(key)).name
            yield path
            self.put_file(key, path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def get_bytes(self, key: str) -> bytes:
        stream = self.open(key)
        try:
            return b"".join(stream.chunks)
        finally:
            stream.close()

    def sha256(self, key: str) -> str:
        return _stream_sha256(self.open(key))

    def size(self, key: str) -> int:
        c = self._client()
        answer = self._call("head", key, c.head_object, Bucket=self.bucket, Key=self.name(key))
        return int(answer["ContentLength"])

    def open(self, key: str, span: tuple[int, int] | None = None) -> ObjectStream:
        c = self._client()
        extra: dict[str, Any] = {} if span is None else {"Range": f"bytes={span[0]}-{span[1]}"}
        answer = self._call(
            "get", key, c.get_object, Bucket=self.bucket, Key=self.name(key), **extra
        )
        body = answer["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK_BYTES)
            except Exception as exc:
                ours = s3_client.translate(exc, self.label, "read", key)
                if ours is exc:
                    raise
                raise ours from exc

        return ObjectStream(int(answer["ContentLength"]), chunks(), body.close)

    def move(self, source: str, target: str) -> None:
        """A server-side copy, then a delete of ``source``. Once the copy is in place the move
        has happened: a source that still cannot be deleted is logged and left (a copy of an
        object that now lives at ``target``) instead of failing the move."""
        c = self._client()
        self._call(
            "copy",
            source,
            c.copy_object,
            Bucket=self.bucket,
            Key=self.name(target),
            CopySource={"Bucket": self.bucket, "Key": self.name(source)},
        )
        try:
            self.delete(source)
        except ObjectStoreUnavailable as exc:
            s3_client.log.warning(
                "moved %s to %s but cannot delete the source now; it stays as a leftover "
                "copy for a later sweep: %s",
                self.location(source),
                self.location(target),
                exc,
            )

    def delete(self, key: str) -> bool:
        """Delete ``key``, trying transient failures again (:attr:`delete_attempts`); a delete
        that still fails is logged with the key and raised as :class:`ObjectStoreUnavailable`
        (the caller leaves the object for a later sweep)."""
        c, name, tries = self._client(), self.name(key), self.delete_attempts
        try:
            try:
                self._call("head", key, c.head_object, attempts=tries, Bucket=self.bucket, Key=name)
            except ObjectMissing:
                return False
            self._call("delete", key, c.delete_object, attempts=tries, Bucket=self.bucket, Key=name)
        except ObjectStoreUnavailable as exc:
            s3_client.log.warning(
                "cannot delete %s after %d tries: %s", self.location(key), tries, exc
            )
            raise
        return True

    def local_path(self, key: str) -> Path | None:
        return None

    def presigned_url(self, key: str, expires_s: int, media_type: str) -> str | None:
        params = {"Bucket": self.bucket, "Key": self.name(key), "ResponseContentType": media_type}
        return str(
            self._call(
                "presign",
                key,
                self._client().generate_presigned_url,
                ClientMethod="get_object",
                Params=params,
                ExpiresIn=expires_s,
            )
        )


def _stream_sha256(stream: ObjectStream) -> str:
    digest = hashlib.sha256()
    try:
        for chunk in stream.chunks:
            digest.update(chunk)
    finally:
        stream.close()
    return digest.hexdigest()


# -- from settings ---------------------------------------------------------------------------


class ObjectStoreSettings(Protocol):
    """The settings an object store is chosen from (``config.settings.Settings`` has them)."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def storage_url(self) -> str | None: ...

    @property
    def s3_endpoint_url(self) -> str | None: ...

    @property
    def s3_region(self) -> str: ...

    @property
    def s3_timeout_s(self) -> float: ...

    @property
    def s3_multipart_threshold_mib(self) -> int: ...

    @property
    def s3_multipart_chunk_mib(self) -> int: ...

    @property
    def s3_delete_attempts(self) -> int: ...


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` as (bucket, prefix ending in ``/`` or empty); ValueError with
    the fix when it is not one."""
    match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/[^\s]*)?", url)
    if match is None:
        raise ValueError(
            f"{url!r} is not an object store URL: use s3://BUCKET or s3://BUCKET/PREFIX "
            "(bucket: 3-63 lower-case letters, digits, '.', '-')"
        )
    prefix = (match.group(2) or "").strip("/")
    if prefix:
        check_key(prefix)
    return match.group(1), f"{prefix}/" if prefix else ""


def object_store(settings: ObjectStoreSettings) -> ObjectStore:
    """The store ``settings`` name: S3 when ``storage_url`` is set, else the data folder."""
    if not settings.storage_url:
        return LocalFolderStore(Path(settings.data_dir))
    bucket, prefix = parse_s3_url(settings.storage_url)
    return S3Store(
        bucket,
        prefix,
        endpoint_url=settings.s3_endpoint_url or None,
        region=settings.s3_region,
        timeout_s=settings.s3_timeout_s,
        multipart_threshold=settings.s3_multipart_threshold_mib * MIB,
        multipart_chunk=settings.s3_multipart_chunk_mib * MIB,
        delete_attempts=settings.s3_delete_attempts,
    )


def as_object_store(where: Path | ObjectStore) -> ObjectStore:
    """``where`` as a store: a folder path becomes a :class:`LocalFolderStore`."""
    return LocalFolderStore(Path(where)) if isinstance(where, str | os.PathLike) else where
