"""``/v1/videos`` in-process (Litestar TestClient): shapes, errors, isolation, idempotency,
the queue limit, and release control, with jobs run by a real in-process :class:`JobRunner`
(embedded generator, real frame audit)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from openai.types import Video
from test_videos_support import (
    BLOCKED_TERM,
    TENANTS,
    ExplodingClassifier,
    PatternBackend,
    make_settings,
    run_all,
    runner,
)

from audit.log import AuditLog
from config.settings import Settings
from gateway.app import create_app
from gateway.jobs import JobStore
from gateway.keys import KeyStore
from generator.encode import decode_mp4


class Env:
    """An app, a key per tenant, and an in-process worker on the same database."""

    def __init__(self, settings: Settings, client: TestClient) -> None:
        self.settings = settings
        self.client = client
        keys = KeyStore(settings.db)
        self.headers = {t: {"Authorization": f"Bearer {keys.create(t).token}"} for t in TENANTS}
        keys.close()

    def post(self, tenant: str = "acme", **kw: object) -> httpx.Response:
        body = {"prompt": "a red kite over a calm sea", "seconds": "1", "size": "64x64"}
        body.update(kw.pop("json", {}))  # type: ignore[arg-type]
        headers = {**self.headers[tenant], **kw.pop("headers", {})}  # type: ignore[dict-item]
        return self.client.post("/v1/videos", json=body, headers=headers, **kw)  # type: ignore[arg-type]

    def get(self, path: str, tenant: str = "acme", **kw: object) -> httpx.Response:
        return self.client.get(path, headers=self.headers[tenant], **kw)  # type: ignore[arg-type]

    def delete(self, path: str, tenant: str = "acme") -> httpx.Response:
        return self.client.delete(path, headers=self.headers[tenant])

    def run_jobs(self, **kw: object) -> int:
        """Run every queued job in-process (test-only generator; real frame audit)."""
        kw.setdefault("backend", PatternBackend())
        return run_all(runner(self.settings, **kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, text_classifiers: Mapping[str, Any]
) -> Iterator[Env]:
    settings = make_settings(tmp_path_factory.mktemp("videos"))
    with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
        yield Env(settings, client)


# -- create ----------------------------------------------------------------------------------


def test_create_json_answers_202_with_an_openai_video_object(env: Env) -> None:
    r = env.post()
    assert r.status_code == 202, r.text
    # Strict validation against the SDK's model; its size Literal lists only Sora's sizes (the
    # SDK itself does not validate responses), so that one field is checked separately.
    video = Video.model_validate({**r.json(), "size": "720x1280"})
    assert r.json()["size"] == "64x64"
    assert video.object == "video" and video.status == "queued" and video.progress == 0
    assert video.seconds == "1" and video.model == "embedded"
    moderation = r.json()["moderation"]
    assert moderation["action"] == "pending" and moderation["prompt"]["action"] == "allow"
    assert moderation["policy_version"] == moderation["prompt"]["policy_version"]


def test_create_multipart_like_the_sdk(env: Env) -> None:
    r = env.client.post(
        "/v1/videos",
        headers={**env.headers["acme"], "content-type": "multipart/form-data; boundary=xyz"},
        content=(
            b'--xyz\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na white paper boat'
            b'\r\n--xyz\r\nContent-Disposition: form-data; name="seconds"\r\n\r\n1'
            b'\r\n--xyz\r\nContent-Disposition: form-data; name="size"\r\n\r\n64x48\r\n--xyz--\r\n'
        ),
    )
    assert r.status_code == 202, r.text
    assert r.json()["size"] == "64x48"


@pytest.mark.parametrize(
    ("body", "pointer", "why"),
    [
        ({"prompt": ""}, "#/prompt", "empty prompt"),
        ({"size": "big"}, "#/size", "size must be WxH"),
        ({"seconds": "-1"}, "#/seconds", "negative length"),
        ({"seconds": "soon"}, "#/seconds", "not a number"),
        ({"model": "sora-2"}, "#/model", "models are the generator backends"),
        ({"seed": "x"}, "#/seed", "seed must be an integer"),
        ({"input_reference": "img"}, "#/input_reference", "reference images unsupported"),
        ({"colour": "red"}, "#/colour", "unknown fields are refused"),
    ],
)
def test_invalid_create_is_a_422_problem_naming_the_field(
    env: Env, body: dict[str, object], pointer: str, why: str
) -> None:
    r = env.post(json=body)
    assert r.status_code == 422, why
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["type"].endswith("validation-error") and problem["status"] == 422
    assert pointer in [e["pointer"] for e in problem["errors"]], why


@pytest.mark.parametrize(
    ("body", "pointer", "why"),
    [
        ({"size": "63x63"}, "#/size", "H.264 needs even sides"),
        ({"size": "4096x64"}, "#/size", "larger than the generator makes"),
        ({"seconds": "61"}, "#/seconds", "longer than the generator makes"),
    ],
)
def test_request_the_generator_cannot_serve_is_422_before_queueing(
    env: Env, body: dict[str, object], pointer: str, why: str
) -> None:
    before = len(JobStore(env.settings.db).list("acme", limit=100).jobs)
    r = env.post(json=body)
    assert r.status_code == 422, why
    assert pointer in [e["pointer"] for e in r.json()["errors"]], why
    assert len(JobStore(env.settings.db).list("acme", limit=100).jobs) == before


def test_a_prompt_the_generator_understands_nothing_of_is_refused_before_a_job(
    env: Env,
) -> None:
    before = len(JobStore(env.settings.db).list("acme", limit=100).jobs)
    r = env.post(json={"prompt": "a cat playing piano"})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "urn:reelguard:problem:prompt-not-understood"
    assert body["errors"] == [
        {"pointer": "#/prompt", "detail": "no known word (ignored: cat, playing, piano)"}
    ]
    assert "e.g. 'a red circle bouncing on a blue background'" in body["detail"]
    assert body["error"]["code"] == "prompt_not_understood" and body["error"]["param"] == "prompt"
    assert len(JobStore(env.settings.db).list("acme", limit=100).jobs) == before


def test_the_refusal_is_a_setting(tmp_path: Path, text_classifiers: Mapping[str, Any]) -> None:
    settings = make_settings(tmp_path, embedded_refuse_not_understood=False)
    with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
        env = Env(settings, client)
        r = env.post(json={"prompt": "a cat playing piano"})
        assert r.status_code == 202, r.text
        assert r.json()["generation"] is None  # nothing generated yet


def test_the_video_says_which_words_the_generator_used(env: Env) -> None:
    video_id = env.post(json={"prompt": "a crimson cat bouncing on a piano"}).json()["id"]
    env.run_jobs(backend=None)  # the real embedded model
    video = env.get(f"/v1/videos/{video_id}").json()
    assert video["status"] == "completed", video
    generation = video["generation"]
    assert generation["backend"] == "embedded" and generation["model_id"].startswith("reelguard/")
    assert generation["understood"] == ["crimson", "bouncing"]
    assert generation["ignored"] == ["cat", "piano"]
    assert isinstance(generation["seed"], int) and generation["frames"] >= 1


def test_a_thirty_second_video_is_made_and_audited_to_its_end(env: Env) -> None:
    """The embedded model makes up to 60 s (past 10 s by extension); the frame audit samples
    the whole video, every segment up to its last frame, before release."""
    body = {"prompt": "a red circle bouncing on a blue background", "seconds": "30"}
    r = env.post(json={**body, "size": "64x64"})
    assert r.status_code == 202, r.text
    video_id = r.json()["id"]
    env.run_jobs(backend=None)  # the real embedded model
    video = env.get(f"/v1/videos/{video_id}").json()
    # The suite samples with 2 steps (noisy frames): now and then the audit sends one of a
    # long video's ~60 sampled frames to review. Either way the whole video was audited.
    done = video["status"] == "completed"
    assert done or video["error"]["code"] == "output_moderation", video["error"]
    assert video["seconds"] == "30"
    assert video["generation"]["frames"] == 240 and video["generation"]["fps"] == 8.0
    (frame_decision,) = [
        d for d in AuditLog(env.settings.db).story(video_id).decisions if d["stage"] == "frame"
    ]
    times = sorted(t for _, t in frame_decision["frames"])
    assert times[-1] >= 29.0 and len(times) >= 30, times  # sampled through to the end
    assert max(b - a for a, b in itertools.pairwise(times)) <= 2.0


def test_bad_json_and_empty_body_are_400(env: Env) -> None:
    h = {**env.headers["acme"], "content-type": "application/json"}
    assert env.client.post("/v1/videos", content=b"{nope", headers=h).status_code == 400
    assert env.client.post("/v1/videos", content=b"", headers=h).status_code == 400


def test_missing_key_is_401(env: Env) -> None:
    r = env.client.post("/v1/videos", json={"prompt": "x"})
    assert r.status_code == 401 and r.json()["type"].endswith("unauthorized")


def test_blocked_prompt_creates_no_job_and_says_why(env: Env) -> None:
    before = JobStore(env.settings.db).list("acme", limit=100).jobs
    r = env.post(json={"prompt": f"a film about a {BLOCKED_TERM} at dawn"})
    assert r.status_code == 400
    body = r.json()
    assert body["type"].endswith("prompt-blocked") and body["status"] == 400
    assert body["error"]["code"] == "prompt_moderation" and body["error"]["param"] == "prompt"
    reasons = body["moderation"]["reasons"]
    assert reasons and reasons[0]["category"] == "violence"
    assert reasons[0]["evidence"][0]["text"].lower() == BLOCKED_TERM
    assert body["moderation"]["policy_version"] and body["moderation"]["action"] == "block"
    assert BLOCKED_TERM in body["detail"].lower()
    assert JobStore(env.settings.db).list("acme", limit=100).jobs == before


# -- read, list, isolation -------------------------------------------------------------------


def test_other_tenants_videos_are_404_everywhere(env: Env) -> None:
    video_id = env.post().json()["id"]
    assert env.get(f"/v1/videos/{video_id}", "globex").status_code == 404
    assert env.get(f"/v1/videos/{video_id}/content", "globex").status_code == 404
    r = env.delete(f"/v1/videos/{video_id}", "globex")
    assert r.status_code == 404
    listed = env.get("/v1/videos", "globex", params={"limit": 100}).json()["data"]
    assert video_id not in [v["id"] for v in listed]
    assert env.get(f"/v1/videos/{video_id}", "acme").status_code == 200


def test_list_pages_with_after_and_limit(env: Env) -> None:
    ids = [
        env.post(json={"prompt": f"a white lighthouse, shot {i}"}).json()["id"] for i in range(3)
    ]
    page = env.get("/v1/videos", params={"limit": 2}).json()
    assert page["object"] == "list" and [v["id"] for v in page["data"]] == ids[::-1][:2]
    assert page["has_more"] is True and page["last_id"] == ids[1]
    nxt = env.get("/v1/videos", params={"limit": 2, "after": page["last_id"]}).json()
    assert nxt["data"][0]["id"] == ids[0]
    asc = env.get("/v1/videos", params={"order": "asc", "limit": 100}).json()["data"]
    assert [v["id"] for v in asc][-3:] == ids
    assert env.get("/v1/videos", params={"limit": 0}).status_code == 422


def test_idempotency_key_returns_the_same_video(env: Env) -> None:
    h = {"Idempotency-Key": "order-42"}
    first = env.post(headers=h, json={"prompt": "a white windmill at dusk"})
    again = env.post(headers=h, json={"prompt": "a white windmill at dusk"})
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    other_tenant = env.post("globex", headers=h, json={"prompt": "a white windmill at dusk"})
    assert other_tenant.status_code == 202 and other_tenant.json()["id"] != first.json()["id"]
    conflict = env.post(headers=h, json={"prompt": "a different red video"})
    assert conflict.status_code == 409 and conflict.json()["type"].endswith("idempotency-conflict")


def test_full_queue_is_429_with_retry_after(
    tmp_path: Path, text_classifiers: Mapping[str, Any]
) -> None:
    settings = make_settings(tmp_path, video_queue_max=1)
    with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
        env = Env(settings, client)
        assert env.post().status_code == 202
        r = env.post(json={"prompt": "another red one"})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1 and r.json()["type"].endswith("queue-full")


def test_content_before_completion_is_409_not_ready(env: Env) -> None:
    video_id = env.post().json()["id"]
    r = env.get(f"/v1/videos/{video_id}/content")
    assert r.status_code == 409 and r.json()["type"].endswith("not-ready")


def test_delete_queued_video_cancels_it(env: Env) -> None:
    video_id = env.post().json()["id"]
    r = env.delete(f"/v1/videos/{video_id}")
    assert r.status_code == 200 and r.json() == {
        "id": video_id,
        "deleted": True,
        "object": "video.deleted",
    }
    assert env.get(f"/v1/videos/{video_id}").status_code == 404
    assert JobStore(env.settings.db).get(video_id).error_code == "cancelled"


# -- the pipeline, run by an in-process worker -----------------------------------------------


def test_allowed_video_completes_and_serves_mp4_and_thumbnail(env: Env) -> None:
    video_id = env.post(json={"prompt": "a green hill under a blue sky"}).json()["id"]
    env.run_jobs()
    video = env.get(f"/v1/videos/{video_id}").json()
    assert video["status"] == "completed", video
    assert video["progress"] == 100 and video["completed_at"] >= video["created_at"]
    mod = video["moderation"]
    assert mod["action"] == "allow" and mod["release"] == "released"
    assert mod["frames"]["sampled_frames"] >= 2 and mod["frames"]["model_versions"]
    r = env.get(f"/v1/videos/{video_id}/content")
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    frames, fps = decode_mp4(r.content)
    assert frames.shape[1:] == (64, 64, 3) and fps > 0
    thumb = env.get(f"/v1/videos/{video_id}/content", params={"variant": "thumbnail"})
    assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"
    bad = env.get(f"/v1/videos/{video_id}/content", params={"variant": "spritesheet"})
    assert bad.status_code == 422


def test_classifier_error_withholds_video_until_a_reviewer_releases_it(env: Env) -> None:
    video_id = env.post(json={"prompt": "a yellow tram in the rain"}).json()["id"]
    env.run_jobs(frame_classifiers=lambda policy: [ExplodingClassifier()])
    video = env.get(f"/v1/videos/{video_id}").json()
    assert video["status"] == "failed" and video["error"]["code"] == "output_moderation"
    assert video["moderation"]["release"] == "withheld"
    assert video["moderation"]["frames"]["action"] == "block"
    assert any(r["source"] == "error" for r in video["moderation"]["frames"]["reasons"])
    for variant in ("video", "thumbnail"):
        r = env.get(f"/v1/videos/{video_id}/content", params={"variant": variant})
        assert r.status_code == 403 and r.json()["type"].endswith("content-withheld")
    data = env.settings.data_dir
    assert (data / "quarantine" / f"{video_id}.mp4").is_file()
    assert not (data / "released" / f"{video_id}.mp4").exists()

    from gateway.review import release_withheld

    audit = AuditLog(env.settings.db)
    released = release_withheld(audit, data, video_id, "alice", "checked: a tram")
    assert released.status == "completed" and released.release == "released"
    video = env.get(f"/v1/videos/{video_id}").json()
    assert video["status"] == "completed" and video["error"] is None
    assert video["moderation"]["frames"]["reviewed"]["actor"] == "alice"
    assert env.get(f"/v1/videos/{video_id}/content").status_code == 200


def test_review_state_pending_rejected_approved_in_the_video_object(env: Env) -> None:
    from click.testing import CliRunner

    from gateway.cli import main

    video_id = env.post(json={"prompt": "a purple square shrinking"}).json()["id"]
    env.run_jobs(frame_classifiers=lambda policy: [ExplodingClassifier()])
    video = env.get(f"/v1/videos/{video_id}").json()
    mod = video["moderation"]
    assert video["status"] == "failed" and video["error"]["code"] == "output_moderation"
    assert (mod["review"], mod["reviewer"], mod["reviewed_at"]) == ("pending", None, None)
    review = ["audit", "review", video_id, "--db", str(env.settings.db)]
    review += ["--data-dir", str(env.settings.data_dir), "--reviewer", "bob"]
    cli = CliRunner()
    done = cli.invoke(main, [*review, "--reject", "--note", "a shape it should not be"])
    assert done.exit_code == 0, done.output
    video = env.get(f"/v1/videos/{video_id}").json()
    mod = video["moderation"]
    assert video["status"] == "failed" and mod["release"] == "withheld"
    assert (mod["review"], mod["reviewer"]) == ("rejected", "bob")
    assert mod["review_note"] == "a shape it should not be"
    assert (
        isinstance(mod["reviewed_at"], int)
        and "rejected on review by bob" in (video["error"]["message"])
    )
    done = cli.invoke(main, [*review, "--approve", "--note", "on second look it is fine"])
    assert done.exit_code == 0, done.output
    video = env.get(f"/v1/videos/{video_id}").json()
    mod = video["moderation"]
    assert video["status"] == "completed" and video["error"] is None
    assert (mod["review"], mod["reviewer"], mod["release"]) == ("approved", "bob", "released")
    # A video that was never withheld has no review.
    other = env.post(json={"prompt": "a black circle moving up"}).json()["id"]
    env.run_jobs()
    assert env.get(f"/v1/videos/{other}").json()["moderation"]["review"] is None


def test_delete_completed_video_removes_released_files(env: Env) -> None:
    video_id = env.post(json={"prompt": "an orange balloon"}).json()["id"]
    env.run_jobs()
    assert env.get(f"/v1/videos/{video_id}").json()["status"] == "completed"
    assert env.delete(f"/v1/videos/{video_id}").status_code == 200
    assert not (env.settings.data_dir / "released" / f"{video_id}.mp4").exists()
    assert env.get(f"/v1/videos/{video_id}/content").status_code == 404


def test_unwritable_audit_log_starts_no_video(
    tmp_path: Path, text_classifiers: Mapping[str, Any]
) -> None:
    settings = make_settings(tmp_path)
    app = create_app(settings, classifiers=text_classifiers)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the audit folder should be")
    app.state.audit = AuditLog(blocker / "audit.db")
    with TestClient(app, raise_server_exceptions=False) as client:
        env = Env(settings, client)
        r = env.post()
        assert r.status_code == 503 and r.json()["type"].endswith("audit-unavailable")
        assert r.headers["retry-after"] == "1"
        # The job and its prompt record commit together: no record, no job at all.
        assert JobStore(settings.db).list("acme", limit=10).jobs == ()
        assert JobStore(settings.db).claim("w", lease_s=30, max_attempts=1) is None
