"""Characters (OpenAI's ``client.videos.create_character``): an uploaded video of someone or
something a later video may feature, kept per tenant in the shared database (table
``video_characters``) with its clip in the object store's ``quarantine/`` (never served).

A character's life::

    upload -> input stage (gateway.video_inputs) -> block: 400, nothing kept
                                                  -> allow: ready
                                                  -> review (a face): pending_review
    pending_review -> a reviewer approves (reelguard audit review ID --approve): ready
                   -> a reviewer rejects: rejected
    any            -> its owner deletes it (DELETE /v1/videos/characters/ID): deleted

Consent is on record in the audit chain: the upload's moderation record (tenant, time, the
input decision with the face evidence and the upload's sha256, ``job_id`` = the character id),
a release record naming who uploaded it (``actor``: tenant and API key id; ``withheld`` while
it awaits review, ``released`` when it is ready), and the reviewer's review with the release
that made it usable. Only a ``ready`` character can be used (:func:`usable`).

Deleting a character (:func:`delete_character`) removes its clip and upload from the store and
keeps the row, without them, as ``deleted``: the consent trail stays whole (the audit chain
gains a ``deleted`` release record naming who deleted it), and a video made with it before
still names the upload's sha256 as its C2PA ingredient. The workers' sweep after each job
(:func:`sweep_characters`) deletes characters past ``REELGUARD_CHARACTER_RETENTION_DAYS`` the
same way, and removes the files of a deleted character the store failed to delete before.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from audit.log import AuditLog
from gateway.jobs import EndedByOwner, JobError, JobNotFound
from storage import Database
from storage.database import split_statements
from storage.objects import ObjectStore

CharacterStatus = Literal["ready", "pending_review", "rejected", "deleted"]
PREFIX = "char_"
OBJECT_PREFIX = "quarantine/character-"

_SCHEMA = split_statements("""
CREATE TABLE IF NOT EXISTS video_characters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    input_moderation TEXT NOT NULL,
    clip_key TEXT NOT NULL,
    upload_key TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    media_type TEXT NOT NULL,
    reviewer TEXT,
    reviewed_at REAL,
    review_note TEXT,
    deleted_at REAL,
    deleted_by TEXT,
    files_removed_at REAL
);
CREATE INDEX IF NOT EXISTS video_characters_tenant ON video_characters (tenant, seq);
""")
_ADDED_COLUMNS = (("deleted_at", "REAL"), ("deleted_by", "TEXT"), ("files_removed_at", "REAL"))
"""Columns added after the first release (NULL for older rows): a database made before them
gets them at start-up (:meth:`CharacterStore._add_columns`)."""


class CharacterNotUsable(JobError):
    """A character that cannot be used yet (pending review) or at all (rejected)."""

    def __init__(self, character: Character) -> None:
        if character.status == "pending_review":
            why = (
                "shows a face and waits for a reviewer to approve it (consent cannot be "
                "checked automatically)"
            )
        elif character.status == "deleted":
            why = f"was deleted by {character.deleted_by}"
        else:
            why = f"was rejected on review by {character.reviewer}"
        super().__init__(f"character {character.id} {why}; it cannot be used")
        self.character = character


@dataclass(frozen=True, slots=True)
class Character:
    """One stored character (a row of ``video_characters``)."""

    id: str
    tenant: str
    name: str
    created_at: float
    status: CharacterStatus
    uploaded_by: str
    input_moderation: dict[str, Any] = field(repr=False)
    clip_key: str
    upload_key: str
    sha256: str
    media_type: str
    reviewer: str | None = None
    reviewed_at: float | None = None
    review_note: str | None = None
    deleted_at: float | None = None
    deleted_by: str | None = None
    files_removed_at: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The API's character object: OpenAI's ``id``, ``name``, ``created_at``, and
        ReelGuard's ``status``, ``moderation`` (the input decision) and ``consent``."""
        return {
            "id": self.id,
            "object": "video.character",
            "name": self.name,
            "created_at": int(self.created_at),
            "status": self.status,
            "moderation": {"input": self.input_moderation},
            "consent": {
                "uploaded_by": self.uploaded_by,
                "uploaded_at": int(self.created_at),
                "reviewer": self.reviewer,
                "reviewed_at": None if self.reviewed_at is None else int(self.reviewed_at),
                "review_note": self.review_note,
                "deleted_by": self.deleted_by,
                "deleted_at": None if self.deleted_at is None else int(self.deleted_at),
            },
        }


def _row(row: dict[str, Any]) -> Character:
    fields = {k: row[k] for k in Character.__dataclass_fields__ if k != "input_moderation"}
    return Character(**fields, input_moderation=json.loads(row["input_moderation"]))


class CharacterStore:
    """The ``video_characters`` table (one transaction per call, shared by threads)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        database.ensure_schema("video_characters", _SCHEMA)
        self._add_columns()

    def _add_columns(self) -> None:
        """Bring a table made by an older version up to date (idempotent)."""
        with self.database.transaction(write=True) as tx:
            tx.add_columns("video_characters", _ADDED_COLUMNS)

    def get(self, character_id: str, tenant: str | None = None) -> Character:
        """A character; with ``tenant``, only that tenant's (:class:`JobNotFound` otherwise,
        exactly as for a missing one)."""
        with self.database.transaction() as tx:
            row = tx.record("SELECT * FROM video_characters WHERE id = ?", (character_id,))
        if row is None or (tenant is not None and row["tenant"] != tenant):
            raise JobNotFound(f"no character {character_id!r}")
        return _row(row)

    def usable(self, character_id: str, tenant: str) -> Character:
        """The tenant's character if it is ``ready``; :class:`JobNotFound` or
        :class:`CharacterNotUsable` otherwise."""
        character = self.get(character_id, tenant)
        if character.status == "deleted":
            raise JobNotFound(f"character {character_id!r} was deleted")
        if character.status != "ready":
            raise CharacterNotUsable(character)
        return character

    def insert(self, tx: Any, character: Character) -> None:
        """Write ``character`` inside the caller's write transaction ``tx``."""
        tx.execute(
            """INSERT INTO video_characters (id, tenant, name, created_at, status, uploaded_by,
               input_moderation, clip_key, upload_key, sha256, media_type)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                character.id,
                character.tenant,
                character.name,
                character.created_at,
                character.status,
                character.uploaded_by,
                json.dumps(character.input_moderation),
                character.clip_key,
                character.upload_key,
                character.sha256,
                character.media_type,
            ),
        )


def store_clip(
    files: ObjectStore, character_id: str, frames: npt.NDArray[np.uint8], fps: float, data: bytes
) -> tuple[str, str]:
    """Keep the checked frames (lossless) and the original upload; ``(clip_key, upload_key)``."""
    out = io.BytesIO()
    np.savez_compressed(out, frames=frames, fps=np.array(fps))
    clip_key, upload_key = (f"{OBJECT_PREFIX}{character_id}{s}" for s in (".npz", ".upload"))
    files.put_bytes(clip_key, out.getvalue(), private=True)
    files.put_bytes(upload_key, data, private=True)
    return clip_key, upload_key


def first_frame(files: ObjectStore, character: Character) -> npt.NDArray[np.uint8]:
    """The frame a video featuring the character starts from (the clip's middle frame:
    past any fade-in, and the input stage sampled around it)."""
    with np.load(io.BytesIO(files.get_bytes(character.clip_key)), allow_pickle=False) as data:
        frames = data["frames"]
        return np.ascontiguousarray(frames[len(frames) // 2].astype(np.uint8))


def review_character(
    audit: AuditLog, character_id: str, reviewer: str, verdict: str, note: str, *, review_of: str
) -> Character:
    """Apply a reviewer's verdict to a character awaiting review: approve makes it ``ready``,
    reject ``rejected``; the review and (on approve) the release that makes it usable are
    recorded in the same transaction as the change. Raises :class:`JobNotFound`,
    :class:`~gateway.jobs.EndedByOwner` for one its owner deleted, or
    :class:`CharacterNotUsable` for one that is not pending (nothing recorded)."""
    store = CharacterStore(audit.database)
    now = time.time()
    with audit.transaction() as tx:
        row = tx.record("SELECT * FROM video_characters WHERE id = ?", (character_id,))
        if row is None:
            raise JobNotFound(f"no character {character_id!r}")
        if row["status"] == "deleted":  # by its owner since the review began
            raise EndedByOwner(
                f"character {character_id} was deleted by {row['deleted_by']}, so nothing is "
                "left to review (its audit trail stays)"
            )
        if row["status"] != "pending_review":
            raise CharacterNotUsable(_row(row))
        status = "ready" if verdict == "approve" else "rejected"
        tx.execute(
            """UPDATE video_characters SET status = ?, reviewer = ?, reviewed_at = ?,
               review_note = ? WHERE id = ? AND status = 'pending_review'""",
            (status, reviewer, now, note, character_id),
        )
        if verdict == "approve":
            audit.record_release(
                job_id=character_id,
                tenant=row["tenant"],
                action="released",
                path=None,
                reason=f"character approved for use after review (consent checked): {note}",
                actor=reviewer,
            )
        audit.record_review(review_of, reviewer, verdict, note)
    return store.get(character_id)


def delete_character(audit: AuditLog, character_id: str, tenant: str, actor: str) -> Character:
    """Mark the tenant's character ``deleted`` (never usable again) and record who deleted it,
    in one transaction; the caller then deletes its objects (:func:`remove_files`). Deleting
    a deleted character changes and records nothing (so a retry after a failed object delete
    is safe). Raises :class:`JobNotFound` for another tenant's or an unknown one."""
    store = CharacterStore(audit.database)
    with audit.transaction() as tx:
        row = tx.record("SELECT * FROM video_characters WHERE id = ?", (character_id,))
        if row is None or row["tenant"] != tenant:
            raise JobNotFound(f"no character {character_id!r}")
        if row["status"] != "deleted":
            tx.execute(
                """UPDATE video_characters SET status = 'deleted', deleted_at = ?,
                   deleted_by = ? WHERE id = ? AND status != 'deleted'""",
                (time.time(), actor, character_id),
            )
            audit.record_release(
                job_id=character_id,
                tenant=tenant,
                action="deleted",
                path=None,
                reason=f"character {row['name']!r} deleted by {actor}: its clip and upload are "
                "removed from the store; this consent trail stays",
                actor=actor,
            )
    return store.get(character_id)


def remove_files(database: Database, files: ObjectStore, character: Character) -> None:
    """Delete a deleted character's clip and upload (already gone is fine) and note that
    they are gone; a store that cannot delete now raises :class:`~storage.StorageError`, and
    :func:`sweep_characters` tries again later."""
    assert character.status == "deleted"
    for key in (character.clip_key, character.upload_key):
        files.delete(key)  # False when it is already gone
    with database.transaction(write=True) as tx:
        tx.execute(
            "UPDATE video_characters SET files_removed_at = ? WHERE id = ?",
            (time.time(), character.id),
        )


RETENTION_ACTOR = "retention:REELGUARD_CHARACTER_RETENTION_DAYS"
"""Who the audit chain names for a character deleted by the retention rule."""


def sweep_characters(
    audit: AuditLog, files: ObjectStore, retention_days: float, now: float | None = None
) -> list[str]:
    """The workers' sweep: delete every character created more than ``retention_days`` ago
    (0: none), as its owner's delete does, and remove the files of every deleted character
    whose files are still stored (a delete the store failed earlier). Returns the ids whose
    files it removed; a store that cannot delete now raises :class:`~storage.StorageError`
    (the next sweep tries again)."""
    cutoff = (time.time() if now is None else now) - retention_days * 86400.0
    store = CharacterStore(audit.database)  # the table, on a database no upload has reached yet
    with audit.database.transaction() as tx:
        rows = tx.all(
            "SELECT id, tenant, status FROM video_characters WHERE (status != 'deleted' AND "
            "created_at < ? AND ? > 0) OR (status = 'deleted' AND files_removed_at IS NULL) "
            "ORDER BY seq",
            (cutoff, retention_days),
        )
    actor = f"{RETENTION_ACTOR}={retention_days:g}"
    done = []
    for character_id, tenant, status in rows:
        if status == "deleted":
            character = store.get(str(character_id))
        else:
            character = delete_character(audit, str(character_id), str(tenant), actor)
        remove_files(audit.database, files, character)
        done.append(character.id)
    return done
