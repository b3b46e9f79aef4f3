"""Wake an idle worker when the job database is written, instead of polling it on a timer.

A worker with nothing to do used to peek at the queue every 20 ms: a new job waited ~10 ms on
average (2 % of a 2-second clip's generation time) and every peek woke the process (~0.1 ms of
CPU on this VM, mostly the wake-up itself). :class:`DatabaseDoorbell` watches the SQLite file's
folder with Linux inotify: every commit by any process on the machine writes the ``-wal`` file,
which wakes the waiter at once, and the waiter then peeks. With nothing written it sleeps.

inotify is reached through ``ctypes`` (the standard library has no binding). Where it is missing
(not Linux, a filesystem without events, a seccomp filter, the per-user instance limit),
:attr:`DatabaseDoorbell.available` is False and callers keep polling; callers also peek on a
slow tick either way, so a filesystem that does not report writes costs latency, never a job.

On PostgreSQL the database is on another machine, so there is no file to watch: workers
``LISTEN`` on :data:`gateway.jobs.JOBS_CHANNEL`, which the job store ``NOTIFY``-rings in the
transaction that queues a job (:class:`storage.postgres.Listener`). :func:`open_doorbell` picks.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import select
import struct
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Protocol

from config.settings import Settings

_IN_MODIFY = 0x00000002
_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_IN_CREATE = 0x00000100
_IN_Q_OVERFLOW = 0x00004000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then ``len`` bytes of name
_WATCH = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE


class Doorbell(Protocol):
    """What an idle worker waits on (:class:`DatabaseDoorbell`, or
    :class:`storage.postgres.Listener` on PostgreSQL)."""

    unavailable_reason: str | None

    @property
    def available(self) -> bool:
        """True when new work wakes :meth:`wait`."""
        ...

    def wait(self, timeout_s: float) -> bool:
        """Block until rung since the previous call (True) or ``timeout_s`` passed (False)."""
        ...

    def close(self) -> None:
        """Release the handle."""
        ...

    def __enter__(self) -> Doorbell: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def open_doorbell(settings: Settings) -> Doorbell:
    """The doorbell for the settings' database: ``LISTEN`` on PostgreSQL, inotify on the SQLite
    file."""
    if settings.database_url:
        from gateway.jobs import JOBS_CHANNEL
        from storage.postgres import Listener

        return Listener(settings.database_url, JOBS_CHANNEL)
    return DatabaseDoorbell(settings.db)


class DatabaseDoorbell:
    """Rings when any process on this machine writes the SQLite database ``db`` (the file
    itself, its ``-wal`` or its ``-journal``).

    :meth:`wait` blocks until the database was written since the previous call, or until its
    timeout. Use as a context manager (or call :meth:`close`) to release the inotify handle.
    """

    def __init__(self, db: Path) -> None:
        path = Path(db).resolve()
        self._names = {path.name, f"{path.name}-wal", f"{path.name}-journal"}
        self._fd = -1
        self.unavailable_reason: str | None = None
        if not sys.platform.startswith("linux"):
            self.unavailable_reason = f"inotify is Linux-only (this is {sys.platform})"
            return
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            libc.inotify_init1.argtypes = [ctypes.c_int]
            libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1 failed")
            folder = os.fsencode(path.parent)
            if libc.inotify_add_watch(fd, folder, _WATCH) < 0:
                err = ctypes.get_errno()
                os.close(fd)
                raise OSError(err, f"inotify_add_watch({path.parent}) failed")
        except (OSError, AttributeError) as exc:  # no libc symbol, limits, seccomp, no folder
            self.unavailable_reason = f"{type(exc).__name__}: {exc}"
            return
        self._fd = fd

    @property
    def available(self) -> bool:
        """True when writes to the database wake :meth:`wait`."""
        return self._fd >= 0

    def wait(self, timeout_s: float) -> bool:
        """Block until the database was written (True) or ``timeout_s`` passed (False).

        Writes since the previous call count, so a commit made while the caller was busy rings
        at once. Without inotify this sleeps ``timeout_s`` and returns False.
        """
        if self._fd < 0:
            time.sleep(max(0.0, timeout_s))
            return False
        if self._drain():
            return True
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            readable, _, _ = select.select([self._fd], [], [], remaining)
            if readable and self._drain():
                return True

    def _drain(self) -> bool:
        """Read every pending event; True if one concerns the database's files."""
        rang = False
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return rang
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not data:
                return rang
            offset = 0
            while offset + _EVENT.size <= len(data):
                _, mask, _, size = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + size].rstrip(b"\0")
                offset += _EVENT.size + size
                if mask & _IN_Q_OVERFLOW or os.fsdecode(name) in self._names:
                    rang = True

    def close(self) -> None:
        """Release the inotify handle (idempotent)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> DatabaseDoorbell:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
