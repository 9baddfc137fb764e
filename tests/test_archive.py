"""Past trading days out of the hot state: what moves, exactly once across the move whatever the
instant of a crash, and how the past is read back (the store, and ``recon status|report --date``)."""

from __future__ import annotations

import json
import os
import random
import stat
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from hostspec.model import ChangeSet, Event, JournalEntry, LedgerEntry, Order, OrderStatus, Position
from hostspec.store import ConflictError, StoreError
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import order, start_then_kill, tradehost, write

THU, FRI, MON = date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 23)
THU_NOON = datetime(2026, 11, 19, 6, 30, tzinfo=UTC)  # 12:00 in Mumbai
FRI_MORNING = datetime(2026, 11, 20, 3, 40, tzinfo=UTC)
SOAK_ROUNDS = int(os.environ.get("SOAK_ROUNDS", "25"))


def day_order(order_id: str, status: OrderStatus, trading_date: date | None = THU, filled: int = 0,
              avg: str | None = None) -> Order:
    return order(order_id, status, broker_order_id=f"B-{order_id}", trading_date=trading_date, filled_qty=filled,
                 avg_price=Decimal(avg) if avg else None)


def fill(order_id: str, qty: int, value: str) -> LedgerEntry:
    return LedgerEntry(order_id, qty, Decimal(value))


def entry(entry_id: str, at: datetime, order_id: str | None = None, symbol: str | None = None) -> JournalEntry:
    return JournalEntry(entry_id, at, "fill", f"applied ({entry_id})", order_id=order_id, symbol=symbol,
                        local={"filled_qty": 0}, broker={"avg_price": "1501.05"})


THURSDAY = [
    day_order("T-filled", OrderStatus.FILLED, filled=10, avg="1501.05"),
    day_order("T-cancelled", OrderStatus.CANCELLED, filled=3, avg="1499.9500000000000000000001"),
    day_order("T-rejected", OrderStatus.REJECTED),
    day_order("T-expired", OrderStatus.EXPIRED, filled=7, avg="100.33333333333333"),
    day_order("T-partial", OrderStatus.PARTIAL, filled=2, avg="1500"),  # not terminal: stays
    day_order("T-lost", OrderStatus.LOST),  # not terminal: stays
    day_order("F-filled", OrderStatus.FILLED, trading_date=FRI, filled=10, avg="1"),  # today's: stays
    day_order("U-filled", OrderStatus.FILLED, trading_date=None, filled=10, avg="1"),  # no date yet: stays
]
LEDGER = [fill("T-filled", 10, "15010.5"), fill("T-cancelled", 3, "4499.8500000000000000000003"),
          fill("T-expired", 7, "702.33333333333331"), fill("T-partial", 2, "3000"), fill("F-filled", 10, "10"),
          fill("U-filled", 10, "10")]
MOVED = {"T-filled", "T-cancelled", "T-rejected", "T-expired"}


def seed(store: TinyDBStore) -> None:
    journal = [entry("j-thu", THU_NOON, "T-filled"), entry("j-drift", THU_NOON, symbol="INFY"),
               entry("j-expiry", FRI_MORNING, "T-expired"), entry("j-fri", FRI_MORNING, "F-filled")]
    store.apply(ChangeSet(orders=THURSDAY, ledger=LEDGER, positions=[Position("NSE", "INFY", "CNC", 42)],
                          journal=journal, events=[Event("e1", "order-filled", THU_NOON, order_id="T-filled")]))


def test_terminal_orders_of_past_days_move_with_their_ledger_entries_and_nothing_else(store):
    seed(store)
    before = store.load()
    assert store.archive_before(FRI) == 4
    state = store.load()
    assert set(state.orders) == {o.order_id for o in THURSDAY} - MOVED
    assert set(state.ledger) == {"T-partial", "F-filled", "U-filled"}
    assert state.positions == before.positions and state.checkpoint == before.checkpoint
    assert all(state.orders[k] is before.orders[k] for k in state.orders)  # the cache kept identity
    assert dict(state.archived) == {f"B-{oid}": oid for oid in MOVED}
    assert store.get_order("T-filled") is None
    assert [e.event_id for e in store.pending_events()] == ["e1"]  # the outbox is today's business
    raw = json.loads(store.path.read_text())
    assert sorted(d["order_id"] for d in raw["orders"].values()) == sorted(state.orders)
    assert sorted(d["order_id"] for d in raw["ledger"].values()) == sorted(state.ledger)
    assert raw["meta"]["1"]["archived_days"] == ["2026-11-19"]
    assert store.archived_days() == [THU]

    day = store.load_day(THU)
    assert day is not None
    assert day.orders == {oid: before.orders[oid] for oid in MOVED}  # Decimal-exact, version included
    assert day.ledger == {oid: before.ledger[oid] for oid in MOVED if oid in before.ledger}
    assert day.ledger["T-cancelled"].filled_value == Decimal("4499.8500000000000000000003")
    assert store.load_day(MON) is None

    directory = tmp_days(store)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert sorted(p.name for p in directory.iterdir()) == ["2026-11-19.index.json", "2026-11-19.json"]
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in directory.iterdir())


def tmp_days(store: TinyDBStore) -> Path:
    return store.path.with_name(store.path.name + ".days")


def test_the_archive_and_its_index_read_back_after_reopening(store):
    seed(store)
    store.archive_before(FRI)
    expected = store.load_day(THU)
    store.close()
    for read_only in (True, False):
        again = TinyDBStore(store.path, read_only=read_only)
        assert dict(again.load().archived) == {f"B-{oid}": oid for oid in MOVED}
        assert again.load_day(THU) == expected
        assert [e.entry_id for e in again.journal()] == ["j-thu", "j-drift", "j-expiry", "j-fri"]
        again.close()


def test_archiving_again_moves_nothing_and_writes_nothing(store):
    seed(store)
    assert store.archive_before(FRI) == 4
    files = {p.name: p.read_bytes() for p in tmp_days(store).iterdir()}
    writes, generation = store.writes, store.generation
    assert store.archive_before(FRI) == 0
    assert store.archive_before(THU) == 0
    assert (store.writes, store.generation) == (writes, generation)
    assert {p.name: p.read_bytes() for p in tmp_days(store).iterdir()} == files


def test_a_later_day_adds_to_the_archive_and_earlier_views_stay_as_they_were(store):
    seed(store)
    store.archive_before(FRI)
    thursday_view = store.load()
    partial = store.get_order("T-partial")
    store.apply(ChangeSet(orders=[replace(partial, status=OrderStatus.EXPIRED)]))  # Friday's rollover expires it
    assert store.archive_before(MON) == 2  # T-partial (into Thursday's file), F-filled; U-filled has no date
    assert set(store.load().orders) == {"T-lost", "U-filled"}
    assert set(store.load_day(THU).orders) == MOVED | {"T-partial"}
    assert set(store.load_day(FRI).orders) == {"F-filled"}
    assert store.archived_days() == [THU, FRI]
    assert "B-T-partial" not in thursday_view.archived and "B-T-partial" in store.load().archived


def test_an_archived_order_cannot_be_written_again(store):
    seed(store)
    stale = store.get_order("T-filled")
    store.archive_before(FRI)
    writes = store.writes
    with pytest.raises(StoreError, match="T-filled was archived with trading date 2026-11-19"):
        store.record_order(replace(stale, version=0))
    with pytest.raises(ConflictError, match="moved to the archive"):  # a plan made before the move: re-plan
        store.apply(ChangeSet(orders=[replace(stale, filled_qty=11)]))
    with pytest.raises(ConflictError, match="moved to the archive"):  # a second fill of an archived order
        store.apply(ChangeSet(ledger=[fill("T-filled", 11, "16511.55")]))
    assert store.writes == writes
    assert "T-filled" not in store.load().orders and store.load_day(THU).ledger["T-filled"].filled_qty == 10


def test_past_days_journal_moves_to_its_day_and_the_whole_journal_still_reads_in_order(store):
    seed(store)
    store.archive_before(FRI)
    # the expiry entry was written on Friday about a Thursday order: it is Thursday's
    assert [e.entry_id for e in store.journal_day(THU)] == ["j-thu", "j-drift", "j-expiry"]
    assert store.journal_day(FRI) == []
    assert [e.entry_id for e in store.journal()] == ["j-thu", "j-drift", "j-expiry", "j-fri"]
    assert [e.seq for e in store.journal()] == [1, 2, 3, 4]
    assert [e.entry_id for e in store.journal(since=FRI_MORNING)] == ["j-expiry", "j-fri"]
    lines = store.journal_path.read_text().splitlines()
    assert [json.loads(line)["entry_id"] for line in lines] == ["j-fri"]
    assert store.journal_day(THU)[0] == JournalEntry("j-thu", THU_NOON, "fill", "applied (j-thu)", "T-filled",
                                                     None, {"filled_qty": 0}, {"avg_price": "1501.05"}, 1)
    store.apply(ChangeSet(journal=[entry("j-later", FRI_MORNING + timedelta(hours=1))]))
    store.close()
    again = TinyDBStore(store.path)  # the journal archive's last line is no longer its newest entry
    assert [e.seq for e in again.journal()] == [1, 2, 3, 4, 5]
    again.close()


def test_an_entry_naming_no_dated_order_belongs_to_the_day_of_its_time_in_the_exchange_zone(store):
    evening = datetime(2026, 11, 19, 20, 0, tzinfo=UTC)  # Friday 01:30 in Mumbai
    store.apply(ChangeSet(journal=[entry("j-evening", evening, symbol="INFY")]))
    assert store.archive_before(FRI, zone=timezone(timedelta(hours=5, minutes=30))) == 0
    assert store.archived_days() == []
    store.archive_before(FRI)  # in UTC, it is Thursday's
    assert [e.entry_id for e in store.journal_day(THU)] == ["j-evening"]


def test_a_crash_between_the_archive_write_and_the_state_write_loses_and_duplicates_nothing(store, monkeypatch):
    seed(store)
    real_flush = store._storage._flush

    def dies_once() -> None:
        monkeypatch.setattr(store._storage, "_flush", real_flush)
        raise OSError("killed before the state file was replaced")

    monkeypatch.setattr(store._storage, "_flush", dies_once)
    with pytest.raises(StoreError, match="killed before"):
        store.archive_before(FRI)
    assert (tmp_days(store) / "2026-11-19.json").exists()  # the day was written first...
    state = store.load()
    assert set(state.orders) >= MOVED and not state.archived  # ...but the state file's copy counts
    assert store.load_day(THU).orders == {}
    # a late fill lands on a moved-but-not-dropped order before anyone archives again
    cancelled = state.orders["T-cancelled"]
    store.apply(ChangeSet(orders=[replace(cancelled, filled_qty=4)], ledger=[fill("T-cancelled", 4, "5999.8")]))
    store.close()

    reopened = TinyDBStore(store.path)
    assert set(reopened.load().orders) >= MOVED and not reopened.load().archived
    assert reopened.archive_before(FRI) == 4
    assert reopened.archive_before(FRI) == 0
    day = reopened.load_day(THU)
    assert set(day.orders) == MOVED and not MOVED & set(reopened.load().orders)
    assert day.orders["T-cancelled"].filled_qty == 4 and day.ledger["T-cancelled"].filled_value == Decimal("5999.8")
    assert [e.seq for e in reopened.journal()] == [1, 2, 3, 4]
    raw = json.loads((tmp_days(store) / "2026-11-19.json").read_text())
    assert sorted(raw["orders"]) == sorted(MOVED) and [d["seq"] for d in raw["journal"]] == [1, 2, 3]
    reopened.close()


def test_a_failed_journal_rewrite_after_the_move_holds_entries_twice_until_the_next_rollover(store, monkeypatch):
    seed(store)
    import recon_plugin.stores.journal_archive as module

    def fails(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(module, "atomic_write", fails)
    assert store.archive_before(FRI) == 4
    monkeypatch.undo()
    assert len(store.journal_path.read_text().splitlines()) == 4  # the moved entries are still there
    assert [e.seq for e in store.journal()] == [1, 2, 3, 4]  # and read once
    assert store.archive_before(FRI) == 0
    assert len(store.journal_path.read_text().splitlines()) == 1
    assert [e.entry_id for e in store.journal_day(THU)] == ["j-thu", "j-drift", "j-expiry"]


def test_a_missing_day_file_stops_the_writer_and_a_missing_index_is_rebuilt(store):
    seed(store)
    store.archive_before(FRI)
    store.close()
    index = tmp_days(store) / "2026-11-19.index.json"
    index.unlink()
    again = TinyDBStore(store.path)
    assert index.exists() and dict(again.load().archived) == {f"B-{oid}": oid for oid in MOVED}
    again.close()
    (tmp_days(store) / "2026-11-19.json").unlink()
    for _ in range(2):  # the second open is refused for the same reason, not as a second writer: the
        with pytest.raises(StoreError, match="archive of 2026-11-19 is missing"):  # first released its lock
            TinyDBStore(store.path)
    reader = TinyDBStore(store.path, read_only=True)  # an operator can still look
    assert set(reader.load().orders) == {o.order_id for o in THURSDAY} - MOVED


def test_a_replaced_state_file_does_not_take_the_old_archive_for_its_own(store, caplog):
    """``paper reset`` renames the state file and a new account reuses broker ids (P00000001 ...): the
    old archive must not hide the new account's orders, nor be merged into."""
    seed(store)
    store.archive_before(FRI)
    store.close()
    store.path.replace(store.path.with_name("state.json.bak"))
    fresh = TinyDBStore(store.path)
    assert "ignoring 1 archived days" in caplog.text
    assert fresh.archived_days() == [] and not fresh.load().archived and fresh.load_day(THU) is None
    fresh.record_order(day_order("T-filled", OrderStatus.FILLED, filled=10, avg="1"))  # the same ids, a new account
    with pytest.raises(StoreError, match="belongs to another state file"):
        fresh.archive_before(FRI)
    assert set(fresh.load().orders) == {"T-filled"}
    fresh.close()


def test_a_state_file_from_before_the_archive_gets_its_id_at_the_first_writer_open(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{"meta": {"1": {"schema_version": 1, "checkpoint": {}, "events_sent_upto": 0, '
                    '"event_seq": 0, "journal_seq": 0}}}')
    reader = TinyDBStore(path, read_only=True)
    assert reader.archived_days() == []
    writer = TinyDBStore(path)
    writer.record_order(day_order("T-filled", OrderStatus.FILLED))
    assert writer.archive_before(FRI) == 1 and writer.archived_days() == [THU]
    assert json.loads(path.read_text())["meta"]["1"]["store_id"]
    writer.close()


KILLED_ARCHIVER = textwrap.dedent("""
    import sys, itertools
    from datetime import date, timedelta
    from decimal import Decimal
    from hostspec.model import ChangeSet, JournalEntry, LedgerEntry, Order, OrderStatus, Side, utcnow
    from recon_plugin.stores.tinydb_store import TinyDBStore
    store = TinyDBStore(sys.argv[1])
    first = date(2026, 1, 1)
    start = store.load().checkpoint.get("days", 0)
    print("ready", flush=True)
    for n in itertools.count(start + 1):  # day n: 40 orders recorded and settled, then the rollover
        day, now = first + timedelta(days=n), utcnow()
        orders = [Order(f"D{n}-{i}", "NSE", "INFY", "CNC", Side.BUY, 10, OrderStatus.FILLED, now, now,
                        broker_order_id=f"B{n}-{i}", filled_qty=10, avg_price=Decimal("100.05"), trading_date=day)
                  for i in range(40)]
        store.apply(ChangeSet(orders=orders, ledger=[LedgerEntry(o.order_id, 10, Decimal("1000.5")) for o in orders],
                              journal=[JournalEntry(f"j{n}-{i}", now, "fill", "applied", order_id=f"D{n}-{i}")
                                       for i in range(40)], checkpoint={"days": n}))
        store.archive_before(day + timedelta(days=1))
""")


def test_sigkill_at_any_instant_of_the_move_loses_and_duplicates_nothing(tmp_path):
    """Kill a process that records a day and archives it, over and over, at random instants: every
    order recorded is in exactly one place (the state file or its day), with its ledger entry, and
    archiving again finishes the move."""
    path = tmp_path / "state.json"
    rng = random.Random(3)
    for _ in range(max(3, SOAK_ROUNDS // 2)):
        assert start_then_kill([sys.executable, "-c", KILLED_ARCHIVER, str(path)], rng.uniform(0.02, 0.3)) == "ready"
        reader = TinyDBStore(path, read_only=True)
        state, days = reader.load(), reader.archived_days()
        recorded = {f"D{n}-{i}" for n in range(1, state.checkpoint.get("days", 0) + 1) for i in range(40)}
        archived = [oid for d in days for oid in reader.load_day(d).orders]
        assert len(archived) == len(set(archived))
        assert not set(archived) & set(state.orders)
        assert set(archived) | set(state.orders) == recorded
        assert set(state.archived.values()) == set(archived)
        ledgers = set(state.ledger) | {oid for d in days for oid in reader.load_day(d).ledger}
        assert ledgers == recorded
        assert sorted(e.entry_id for e in reader.journal()) == sorted(f"j{oid[1:]}" for oid in recorded)
        reader.close()
    assert recorded
    writer = TinyDBStore(path)
    last = writer.load().checkpoint["days"]
    writer.archive_before(date(2026, 1, 1) + timedelta(days=last + 1))
    assert not writer.load().orders and not writer.load().ledger
    for d in writer.archived_days():
        n = (d - date(2026, 1, 1)).days
        assert set(writer.load_day(d).orders) == {f"D{n}-{i}" for i in range(40)}
        assert [e.entry_id for e in writer.journal_day(d)] == [f"j{n}-{i}" for i in range(40)]
    assert not list(tmp_days(writer).glob(".*.tmp-*"))
    writer.close()


# -- the commands ---------------------------------------------------------------------------------------

@pytest.fixture
def archived_config(tmp_path):
    store = TinyDBStore(tmp_path / "state.json")
    seed(store)
    store.archive_before(FRI)
    store.close()
    return write(tmp_path / "c.yaml", f"mode: paper\nstore:\n  path: {tmp_path / 'state.json'}\n")


def test_recon_status_and_report_show_an_archived_day(archived_config):
    status = tradehost("recon", "status", "--config", str(archived_config), "--date", "2026-11-19")
    assert status.returncode == 0, status.stderr
    assert "trading date 2026-11-19 (archived)" in status.stdout and "orders (4):" in status.stdout
    assert "T-cancelled" in status.stdout and "avg 1499.95 " in status.stdout  # at tick; exact in --json
    assert "T-partial" not in status.stdout
    assert "bought       20 for 20212.68" in status.stdout  # the ledger's exact sum, at tick
    as_json = json.loads(tradehost("recon", "status", "--config", str(archived_config), "--date", "2026-11-19",
                                   "--json").stdout)
    assert sorted(o["order_id"] for o in as_json["orders"]) == sorted(MOVED)
    assert {e["order_id"]: e["filled_value"] for e in as_json["ledger"]}["T-expired"] == "702.33333333333331"

    report = tradehost("recon", "report", "--config", str(archived_config), "--date", "2026-11-19")
    assert report.returncode == 0, report.stderr
    assert ": 3 entries (" in report.stdout and "applied (j-expiry)" in report.stdout
    assert "j-fri" not in report.stdout

    today = tradehost("recon", "status", "--config", str(archived_config), "--all")  # unchanged without --date
    assert "; 4 orders, 1 position;" in today.stdout and "T-partial" in today.stdout and "T-filled" not in today.stdout
    assert "positions (1):" in today.stdout
    assert ": 4 entries (" in tradehost("recon", "report", "--config", str(archived_config)).stdout


def test_a_day_without_archive_says_so_and_a_bad_date_is_refused(archived_config):
    for command in ("status", "report"):
        missing = tradehost("recon", command, "--config", str(archived_config), "--date", "2026-11-20")
        assert missing.returncode == 1
        assert "nothing of 2026-11-20 (it holds 1 days, 2026-11-19 to 2026-11-19" in missing.stderr
        bad = tradehost("recon", command, "--config", str(archived_config), "--date", "2026-02-30")
        assert bad.returncode == 2 and "not a date (YYYY-MM-DD): '2026-02-30'" in bad.stderr
    assert "--date YYYY-MM-DD" in tradehost("recon", "status", "--help").stdout
