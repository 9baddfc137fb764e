"""The TinyDB store: atomic, durable, one write per change set, safe under threads and SIGKILL."""

from __future__ import annotations

import json
import os
import random
import stat
import sys
import textwrap
import threading
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from hostspec.errors import ResourceBusyError
from hostspec.model import ChangeSet, Event, JournalEntry, LedgerEntry, OrderStatus, Position, utcnow
from hostspec.store import ConflictError, StoreError
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import order, start_then_kill

SOAK_ROUNDS = int(os.environ.get("SOAK_ROUNDS", "25"))


def test_file_is_private_and_versioned(store, tmp_path):
    store.record_order(order())
    assert stat.S_IMODE(os.stat(tmp_path / "state.json").st_mode) == 0o600
    assert json.loads((tmp_path / "state.json").read_text())["meta"]["1"]["schema_version"] == 1


def test_a_batch_of_any_size_is_one_write_and_nothing_is_no_write(store):
    before = store.writes
    changes = ChangeSet(
        orders=[order(f"O{i}", broker_order_id=f"B{i}") for i in range(500)],
        positions=[Position("NSE", f"S{i}", "CNC", i) for i in range(50)],
        ledger=[LedgerEntry(f"O{i}", 1, Decimal("1.5")) for i in range(500)],
        journal=[JournalEntry(f"j{i}", utcnow(), "fill", "applied") for i in range(100)],
        events=[Event(f"e{i}", "order-filled", utcnow()) for i in range(100)])
    assert store.apply(changes) == 1
    assert store.writes == before + 1
    assert store.apply(ChangeSet()) == 0
    assert store.writes == before + 1
    state = store.load()
    assert len(state.orders) == 500 and len(state.positions) == 50 and len(state.ledger) == 500
    assert [e.seq for e in store.pending_events()] == list(range(1, 101))


def test_version_conflict_refuses_the_whole_change_set(store):
    stored = store.record_order(order("A"))
    store.record_order(replace(stored, status=OrderStatus.PLACED))  # another writer moved on
    stale = replace(stored, status=OrderStatus.CANCELLED)
    with pytest.raises(ConflictError):
        store.apply(ChangeSet(orders=[order("B", version=0), stale], positions=[Position("NSE", "X", "CNC", 1)]))
    state = store.load()
    assert set(state.orders) == {"A"} and state.orders["A"].status is OrderStatus.PLACED
    assert not state.positions


def test_outbox_watermark_prunes_sent_events(store):
    store.apply(ChangeSet(events=[Event(f"e{i}", "k", utcnow()) for i in range(5)]))
    store.apply(ChangeSet(events_sent_upto=3))
    assert [e.seq for e in store.pending_events()] == [4, 5]
    raw = json.loads(store.path.read_text())
    assert sorted(int(k) for k in raw["outbox"]) == [4, 5]


def test_second_writer_is_refused_and_read_only_readers_are_not(store, tmp_path):
    store.record_order(order("A"))
    with pytest.raises(ResourceBusyError, match="in use by another writer"):
        TinyDBStore(tmp_path / "state.json")
    reader = TinyDBStore(tmp_path / "state.json", read_only=True)
    assert set(reader.load().orders) == {"A"}
    with pytest.raises(StoreError, match="read-only"):
        reader.apply(ChangeSet(orders=[order("B")]))


def test_unreadable_or_foreign_file_is_a_clear_error(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StoreError, match="not readable JSON"):
        TinyDBStore(tmp_path / "bad.json")
    (tmp_path / "newer.json").write_text('{"meta": {"1": {"schema_version": 99}}}')
    for _ in range(2):  # refused again for the same reason: the first refusal released the writer lock
        with pytest.raises(StoreError, match="schema version 99"):
            TinyDBStore(tmp_path / "newer.json")


def test_a_fresh_store_has_no_archive(store):
    store.record_order(order())
    assert dict(store.load().archived) == {} and store.archived_days() == []
    assert store.archive_before(date(2026, 1, 2)) == 0  # the order has no trading date and is not terminal
    assert store.load_day(date(2026, 1, 1)) is None and store.journal_day(date(2026, 1, 1)) == []
    assert not store.path.with_name("state.json.days").exists()


def test_concurrent_writers_lose_no_update(store):
    """Eight threads increment one order's quantity with read-modify-write and retry on conflict,
    while recording orders of their own: every increment and every order survives."""
    store.record_order(order("shared", quantity=0))
    increments = 40

    def worker(n: int) -> None:
        for i in range(increments):
            store.record_order(order(f"T{n}-{i}"))
            while True:
                current = store.get_order("shared")
                try:
                    store.apply(ChangeSet(orders=[replace(current, quantity=current.quantity + 1)]))
                    break
                except ConflictError:
                    continue

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = store.load()
    assert state.orders["shared"].quantity == 8 * increments
    assert len(state.orders) == 1 + 8 * increments
    reopened = TinyDBStore(store.path, read_only=True)
    assert reopened.load().orders["shared"].quantity == 8 * increments


WRITER = textwrap.dedent("""
    import sys, itertools
    from decimal import Decimal
    from hostspec.model import ChangeSet, LedgerEntry, Position, Event, utcnow
    from recon_plugin.stores.tinydb_store import TinyDBStore
    store = TinyDBStore(sys.argv[1])
    start = store.load().checkpoint.get("n", 0)
    print("ready", flush=True)
    for n in itertools.count(start + 1):
        store.apply(ChangeSet(
            positions=[Position("NSE", f"S{n % 300}", "CNC", n)],
            ledger=[LedgerEntry(f"O{n}", n, Decimal(n) / 4)],
            events=[Event(f"e{n}", "order-filled", utcnow(), {"n": n, "pad": "x" * 200})],
            events_sent_upto=n - 1,
            checkpoint={"n": n}))
""")


def test_state_file_survives_sigkill_during_writes(tmp_path):
    """Kill a writer at random instants, many times: the file always loads, and it holds exactly
    the writes that completed (the ledger entry count equals the checkpoint counter)."""
    path = tmp_path / "state.json"
    rng = random.Random(1)
    last = 0
    for _ in range(SOAK_ROUNDS):
        assert start_then_kill([sys.executable, "-c", WRITER, str(path)], rng.uniform(0.01, 0.25)) == "ready"
        reader = TinyDBStore(path, read_only=True)
        state = reader.load()
        n = state.checkpoint.get("n", 0)
        assert n >= last
        assert len(state.ledger) == n
        last = n
    assert last > 0
    writer = TinyDBStore(path)  # the next writer sweeps the temp files killed writers left
    writer.close()
    assert not list(tmp_path.glob(".state.json.tmp-*"))


def entries(start: int, count: int) -> list[JournalEntry]:
    return [JournalEntry(f"j{i}", utcnow(), "fill", f"applied {i}") for i in range(start, start + count)]


def test_the_journal_is_archived_out_of_the_state_file(store):
    for batch in range(5):
        store.apply(ChangeSet(journal=entries(batch * 100, 100)))
    raw = json.loads(store.path.read_text())
    assert len(raw["journal"]) == 100  # only the latest batch: the others were pruned once archived
    assert [e.action for e in store.journal()] == [f"applied {i}" for i in range(500)]
    assert stat.S_IMODE(os.stat(store.journal_path).st_mode) == 0o600
    reader = TinyDBStore(store.path, read_only=True)
    assert [e.seq for e in reader.journal()] == list(range(1, 501))  # no entry twice, none missing


def test_a_torn_archive_line_and_unarchived_entries_are_repaired_at_open(tmp_path):
    path = tmp_path / "state.json"
    first = TinyDBStore(path)
    first.apply(ChangeSet(journal=entries(0, 3)))
    first.close()
    archive = path.with_name("state.json.journal.jsonl")
    archive.write_text(archive.read_text() + '{"seq": 4, "torn')  # a kill mid-append
    reopened = TinyDBStore(path)
    assert archive.read_text().endswith("\n")
    reopened.apply(ChangeSet(journal=entries(3, 2)))
    assert [e.seq for e in reopened.journal()] == [1, 2, 3, 4, 5]
    reopened.close()
    archive.unlink()  # the archive lost entirely: the state file still has what was not pruned
    again = TinyDBStore(path)
    assert [e.seq for e in again.journal()] == [4, 5]
    assert archive.exists()  # and they were archived again at open
