"""The review console over the real app in-process (TestClient, real SQLite): sign-in, cookies,
CSRF, lockout, sessions, tenant scope, the queue's filters and pages, review through the CLI's
code path, and the pieces the pages are built from (spans, timeline, charts)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient
from test_audit_support import moderation

from audit.log import AuditLog
from audit.records import QueueItem
from config.settings import Settings, database_fields
from gateway.app import create_app
from gateway.cli import main
from gateway.console.accounts import (
    InvalidAccount,
    ReviewerStore,
    SignInFailed,
    hash_password,
    verify_password,
)
from gateway.console.charts import Series, stacked_bars
from gateway.console.views import (
    QueueFilter,
    Span,
    evidence_spans,
    highlight,
    queue_page,
)
from policies.decision import Action


@pytest.fixture
def console_settings(settings: Settings, db_target: Path | str) -> Settings:
    """The app's settings on both databases (a SQLite file, a PostgreSQL URL)."""
    update: dict[str, Any] = {"review_lockout_failures": 3, "review_lockout_s": 60.0}
    return settings.model_copy(update={**update, **database_fields(db_target)})


@pytest.fixture
def reviewers(console_settings: Settings) -> ReviewerStore:
    return ReviewerStore(
        console_settings.database,
        lockout_failures=console_settings.review_lockout_failures,
        lockout_s=console_settings.review_lockout_s,
    )


@pytest.fixture
def console_app(console_settings: Settings, text_classifiers: Any) -> Litestar:
    return create_app(console_settings, classifiers=text_classifiers)


@pytest.fixture
def web(console_app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(console_app, raise_server_exceptions=False) as client:
        yield client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def sign_in(web: TestClient[Litestar], name: str, password: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    page = web.get("/review/login")
    answer = web.post(
        "/review/login",
        data={"csrf_token": _csrf(page.text), "name": name, "password": password},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return _csrf(web.get("/review/account").text)


def withheld(db: Path | str, job_id: str, tenant: str) -> None:
    """A withheld video's records (prompt allowed, frames flagged, release withheld)."""
    log = AuditLog(db)
    log.record_moderation(
        moderation(f"vidr-{job_id}", tenant=tenant, endpoint="videos", job_id=job_id)
    )
    log.record_release(job_id, tenant, "withheld", None, "frames flagged", "worker:test")
    log.close()


# -- accounts --------------------------------------------------------------------------------


def test_passwords_are_scrypt_hashes_checked_in_constant_time() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$15$8$1$") and "correct" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse batterz", stored)
    assert not verify_password("x", "md5$abc")  # a malformed hash never matches


def test_lockout_after_repeated_failures_even_for_the_right_password(
    reviewers: ReviewerStore,
) -> None:
    password = reviewers.create("alice", "reviewer", ["acme"]).password
    now = time.time()
    for _ in range(3):
        with pytest.raises(SignInFailed):
            reviewers.sign_in("alice", "wrong password!", now=now)
    with pytest.raises(SignInFailed, match="locked"):
        reviewers.sign_in("alice", password, now=now + 1)
    token, session = reviewers.sign_in("alice", password, now=now + 61)  # the lock lapsed
    assert session.reviewer.name == "alice" and reviewers.session(token, now=now + 62)


def test_sessions_end_when_idle_or_the_account_is_disabled(reviewers: ReviewerStore) -> None:
    password = reviewers.create("bob", "admin").password
    token, _ = reviewers.sign_in("bob", password)
    assert reviewers.session(token) is not None
    assert reviewers.session(token, now=time.time() + reviewers.idle_s + 5) is None
    token, _ = reviewers.sign_in("bob", password)
    reviewers.disable("bob")
    assert reviewers.session(token) is None
    with pytest.raises(SignInFailed):
        reviewers.sign_in("bob", password)


def test_account_rules(reviewers: ReviewerStore) -> None:
    with pytest.raises(InvalidAccount, match="--tenant"):
        reviewers.create("carol", "reviewer", [])
    with pytest.raises(InvalidAccount, match="every tenant"):
        reviewers.create("carol", "admin", ["acme"])
    with pytest.raises(InvalidAccount, match="invalid tenant"):
        reviewers.create("carol", "reviewer", ["../etc"])
    reviewers.create("carol", "reviewer", ["acme"])
    reviewers.disable("carol")
    with pytest.raises(InvalidAccount, match="never reused"):
        reviewers.create("carol", "reviewer", ["acme"])


def test_reviewers_cli(settings: Settings) -> None:
    cli = CliRunner()
    db = ["--db", str(settings.db)]
    made = cli.invoke(main, ["reviewers", "create", "--name", "dana", "--tenant", "acme", *db])
    assert made.exit_code == 0, made.output
    password = made.stdout.strip().splitlines()[0]
    assert len(password) >= 16
    listed = cli.invoke(main, ["reviewers", "list", "--json", *db])
    assert '"name": "dana"' in listed.output and password not in listed.output
    bad = cli.invoke(main, ["reviewers", "create", "--name", "erin", *db])
    assert bad.exit_code == 1 and "--tenant" in bad.output and "Traceback" not in bad.output
    assert cli.invoke(main, ["reviewers", "disable", "dana", *db]).exit_code == 0
    missing = cli.invoke(main, ["reviewers", "disable", "nobody", *db])
    assert missing.exit_code == 1 and "reviewers list" in missing.output
    reset = cli.invoke(main, ["reviewers", "reset-password", "dana", *db])
    assert reset.exit_code == 0 and reset.stdout.strip() != password


# -- the web side ----------------------------------------------------------------------------


def test_sign_in_sets_a_hardened_cookie_and_needs_the_form_token(
    web: TestClient[Litestar], reviewers: ReviewerStore
) -> None:
    password = reviewers.create("alice", "reviewer", ["acme"]).password
    assert (
        web.get("/review", follow_redirects=False)
        .headers["location"]
        .startswith("/review/login?next=")
    )
    page = web.get("/review/login")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    no_token = web.post(
        "/review/login", data={"name": "alice", "password": password}, follow_redirects=False
    )
    assert no_token.status_code == 403 and "security token" in no_token.text
    answer = web.post(
        "/review/login",
        data={"csrf_token": _csrf(page.text), "name": "alice", "password": password},
        follow_redirects=False,
    )
    cookie = answer.headers["set-cookie"]
    assert answer.status_code == 303 and "rg_review=" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/review" in cookie
    assert "Secure" not in cookie  # plain http (the test client); https gets Secure


def test_cookie_is_secure_behind_tls(console_app: Litestar, reviewers: ReviewerStore) -> None:
    password = reviewers.create("alice", "reviewer", ["acme"]).password
    with TestClient(console_app, base_url="https://review.example") as client:
        page = client.get("/review/login")
        answer = client.post(
            "/review/login",
            data={"csrf_token": _csrf(page.text), "name": "alice", "password": password},
            follow_redirects=False,
        )
    assert "Secure" in answer.headers["set-cookie"]


def test_wrong_password_and_lockout_over_http(
    web: TestClient[Litestar], reviewers: ReviewerStore
) -> None:
    password = reviewers.create("alice", "reviewer", ["acme"]).password
    for _ in range(3):
        page = web.get("/review/login")
        bad = web.post(
            "/review/login",
            data={"csrf_token": _csrf(page.text), "name": "alice", "password": "nope nope"},
        )
        assert bad.status_code == 401 and "Sign-in failed" in bad.text
    page = web.get("/review/login")
    locked = web.post(
        "/review/login",
        data={"csrf_token": _csrf(page.text), "name": "alice", "password": password},
    )
    assert locked.status_code == 401  # the same message: the lock says nothing more


def test_tenant_scope_review_and_logout(
    web: TestClient[Litestar], reviewers: ReviewerStore, console_settings: Settings
) -> None:
    withheld(console_settings.database, "video_a", "acme")
    withheld(console_settings.database, "video_b", "globex")
    password = reviewers.create("alice", "reviewer", ["acme"]).password
    csrf = sign_in(web, "alice", password)
    queue = web.get("/review").text
    assert "video_a" in queue and "video_b" not in queue
    assert web.get("/review/items/video_b").status_code == 404
    assert web.get("/review/items/video_b/history").status_code == 404
    assert web.get("/review?tenant=globex").status_code == 400  # not one of alice's tenants
    form = {"csrf_token": csrf, "verdict": "reject", "note": "nudity in frame 3"}
    assert web.post("/review/items/video_b/review", data=form).status_code == 404
    no_note = web.post("/review/items/video_a/review", data={**form, "note": "  "})
    assert no_note.status_code == 422 and "Write a note" in no_note.text
    done = web.post("/review/items/video_a/review", data=form, follow_redirects=False)
    assert done.status_code == 303
    # The same records the CLI writes: the review names the account, the video stays withheld.
    story = AuditLog(console_settings.database).story("video_a")
    assert [(r["reviewer"], r["verdict"], r["note"]) for r in story.reviews] == [
        ("alice", "reject", "nudity in frame 3")
    ]
    assert "video_a" not in web.get("/review").text  # settled: off the queue
    again = web.post("/review/items/video_a/review", data=form)
    assert again.status_code == 409
    out = web.post("/review/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert web.get("/review", follow_redirects=False).status_code == 303


def test_cross_site_post_is_refused(
    web: TestClient[Litestar], reviewers: ReviewerStore, console_settings: Settings
) -> None:
    withheld(console_settings.database, "video_a", "acme")
    csrf = sign_in(web, "root", reviewers.create("root", "admin").password)
    answer = web.post(
        "/review/items/video_a/review",
        data={"csrf_token": csrf, "verdict": "approve", "note": "ok"},
        headers={"Origin": "https://evil.example"},
    )
    assert answer.status_code == 403
    assert AuditLog(console_settings.database).story("video_a").reviews == []


def test_pages_render_for_an_admin(
    web: TestClient[Litestar], reviewers: ReviewerStore, console_settings: Settings
) -> None:
    log = AuditLog(console_settings.database)
    log.record_moderation(
        moderation("modr-1", tenant="acme", action=Action.REVIEW, prompt="a <b>knife</b> fight")
    )
    log.close()
    sign_in(web, "root", reviewers.create("root", "admin").password)
    item = web.get("/review/items/modr-1")
    assert item.status_code == 200
    assert '<mark title="violence (lexicon)">&lt;b&gt;kni</mark>' in item.text  # escaped, marked
    for path in (
        "/review/items/modr-1/history",
        "/review/dashboard?days=30",
        "/review/policies",
        "/review/policies/default",
        "/review/account",
    ):
        page = web.get(path)
        assert page.status_code == 200, (path, page.text[:300])
    assert web.get("/review/dashboard?days=3").status_code == 400
    assert web.get("/review?page=x").status_code == 400


def test_blur_setting_and_password_change(
    web: TestClient[Litestar], reviewers: ReviewerStore
) -> None:
    password = reviewers.create("alice", "reviewer", ["acme"]).password
    csrf = sign_in(web, "alice", password)
    assert reviewers.get("alice").blur_flagged
    web.post("/review/account/preferences", data={"csrf_token": csrf})  # box unticked
    assert not reviewers.get("alice").blur_flagged
    short = web.post(
        "/review/account/password",
        data={
            "csrf_token": csrf,
            "current_password": password,
            "new_password": "short",
            "confirm_password": "short",
        },
    )
    assert short.status_code == 422
    new = "a much longer passphrase"
    changed = web.post(
        "/review/account/password",
        data={
            "csrf_token": csrf,
            "current_password": password,
            "new_password": new,
            "confirm_password": new,
        },
        follow_redirects=False,
    )
    assert changed.status_code == 303
    reviewers.sign_in("alice", new)


# -- the pieces ------------------------------------------------------------------------------


def test_highlight_merges_overlaps_and_escapes() -> None:
    text = "a <red> knife fight"
    spans = [Span(2, 7, "violence (lexicon)"), Span(4, 13, "violence (learned)")]
    html = str(highlight(text, spans))
    assert html == (
        'a <mark title="violence (lexicon); violence (learned)">&lt;red&gt; knife</mark> fight'
    )
    reasons = [
        {
            "action": "block",
            "category": "violence",
            "classifier": "lexicon",
            "evidence": [{"start": 8, "end": 13}, {"start": 50, "end": 60}],
        },
        {"action": "allow", "category": "violence", "evidence": [{"start": 0, "end": 1}]},
    ]
    assert evidence_spans(reasons, text) == [Span(8, 13, "violence (lexicon)")]


def _item(ref: str, tenant: str, since: float, cats: tuple[str, ...]) -> QueueItem:
    return QueueItem(ref, "withheld_video", tenant, since, None, ref, cats)


def test_queue_filters_count_each_option_against_the_others() -> None:
    now = 1_000_000.0
    items = [
        _item("v1", "acme", now - 30, ("sexual",)),
        _item("v2", "acme", now - 7200, ("violence",)),
        _item("v3", "globex", now - 90000, ("sexual",)),
    ]
    stages = {"v1": frozenset({"frame"}), "v2": frozenset({"prompt"}), "v3": frozenset({"frame"})}
    page = queue_page(
        items,
        stages,
        QueueFilter(category="sexual"),
        tenants=["acme", "globex"],
        categories=["sexual", "violence"],
        page_size=5,
        now=now,
    )
    assert [r.item.ref for r in page.rows] == ["v1", "v3"] and page.matched == 2
    counts = {f.value: f.count for f in page.facets["tenant"]}
    assert counts == {"acme": 1, "globex": 1}  # within category=sexual
    cats = {f.value: f.count for f in page.facets["category"]}
    assert cats == {"sexual": 2, "violence": 1}  # the category filter itself is left out
    aged = queue_page(
        items, stages, QueueFilter(age="1h"), tenants=[], categories=[], page_size=1, now=now
    )
    assert aged.matched == 2 and aged.pages == 2 and [r.item.ref for r in aged.rows] == ["v2"]
    second = queue_page(
        items,
        stages,
        QueueFilter(age="1h", page=2),
        tenants=[],
        categories=[],
        page_size=1,
        now=now,
    )
    assert [r.item.ref for r in second.rows] == ["v3"]
    assert QueueFilter(tenant="acme", page=3).query(page=2) == "?tenant=acme&page=2"


def test_chart_is_an_accessible_svg() -> None:
    svg = str(
        stacked_bars(
            "c1",
            "Decisions <per day>",
            "desc",
            ["01", "02"],
            [Series("allow", "#2e6b34", (3.0, 0.0)), Series("block", "#a3262a", (1.0, 2.0))],
        )
    )
    assert svg.startswith('<svg class="chart" id="c1" role="img" aria-labelledby="c1-t c1-d"')
    assert '<title id="c1-t">Decisions &lt;per day&gt;</title>' in svg
    assert svg.count("<rect") == 3  # zero-height segments are left out


def test_console_colours_meet_contrast() -> None:
    """Text colours of the stylesheet reach WCAG AA (4.5:1) on their backgrounds."""

    def luminance(hex_colour: str) -> float:
        rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    def ratio(a: str, b: str) -> float:
        hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
        return (hi + 0.05) / (lo + 0.05)

    css = (
        Path(__file__).resolve().parent.parent / "gateway" / "console" / "static" / "console.css"
    ).read_text()
    var = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", css))
    for fg, bg in (
        ("text", "bg"),
        ("muted", "bg"),
        ("muted", "panel"),
        ("accent", "bg"),
        ("accent-text", "accent"),
        ("block", "bg"),
        ("review", "bg"),
        ("allow", "bg"),
    ):
        assert ratio(var[fg], var[bg]) >= 4.5, (fg, bg)


def test_frames_and_video_of_a_worker_withheld_job(
    tmp_path: Path, text_classifiers: Any, store_target: dict[str, object]
) -> None:
    """Thumbnails are cut from the quarantined MP4; when it is gone, a flagged frame falls back
    to its evidence thumbnail and the video answers 404 (on the local folder and on S3)."""
    from test_videos_support import PatternBackend, enqueue_job, make_settings, new_job, run_all
    from test_videos_support import runner as worker

    from gateway.jobs import video_key
    from storage.objects import object_store

    settings = make_settings(tmp_path, **store_target)
    files = object_store(settings)
    flagging = (
        "extends: default\ncategories:\n  sexual:\n    frame: {review_at: 0.0, block_at: 0.99}\n"
    )
    (settings.tenant_policy_dir / "acme.yaml").write_text(flagging)  # type: ignore[operator]
    job = enqueue_job(settings.db, new_job("acme"))
    assert run_all(worker(settings, backend=PatternBackend())) == 1
    password = ReviewerStore(settings.db).create("alice", "reviewer", ["acme"]).password
    with TestClient(create_app(settings, classifiers=text_classifiers)) as web:
        sign_in(web, "alice", password)
        item = web.get(f"/review/items/{job.id}").text
        frames = [int(i) for i in re.findall(r'data-frame="(\d+)"', item)]
        assert frames and 'class="thumb blurred"' in item
        thumb = web.get(f"/review/items/{job.id}/frames/{frames[0]}")
        assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"
        assert thumb.headers["cache-control"] == "private, no-store"
        assert web.get(f"/review/items/{job.id}/frames/9999").status_code == 404  # not sampled
        video = web.get(f"/review/items/{job.id}/video")
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert video.headers["cache-control"] == "private, no-store"
        assert video.content == files.get_bytes(video_key("quarantine", f"{job.id}.mp4"))
        assert files.delete(video_key("quarantine", f"{job.id}.mp4"))
        evidence = AuditLog(settings.db).story(job.id).evidence
        flagged = evidence[0]["frame_index"]
        fallback = web.get(f"/review/items/{job.id}/frames/{flagged}")
        assert fallback.status_code == 200 and fallback.content[:3] == b"\xff\xd8\xff"
        assert web.get(f"/review/items/{job.id}/video").status_code == 404


def _withheld_job_and_reviewer(settings: Settings) -> tuple[Any, str]:
    """A job of tenant acme whose frame audit failed (so it is withheld, fail closed), and the
    password of reviewer alice, who may review acme."""
    from test_videos_support import (
        ExplodingClassifier,
        PatternBackend,
        enqueue_job,
        new_job,
        run_all,
    )
    from test_videos_support import runner as worker

    prompt = {"action": "allow", "reasons": [], "policy_version": "test"}
    job = enqueue_job(settings.db, new_job("acme", prompt_moderation=prompt))

    def failing(policy: object) -> list[ExplodingClassifier]:
        return [ExplodingClassifier()]  # fails, so the frame audit withholds (fail closed)

    run_all(worker(settings, backend=PatternBackend(), frame_classifiers=failing))
    password = ReviewerStore(settings.db).create("alice", "reviewer", ["acme"]).password
    return job, password


def test_console_approval_commits_release_and_review_together_on_the_shared_database(
    tmp_path: Path, text_classifiers: Any, store_target: dict[str, object]
) -> None:
    """The console approves through gateway.review.apply_review, the CLI's code, on the app's
    one Database: the release, the job row and the review named after the account are one
    write transaction of that Database (traced)."""
    from test_review import _transactions, _writes_to
    from test_videos_support import make_settings

    from gateway.jobs import video_key
    from storage.objects import object_store

    settings = make_settings(tmp_path, **store_target)
    files = object_store(settings)
    job, password = _withheld_job_and_reviewer(settings)
    app = create_app(settings, classifiers=text_classifiers)
    with TestClient(app) as web:
        csrf = sign_in(web, "alice", password)
        statements: list[str] = []
        app.state.database.trace(statements.append)
        form = {"csrf_token": csrf, "verdict": "approve", "note": "a bicycle, not a weapon"}
        done = web.post(f"/review/items/{job.id}/review", data=form, follow_redirects=False)
        app.state.database.trace(None)
    assert done.status_code == 303, done.text
    together = [
        t
        for t in _transactions(statements)
        if _writes_to(t, "releases") or _writes_to(t, "reviews")
    ]
    assert len(together) == 1 and _writes_to(together[0], "video_jobs")
    story = AuditLog(settings.db).story(job.id)
    assert [r["action"] for r in story.releases] == ["withheld", "released"]
    assert [(r["reviewer"], r["verdict"]) for r in story.reviews] == [("alice", "approve")]
    assert files.exists(video_key("released", f"{job.id}.mp4"))  # moved out of quarantine
    assert not files.exists(video_key("quarantine", f"{job.id}.mp4"))


def test_a_withheld_video_its_owner_deleted_has_nothing_left_to_review(
    tmp_path: Path, text_classifiers: Any
) -> None:
    """The owner deletes a video the frame audit withheld (DELETE /v1/videos/ID's code): it
    leaves the queue, its page offers no decision, and the console, the CLI and the release
    path itself (a review that began before the delete) refuse it, recording nothing."""
    from test_videos_support import make_settings

    from gateway.cancel import cancel
    from gateway.jobs import EndedByOwner
    from gateway.review import release_withheld

    settings = make_settings(tmp_path)
    job, password = _withheld_job_and_reviewer(settings)
    audit = AuditLog(settings.db)
    with TestClient(create_app(settings, classifiers=text_classifiers)) as web:
        csrf = sign_in(web, "alice", password)
        assert job.id in web.get("/review").text
        cancel(audit, job.id, "acme", "tenant:acme key:k1")
        assert job.id not in web.get("/review").text
        page = web.get(f"/review/items/{job.id}")
        assert 'name="verdict"' not in page.text and "deleted by its owner" in page.text
        form = {"csrf_token": csrf, "verdict": "approve", "note": "a bicycle, not a weapon"}
        refused = web.post(f"/review/items/{job.id}/review", data=form)
        assert refused.status_code == 409
        assert f"video {job.id} was deleted by tenant:acme key:k1" in refused.text
    with pytest.raises(EndedByOwner):
        release_withheld(audit, settings.data_dir, job.id, "alice", "began before the delete")
    db = ["--db", str(settings.db)]
    shown = CliRunner().invoke(
        main,
        ["audit", "review", job.id, "--reject", "--reviewer", "bob", "--note", "late", *db],
    )
    assert shown.exit_code == 1 and "nothing was recorded" in shown.output, shown.output
    story = audit.story(job.id)
    assert story.reviews == [] and [r["action"] for r in story.releases] == [
        "withheld",
        "deleted",
    ]


def test_reviewer_accounts_live_in_the_shared_database(tmp_path: Path) -> None:
    """ReviewerStore runs its SQL through the storage layer's Database it is given (the one the
    audit log and job queue share), with the schema created by Database.create_schema."""
    from storage import Database

    database = Database.from_url(tmp_path / "reelguard.db")
    statements: list[str] = []
    database.trace(statements.append)
    store = ReviewerStore(database)
    password = store.create("alice", "reviewer", ["acme"]).password
    token, _ = store.sign_in("alice", password)
    database.trace(None)
    assert store.database is database
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS reviewers") for s in statements)
    assert any(s.startswith("INSERT INTO reviewer_sessions") for s in statements)
    assert ReviewerStore(tmp_path / "reelguard.db").session(token) is not None


def test_a_reference_image_review_is_a_stage_of_its_own_in_the_queue() -> None:
    """Issue 15: a video withheld because its uploaded image showed a face is listed, and can
    be filtered, under the ``input`` stage."""
    now = 1_000_000.0
    items = [
        QueueItem("r1", "prompt_review", "acme", now - 30, None, "r1", ("celebrity",)),
        _item("v2", "acme", now - 60, ("sexual",)),
    ]
    stages = {"r1": frozenset({"input"}), "v2": frozenset({"frame"})}
    page = queue_page(
        items,
        stages,
        QueueFilter(stage="input"),
        tenants=["acme"],
        categories=["celebrity", "sexual"],
        page_size=5,
        now=now,
    )
    assert [r.item.ref for r in page.rows] == ["r1"] and page.rows[0].stages == ("input",)
    assert {f.value: f.count for f in page.facets["stage"]} == {"prompt": 0, "input": 1, "frame": 1}
