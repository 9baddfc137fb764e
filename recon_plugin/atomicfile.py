"""Crash-safe files: whole-file atomic replacement, stale temp-file sweeping, a single-writer lock
(one writing process per directory).

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
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

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
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make the names created, renamed or removed in ``directory`` durable."""
    dir_fd = os.open(directory, os.O_RDONLY)
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
    """One writing process per file, held for the life of the writer: an exclusive, non-blocking
    ``flock`` on the file's *directory*.

    Why the directory and not a ``<path>.lock`` file: a lock file can be deleted by hand while its
    holder runs, and the next process then locks a new file of the same name and writes beside the
    first one (last writer wins). A directory cannot be deleted, or replaced by a rename, while it holds
    a file, so while the state file exists the directory that holds it is the same inode for every
    process, whatever else is deleted. The file itself cannot carry the lock: every atomic write
    replaces its inode. The price: across processes the rule is one writer per *directory* (two hosts
    need two directories, as the shipped configs have). Within one process the directory's lock is shared
    (a host writes its state file and its paper account side by side) and the rule stays one writer per
    file. The kernel drops the lock with the process, so a SIGKILLed writer never leaves it stuck.

    Raises ``hostspec.errors.ResourceBusyError`` when another process (or this one) writes ``path``, and
    ``OSError`` when the directory cannot be created or opened.
    """

    _held: ClassVar[dict[tuple[int, int], tuple[int, set[str]]]] = {}  # directory → (its locked fd, names)
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path.parent
        self._name: str | None = path.name
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._registry_lock:
            fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            self._key = key = _identity(os.fstat(fd))
            held = self._held.get(key)
            if held is not None:
                os.close(fd)
                if path.name in held[1]:
                    self._name = None
                    raise ResourceBusyError(path, f"{self.path}, held by this process")
                held[1].add(path.name)
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._name = None
                raise ResourceBusyError(path, f"{self.path}, held by another process") from None
            self._held[key] = (fd, {path.name})

    def holds(self) -> bool:
        """Whether the locked directory is still the one at its path. False once it was deleted (and
        perhaps made again by another writer, which then holds the lock of the new one): the holder
        must stop writing there. A writer checks before each write."""
        try:
            return self._name is not None and _identity(os.stat(self.path)) == self._key
        except FileNotFoundError:
            return False

    def release(self) -> None:
        with self._registry_lock:
            if self._name is None:
                return
            fd, names = self._held[self._key]
            names.discard(self._name)
            self._name = None
            if not names:
                del self._held[self._key]
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino
