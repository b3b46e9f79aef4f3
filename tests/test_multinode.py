"""Scale-out end to end: one PostgreSQL server, one S3 server (SeaweedFS), two web processes
(``reelguard serve --workers 0``) and three worker processes (``reelguard worker``) on
127.0.0.1, each a separate node with its own empty data folder and its own copy of the policy
files; they share nothing but ``REELGUARD_DATABASE_URL`` and ``REELGUARD_STORAGE_URL`` (with the
S3 endpoint and credentials).

Thirty video jobs and a burst of moderations go through both web processes with the official
``openai`` SDK; mid-run one worker node and one web node die with kill -9 (the whole node: its
process group). Then every job has ended (the surviving workers take over the dead one's job
when its lease lapses), every video the survivors serve or the bucket holds as released has a
passing frame audit on record, withheld videos are never served, every moderation that was
answered 200 is in the audit log, and ``reelguard audit verify --check-files`` passes on the
PostgreSQL database and the bucket.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from s3server import S3Server
from test_videos_e2e import REELGUARD, STRICT_TENANT, free_port, start_server, stop
from test_videos_s3_e2e import s3_env
from test_videos_support import embedded_weights, make_settings

from audit.log import AuditLog
from config.settings import Settings
from gateway.jobs import JobStore, VideoJob, video_key
from gateway.keys import KeyStore
from generator.encode import decode_mp4
from storage.objects import object_store, parse_s3_url

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning"),
]

JOBS = 30
STRICT_EVERY = 5
"""Every fifth job is the strict tenant's, whose frame policy withholds every video."""
SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "blue", "green", "purple")
MOTIONS = ("bouncing", "moving left", "moving up", "growing", "shrinking")
MODERATION_TEXTS = (
    "a cat surfing a wave at sunset",
    "a red kite over a calm sea",
    "a graphic beheading with blood everywhere",
    "two friends sharing a picnic in the park",
)
LEASE_S = 4.0
SLOW_STEPS = 60
FINISH_TIMEOUT_S = 240.0


def video_prompt(i: int) -> str:
    colour, shape = COLOURS[i % len(COLOURS)], SHAPES[i % len(SHAPES)]
    return f"a {colour} {shape} {MOTIONS[(i // 3) % len(MOTIONS)]} on a white background"


@dataclass
class Node:
    """One process of the deployment: a web or worker node with its own folder."""

    name: str
    settings: Settings
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def log(self) -> Path:
        return self.settings.data_dir.parent / f"{self.name}.log"

    def kill(self) -> None:
        """kill -9 of the whole node (the process and every process it started)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@dataclass
class Cluster:
    database_url: str
    webs: list[Node]
    workers: list[Node]
    tokens: dict[str, str]
    s3: S3Server

    def client(self, web: Node, tenant: str = "acme") -> openai.OpenAI:
        return openai.OpenAI(
            api_key=self.tokens[tenant], base_url=web.url + "/v1", max_retries=0, timeout=60
        )

    def logs(self) -> str:
        parts = []
        for node in (*self.webs, *self.workers):
            text = node.log.read_text(errors="replace") if node.log.exists() else ""
            parts.append(f"--- {node.name} ---\n{text[-2000:]}")
        return "\n".join(parts)


@dataclass
class Burst:
    """Moderations posted from client threads until stopped: what was acknowledged (200)."""

    acknowledged: dict[str, list[str]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, cluster: Cluster, per_web: int = 2, pause_s: float = 0.05) -> Burst:
        for web in cluster.webs:
            self.acknowledged[web.name], self.refused[web.name] = [], 0
            for k in range(per_web):
                client = cluster.client(web)
                thread = threading.Thread(
                    target=self._post, args=(web.name, client, k, pause_s), daemon=True
                )
                thread.start()
                self.threads.append(thread)
        return self

    def _post(self, web: str, client: openai.OpenAI, k: int, pause_s: float) -> None:
        i = k
        while not self.stop.is_set():
            text = MODERATION_TEXTS[i % len(MODERATION_TEXTS)]
            i += 1
            try:
                answer = client.moderations.create(input=text)
            except (openai.APIConnectionError, openai.APIStatusError):
                with self.lock:
                    self.refused[web] += 1
                time.sleep(0.2)
                continue
            with self.lock:
                self.acknowledged[web].append(answer.id)
            time.sleep(pause_s)

    def count(self, web: str) -> int:
        with self.lock:
            return len(self.acknowledged[web])

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(90)
            assert not thread.is_alive(), "a moderation client hangs"


def node_settings(root: Path, name: str, shared: dict[str, Any]) -> Settings:
    """A node's settings in a folder of its own: its policy copy, tenant overlays and an empty
    data folder (never used for videos: they go to the bucket)."""
    folder = root / name
    folder.mkdir()
    settings = make_settings(folder, **shared)
    (settings.tenant_policy_dir / "strict.yaml").write_text(STRICT_TENANT)  # type: ignore[operator]
    return settings


def node_env(settings: Settings, s3: S3Server) -> dict[str, str]:
    env = s3_env(settings, s3)
    env.update(
        REELGUARD_VIDEO_QUEUE_MAX=str(JOBS * 2),
        REELGUARD_VIDEO_MAX_ATTEMPTS="2",
        REELGUARD_WEB_WORKERS="1",
        REELGUARD_VIDEO_WORKERS="1",
    )
    return env


def start_worker(settings: Settings, s3: S3Server, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [REELGUARD, "worker", "--workers", "1"],
        env=node_env(settings, s3),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: kill -9 takes the whole node
    )


@pytest.fixture
def cluster(
    tmp_path: Path, postgres_url: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    for name, value in s3_server.env().items():  # this process reads the bucket too
        monkeypatch.setenv(name, value)
    shared: dict[str, Any] = {
        "database_url": postgres_url,
        "storage_url": f"s3://{s3_server.bucket}/multinode-{tmp_path.name}",
        "s3_endpoint_url": s3_server.endpoint,
        "embedded_weights": embedded_weights(tmp_path),
        "embedded_steps": 8,
        "video_lease_s": LEASE_S,
        "worker_poll_interval_s": 0.2,
    }
    web_settings = [
        node_settings(tmp_path, f"web{i}", shared | {"port": free_port()}) for i in (1, 2)
    ]
    # worker1 is the slow machine (many more diffusion steps): its jobs spend seconds
    # generating, so the test can kill it while it holds one.
    worker_settings = [
        node_settings(
            tmp_path, f"worker{i}", shared | ({"embedded_steps": SLOW_STEPS} if i == 1 else {})
        )
        for i in (1, 2, 3)
    ]
    keys = KeyStore(postgres_url)
    tokens = {t: keys.create(t).token for t in ("acme", "strict")}
    keys.close()
    webs: list[Node] = []
    workers: list[Node] = []
    try:
        for i, settings in enumerate(worker_settings, 1):  # they load their models meanwhile
            log = settings.data_dir.parent / f"worker{i}.log"
            workers.append(Node(f"worker{i}", settings, start_worker(settings, s3_server, log)))
        for i, settings in enumerate(web_settings, 1):
            log = settings.data_dir.parent / f"web{i}.log"
            env = node_env(settings, s3_server)
            webs.append(Node(f"web{i}", settings, start_server(settings, log, workers=0, env=env)))
        yield Cluster(postgres_url, webs, workers, tokens, s3_server)
    finally:
        for node in (*webs, *workers):
            stop(node.proc)


def wait_for(check: Callable[[], Any], timeout_s: float, what: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (got := check()):
        assert time.monotonic() < deadline, f"timed out waiting: {what()}"
        time.sleep(0.2)
    return got


def jobs_of(cluster: Cluster, ids: list[str]) -> dict[str, VideoJob]:
    store = JobStore(cluster.database_url)
    return {i: store.get(i) for i in ids}


def node_of(pid: int, nodes: list[Node]) -> Node | None:
    """The node whose process group ``pid`` belongs to."""
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return None
    return next((n for n in nodes if n.proc.pid == group), None)


def generating_on(cluster: Cluster, node: Node, ids: list[str]) -> VideoJob | None:
    """A job ``node`` is generating right now, early enough that it cannot finish before a
    kill lands (generation is 0-90 % of a job's progress)."""
    for job in jobs_of(cluster, ids).values():
        running = job.status == "in_progress" and job.stage == "generating" and job.progress < 45
        if running and job.worker_id and node_of(int(job.worker_id.split(":")[1]), [node]):
            return job
    return None


def test_two_web_and_three_worker_nodes_survive_kill_9(cluster: Cluster) -> None:
    web1, web2 = cluster.webs
    burst = Burst().start(cluster)
    ids: list[str] = []
    strict: set[str] = set()
    for i in range(JOBS):
        tenant = "strict" if i % STRICT_EVERY == STRICT_EVERY - 1 else "acme"
        web = cluster.webs[i % 2]
        video = cluster.client(web, tenant).videos.create(
            prompt=video_prompt(i),
            seconds="1",  # type: ignore[arg-type]
            size="64x64",  # type: ignore[arg-type]
            extra_body={"seed": 1000 + i},  # the same frames, so the same frame audit, each run
        )
        assert video.status == "queued"
        ids.append(video.id)
        if tenant == "strict":
            strict.add(video.id)

    def finished() -> int:
        return sum(j.status in ("completed", "failed") for j in jobs_of(cluster, ids).values())

    # Mid-run: a few jobs done, both web nodes answering, the slow worker node generating.
    wait_for(lambda: finished() >= 3, FINISH_TIMEOUT_S, cluster.logs)
    wait_for(lambda: burst.count(web2.name) >= 10, 60, cluster.logs)
    victim = cluster.workers[0]
    victim_job = wait_for(
        lambda: generating_on(cluster, victim, ids), FINISH_TIMEOUT_S, cluster.logs
    )
    victim.kill()
    web2.kill()
    acknowledged_by_dead_web = burst.count(web2.name)
    assert finished() < JOBS, "the kill came too late to be mid-run"

    wait_for(lambda: finished() == JOBS, FINISH_TIMEOUT_S, cluster.logs)
    more = burst.count(web1.name)
    wait_for(lambda: burst.count(web1.name) > more, 60, cluster.logs)  # web1 still answers
    burst.finish()

    jobs = jobs_of(cluster, ids)
    # The killed worker's job was taken over by a survivor (a second attempt) or, its
    # attempts used up, failed as worker_lost; never left in progress.
    taken = jobs[victim_job.id]
    assert taken.status in ("completed", "failed"), taken
    assert taken.attempts == 2 or taken.error_code == "worker_lost", taken
    if taken.status == "completed":  # by a surviving node's worker
        assert taken.worker_id != victim_job.worker_id
        assert node_of(int((taken.worker_id or "").split(":")[1]), cluster.workers) is not victim
    for job_id, job in jobs.items():
        if job_id in strict:
            assert (job.status, job.error_code) == ("failed", "output_moderation"), job
        elif job_id != victim_job.id:  # the frame audit may withhold one, never lose one
            assert job.status == "completed" or job.error_code == "output_moderation", (
                job.error_code,
                job.error_message,
            )
    completed = [j for j in jobs.values() if j.status == "completed"]
    assert len(completed) >= (JOBS - len(strict)) * 2 // 3, [j.error_message for j in jobs.values()]

    check_nothing_unaudited_is_served(cluster, web1, jobs)
    check_acknowledged_moderations_are_logged(cluster, burst)
    assert acknowledged_by_dead_web >= 10

    verify = subprocess.run(
        [REELGUARD, "audit", "verify", "--check-files"],
        env=node_env(web1.settings, cluster.s3),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("OK: ")
    # No node wrote a video to its own disk: the bucket is the only store.
    folders = [n.settings.data_dir.parent for n in (*cluster.webs, *cluster.workers)]
    assert not [p for f in folders for p in f.rglob("*.mp4")]


def check_nothing_unaudited_is_served(
    cluster: Cluster, web: Node, jobs: dict[str, VideoJob]
) -> None:
    """Every job: served by the surviving web node only when its frame audit allowed it and its
    release is on record; withheld ones are refused. Every released object in the bucket
    belongs to such a job."""
    audit = AuditLog(cluster.database_url)
    files = object_store(web.settings)
    passed: set[str] = set()
    try:
        for job_id, job in jobs.items():
            story = audit.story(job_id)
            frame = [d["action"] for d in story.decisions if d.get("stage") == "frame"]
            released = [r["action"] for r in story.releases]
            tenant = "strict" if job.tenant == "strict" else "acme"
            url = f"{web.url}/v1/videos/{job_id}/content"
            headers = {"Authorization": f"Bearer {cluster.tokens[tenant]}"}
            answer = httpx.get(url, headers=headers, timeout=60)
            if job.status == "completed":
                assert frame and frame[-1] == "allow", (job_id, story.decisions)
                assert released == ["released"], (job_id, released)
                assert answer.status_code == 200, answer.text
                assert answer.content == files.get_bytes(video_key("released", f"{job_id}.mp4"))
                assert decode_mp4(answer.content)[0].shape[0] >= 2
                passed.add(job_id)
            else:
                assert answer.status_code in (403, 404), (job_id, answer.status_code)
                thumb = httpx.get(url, params={"variant": "thumbnail"}, headers=headers, timeout=60)
                assert thumb.status_code in (403, 404), (job_id, thumb.status_code)
                assert "released" not in released, (job_id, released)
                assert not files.exists(video_key("released", f"{job_id}.mp4"))
        released_jobs = {Path(k).name.split(".")[0] for k in bucket_keys(cluster, web, "released/")}
        assert released_jobs <= passed, released_jobs - passed
        assert passed <= released_jobs
    finally:
        audit.close()


def bucket_keys(cluster: Cluster, web: Node, under: str) -> list[str]:
    """Every key in the deployment's bucket prefix under ``under`` (listed with boto3, not
    through ReelGuard's store)."""
    bucket, prefix = parse_s3_url(str(web.settings.storage_url))
    pages = cluster.s3.client().get_paginator("list_objects_v2")  # type: ignore[attr-defined]
    return [
        o["Key"]
        for page in pages.paginate(Bucket=bucket, Prefix=prefix + under)
        for o in page.get("Contents", [])
    ]


def check_acknowledged_moderations_are_logged(cluster: Cluster, burst: Burst) -> None:
    audit = AuditLog(cluster.database_url)
    try:
        logged = {r["request_id"] for r in audit.iter_requests()}
    finally:
        audit.close()
    for web, ids in burst.acknowledged.items():
        assert ids, f"{web} acknowledged no moderation"
        missing = [i for i in ids if i not in logged]
        assert not missing, f"{web}: {len(missing)} acknowledged moderations not in the log"
