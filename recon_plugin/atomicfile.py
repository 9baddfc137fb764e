"""Crash-safe files: whole-file atomic replacement, stale temp-file sweeping, a single-writer lock.

A reader (or a process restarted after SIGKILL) always sees either the previous complete file or the
new complete file, never a torn one: the new content is written to a temporary file in the same
directory, fsynced, then moved over the old one with ``os.replace`` (atomic on POSIX and Windows),
and the directory is fsynced so the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

from hostspec.errors import ResourceBusyError


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably; the file gets ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def sweep_temp_files(path: Path) -> int:
    """Remove temporary files a killed writer of ``path`` left behind; returns how many."""
    removed = 0
    if path.parent.is_dir():
        for stale in path.parent.glob(_temp_prefix(path) + "*"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
                removed += 1
    return removed


class WriterLock:
    """An exclusive, non-blocking lock on ``<path>.lock``: one writing process per file.

    Raises ``hostspec.errors.ResourceBusyError`` when another process holds it. Held for the life of
    the writer; released by ``release()`` or when the process dies (the kernel
    drops ``flock`` locks with the file descriptor, so a SIGKILLed writer never leaves it stuck).
    """

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise ResourceBusyError(path, self.path) from None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
