"""The journal archive beside a state file: every journal entry the state file no longer holds.

Layout:

- ``<state>.journal.jsonl``, the active segment: one entry a line (compact JSON, as the state file
  holds it), appended in ``seq`` order, mode 0600;
- ``<state>.journal.d/`` (mode 0700), the rotated segments: when the active segment reaches
  ``rotate_bytes`` it is renamed to ``<first seq>-<last seq>.jsonl`` there, after its summary
  ``<first seq>-<last seq>.json`` (``{"first", "last", "count", "min_at", "max_at"}``) was written
  beside it. So a reader asking for entries since a time skips whole segments by their summary, and a
  writer's open reads only the active segment's tail, however long the history.

Appends are made safe against a disk that fills or a file size limit: before an append a torn tail
(the fragment a failed or killed append left) is cut back to the last complete line, an append that
fails is cut back at once when possible, and the store appends, each time, every entry after
``last_seq`` that its state file holds, so entries whose append failed are archived by the next one.
This module only keeps files; which entries to append, and when the state file prunes them, is the
store's business (``TinyDBStore``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from recon_plugin.atomicfile import atomic_write, atomic_write_json, fsync_directory

log = logging.getLogger(__name__)
Doc = dict[str, Any]
ROTATE_BYTES = 32 * 1024 * 1024
_BLOCK = 64 * 1024
_SEGMENT = re.compile(r"(\d+)-(\d+)\.jsonl")


def journal_path(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".journal.jsonl")


def segments_directory(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + ".journal.d")


class JournalArchive:
    """The archive of one state file's journal. Not thread-safe: the store's lock guards every call."""

    def __init__(self, state_path: Path, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.path = journal_path(state_path)
        self.directory = segments_directory(state_path)
        self.rotate_bytes = rotate_bytes
        self.last_seq = 0  # the newest entry archived
        self._end: int | None = None  # the active segment's size after the last append known good
        self.bytes_read = 0  # bytes this object read from the archive's files (for tests and benchmarks)

    # -- the writer ---------------------------------------------------------------------------------

    def open(self) -> None:
        """A writer's open: cut a torn tail, and learn the newest archived seq from the active segment's
        last complete line (else the newest segment's name), reading only the tail."""
        try:
            with self.path.open("r+b", buffering=0) as handle:
                end = self._cut_torn_tail(handle)
                last = self._last_line(handle, end)
        except FileNotFoundError:
            end, last = 0, b""
        self._end = end
        seq = _seq_of(last) if last else None
        if seq is None:
            segments = self.segments()
            seq = segments[-1][1] if segments else 0
        self.last_seq = seq

    def append(self, docs: Iterable[Doc]) -> bool:
        """Append the entries after ``last_seq`` (in seq order), durably. False when the append failed
        (logged; nothing of it is left in the file when the cut-back succeeds, and a torn fragment left
        otherwise is cut before the next append)."""
        new = [d for d in docs if d["seq"] > self.last_seq]
        if not new:
            return True
        data = "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in new).encode()
        try:
            with self.path.open("a+b", buffering=0) as handle:  # unbuffered: what reached the file is known
                os.fchmod(handle.fileno(), 0o600)
                start = self._start(handle)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[handle.write(view) or 0:]
                    os.fsync(handle.fileno())
                except OSError:
                    with contextlib.suppress(OSError):  # cutting back needs no space; if even that fails,
                        handle.truncate(start)           # the next append cuts what this one left
                    raise
        except OSError as exc:
            log.warning("could not append %d journal entries to %s (they stay in the state file and are "
                        "archived with the next write): %s", len(new), self.path, exc)
            return False
        self.last_seq = new[-1]["seq"]
        self._end = start + len(data)
        if self._end >= self.rotate_bytes:
            self._rotate()
        return True

    def _start(self, handle: BinaryIO) -> int:
        """Where the next append starts: after the last append known good, so that whatever a failed
        append left (whole lines of entries after ``last_seq``, a fragment) is cut; else after the last
        complete line."""
        end = handle.seek(0, os.SEEK_END)
        if self._end is not None and end > self._end:
            log.warning("cut %d bytes a failed append left at the end of %s", end - self._end, self.path)
            handle.truncate(self._end)
            return handle.seek(self._end)
        return self._cut_torn_tail(handle)

    def _cut_torn_tail(self, handle: BinaryIO) -> int:
        """Cut the file after its last complete line; returns its size."""
        end = handle.seek(0, os.SEEK_END)
        if end == 0 or self._read_at(handle, end - 1, 1) == b"\n":
            return end
        keep = end
        while keep > 0:
            start = max(0, keep - _BLOCK)
            block = self._read_at(handle, start, keep - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            keep = start
        log.warning("cut a torn last line (%d bytes) from %s", end - keep, self.path)
        handle.truncate(keep)
        handle.seek(keep)
        return keep

    def _last_line(self, handle: BinaryIO, end: int) -> bytes:
        """The last complete line of a file of ``end`` bytes ending with a newline, read from the end."""
        tail = b""
        position = end
        while position > 0:
            start = max(0, position - _BLOCK)
            tail = self._read_at(handle, start, position - start) + tail
            position = start
            body = tail[:-1]
            if b"\n" in body:
                return body.rpartition(b"\n")[2]
        return tail[:-1]

    def _read_at(self, handle: BinaryIO, offset: int, size: int) -> bytes:
        handle.seek(offset)
        data = handle.read(size)
        self.bytes_read += len(data)
        return data

    def _rotate(self) -> None:
        """Move the active segment into the segments' directory, its summary first."""
        try:
            summary = self._summarise(self.path)
            if summary is None:
                return
            name = f"{summary['first']:012d}-{summary['last']:012d}"
            self.directory.mkdir(mode=0o700, exist_ok=True)
            atomic_write_json(self.directory / f"{name}.json", summary)
            os.rename(self.path, self.directory / f"{name}.jsonl")
            self._end = 0
            fsync_directory(self.directory)
            fsync_directory(self.path.parent)
            log.info("rotated %s (%d entries, up to seq %d) into %s", self.path, summary["count"], summary["last"],
                     self.directory)
        except OSError as exc:
            log.warning("could not rotate %s (it goes on growing until the next rotation): %s", self.path, exc)

    def _summarise(self, path: Path) -> Doc | None:
        first = last = None
        count = 0
        low = high = None
        for doc in self._read_lines(path):
            at = datetime.fromisoformat(doc["at"])
            first = doc["seq"] if first is None else first
            last = doc["seq"]
            count += 1
            low = at if low is None or at < low else low
            high = at if high is None or at > high else high
        if first is None or low is None or high is None:
            return None
        return {"first": first, "last": last, "count": count, "min_at": low.isoformat(), "max_at": high.isoformat()}

    # -- reading ------------------------------------------------------------------------------------

    def segments(self) -> list[tuple[int, int, Path]]:
        """The rotated segments, oldest first: (first seq, last seq, path)."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _SEGMENT.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), int(match.group(2)), path))
        return sorted(found)

    def entries(self, since: datetime | None = None) -> Iterator[Doc]:
        """Every archived entry (at or after ``since`` when given), in seq order, streamed: a rotated
        segment whose newest entry is older than ``since`` is skipped unread."""
        newest = 0
        listed = [path for _, _, path in self.segments()]

        def later() -> Iterator[Path]:  # listed once the active one was read: the writer rotated it meanwhile
            yield from (path for _, _, path in self.segments() if path not in listed)

        for path in itertools.chain(listed, [self.path], later()):
            if since is not None and path != self.path:
                summary = self._segment_summary(path)
                if summary is not None and datetime.fromisoformat(summary["max_at"]) < since:
                    continue
            for doc in self._since(self._read_lines(path), since):
                if doc["seq"] > newest:  # an entry appended again (by a version that repeated them) comes once
                    newest = doc["seq"]
                    yield doc

    @staticmethod
    def _since(docs: Iterable[Doc], since: datetime | None) -> Iterator[Doc]:
        return iter(docs) if since is None else (d for d in docs if datetime.fromisoformat(d["at"]) >= since)

    def _segment_summary(self, segment: Path) -> Doc | None:
        summary_path = segment.with_suffix(".json")
        try:
            summary: Doc = json.loads(summary_path.read_bytes())
            if isinstance(summary, dict) and isinstance(summary.get("max_at"), str):
                return summary
        except (OSError, ValueError):
            pass
        return None  # read it whole: a summary lost is only a slower read

    def _read_lines(self, path: Path) -> Iterator[Doc]:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return
        with handle:
            for line in handle:
                self.bytes_read += len(line)
                try:
                    doc = json.loads(line)
                except ValueError:  # a line torn by a kill mid-append; its entry is still in the state file
                    continue
                if isinstance(doc, dict) and isinstance(doc.get("seq"), int):
                    yield doc

    # -- the rollover's -----------------------------------------------------------------------------

    def drop(self, seqs: set[int]) -> None:
        """Rewrite the files holding any of ``seqs`` without them (the day archive took them). If this
        fails they are held twice (readers drop the repeat by seq) until the next rollover moves them."""
        if not seqs:
            return
        low, high = min(seqs), max(seqs)
        try:
            for first, last, path in self.segments():
                if first <= high and last >= low:
                    self._rewrite_without(path, seqs, segment=True)
            self._end = None  # rewritten: found again from its tail
            self._rewrite_without(self.path, seqs, segment=False)
        except OSError as exc:
            log.warning("could not rewrite %s without the archived entries: %s", self.path, exc)

    def _rewrite_without(self, path: Path, seqs: set[int], segment: bool) -> None:
        try:
            lines = path.read_bytes().splitlines(keepends=True)
        except FileNotFoundError:
            return
        kept = [line for line in lines if _seq_of(line) not in seqs]
        if len(kept) == len(lines):
            return
        if segment and not kept:
            path.with_suffix(".json").unlink(missing_ok=True)
            path.unlink()
            return
        atomic_write(path, b"".join(kept))
        if segment:
            summary = self._summarise(path)
            if summary is not None:
                atomic_write_json(path.with_suffix(".json"), summary)


def _seq_of(line: bytes) -> int | None:
    try:
        seq = json.loads(line)["seq"]
    except (ValueError, KeyError, TypeError):
        return None  # a torn line: kept as it is, readers skip it
    return seq if isinstance(seq, int) else None
