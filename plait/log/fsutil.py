"""File-system helpers: atomic small-file writes, directory fsync, the data-dir lock.

Durability of a new or renamed file needs an fsync of the file *and* of its directory
(POSIX leaves the directory entry in the cache otherwise); these helpers do both.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from plait.log.errors import DataDirLockedError


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make creations, renames and deletions inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    With ``durable`` the temp file and the directory are fsynced (write temp, fsync,
    rename, fsync dir); without it a power cut may leave the old file or an empty one,
    so callers that skip durability must validate what they read back.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


class DataDirLock:
    """An exclusive, non-blocking ``flock`` on ``DIR/.lock`` holding the owner's pid.

    ``flock`` locks belong to the open file description, so a second ``Log.open`` of the
    same dir fails even inside one process, and the kernel drops the lock when the
    holder dies (kill -9 included), so a crash never leaves a stale lock behind.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._fd: int | None = None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirLockedError(str(directory), holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock; idempotent. The file stays (deleting it would race a new holder)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
