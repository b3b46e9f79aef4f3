"""boto3 behind :class:`storage.objects.S3Store`: one client per process, its errors translated
into ours, bounded retries of transient failures, and uploads that stream large objects in parts.

Large objects (videos) go up as a multipart upload through boto3's managed transfer, read from
disk one part at a time (never the whole file in memory). A multipart upload that fails is
aborted, so no orphaned parts stay billed in the bucket: boto3 aborts it itself, and
:func:`upload` aborts whatever is still open for the key when that abort could not run (a
process killed mid-upload still leaves parts: a bucket lifecycle rule
``AbortIncompleteMultipartUpload`` sweeps those, see the README).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from storage.errors import ObjectMissing, ObjectStoreUnavailable

log = logging.getLogger("reelguard.storage")

MIB = 1024 * 1024
HASH_CHUNK = 1024 * 1024
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 2.0
TRANSIENT_CODES = frozenset(
    {
        "500",
        "502",
        "503",
        "504",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "Throttling",
        "ThrottlingException",
        "RequestTimeTooSkewed",
    }
)
"""S3 error codes that a later try may not get (the server was busy or restarting)."""

T = TypeVar("T")

_clients: dict[tuple[int, str | None, str, float, str | None], Any] = {}
_clients_lock = threading.Lock()


def s3_client(endpoint_url: str | None, region: str, timeout_s: float) -> Any:
    """One boto3 client per process, endpoint and access key (clients are thread-safe; not
    fork-safe, so the process id is part of the key; credentials are read when the client is
    built, so a changed ``AWS_ACCESS_KEY_ID`` gets a new one)."""
    key = (os.getpid(), endpoint_url, region, timeout_s, os.environ.get("AWS_ACCESS_KEY_ID"))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                config=Config(
                    connect_timeout=timeout_s,
                    read_timeout=timeout_s,
                    retries={"max_attempts": 2, "mode": "standard"},
                    s3={"addressing_style": "path"},
                    signature_version="s3v4",  # presigned URLs too (boto3's default is v2 there)
                ),
            )
            _clients[key] = client
    return client


def translate(exc: Exception, label: str, what: str, key: str) -> Exception:
    """boto3's error as ours: a missing key is :class:`ObjectMissing`, anything else that the
    store or the network raised :class:`ObjectStoreUnavailable` (with the fix to try); any
    other exception is returned as it is (a bug, to surface with its own traceback)."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    where = f"{label}: {what} {key!r}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            return ObjectMissing(f"{where}: no such object")
        if code in ("NoSuchBucket",):
            return ObjectStoreUnavailable(
                f"{where}: the bucket does not exist; create it or fix REELGUARD_STORAGE_URL"
            )
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return ObjectStoreUnavailable(
                f"{where}: access denied ({code}); check AWS_ACCESS_KEY_ID / "
                "AWS_SECRET_ACCESS_KEY and the bucket's policy"
            )
        return ObjectStoreUnavailable(f"{where}: the store answered {code or 'an error'}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ObjectStoreUnavailable(
            f"{where}: no credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
            "another source boto3 reads: a profile, an instance role)"
        )
    if isinstance(exc, BotoCoreError):
        return ObjectStoreUnavailable(
            f"{where}: cannot reach the store ({type(exc).__name__}); check "
            "REELGUARD_S3_ENDPOINT_URL and that the server is up"
        )
    return exc


def is_transient(exc: Exception) -> bool:
    """Whether ``exc`` (boto3's) may pass on a later try: the network, a timeout, a busy or
    restarting server. Missing keys, buckets and credentials are not: retrying them only
    delays the error."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectionError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) in TRANSIENT_CODES
    return isinstance(
        exc, ConnectionError | EndpointConnectionError | ConnectionClosedError | ReadTimeoutError
    )


def with_retries(
    call: Callable[[], T], attempts: int, describe: str, sleep: Callable[[float], None] = time.sleep
) -> T:
    """``call()``, tried up to ``attempts`` times while it fails transiently
    (:func:`is_transient`), sleeping 0.2 s, 0.4 s, ... (at most 2 s) between tries; the last
    failure is raised as it is. ``describe`` names the call in the log lines."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise
            pause = min(BACKOFF_FIRST_S * 2 ** (attempt - 1), BACKOFF_MAX_S)
            log.info(
                "%s failed (try %d of %d: %s); trying again in %.1f s",
                describe,
                attempt,
                attempts,
                type(exc).__name__,
                pause,
            )
            sleep(pause)
    raise AssertionError("unreachable")  # the loop returns or raises


def file_sha256(path: Path) -> str:
    """The SHA-256 hex of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def transfer_config(threshold: int, chunk: int) -> Any:
    """boto3's managed-transfer settings: parts of ``chunk`` bytes for objects of at least
    ``threshold`` bytes, four parts in flight (so at most about four parts in memory)."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=threshold,
        multipart_chunksize=chunk,
        max_concurrency=4,
        use_threads=True,
    )


def upload(
    client: Any,
    bucket: str,
    name: str,
    source: Path | IO[bytes],
    *,
    threshold: int,
    chunk: int,
    metadata: dict[str, str],
) -> None:
    """Upload ``source`` (a file, read part by part, or a readable binary stream) as ``name``;
    multipart at ``threshold`` bytes and above. On failure no multipart upload of ``name`` is
    left open (boto3's own abort, then ours for any it could not abort), and the error is
    raised as boto3 raised it (translate it with :func:`translate`)."""
    config = transfer_config(threshold, chunk)
    extra = {"Metadata": metadata}
    try:
        if isinstance(source, Path):
            client.upload_file(str(source), bucket, name, ExtraArgs=extra, Config=config)
        else:
            client.upload_fileobj(source, bucket, name, ExtraArgs=extra, Config=config)
    except BaseException:
        abort_open_uploads(client, bucket, name)
        raise


def abort_open_uploads(client: Any, bucket: str, name: str) -> int:
    """Abort every open multipart upload of exactly ``name`` (their parts are deleted); returns
    how many. Best effort: a store that cannot be reached now is logged (the bucket's lifecycle
    rule sweeps what is left)."""
    aborted = 0
    try:
        listed = client.list_multipart_uploads(Bucket=bucket, Prefix=name)
        for upload in listed.get("Uploads", []):
            if upload.get("Key") != name:
                continue
            client.abort_multipart_upload(Bucket=bucket, Key=name, UploadId=upload["UploadId"])
            aborted += 1
    except Exception as exc:
        log.warning(
            "s3://%s/%s: cannot abort the failed multipart upload now (%s); its parts stay "
            "until the bucket's AbortIncompleteMultipartUpload rule removes them",
            bucket,
            name,
            type(exc).__name__,
        )
    if aborted:
        log.info("s3://%s/%s: aborted %d failed multipart upload(s)", bucket, name, aborted)
    return aborted
