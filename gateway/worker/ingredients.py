"""The sources a job's video was made from, as C2PA ingredients for its manifest
(:class:`generator.provenance.Ingredient`): the released video a remix, extension or edit
started from (its released, signed MP4), or the uploaded video (its original bytes, kept in
quarantine beside the decoded frames by :mod:`gateway.source_clips`)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import Any

from gateway.jobs import JobNotFound, JobStore, VideoJob, video_key
from generator.provenance import Ingredient, Relationship
from storage.objects import ObjectMissing, ObjectStore

log = logging.getLogger("reelguard.worker")

_SUFFIX = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm"}


def source_ingredients(job: VideoJob, jobs: JobStore, files: ObjectStore) -> tuple[Ingredient, ...]:
    """What ``job`` lists as ingredients: nothing for a text-only video or an uploaded
    reference image (its sha256 is in the audit record), one source otherwise. An extension's
    source is its ``parentOf`` (the video opens with its frames); every other source is
    ``inputTo`` (it only fed the model)."""
    clip = job.source_clip
    if clip is not None:
        relationship: Relationship = "parentOf" if clip.get("mode") == "extend" else "inputTo"
        if clip.get("video_id"):
            return (_released(str(clip["video_id"]), relationship, jobs, files),)
        return (_upload(clip, relationship, files),)
    if job.remixed_from:
        return (_released(job.remixed_from, "inputTo", jobs, files),)
    if job.character_id:
        return (_character(job.character_id, jobs, files),)
    return ()


def _character(character_id: str, jobs: JobStore, files: ObjectStore) -> Ingredient:
    """A featured character's uploaded video (its bytes as uploaded and approved)."""
    from gateway.character_store import CharacterStore

    character = CharacterStore(jobs.database).get(character_id)
    ingredient = _upload(
        {
            "sha256": character.sha256,
            "media_type": character.media_type,
            "upload_key": character.upload_key,
        },
        "inputTo",
        files,
    )
    suffix = _SUFFIX.get(character.media_type, "")
    return replace(ingredient, title=f"{character_id}{suffix}")


def _released(
    video_id: str, relationship: Relationship, jobs: JobStore, files: ObjectStore
) -> Ingredient:
    data = None
    try:
        source = jobs.get(video_id)
        data = files.get_bytes(video_key("released", source.file_name))
    except (JobNotFound, ObjectMissing):
        # Its owner deleted it after this job was admitted: listed by id, without its bytes.
        log.warning("source %s is no longer stored; listed by id alone", video_id)
    return Ingredient(
        relationship=relationship,
        title=f"{video_id}.mp4",
        media_type="video/mp4",
        video_id=video_id,
        sha256=None if data is None else hashlib.sha256(data).hexdigest(),
        data=data,
    )


def _upload(clip: dict[str, Any], relationship: Relationship, files: ObjectStore) -> Ingredient:
    media_type = str(clip.get("media_type") or "video/mp4")
    sha256 = str(clip.get("sha256") or "")
    data = None
    if clip.get("upload_key"):
        try:
            data = files.get_bytes(str(clip["upload_key"]))
        except ObjectMissing:
            log.warning("the uploaded source %s is no longer stored", clip["upload_key"])
    return Ingredient(
        relationship=relationship,
        title=f"upload-{sha256[:12]}{_SUFFIX.get(media_type, '')}",
        media_type=media_type,
        sha256=sha256 or None,
        data=data,
    )
