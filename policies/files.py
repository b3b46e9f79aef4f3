"""Reading policy files safely: regular files only, a size cap, and never a blocking open.

A tenant folder is written by people and tools the server does not control. A FIFO named
``x.yaml`` would block an ordinary ``open()`` until someone writes to it (and with it the
policy watcher, so later edits would never be applied); a symlink to ``/dev/zero`` would be
read until memory runs out. :func:`read_policy_bytes` looks at what a path is *before* opening
it, opens it non-blocking, checks again on the open file, and reads at most the cap.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class UnsafeFileError(OSError):
    """A path that is not a regular file, or is over the size cap; ``str()`` ends with the fix."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check(mode: int, size: int, max_bytes: int) -> None:
    if not stat.S_ISREG(mode):
        raise UnsafeFileError(
            f"is {_kind(mode)}, not a regular file; a policy must be a plain file: replace it "
            "with one (a symlink is fine if it points to a plain file)"
        )
    if size > max_bytes:
        raise UnsafeFileError(
            f"is {size} bytes, over the limit of {max_bytes} (REELGUARD_POLICY_MAX_BYTES); "
            "make it smaller"
        )


def read_policy_bytes(path: Path, max_bytes: int) -> bytes:
    """The content of ``path`` (a regular file, following symlinks) of at most ``max_bytes``.

    Raises :class:`FileNotFoundError` when it does not exist, :class:`UnsafeFileError` for a
    FIFO, device, socket or folder, or a file over ``max_bytes``, and :class:`OSError` for
    other failures. Never blocks on a FIFO and never reads more than ``max_bytes + 1`` bytes.
    """
    st = os.stat(path)  # what the path is, before opening it (opening a device can act)
    _check(st.st_mode, st.st_size, max_bytes)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)  # the path may have been swapped since the stat above
        _check(st.st_mode, st.st_size, max_bytes)
        chunks: list[bytes] = []
        remaining = max_bytes + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    _check(stat.S_IFREG, len(data), max_bytes)  # it grew while being read
    return data


def resolves_inside(path: Path, folder: Path) -> bool:
    """True when ``path``, symlinks followed, lies in ``folder`` (or a folder below it)."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False
