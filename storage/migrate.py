"""Copy a local data folder into an S3 bucket, key for key: ``reelguard storage migrate``.

Every file under the folder (``quarantine/``, ``released/``, ``evidence/``, source clips,
thumbnails) becomes the object of the same key, so the audit log's evidence keys and their
SHA-256 digests hold unchanged in the bucket. Each copy is verified by reading it back and
comparing its SHA-256 with the file's. A run is idempotent and resumable: an object already in
the bucket with the file's size and SHA-256 is skipped, so an interrupted migration is simply
run again. The folder is never changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from storage.errors import ObjectMissing
from storage.objects import LocalFolderStore, S3Store, check_key


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What a migration did (or, with ``dry_run``, would do)."""

    source: str
    target: str
    dry_run: bool
    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    failed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = field(default=())
    """Files that are not objects (temporary files, names that are not keys), with why."""

    @property
    def ok(self) -> bool:
        """Whether every object is in the bucket, verified (nothing failed)."""
        return not self.failed

    def as_json(self) -> dict[str, object]:
        """The report as JSON (the CLI's ``--json``)."""
        return {
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "copied": self.copied,
            "copied_bytes": self.copied_bytes,
            "skipped": self.skipped,
            "failed": list(self.failed),
            "ignored": list(self.ignored),
            "ok": self.ok,
        }


def folder_keys(root: Path) -> tuple[list[str], list[str]]:
    """The object keys under ``root`` (sorted), and the files that are not objects with why:
    half-written temporary files (``.tmp-*``) and names that are not valid keys."""
    keys: list[str] = []
    ignored: list[str] = []
    for path in _files(Path(root)):
        relative = path.relative_to(root).as_posix()
        if path.name.startswith(".tmp-"):
            ignored.append(f"{relative}: a temporary file of an unfinished write")
            continue
        try:
            keys.append(check_key(relative))
        except ValueError as exc:
            ignored.append(f"{relative}: {exc}")
    return sorted(keys), ignored


def _files(root: Path) -> Iterator[Path]:
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                yield path


def migrate(
    source: LocalFolderStore,
    target: S3Store,
    *,
    dry_run: bool = False,
    progress: Callable[[str, str], object] = lambda key, what: None,
) -> MigrationReport:
    """Copy every object of ``source`` into ``target`` under the same key, verified by SHA-256
    (see the module docstring). ``progress(key, what)`` is told ``copied``, ``skipped``,
    ``would copy`` or ``failed: <why>`` per key. Raises
    :class:`~storage.errors.ObjectStoreUnavailable` when the bucket cannot be used at all."""
    keys, ignored = folder_keys(Path(source.root))
    copied = copied_bytes = skipped = 0
    failed: list[str] = []
    for key in keys:
        try:
            size, digest = source.size(key), source.sha256(key)
        except ObjectMissing:  # moved or deleted by a process still writing the folder
            why = f"{key}: gone from the folder before it was copied; run the migration again"
            failed.append(why)
            progress(key, f"failed: {why}")
            continue
        if _already_there(target, key, size, digest):
            skipped += 1
            progress(key, "skipped")
            continue
        if dry_run:
            copied += 1
            copied_bytes += size
            progress(key, "would copy")
            continue
        target.put_file(key, source.path(key))
        back = target.sha256(key)
        if back != digest:
            why = f"{key}: the bucket's copy reads back as SHA-256 {back}, not {digest}"
            failed.append(why)
            progress(key, f"failed: {why}")
            continue
        copied += 1
        copied_bytes += size
        progress(key, "copied")
    return MigrationReport(
        source.label,
        target.label,
        dry_run,
        copied,
        copied_bytes,
        skipped,
        tuple(failed),
        tuple(ignored),
    )


def _already_there(target: S3Store, key: str, size: int, digest: str) -> bool:
    """Whether ``target`` holds ``key`` with this size and SHA-256: the digest recorded at
    upload when there is one, else the bytes read back."""
    try:
        if target.size(key) != size:
            return False
        recorded = target.recorded_sha256(key)
    except ObjectMissing:
        return False
    return (recorded or target.sha256(key)) == digest
