"""Characters through the official ``openai`` SDK (``client.videos.create_character`` and
``get_character``) against a real server: the uploaded video is audited at the input stage, a
face keeps the character for review (consent on record in the audit chain, approved with the
reviewer CLI), an unapproved character cannot be used (409), tenants are isolated (404), and a
video featuring an approved character starts from it and lists it as a C2PA ingredient."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from click.testing import CliRunner
from test_videos_extend import clip_of, mp4
from test_videos_inputs import (
    Env,
    face_pixels,
    landscape_pixels,
    problem_of,
    served_env,
)
from test_videos_support import (
    BLOCKED_TERM,
    DEPLOYMENTS,
    query,
)

from classifiers.frame.images import fit_to
from gateway.cli import main
from generator.encode import decode_mp4
from generator.provenance import read_manifest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning"),
]


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    text_classifiers: Mapping[str, Any],
) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("characters")
    with served_env(request, tmp, text_classifiers, c2pa=True) as env:
        yield env


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("clips")
    faces = clip_of(face_pixels(128), 8)
    return {
        "plain": mp4(clip_of(landscape_pixels(64, 64), 8), 8.0, tmp),
        "face": mp4(faces, 8.0, tmp),
    }


def create(env: Env, data: bytes, name: str = "Kite", tenant: str = "acme") -> Any:
    return env.sdk(tenant).videos.create_character(
        name=name, video=("character.mp4", data, "video/mp4")
    )


def featuring(env: Env, character_id: str, tenant: str = "acme", **kw: Any) -> Any:
    return env.sdk(tenant).videos.create(
        prompt="a red circle moving right",
        seconds="1",  # type: ignore[arg-type]
        size="64x64",
        extra_body={"characters": [{"id": character_id}], **kw},
    )


def cli(env: Env, *args: str) -> str:
    """``reelguard ARGS`` against the server's database (a SQLite file or PostgreSQL)."""
    url = env.settings.database_url
    where = [] if url else ["--db", str(env.settings.db)]
    shown = CliRunner().invoke(
        main, [*args, *where], env={"REELGUARD_DATABASE_URL": url} if url else None
    )
    assert shown.exit_code == 0, shown.output
    return shown.output


def review(env: Env, ref: str, verdict: str, reviewer: str = "alice") -> str:
    return cli(
        env,
        "audit",
        "review",
        ref,
        f"--{verdict}",
        "--reviewer",
        reviewer,
        "--note",
        "signed consent form on file",
    )


def chain(env: Env, character_id: str) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: query(env.settings, sql, (character_id,))
        for table, sql in (
            ("decisions", "SELECT stage, action FROM decisions WHERE job_id = ? ORDER BY seq"),
            (
                "releases",
                "SELECT action, actor, reason FROM releases WHERE job_id = ? ORDER BY seq",
            ),
            ("reviews", "SELECT reviewer, verdict, note FROM reviews WHERE ref = ? ORDER BY seq"),
        )
    }


def test_a_clean_character_is_ready_and_retrievable(env: Env, clips: dict[str, bytes]) -> None:
    made = create(env, clips["plain"], name="Kite")
    assert made.id and made.id.startswith("char_") and made.name == "Kite"
    got = env.sdk().videos.get_character(made.id)
    assert (got.id, got.name, got.created_at) == (made.id, "Kite", made.created_at)
    extra = got.model_dump()
    assert extra["status"] == "ready"
    checked = extra["moderation"]["input"]
    assert checked["action"] == "allow" and checked["upload"]["media_type"] == "video/mp4"
    assert checked["upload"]["sha256"] == hashlib.sha256(clips["plain"]).hexdigest()
    assert extra["consent"]["uploaded_by"].startswith("tenant:acme key:")
    trail = chain(env, made.id)
    assert trail["decisions"] == [("prompt", "allow"), ("input", "allow")]
    ((action, actor, _),) = trail["releases"]
    assert (action, actor) == ("released", extra["consent"]["uploaded_by"])


def test_a_face_waits_for_a_reviewer_and_cannot_be_used_until_approved(
    env: Env, clips: dict[str, bytes], tmp_path: Path
) -> None:
    made = create(env, clips["face"], name="Sam")
    pending = env.sdk().videos.get_character(made.id).model_dump()
    assert pending["status"] == "pending_review"
    (reason,) = [r for r in pending["moderation"]["input"]["reasons"] if r["action"] == "review"]
    assert reason["category"] == "celebrity" and reason["classifier"] == "faces"
    assert pending["consent"]["reviewer"] is None
    with pytest.raises(openai.ConflictError) as info:
        featuring(env, made.id)
    assert problem_of(info.value)["type"].endswith(":character-not-approved")
    assert "waits for a reviewer" in problem_of(info.value)["detail"]
    # The consent trail so far: who uploaded it, and that it is held.
    ((action, actor, why),) = chain(env, made.id)["releases"]
    assert action == "withheld" and actor.startswith("tenant:acme key:")
    assert "kept for review" in why

    assert f"Character {made.id} approved" in review(env, made.id, "approve")
    approved = env.sdk().videos.get_character(made.id).model_dump()
    assert approved["status"] == "ready"
    consent = approved["consent"]
    assert (consent["reviewer"], consent["review_note"]) == (
        "alice",
        "signed consent form on file",
    )
    assert consent["reviewed_at"] >= consent["uploaded_at"]
    trail = chain(env, made.id)
    assert [r[:2] for r in trail["releases"]] == [("withheld", actor), ("released", "alice")]
    assert trail["reviews"] == [("alice", "approve", "signed consent form on file")]
    cli(env, "audit", "verify")

    video = featuring(env, made.id)
    assert video.status == "queued"
    env.run_jobs()
    done = env.sdk().videos.retrieve(video.id)
    assert done.status == "completed", done
    data = env.sdk().videos.download_content(video.id).read()
    frames, _ = decode_mp4(data)
    start = fit_to(face_pixels(128), 64, 64).astype(np.int16)
    assert np.abs(frames[0].astype(np.int16) - start).mean() < 20
    path = tmp_path / "featuring.mp4"
    path.write_bytes(data)
    store = read_manifest(path)
    (ingredient,) = store["manifests"][store["active_manifest"]]["ingredients"]
    assert ingredient["relationship"] == "inputTo" and ingredient["title"].startswith(made.id)
    assert ingredient["description"] == f"sha256:{hashlib.sha256(clips['face']).hexdigest()}"


def test_a_rejected_character_stays_unusable(env: Env, clips: dict[str, bytes]) -> None:
    made = create(env, clips["face"], name="Lee")
    review(env, made.id, "reject", reviewer="bob")
    got = env.sdk().videos.get_character(made.id).model_dump()
    assert got["status"] == "rejected" and got["consent"]["reviewer"] == "bob"
    with pytest.raises(openai.ConflictError) as info:
        featuring(env, made.id)
    assert "rejected on review by bob" in problem_of(info.value)["detail"]
    assert chain(env, made.id)["reviews"] == [("bob", "reject", "signed consent form on file")]


def test_deleting_a_character_removes_its_files_and_keeps_the_consent_trail(
    env: Env, clips: dict[str, bytes]
) -> None:
    """The owner deletes a character (the SDK has no method: its generic ``delete``): its clip
    and upload leave the store, it cannot be used again, its consent record stays readable and
    in the audit chain, and a video admitted with it before still completes."""
    from storage.objects import ObjectMissing, object_store

    made = create(env, clips["face"], name="Ana")
    review(env, made.id, "approve")
    video = featuring(env, made.id)
    ((clip_key, upload_key),) = query(
        env.settings, "SELECT clip_key, upload_key FROM video_characters WHERE id = ?", (made.id,)
    )
    files = object_store(env.settings)
    assert files.get_bytes(upload_key) == clips["face"]
    with pytest.raises(openai.NotFoundError):
        env.sdk("globex").delete(f"/videos/characters/{made.id}", cast_to=object)
    gone = env.sdk().delete(f"/videos/characters/{made.id}", cast_to=object)
    assert gone == {"id": made.id, "object": "video.character.deleted", "deleted": True}
    for key in (clip_key, upload_key):
        with pytest.raises(ObjectMissing):
            files.get_bytes(key)
    got = env.sdk().videos.get_character(made.id).model_dump()
    consent = got["consent"]
    assert got["status"] == "deleted" and consent["reviewer"] == "alice"
    assert consent["deleted_by"] == consent["uploaded_by"]  # the same tenant and key
    assert consent["deleted_at"] >= consent["reviewed_at"]
    with pytest.raises(openai.NotFoundError):
        featuring(env, made.id)
    # A repeated delete is answered the same and records nothing more.
    assert env.sdk().delete(f"/videos/characters/{made.id}", cast_to=object) == gone
    releases = chain(env, made.id)["releases"]
    assert [r[0] for r in releases] == ["withheld", "released", "deleted"]
    assert releases[-1][1] == consent["deleted_by"] and "consent trail stays" in releases[-1][2]
    cli(env, "audit", "verify")
    env.run_jobs()
    assert env.sdk().videos.retrieve(video.id).status == "completed"


def refused_review(env: Env, ref: str, verdict: str) -> str:
    """``reelguard audit review REF --VERDICT`` that must fail; its message."""
    url = env.settings.database_url
    where = [] if url else ["--db", str(env.settings.db)]
    shown = CliRunner().invoke(
        main,
        ["audit", "review", ref, f"--{verdict}", "--reviewer", "alice", "--note", "late", *where],
        env={"REELGUARD_DATABASE_URL": url} if url else None,
    )
    assert shown.exit_code == 1, shown.output
    return shown.output


def console_sign_in(env: Env, name: str) -> httpx.Client:
    """A console session of a new reviewer of ``acme`` on the served app."""
    from gateway.console.accounts import ReviewerStore

    password = ReviewerStore(env.settings.database).create(name, "reviewer", ["acme"]).password
    web = httpx.Client(base_url=env.url, timeout=30)
    page = web.get("/review/login")
    signed = web.post(
        "/review/login",
        data={"csrf_token": csrf_of(page.text), "name": name, "password": password},
    )
    assert signed.status_code == 303, signed.text[:300]  # to the queue, signed in
    return web


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:300]
    return found.group(1)


def test_a_character_deleted_while_it_awaits_review_leaves_the_queue(
    env: Env, clips: dict[str, bytes]
) -> None:
    """Its owner deletes a character a reviewer has not decided yet: it leaves the queue (the
    CLI's and the console's), its page says it was deleted and offers no decision, and an
    approve or reject (console or CLI, by its id or its request's) is a clear refusal that
    records nothing; the consent trail stays in the chain."""
    made = create(env, clips["face"], name="Noor")
    ((request_id,),) = query(
        env.settings, "SELECT request_id FROM requests WHERE job_id = ?", (made.id,)
    )
    web = console_sign_in(env, f"rita-{made.id[-6:]}")
    assert made.id in web.get("/review").text
    page = web.get(f"/review/items/{made.id}")  # the reviewer opens it: the form is there
    assert "awaiting review" in page.text and 'name="verdict"' in page.text
    token = csrf_of(page.text)

    env.sdk().delete(f"/videos/characters/{made.id}", cast_to=object)
    assert made.id not in cli(env, "audit", "queue", "--json")
    assert made.id not in web.get("/review").text
    answer = web.post(
        f"/review/items/{made.id}/review",
        data={"csrf_token": token, "verdict": "approve", "note": "consent form on file"},
        headers={"Accept": "application/json"},
    )
    assert answer.status_code == 409, answer.text
    assert "was deleted by tenant:acme key:" in answer.text
    assert "nothing is left to review" in answer.text
    for ref in (made.id, request_id):
        page = web.get(f"/review/items/{ref}")
        assert page.status_code == 200 and 'name="verdict"' not in page.text
        assert "deleted by its owner" in page.text
        for verdict in ("approve", "reject"):
            said = refused_review(env, ref, verdict)
            assert f"character {made.id} was deleted by tenant:acme key:" in said
            assert "nothing was recorded" in said
    trail = chain(env, made.id)
    assert [r[0] for r in trail["releases"]] == ["withheld", "deleted"]
    assert trail["reviews"] == []
    got = env.sdk().videos.get_character(made.id).model_dump()
    assert got["status"] == "deleted" and got["consent"]["reviewer"] is None
    cli(env, "audit", "verify")


def test_retention_deletes_old_characters_and_the_sweep_finishes_failed_deletes(
    env: Env, clips: dict[str, bytes]
) -> None:
    """Past REELGUARD_CHARACTER_RETENTION_DAYS a character is deleted as its owner would
    delete it (the audit chain names the rule); and a deleted character whose files are still
    stored (the store failed the owner's delete) loses them at the workers' next sweep."""
    from audit.log import AuditLog
    from gateway.character_store import delete_character, sweep_characters
    from storage import Database
    from storage.objects import ObjectMissing, object_store

    audit = AuditLog(Database.from_url(env.settings.database))
    files = object_store(env.settings)
    old, fresh = create(env, clips["plain"], name="Old"), create(env, clips["plain"], name="New")
    with audit.database.transaction(write=True) as tx:
        tx.execute(
            "UPDATE video_characters SET created_at = created_at - 31 * 86400 WHERE id = ?",
            (old.id,),
        )
    assert sweep_characters(audit, files, 30) == [old.id]
    got = env.sdk().videos.get_character(old.id).model_dump()
    assert got["status"] == "deleted"
    assert got["consent"]["deleted_by"] == "retention:REELGUARD_CHARACTER_RETENTION_DAYS=30"
    assert chain(env, old.id)["releases"][-1][:2] == ("deleted", got["consent"]["deleted_by"])
    assert env.sdk().videos.get_character(fresh.id).model_dump()["status"] == "ready"
    assert sweep_characters(audit, files, 30) == []  # nothing more to do

    # The owner's delete recorded, its file deletes not done (as when the store was down):
    unfinished = delete_character(audit, fresh.id, "acme", "tenant:acme key:test")
    assert files.get_bytes(unfinished.upload_key) == clips["plain"]
    env.sdk().videos.create(prompt="a red circle moving right", seconds="1", size="64x64")  # type: ignore[arg-type]
    env.run_jobs()  # a worker sweeps after each job
    for key in (unfinished.clip_key, unfinished.upload_key):
        with pytest.raises(ObjectMissing):
            files.get_bytes(key)
    cli(env, "audit", "verify")


def test_an_idle_worker_sweeps_without_waiting_for_a_job(env: Env, clips: dict[str, bytes]) -> None:
    """A deployment with no new jobs still finishes failed deletes: an idle worker runs the
    after-job sweep at start and then every IDLE_SWEEP_INTERVAL_S, not on every idle pass."""
    from test_videos_support import runner

    from gateway.character_store import delete_character
    from gateway.worker import runner as runner_module
    from storage.objects import ObjectMissing, object_store

    files = object_store(env.settings)
    worker = runner(env.settings)
    made = create(env, clips["plain"], name="Idle")
    unfinished = delete_character(worker.c.audit_log, made.id, "acme", "tenant:acme key:test")
    assert files.get_bytes(unfinished.upload_key) == clips["plain"]
    assert worker.sweep_when_idle()  # the first idle pass sweeps
    for key in (unfinished.clip_key, unfinished.upload_key):
        with pytest.raises(ObjectMissing):
            files.get_bytes(key)
    assert not worker.sweep_when_idle()  # not again before the interval
    worker._last_sweep -= runner_module.IDLE_SWEEP_INTERVAL_S
    assert worker.sweep_when_idle()


def test_a_character_table_from_before_deletion_gets_its_columns(tmp_path: Path) -> None:
    from gateway.character_store import CharacterStore
    from storage import Database

    database = Database.from_url(tmp_path / "old.db")
    with database.transaction(write=True) as tx:  # the table as the first release made it
        tx.execute(
            "CREATE TABLE video_characters (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT "
            "NOT NULL UNIQUE, tenant TEXT NOT NULL, name TEXT NOT NULL, created_at REAL NOT "
            "NULL, status TEXT NOT NULL, uploaded_by TEXT NOT NULL, input_moderation TEXT NOT "
            "NULL, clip_key TEXT NOT NULL, upload_key TEXT NOT NULL, sha256 TEXT NOT NULL, "
            "media_type TEXT NOT NULL, reviewer TEXT, reviewed_at REAL, review_note TEXT)"
        )
        tx.execute(
            "INSERT INTO video_characters (id, tenant, name, created_at, status, uploaded_by, "
            "input_moderation, clip_key, upload_key, sha256, media_type) VALUES "
            "('char_old', 'acme', 'Old', 1.0, 'ready', 'tenant:acme key:k', '{}', 'c', 'u', "
            "'00', 'video/mp4')"
        )
    old = CharacterStore(database).get("char_old")
    assert old.status == "ready" and old.deleted_at is None and old.deleted_by is None
    CharacterStore(database)  # and again: nothing left to add


def test_the_sweep_runs_on_a_database_where_no_character_was_ever_made(tmp_path: Path) -> None:
    """A worker sweeps after each job and when idle, before any upload made the characters'
    table: the sweep makes it rather than logging a failure each time."""
    from audit.log import AuditLog
    from gateway.character_store import sweep_characters
    from storage.objects import as_object_store

    audit = AuditLog(tmp_path / "fresh.db")
    files = as_object_store(tmp_path / "videos")
    assert sweep_characters(audit, files, 30) == []
    assert sweep_characters(audit, files, 0) == []


def test_characters_follow_tenant_isolation(env: Env, clips: dict[str, bytes]) -> None:
    made = create(env, clips["plain"])
    with pytest.raises(openai.NotFoundError):
        env.sdk("globex").videos.get_character(made.id)
    with pytest.raises(openai.NotFoundError):
        featuring(env, made.id, tenant="globex")
    with pytest.raises(openai.NotFoundError):
        env.sdk().videos.get_character("char_nosuch")


def test_blocked_and_bad_character_uploads(env: Env, clips: dict[str, bytes]) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        create(env, clips["face"], tenant="strict")  # faces block for this tenant
    assert info.value.code == "input_moderation"
    assert problem_of(info.value)["error"]["param"] == "video"
    with pytest.raises(openai.BadRequestError) as info:
        create(env, clips["plain"], name=f"the {BLOCKED_TERM}")
    body = problem_of(info.value)
    assert info.value.code == "prompt_moderation" and body["error"]["param"] == "name"
    assert body["detail"].startswith("The character name was blocked")
    with pytest.raises(openai.BadRequestError) as info:
        create(env, clips["plain"], tenant="broken")  # a classifier that cannot run
    assert any(r["source"] == "error" for r in problem_of(info.value)["moderation"]["reasons"])
    with pytest.raises(openai.APIStatusError) as status:
        create(env, b"%PDF-1.7 not a video")
    assert status.value.status_code == 415
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        env.sdk().videos.create_character(
            name="", video=("c.mp4", clips["plain"], "video/mp4"), extra_body={"x": "1"}
        )
    pointers = {e["pointer"] for e in problem_of(invalid.value)["errors"]}
    assert pointers == {"#/name", "#/x"}
    made = create(env, clips["plain"])
    with pytest.raises(openai.UnprocessableEntityError):
        env.sdk().videos.create(
            prompt="a red circle",
            extra_body={"characters": [{"id": made.id}, {"id": made.id}]},
        )
