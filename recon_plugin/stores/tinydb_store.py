"""The embedded default state store: one TinyDB file, written atomically, one lock around everything.

TinyDB rewrites its whole file on every write, tears the file when the process is killed mid-write,
and is not thread-safe. So:

- the storage keeps the data in memory and writes the file only through ``atomic_write``;
- ``apply`` runs every table operation of a change set inside one storage batch: however many
  orders, positions, ledger entries, journal entries and events change, the file is written once;
- every public method holds one ``RLock`` for its whole read-modify-write;
- one writing process per file (a ``flock``); read-only opens (operator commands) take no lock;
- the journal leaves the file for ``<state>.journal.jsonl`` after each write, and at the rollover past
  trading days' terminal orders, ledger entries and journal leave for ``<state>.days/``
  (``archive_before``, ``recon_plugin.stores.day_archive``): the file holds today, so a write costs
  what today holds.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import replace
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document, Table

from hostspec import hookimpl
from hostspec.codec import from_dict, to_dict
from hostspec.hookspecs import StoreFactory
from hostspec.host import Host
from hostspec.model import (
    TERMINAL_STATUSES,
    ChangeSet,
    Event,
    JournalEntry,
    LedgerEntry,
    LocalState,
    Order,
    Position,
)
from hostspec.store import ConflictError, StoreError
from recon_plugin.atomicfile import WriterLock, atomic_write_json, sweep_temp_files
from recon_plugin.stores.day_archive import DayArchive
from recon_plugin.stores.journal_archive import ROTATE_BYTES, JournalArchive, journal_path, segments_directory

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
META_ID = 1
_TERMINAL = frozenset(status.value for status in TERMINAL_STATUSES)
Doc = dict[str, Any]


class AtomicJSONStorage(Storage):
    """TinyDB storage: data held in memory, file replaced atomically; writes inside ``batch()``
    are coalesced into one file write at the end of the batch."""

    def __init__(self, path: str, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.writes = 0  # durable file writes made, for tests and benchmarks
        self.before_write: Callable[[], None] | None = None  # raises when this process may not write
        self._batch_depth = 0
        self._dirty = False
        self._data = self._load()

    def _load(self) -> dict[str, Any] | None:
        """The file's content; None only when there is no file (a new store). Anything this store never
        writes (an empty file, ``null``, a list, a table that is not a mapping of records) is damage,
        refused with what is wrong: opening it as a new store would lose its orders, ledger and history."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raise StoreError(f"{self.path} is a directory, not a state file; point store.path at a file") from None
        except OSError as exc:
            raise StoreError(f"{self.path} cannot be read: {exc.strerror or exc}") from None
        if not raw.strip():
            raise StoreError(_damaged(self.path, f"is empty ({len(raw)} bytes)"))
        try:
            data: Any = json.loads(raw)
        except ValueError as exc:
            raise StoreError(f"{self.path} is not readable JSON ({exc}); it was not written by this store "
                             "or was damaged outside it") from None
        problem = _shape_problem(data)
        if problem:
            raise StoreError(_damaged(self.path, problem))
        checked: dict[str, Any] = data
        return checked

    def read(self) -> dict[str, Any] | None:
        return self._data

    def write(self, data: dict[str, Any]) -> None:
        if self.read_only:
            raise StoreError(f"{self.path} is open read-only")
        self._data = data
        if self._batch_depth:
            self._dirty = True
        else:
            self._flush()

    def _flush(self) -> None:
        if self.before_write is not None:
            self.before_write()
        atomic_write_json(self.path, self._data)
        self.writes += 1
        self._dirty = False

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Coalesce writes into one. On any error the in-memory data is reloaded from the file, so
        memory never holds half a change that the file does not."""
        self._batch_depth += 1
        try:
            yield
            if self._batch_depth == 1 and self._dirty:
                self._flush()
        except BaseException:
            self._dirty = False
            self._data = self._load()
            raise
        finally:
            self._batch_depth -= 1

    def close(self) -> None:
        pass


class TinyDBStore:
    """``hostspec.store.StateStore`` on one TinyDB file."""

    name = "tinydb"

    def __init__(self, path: str | Path, read_only: bool = False, journal_rotate_bytes: int = ROTATE_BYTES) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._writer_lock: WriterLock | None = None
        with self._released_if_opening_fails():
            if not read_only:
                self._writer_lock = WriterLock(self.path)  # ResourceBusyError while another host writes it
                _check_writable(self.path)  # first: a directory it cannot write in is said as such
                swept = sweep_temp_files(self.path)
                if swept:
                    log.info("removed %d temporary files left by an interrupted writer of %s", swept, self.path)
            self._db = TinyDB(str(self.path), storage=AtomicJSONStorage, read_only=read_only)
        self._storage: AtomicJSONStorage = self._db.storage  # type: ignore[assignment]
        self._storage.before_write = self._check_still_the_writer
        self._orders = self._db.table("orders", cache_size=0)
        self._positions = self._db.table("positions", cache_size=0)
        self._ledger = self._db.table("ledger", cache_size=0)
        self._journal = self._db.table("journal", cache_size=0)
        self._outbox = self._db.table("outbox", cache_size=0)
        self._meta = self._db.table("meta", cache_size=0)
        self._generation = 0
        self._cache: LocalState | None = None
        self.journal_archive = JournalArchive(self.path, journal_rotate_bytes)
        self.journal_path = self.journal_archive.path
        self.days: DayArchive
        self._archived_days: dict[str, str] = {}  # archived order id → its trading date
        self._archived_view: Mapping[str, str] = MappingProxyType({})  # broker order id → order id
        with self._released_if_opening_fails():
            try:
                self._check_schema()
                self._reindex()
                if not read_only:
                    self._complete_meta()
                    self._open_archive()
                self._open_days()
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise StoreError(_damaged(self.path, f"holds a record this store cannot read ({type(exc).__name__}: "
                                                    f"{exc})")) from None

    @contextlib.contextmanager
    def _released_if_opening_fails(self) -> Iterator[None]:
        """Opening steps: on any failure the writer lock is released; an OS error (a file or directory
        that cannot be opened) becomes one ``StoreError`` line naming the file."""
        try:
            yield
        except OSError as exc:
            self._release()
            raise StoreError(f"{exc.filename or self.path} cannot be opened: {exc.strerror or exc}") from None
        except BaseException:
            self._release()
            raise

    # -- housekeeping -----------------------------------------------------------------------------

    def _check_schema(self) -> None:
        meta = self._meta.get(doc_id=META_ID)
        if meta is None:
            if any(len(table) for table in (self._orders, self._positions, self._ledger, self._journal, self._outbox)):
                raise StoreError(f"{self.path} has data but no schema version: not a recon-plugin state file")
            return
        version = meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version}; this version of recon-plugin reads "
                             f"version {SCHEMA_VERSION} only")

    def _complete_meta(self) -> None:
        """A writer's open, once the file was read whole: a new store's meta record; an id for a file
        from before the day archive."""
        meta = self._meta.get(doc_id=META_ID)
        if meta is None:
            self._meta.insert(Document({**self._blank_meta(), "store_id": uuid.uuid4().hex}, doc_id=META_ID))
        elif "store_id" not in meta:
            self._meta.update({"store_id": uuid.uuid4().hex}, doc_ids=[META_ID])

    @staticmethod
    def _blank_meta() -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "checkpoint": {}, "events_sent_upto": 0,
                "event_seq": 0, "journal_seq": 0}

    def _meta_doc(self) -> dict[str, Any]:
        return {**self._blank_meta(), **(self._meta.get(doc_id=META_ID) or {})}

    def _reindex(self) -> None:
        """Map natural keys to TinyDB doc ids, so updates touch documents by id, not by query."""
        self._order_ids = {doc["order_id"]: doc.doc_id for doc in self._orders.all()}
        self._position_ids = {_position_key(doc): doc.doc_id for doc in self._positions.all()}
        self._ledger_ids = {doc["order_id"]: doc.doc_id for doc in self._ledger.all()}

    def _check_still_the_writer(self) -> None:
        if self._writer_lock is not None and not self._writer_lock.holds():
            raise StoreError(f"{self.path.parent} was deleted or replaced since this process locked it for writing "
                             "(another process may write there now): this process writes no more")

    def _release(self) -> None:
        if self._writer_lock is not None:
            self._writer_lock.release()
            self._writer_lock = None

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def writes(self) -> int:
        """Durable file writes made since this store was opened."""
        return self._storage.writes

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._release()

    # -- reads ------------------------------------------------------------------------------------

    def load(self) -> LocalState:
        with self._lock:
            if self._cache is not None:
                return self._cache
            meta = self._meta_doc()
            orders = {doc["order_id"]: from_dict(Order, doc) for doc in self._orders.all()}
            positions = {p.key: p for p in (from_dict(Position, doc) for doc in self._positions.all())}
            ledger = {doc["order_id"]: from_dict(LedgerEntry, doc) for doc in self._ledger.all()}
            self._cache = LocalState(orders, positions, ledger, dict(meta["checkpoint"]),
                                     meta["events_sent_upto"], self._archived_view)
            return self._cache

    def get_order(self, order_id: str) -> Order | None:
        with self._lock:
            doc_id = self._order_ids.get(order_id)
            doc = self._orders.get(doc_id=doc_id) if doc_id is not None else None
            return from_dict(Order, doc) if doc is not None else None

    def pending_events(self) -> list[Event]:
        with self._lock:
            upto = self._meta_doc()["events_sent_upto"]
            docs = sorted((d for d in self._outbox.all() if d["seq"] > upto), key=lambda d: d["seq"])
            return [from_dict(Event, d) for d in docs]

    def journal(self, since: datetime | None = None) -> list[JournalEntry]:
        return list(self.iter_journal(since))

    def iter_journal(self, since: datetime | None = None) -> Iterator[JournalEntry]:
        """``journal(since)`` streamed, oldest first: archived days and rotated archive segments older
        than ``since`` are skipped unread, and nothing is held but the day being read."""
        with self._lock:
            days = self.days.days_with_entries_since(since)
            hot = sorted((dict(d) for d in self._journal.all()), key=lambda d: d["seq"])
        archived = self._archive_reader().entries(since)
        # each day's file is in seq order, but not the days one after the other: a late entry of an
        # order belongs to its order's day (an expiry the next morning)
        by_day = [self._day_journal(day) for day in days]
        for doc in _merged(*by_day, archived, iter(hot)):
            entry = from_dict(JournalEntry, doc)
            if since is None or entry.at >= since:
                yield entry

    def _day_journal(self, day: str) -> Iterator[Doc]:
        content = self.days.content(day)
        yield from content["journal"] if content else ()

    def _archive_reader(self) -> JournalArchive:
        """A reader of the journal archive of its own (its counters and position are not the writer's)."""
        return JournalArchive(self.path, self.journal_archive.rotate_bytes)

    def _state_entries(self) -> list[Document]:
        return sorted(self._journal.all(), key=lambda d: d["seq"])

    # -- writes -----------------------------------------------------------------------------------

    def record_order(self, order: Order) -> Order:
        with self._lock:
            self.apply(ChangeSet(orders=[order]))
            stored = self.get_order(order.order_id)
            assert stored is not None
            return stored

    def apply(self, changes: ChangeSet) -> int:
        with self._lock:
            if changes.is_empty():
                return 0
            if self.read_only:
                raise StoreError(f"{self.path} is open read-only")
            self._check_not_archived(changes)
            self._check_versions(changes.orders)
            stored = [replace(o, version=o.version + 1) for o in changes.orders]
            with self._one_write():
                self._upsert(self._orders, self._order_ids, {o.order_id: to_dict(o) for o in stored})
                self._upsert(self._positions, self._position_ids,
                             {_position_key(d): d for d in map(to_dict, changes.positions)})
                self._upsert(self._ledger, self._ledger_ids,
                             {e.order_id: to_dict(e) for e in changes.ledger})
                self._append_and_prune(changes)
            self._generation += 1
            if self._cache is not None:
                self._cache = _updated(self._cache, changes, stored)
            self._archive()
            return 1

    @contextlib.contextmanager
    def _one_write(self) -> Iterator[None]:
        """Table operations made inside become one durable file write. If anything fails, nothing is
        written, memory holds exactly what is on disk again, and the error is a ``StoreError``."""
        try:
            with self._storage.batch():
                yield
        except Exception as exc:
            # the storage reloaded the file: drop what was derived from the memory it replaced
            self._cache = None
            self._generation += 1
            self._reindex()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"writing {self.path} failed: {type(exc).__name__}: {exc}") from exc

    def _check_not_archived(self, changes: ChangeSet) -> None:
        """Refuse writing an archived order or its ledger entry: its fills are settled, and applying
        one again would count it twice (the exactly-once guard across the archive)."""
        for order_id, version in [*((o.order_id, o.version) for o in changes.orders),
                                  *((e.order_id, None) for e in changes.ledger)]:
            day = self._archived_days.get(order_id)
            if day is None:
                continue
            if version == 0:
                raise StoreError(f"order {order_id} was archived with trading date {day}: its id cannot be "
                                 "recorded again")
            raise ConflictError(f"order {order_id} moved to the archive (trading date {day}) since the change "
                                "was planned")

    def _check_versions(self, orders: list[Order]) -> None:
        for order in orders:
            doc_id = self._order_ids.get(order.order_id)
            stored = self._orders.get(doc_id=doc_id)["version"] if doc_id is not None else None  # type: ignore[index]
            if (stored is None and order.version != 0) or (stored is not None and stored != order.version):
                raise ConflictError(f"order {order.order_id} is at version {stored}, the change was based on "
                                    f"version {order.version}")

    @staticmethod
    def _upsert(table: Table, ids: dict[str, int], docs: dict[str, dict[str, Any]]) -> None:
        """Insert or replace documents by natural key in two table passes, whatever their number."""
        existing = {ids[k]: d for k, d in docs.items() if k in ids}
        new = [d for k, d in docs.items() if k not in ids]
        if existing:
            def overwrite(doc: MutableMapping[str, Any]) -> None:
                replacement = by_key[_natural_key(doc)]
                doc.clear()
                doc.update(replacement)
            by_key = {_natural_key(d): d for d in existing.values()}
            table.update(overwrite, doc_ids=list(existing))
        if new:
            for key, doc_id in zip((_natural_key(d) for d in new), table.insert_multiple(new), strict=True):
                ids[key] = doc_id

    @staticmethod
    def _append_sequenced(table: Table, records: list[Any], meta: dict[str, Any], counter: str) -> list[Document]:
        """Append records numbered on from ``meta[counter]``; the number is both ``seq`` and doc id."""
        if not records:
            return []
        start = meta[counter]
        docs = [Document(to_dict(replace(r, seq=start + i)), doc_id=start + i) for i, r in enumerate(records, 1)]
        table.insert_multiple(docs)
        meta[counter] = start + len(records)
        return docs

    def _append_and_prune(self, changes: ChangeSet) -> None:
        """Journal entries and events appended; archived journal entries and sent events pruned."""
        meta = self._meta_doc()
        # entries' doc ids are their seq numbers: what to prune is a range, found without a scan
        pruned_upto = meta.get("journal_archived_upto", 0)
        if self._journal_archived > pruned_upto:
            meta["journal_archived_upto"] = self._journal_archived
            self._journal.remove(doc_ids=range(pruned_upto + 1, self._journal_archived + 1))
        self._append_sequenced(self._journal, changes.journal, meta, "journal_seq")
        self._append_sequenced(self._outbox, changes.events, meta, "event_seq")
        if changes.events_sent_upto is not None and changes.events_sent_upto > meta["events_sent_upto"]:
            self._outbox.remove(doc_ids=range(meta["events_sent_upto"] + 1, changes.events_sent_upto + 1))
            meta["events_sent_upto"] = changes.events_sent_upto
        if changes.checkpoint:
            meta["checkpoint"] = {**meta["checkpoint"], **changes.checkpoint}
        self._meta.update(lambda doc: doc.update(meta), doc_ids=[META_ID])

    # -- the journal archive ------------------------------------------------------------------------
    #
    # Journal entries are written with the state they explain (the atomic write above), then appended
    # to <state>.journal.jsonl and pruned from the state file by the next write. So the state file
    # stays small however long the history, and an entry is always in one of the two (possibly both
    # for a moment, after a crash: readers drop the repeat by its seq).

    def _archive(self) -> None:
        """Append every entry the state file holds after the archive's newest, so entries whose append
        failed (a full disk) are archived by the next write, and only then pruned from the state file."""
        archived = self.journal_archive.last_seq
        if self._meta_doc()["journal_seq"] > archived:
            self.journal_archive.append(sorted((d for d in self._journal.all() if d["seq"] > archived),
                                               key=lambda d: d["seq"]))

    def _open_archive(self) -> None:
        """At open (writer): repair a torn last line, archive entries the last run wrote but did not, and
        number on from the archive when the state file is behind it (it was lost or replaced)."""
        self.journal_archive.open()
        meta = self._meta_doc()
        archived = self.journal_archive.last_seq
        if archived > meta["journal_seq"]:
            log.warning("%s numbers its journal up to %d, its archive %s up to %d (the state file was replaced or "
                        "lost?): numbering on from %d", self.path, meta["journal_seq"], self.journal_path, archived,
                        archived)
            with self._one_write():
                self._meta.update({"journal_seq": archived, "journal_archived_upto": archived}, doc_ids=[META_ID])
        # entries are appended in seq order: the archive's newest is the last archived, unless the day
        # archive took the newest away, and then the state file's watermark, written with that move, knows
        self.journal_archive.last_seq = max(archived, meta.get("journal_archived_upto", 0))
        self._archive()

    @property
    def _journal_archived(self) -> int:
        return self.journal_archive.last_seq

    # -- the per-day archive (the rollover's) ----------------------------------------------------------
    #
    # The order of the writes makes the move exactly-once: (1) each day's file, merged, durably;
    # (2) the state write that drops the orders, their ledger entries and the moved journal entries and
    # records the days as archived; (3) the journal archive rewritten without the moved entries. A kill
    # after (1) leaves the orders in both: the state file's copy counts (the index and ``load_day`` skip
    # ids the state file holds) and the next call merges it again. A kill after (2) leaves moved entries
    # in the journal archive as well: readers drop the repeat by seq, and the next call moves them again.

    def archive_before(self, day: date, zone: tzinfo = UTC) -> int:
        with self._lock:
            if self.read_only:
                raise StoreError(f"{self.path} is open read-only")
            self._check_still_the_writer()  # before the day files, which are written first
            cutoff = day.isoformat()  # ISO dates order as the days do
            order_days = dict(self._archived_days)
            orders: dict[str, dict[str, Doc]] = {}  # trading date → order id → order, to move
            for doc in self._orders.all():
                trading = doc.get("trading_date")
                if trading:
                    order_days[doc["order_id"]] = trading
                    if trading < cutoff and doc["status"] in _TERMINAL:
                        orders.setdefault(trading, {})[doc["order_id"]] = dict(doc)
            moving = {order_id: trading for trading, docs in orders.items() for order_id in docs}
            ledger: dict[str, dict[str, Doc]] = {}
            for doc in self._ledger.all():
                if doc["order_id"] in moving:
                    ledger.setdefault(moving[doc["order_id"]], {})[doc["order_id"]] = dict(doc)
            journal = self._past_entries(cutoff, order_days, zone)
            days = sorted(orders.keys() | journal.keys())
            if not days:
                return 0
            try:
                for trading in days:
                    self.days.merge(trading, orders.get(trading, {}), ledger.get(trading, {}), journal.get(trading, []))
            except OSError as exc:
                raise StoreError(f"writing the archive in {self.days.directory} failed: {exc}") from exc
            moved_seqs = {d["seq"] for docs in journal.values() for d in docs}
            with self._one_write():
                self._orders.remove(doc_ids=[self._order_ids[o] for o in moving])
                self._ledger.remove(doc_ids=[self._ledger_ids[o] for o in moving if o in self._ledger_ids])
                meta = self._meta_doc()
                pruned_upto = meta.get("journal_archived_upto", 0)
                self._journal.remove(doc_ids=moved_seqs.union(range(pruned_upto + 1, self._journal_archived + 1)))
                meta["journal_archived_upto"] = max(pruned_upto, self._journal_archived)
                meta["archived_days"] = sorted({*meta.get("archived_days", ()), *days})
                self._meta.update(lambda doc: doc.update(meta), doc_ids=[META_ID])
            self._generation += 1
            self._reindex()
            self._set_archived_index()
            if self._cache is not None:
                cache = self._cache
                self._cache = replace(cache, orders={k: v for k, v in cache.orders.items() if k not in moving},
                                      ledger={k: v for k, v in cache.ledger.items() if k not in moving},
                                      archived=self._archived_view)
            self.journal_archive.drop(moved_seqs)
            log.info("archived %d orders and %d journal entries of %s", len(moving), len(moved_seqs), ", ".join(days))
            return len(moving)

    def _past_entries(self, cutoff: str, order_days: Mapping[str, str], zone: tzinfo) -> dict[str, list[Doc]]:
        """Journal entries of days before ``cutoff``, by day: an entry's day is its order's trading date,
        else the date of its time in ``zone``."""
        self._archive()
        past: dict[str, list[Doc]] = {}
        for doc in _merged(self.journal_archive.entries(), (dict(d) for d in self._state_entries())):
            day = order_days.get(doc.get("order_id") or "") or \
                datetime.fromisoformat(doc["at"]).astimezone(zone).date().isoformat()
            if day < cutoff:
                past.setdefault(day, []).append(doc)
        return past

    def _open_days(self) -> None:
        """Read the day archive's index. A day the state file records as archived must have its file:
        without it, a fill of one of its orders could be applied again."""
        self.days = DayArchive(self.path, self._meta_doc().get("store_id"), self.read_only)
        self.days.open()
        missing = [d for d in self._meta_doc().get("archived_days", ()) if d not in self.days.summaries]
        if missing:
            message = (f"the archive of {', '.join(missing)} is missing from {self.days.directory}; restore it "
                       "(without it the fills of its orders could be applied again)")
            if not self.read_only:
                raise StoreError(message)
            log.warning("%s", message)
        self._set_archived_index()

    def _set_archived_index(self) -> None:
        """The index of archived orders, from the days' summaries. An order the state file still holds
        is not archived yet (a move interrupted after its day was written): its state-file copy counts."""
        days: dict[str, str] = {}
        brokers: dict[str, str] = {}
        for trading, summary in self.days.summaries.items():
            for order_id, broker_order_id in summary["orders"].items():
                if order_id not in self._order_ids:
                    days[order_id] = trading
                    if broker_order_id is not None:
                        brokers[broker_order_id] = order_id
        self._archived_days = days
        self._archived_view = MappingProxyType(brokers)  # a new one: views handed out earlier stay as they were

    def archived_days(self) -> list[date]:
        with self._lock:
            return [date.fromisoformat(d) for d in sorted(self.days.summaries)]

    def load_day(self, day: date) -> LocalState | None:
        with self._lock:
            content = self.days.content(day.isoformat())
            if content is None:
                return None
            orders = {oid: from_dict(Order, d) for oid, d in content["orders"].items() if oid not in self._order_ids}
            ledger = {oid: from_dict(LedgerEntry, d) for oid, d in content["ledger"].items()
                      if oid not in self._order_ids}
        return LocalState(orders, ledger=ledger)

    def journal_day(self, day: date) -> list[JournalEntry]:
        with self._lock:
            content = self.days.content(day.isoformat())
        return [from_dict(JournalEntry, d) for d in content["journal"]] if content else []


def _updated(state: LocalState, changes: ChangeSet, stored: list[Order]) -> LocalState:
    """The cached view after a write, without decoding the file again: unchanged records keep their
    identity (the engine's in-sync memo relies on it)."""
    orders = {**state.orders, **{o.order_id: o for o in stored}}
    positions = {**state.positions, **{p.key: p for p in changes.positions}}
    ledger = {**state.ledger, **{e.order_id: e for e in changes.ledger}}
    sent = max(state.events_sent_upto, changes.events_sent_upto or 0)
    return LocalState(orders, positions, ledger, {**state.checkpoint, **changes.checkpoint}, sent, state.archived)


def _merged(*streams: Iterable[Doc]) -> Iterator[Doc]:
    """Streams of entries, each in seq order, merged in seq order; an entry held twice (a move or an
    append interrupted) comes once."""
    last = None
    for doc in heapq.merge(*streams, key=lambda d: d["seq"]):
        if doc["seq"] != last:
            last = doc["seq"]
            yield doc


def _damaged(path: Path, problem: str) -> str:
    """The message for a state file this store never writes: what is wrong and what to do."""
    return (f"{path} {problem}: this store never writes that, so the file was damaged outside it. Restore it "
            "from a backup, or move it away to start with an empty state (its journal archive beside it is "
            "kept, and numbered on)")


def _shape_problem(data: Any) -> str | None:
    """What makes ``data`` something this store never writes, or None: a mapping of tables, each a
    mapping of document ids to records."""
    if not isinstance(data, dict):
        return f"holds {'null' if data is None else type(data).__name__ + ' ' + _clip(data)}, not a mapping of tables"
    for name, table in data.items():
        if not isinstance(table, dict):
            return f"has table {name!r} holding {type(table).__name__} {_clip(table)}, not a mapping of records"
        for doc_id, doc in table.items():
            if not isinstance(doc, dict) or not doc_id.isdigit():
                return f"has a record {name}[{doc_id!r}] that is not a record ({type(doc).__name__} {_clip(doc)})"
    return None


def _clip(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_writable(path: Path) -> None:
    """Refuse a writer that could not save its first change: nothing can be created beside ``path`` (a
    read-only directory or file system, a full disk)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    except OSError as exc:
        raise StoreError(f"{path} cannot be written: creating a file in {path.parent} fails "
                         f"({exc.strerror or exc}); fix the directory's permissions or the disk") from None
    os.close(fd)
    os.unlink(probe)


def _position_key(doc: Mapping[str, Any]) -> str:
    return f"{doc['exchange']}:{doc['symbol']}:{doc['product']}"


def _natural_key(doc: Mapping[str, Any]) -> str:
    return doc["order_id"] if "order_id" in doc else _position_key(doc)


def store_files(state_path: Path) -> list[Path]:
    """Every file and folder that belongs to the store at ``state_path``: the state file, its journal
    archive and its per-day archive (what a reset moves aside together)."""
    return [state_path, journal_path(state_path), segments_directory(state_path), DayArchive.directory_of(state_path)]


def open_store(host: Host) -> TinyDBStore:
    return TinyDBStore(host.config.store.path, read_only=host.read_only)


@hookimpl
def hostspec_register_stores(register: Callable[[str, StoreFactory], None]) -> None:
    register("tinydb", open_store)
