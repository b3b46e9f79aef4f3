"""End to end on S3: a web process (``reelguard serve --workers 0``) and a worker process
(``reelguard worker``) that share only the database and the bucket (each has its own empty
data folder), on a real S3 server (SeaweedFS); the official ``openai`` SDK creates videos and
downloads them, streamed through the API and through a presigned URL, and a withheld video is
never downloadable."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from s3server import S3Server
from test_videos_e2e import (
    REELGUARD,
    STRICT_TENANT,
    env_for,
    free_port,
    start_server,
    stop,
    wait_done,
)
from test_videos_support import embedded_weights, make_settings

from audit.log import AuditLog
from config.settings import Settings
from gateway.jobs import video_key
from gateway.keys import KeyStore
from generator.encode import decode_mp4
from storage.objects import object_store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning"),
]


@dataclass
class Deployment:
    settings: Settings  # the worker's (its data folder)
    tokens: dict[str, str]
    urls: dict[str, str]  # "stream" and "presigned": one web process each
    folders: list[Path]  # every process's own data folder

    def client(self, web: str = "stream", tenant: str = "acme") -> openai.OpenAI:
        return openai.OpenAI(
            api_key=self.tokens[tenant], base_url=self.urls[web] + "/v1", max_retries=0
        )


def s3_env(settings: Settings, server: S3Server) -> dict[str, str]:
    env = env_for(settings)
    env.update(server.env())
    env["REELGUARD_STORAGE_URL"] = str(settings.storage_url)
    env["REELGUARD_S3_PRESIGNED_DOWNLOADS"] = str(settings.s3_presigned_downloads).lower()
    return env


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("s3e2e")
    url = f"s3://{s3_server.bucket}/e2e-{tmp.name}"
    base = make_settings(
        tmp,
        storage_url=url,
        s3_endpoint_url=s3_server.endpoint,
        embedded_weights=embedded_weights(tmp),
        embedded_steps=8,
    )
    (base.tenant_policy_dir / "strict.yaml").write_text(STRICT_TENANT)  # type: ignore[operator]
    keys = KeyStore(base.database)
    tokens = {t: keys.create(t).token for t in ("acme", "strict")}
    keys.close()

    def own(name: str, **kw: object) -> Settings:
        folder = tmp / name
        folder.mkdir()
        return base.model_copy(update={"data_dir": folder / "videos", **kw})

    web = own("web", port=free_port())
    presigned = own("web-presigned", port=free_port(), s3_presigned_downloads=True)
    worker = own("worker")
    procs: list[subprocess.Popen[bytes]] = []
    patch = pytest.MonkeyPatch()
    for name, value in s3_server.env().items():  # this process reads the bucket too
        patch.setenv(name, value)
    try:
        for settings in (web, presigned):
            log = Path(settings.data_dir).parent / "server.log"
            env = s3_env(settings, s3_server)
            procs.append(start_server_env(settings, env, log))
        log = Path(worker.data_dir).parent / "worker.log"
        procs.append(
            subprocess.Popen(
                [REELGUARD, "worker", "--workers", "1"],
                env=s3_env(worker, s3_server),
                stdout=log.open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        yield Deployment(
            worker,
            tokens,
            {
                "stream": f"http://127.0.0.1:{web.port}",
                "presigned": f"http://127.0.0.1:{presigned.port}",
            },
            [Path(s.data_dir) for s in (web, presigned, worker)],
        )
    finally:
        for proc in procs:
            stop(proc)
        patch.undo()


def start_server_env(settings: Settings, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``reelguard serve --workers 0`` with ``env``."""
    return start_server(settings, log, workers=0, env=env)


def test_sdk_downloads_a_released_video_from_s3(deployment: Deployment) -> None:
    client = deployment.client()
    video = client.videos.create(prompt="a white triangle sailing on a blue lake", seconds="1")  # type: ignore[arg-type]
    done = wait_done(client, video.id)
    assert done.status == "completed", done.error
    streamed = client.videos.download_content(video.id).read()
    frames, _ = decode_mp4(streamed)
    assert frames.shape[0] >= 2
    files = object_store(deployment.settings)
    assert streamed == files.get_bytes(video_key("released", f"{video.id}.mp4"))
    assert not files.exists(video_key("quarantine", f"{video.id}.mp4"))
    # The other web process redirects to a presigned URL; the SDK follows it (its API key is
    # not sent to the store) and gets the same bytes.
    other = deployment.client("presigned")
    assert other.videos.download_content(video.id).read() == streamed
    raw = httpx.get(
        f"{deployment.urls['presigned']}/v1/videos/{video.id}/content",
        headers={"Authorization": f"Bearer {deployment.tokens['acme']}"},
    )
    assert raw.status_code == 307 and "X-Amz-Signature=" in raw.headers["location"]
    thumb = other.videos.download_content(video.id, variant="thumbnail").read()
    assert thumb[:3] == b"\xff\xd8\xff"
    story = AuditLog(deployment.settings.database).story(video.id)
    assert [r["path"] for r in story.releases] == [
        files.location(video_key("released", f"{video.id}.mp4"))
    ]
    # No shared folder: no process wrote a video file to its own disk.
    assert not [p for f in deployment.folders if f.exists() for p in f.rglob("*.mp4")]


def test_sdk_never_downloads_a_withheld_video(deployment: Deployment) -> None:
    for web in ("stream", "presigned"):
        client = deployment.client(web, tenant="strict")
        video = client.videos.create(prompt="a green circle on a quiet forest path", seconds="1")  # type: ignore[arg-type]
        done = wait_done(client, video.id)
        assert done.status == "failed" and done.error and done.error.code == "output_moderation"
        with pytest.raises(openai.PermissionDeniedError):
            client.videos.download_content(video.id)
        files = object_store(deployment.settings)
        assert files.exists(video_key("quarantine", f"{video.id}.mp4"))  # kept as evidence
        assert not files.exists(video_key("released", f"{video.id}.mp4"))
        evidence = AuditLog(deployment.settings.database).story(video.id).evidence
        assert evidence and all(files.exists(e["path"]) for e in evidence)
        assert AuditLog(deployment.settings.database).verify(check_files=True, data_dir=files).ok
