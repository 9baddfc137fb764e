"""Crash-safe files: whole-file atomic replacement, stale temp-file sweeping, a single-writer lock.

A reader (or a process restarted after SIGKILL) always sees either the previous complete file or the
new complete file, never a torn one: the new content is written to a temporary file in the same
directory, fsynced, then moved over the old one with ``os.replace`` (atomic on POSIX and Windows),
and the directory is fsynced so the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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


def atomic_write_json(path: Path, data: Any, mode: int = 0o600) -> None:
    """``atomic_write`` of ``data`` as compact JSON: the one encoding every whole-file store write uses."""
    atomic_write(path, json.dumps(data, separators=(",", ":")).encode(), mode)


def sweep_temp_files(path: Path) -> int:
    """Remove temporary files a killed writer of ``path`` left behind; returns how many."""
    return _remove(path.parent.glob(_temp_prefix(path) + "*")) if path.parent.is_dir() else 0


def sweep_directory(directory: Path) -> int:
    """Remove temporary files killed writers of any file in ``directory`` left behind (for a directory
    of many atomically written files, where a killed first write leaves no file to name)."""
    return _remove(directory.glob(_temp_prefix(Path("*")) + "*")) if directory.is_dir() else 0


def _remove(paths: Iterable[Path]) -> int:
    removed = 0
    for stale in paths:
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
