"""The per-day archive beside a state file: past trading days' orders, ledger entries and journal.

Why: TinyDB rewrites its whole file on every write, so a cycle's write costs what the hot file holds.
A past day's terminal orders never change again and are read rarely (``recon status --date``), so at
the rollover they leave the hot file for a file of their own day, and the hot file holds today only.

Layout, in ``<state>.days/`` (mode 0700), each file replaced atomically and durably (mode 0600):

- ``2026-11-19.json``, the day: ``{"schema_version": 1, "store_id", "trading_date": "2026-11-19",
  "orders": {order id: order}, "ledger": {order id: ledger entry}, "journal": [entry, ... in seq order]}``,
  records as the state file holds them (``hostspec.codec``: Decimals as strings, so exact).
- ``2026-11-19.index.json``, its summary, small enough to read at every open: ``{"store_id",
  "orders": {order id: broker order id or null}, "journal": entry count, "last_at": newest entry's
  time or null}``. It is derived from the day file (written right after it, rebuilt from it when
  missing), so the day file is the one that counts.

``store_id`` is the state file's own (in its meta record): a state file replaced by a fresh one
(``paper reset``) must not take the old account's archive for its own, since a new account reuses
broker order ids and the index of archived orders would then hide its orders. Days of another
``store_id`` are ignored, and merging into one is refused.

This module only keeps files; which orders move, and when, is the store's business
(``TinyDBStore.archive_before``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from hostspec.store import StoreError
from recon_plugin.atomicfile import atomic_write_json, sweep_directory

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
_DAY_FILE = re.compile(r"(\d{4}-\d{2}-\d{2})\.json")

Doc = dict[str, Any]


class DayArchive:
    """The day files and their summaries for one state file. Not thread-safe: the store's lock
    guards every call."""

    @staticmethod
    def directory_of(state_path: Path) -> Path:
        return state_path.with_name(state_path.name + ".days")

    def __init__(self, state_path: Path, store_id: str | None, read_only: bool = False) -> None:
        self.directory = self.directory_of(state_path)
        self.store_id = store_id
        self.read_only = read_only
        self.summaries: dict[str, Doc] = {}  # trading date (YYYY-MM-DD) → its index, for every day file

    def open(self) -> None:
        """Read every day's summary; rebuild (and, as a writer, rewrite) any that is missing or
        unreadable; as a writer, remove temporary files a killed write left."""
        if not self.directory.is_dir():
            return
        if not self.read_only and (swept := sweep_directory(self.directory)):
            log.info("removed %d temporary files left by an interrupted archive write in %s", swept, self.directory)
        self.summaries = {}
        foreign = []
        for path in sorted(self.directory.iterdir()):
            match = _DAY_FILE.fullmatch(path.name)
            if match:
                summary = self._read_summary(match.group(1))
                if summary.get("store_id") == self.store_id:
                    self.summaries[match.group(1)] = summary
                else:
                    foreign.append(match.group(1))
        if foreign:
            log.warning("ignoring %d archived days in %s (%s ...): they belong to another state file than the "
                        "one beside them (replaced?); move them away", len(foreign), self.directory, foreign[0])

    def _read_summary(self, day: str) -> Doc:
        try:
            summary: Doc = json.loads(self._index_path(day).read_bytes())
            if isinstance(summary.get("orders"), dict):
                return summary
        except (OSError, ValueError):
            pass
        content = self.read(day)
        assert content is not None
        summary = _summarise(content)
        if not self.read_only:
            atomic_write_json(self._index_path(day), summary)
        log.info("rebuilt the index of archived day %s from its file", day)
        return summary

    def _day_path(self, day: str) -> Path:
        return self.directory / f"{day}.json"

    def _index_path(self, day: str) -> Path:
        return self.directory / f"{day}.index.json"

    def content(self, day: str) -> Doc | None:
        """The whole content of ``day``'s file, or None when there is none of this state file's."""
        content = self.read(day)
        return content if content is not None and content.get("store_id") == self.store_id else None

    def read(self, day: str) -> Doc | None:
        """The whole content of ``day``'s file, or None when there is none."""
        path = self._day_path(day)
        try:
            content: Doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise StoreError(f"{path} is not readable JSON ({exc}); it was damaged outside this store") from None
        if content.get("schema_version") != SCHEMA_VERSION:
            raise StoreError(f"{path} has archive schema version {content.get('schema_version')}; this version of "
                             f"recon-plugin reads version {SCHEMA_VERSION} only")
        return content

    def merge(self, day: str, orders: Mapping[str, Doc], ledger: Mapping[str, Doc], journal: Iterable[Doc]) -> None:
        """Add records to ``day``'s file, durably: orders and ledger entries by order id, journal entries
        by seq, the given ones replacing what the file held under the same key (a move interrupted and
        done again leaves each record once, in its newest form). Then its summary."""
        if self.read_only:
            raise StoreError(f"{self.directory} is open read-only")
        content = self.read(day) or {"schema_version": SCHEMA_VERSION, "store_id": self.store_id,
                                     "trading_date": day, "orders": {}, "ledger": {}, "journal": []}
        if content.get("store_id") != self.store_id:
            raise StoreError(f"{self._day_path(day)} belongs to another state file than the one beside it (it was "
                             f"replaced?): move {self.directory} away before archiving into it")
        content["orders"].update(orders)
        content["ledger"].update(ledger)
        by_seq = {d["seq"]: d for d in content["journal"]}
        by_seq.update((d["seq"], d) for d in journal)
        content["journal"] = [by_seq[seq] for seq in sorted(by_seq)]
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)  # whatever the umask: the archive is as private as the state
        atomic_write_json(self._day_path(day), content)
        summary = _summarise(content)
        atomic_write_json(self._index_path(day), summary)
        self.summaries[day] = summary

    def days_with_entries_since(self, since: datetime | None) -> list[str]:
        """Days (oldest first) that may hold journal entries at or after ``since``."""
        return [day for day, summary in sorted(self.summaries.items())
                if since is None or (summary.get("last_at") and datetime.fromisoformat(summary["last_at"]) >= since)]


def _summarise(content: Doc) -> Doc:
    journal = content["journal"]
    last = max((datetime.fromisoformat(d["at"]) for d in journal), default=None)
    return {"store_id": content.get("store_id"),
            "orders": {oid: doc.get("broker_order_id") for oid, doc in content["orders"].items()},
            "journal": len(journal), "last_at": last.isoformat() if last else None}
