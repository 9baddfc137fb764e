"""Kill the reconciler at any instant, many times: no fill is lost or applied twice, and every
event is delivered at least once with a stable id.

The broker is a real paper account on disk (read-only in the reconciling child), the store a real
TinyDB file; the child is SIGKILLed at random instants, and also kills itself right after a store
write and before publishing, the window the outbox exists for.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from hostspec.calendar import ManualClock
from hostspec.model import OrderStatus, Side
from recon_plugin.brokers.paper import PaperExchange
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import every_local_order_and_ledger, order, positions_from_ledger, start_then_kill

ROUNDS = int(os.environ.get("SOAK_ROUNDS", "25"))
pytestmark = pytest.mark.soak

CHILD = textwrap.dedent("""
    import json, os, random, signal, sys, time
    from pathlib import Path
    from recon_plugin.brokers.paper import PaperExchange
    from recon_plugin.plan import Settings
    from recon_plugin.runner import Reconciler
    from recon_plugin.stores.tinydb_store import TinyDBStore

    account, state, received, kill_after_write = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    rng = random.Random(os.getpid())
    broker = PaperExchange(Path(account), read_only=True)
    store = TinyDBStore(state)
    log = open(received, "a")

    def sink(event):
        log.write(json.dumps({"seq": event.seq, "id": event.event_id, "kind": event.kind}) + "\\n")
        log.flush()
        os.fsync(log.fileno())

    apply = store.apply
    def apply_then_maybe_die(changes):
        written = apply(changes)
        if changes.events and rng.random() < kill_after_write:
            os.kill(os.getpid(), signal.SIGKILL)  # written, not yet published
        return written
    store.apply = apply_then_maybe_die

    r = Reconciler(broker, store, Settings(missing_grace_seconds=0, interval_seconds=0.01), emit=sink)
    r.publisher.publish_pending()
    print("ready", flush=True)
    while True:
        r.run_cycle()
        time.sleep(0.002)
""")


def place_orders(account_path, store_path, count=60):
    """A paper account with ``count`` orders: half recorded locally (as the host would), half placed
    from "another app" (adopted as external orders)."""
    exchange = PaperExchange(account_path, seed=3, tick_seconds=0.4, reject_rate=0.1, cancel_rate=0.2)
    store = TinyDBStore(store_path)
    rng = random.Random(5)
    for i in range(count):
        side = rng.choice((Side.BUY, Side.SELL))
        symbol = rng.choice(("INFY", "TCS", "SBIN"))
        quantity = rng.randint(1, 20)
        local = i % 2 == 0
        broker_id = exchange.place_order(tag=f"L{i}" if local else None, exchange="NSE", symbol=symbol,
                                         product="CNC", side=side, quantity=quantity)
        if local:
            store.record_order(order(f"L{i}", status=OrderStatus.SUBMITTED, broker_order_id=broker_id,
                                     side=side, symbol=symbol, quantity=quantity))
    exchange.close()
    store.close()


def child_args(account, state, received, kill_after_write):
    return [sys.executable, "-c", CHILD, str(account), str(state), str(received), str(kill_after_write)]


def test_kills_at_random_instants_never_lose_or_double_a_fill(tmp_path):
    account, state_path, received = tmp_path / "paper.json", tmp_path / "state.json", tmp_path / "received.jsonl"
    place_orders(account, state_path)
    rng = random.Random(11)
    for _ in range(ROUNDS):
        first = start_then_kill(child_args(account, state_path, received, 0.3), rng.uniform(0.0, 0.3))
        assert first in ("ready", "")  # "": it killed itself after a write before saying ready
        reader = TinyDBStore(state_path, read_only=True)
        state = reader.load()
        broker_view = {bo.broker_order_id: bo for bo in PaperExchange(account, read_only=True).fetch_orders()}
        for o in state.orders.values():  # the ledger never runs ahead of the broker's fills
            entry = state.ledger.get(o.order_id)
            assert entry is None or entry.filled_qty <= broker_view[o.broker_order_id].filled_qty
        assert {k: p for k, p in state.positions.items()} == positions_from_ledger(state.orders, state.ledger)

    time.sleep(9)  # every scripted fill has happened at the exchange by now
    child = subprocess.Popen(child_args(account, state_path, received, 0.0), stdout=subprocess.PIPE, text=True)
    child.stdout.readline()
    time.sleep(1.5)
    child.send_signal(signal.SIGTERM)
    child.wait()
    child.stdout.close()
    state = TinyDBStore(state_path, read_only=True).load()
    broker_positions = {p.key: p for p in PaperExchange(account, read_only=True).fetch_positions()}
    assert {k: p for k, p in state.positions.items() if p.buy_qty or p.sell_qty} == broker_positions
    assert len(state.orders) == 60  # 30 recorded + 30 adopted, none twice

    # the outbox: every event written was delivered at least once; duplicates share their id
    deliveries = [json.loads(line) for line in received.read_text().splitlines()]
    ids_by_seq = defaultdict(set)
    for d in deliveries:
        ids_by_seq[d["seq"]].add(d["id"])
    raw = json.loads(state_path.read_text())
    written = raw["meta"]["1"]["event_seq"]
    assert written > 100
    missing = set(range(1, written + 1)) - set(ids_by_seq)
    assert not missing, f"events never delivered: {sorted(missing)[:10]}"
    assert all(len(ids) == 1 for ids in ids_by_seq.values())
    assert len(deliveries) >= written  # duplicates happened around the kills, and are harmless
    fill_ids = {d["id"] for d in deliveries if d["kind"] == "order-filled"}
    applied = [e for e in TinyDBStore(state_path, read_only=True).journal()
               if e.rule in ("fill", "partial-fill", "late-fill")]
    assert len(fill_ids) == len(applied)  # one distinct announcement per fill applied, however often sent
    assert sum(p.buy_value for p in state.positions.values()) == sum(
        p.buy_value for p in broker_positions.values()) != Decimal(0)


# -- the same, across a trading day's close and the next morning ---------------------------------------

WARP_START = "2026-11-19T13:30:00+05:30"  # Thursday, two hours before the close
WARP_SPEED = 3000.0  # one real second is 50 minutes: the close after 2.4 s, Friday 06:00 after 19.8 s
DAYS_CHILD = CHILD.replace(
    "account, state, received, kill_after_write = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])",
    "account, state, received, kill_after_write = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])\n"
    "from datetime import datetime, timedelta\n"
    "from recon_plugin.calendars.india import IndiaCalendar\n"
    "class Warp:  # the day passes fast, and the same for every child: anchored to one wall instant\n"
    "    def now(self):\n"
    "        return datetime.fromisoformat(sys.argv[5]) + timedelta(seconds=(time.time() - float(sys.argv[6])) * "
    "float(sys.argv[7]))\n"
    "warp = Warp()",
).replace("broker = PaperExchange(Path(account), read_only=True)",
          "broker = PaperExchange(Path(account), read_only=True, clock=warp)",
).replace("r = Reconciler(broker, store, Settings(missing_grace_seconds=0, interval_seconds=0.01), emit=sink)",
          "r = Reconciler(broker, store, Settings(missing_grace_seconds=0, interval_seconds=0.01), emit=sink, "
          "clock=warp, calendar=IndiaCalendar.default())")


class Warp:
    def __init__(self, wall0: float) -> None:
        self.wall0 = wall0

    def now(self) -> datetime:
        return datetime.fromisoformat(WARP_START) + timedelta(seconds=(time.time() - self.wall0) * WARP_SPEED)


def test_kills_across_the_close_and_the_next_morning_never_lose_or_double_a_fill(tmp_path):
    assert DAYS_CHILD.count("warp") >= 3  # the child really runs on the warped clock
    account, state_path, received = tmp_path / "paper.json", tmp_path / "state.json", tmp_path / "received.jsonl"
    wall0 = time.time()
    clock = Warp(wall0)
    exchange = PaperExchange(account, seed=3, tick_seconds=300, reject_rate=0.1, cancel_rate=0.2,
                             clock=ManualClock(clock.now()))
    store = TinyDBStore(state_path)
    rng = random.Random(5)
    for i in range(60):
        side, symbol = rng.choice((Side.BUY, Side.SELL)), rng.choice(("INFY", "TCS", "SBIN"))
        quantity = rng.randint(1, 20)
        broker_id = exchange.place_order(tag=f"L{i}" if i % 2 == 0 else None, exchange="NSE", symbol=symbol,
                                         product="CNC", side=side, quantity=quantity)
        if i % 2 == 0:
            now = clock.now()
            store.record_order(order(f"L{i}", status=OrderStatus.SUBMITTED, broker_order_id=broker_id, side=side,
                                     symbol=symbol, quantity=quantity, created_at=now, updated_at=now))
    exchange.close()
    store.close()
    def args(kill_after_write: float) -> list[str]:
        return [sys.executable, "-c", DAYS_CHILD, str(account), str(state_path), str(received), str(kill_after_write),
                WARP_START, repr(wall0), repr(WARP_SPEED)]
    truth = PaperExchange(account, read_only=True, clock=clock)

    def broker_filled() -> dict[str, int]:
        tick = truth.tick_at(clock.now())
        return {bid: truth._state(bid, o, tick).filled_qty for bid, o in truth._account["orders"].items()}

    kills = random.Random(13)
    while clock.now() < datetime.fromisoformat("2026-11-20T06:30:00+05:30"):  # past Friday's book start
        first = start_then_kill(args(0.3), kills.uniform(0.0, 0.3))
        assert first in ("ready", "")
        reader = TinyDBStore(state_path, read_only=True)
        orders, ledger = every_local_order_and_ledger(reader)
        filled = broker_filled()
        for o in orders.values():  # the ledger never runs ahead of the broker's fills
            assert o.order_id not in ledger or ledger[o.order_id].filled_qty <= filled[o.broker_order_id]
        # every fill applied exactly once, archive or not
        assert reader.load().positions == positions_from_ledger(orders, ledger)
        reader.close()

    child = subprocess.Popen(args(0.0), stdout=subprocess.PIPE, text=True)  # a last run without kills
    child.stdout.readline()
    time.sleep(1.5)
    child.send_signal(signal.SIGTERM)
    child.wait()
    child.stdout.close()
    reader = TinyDBStore(state_path, read_only=True)
    orders, ledger = every_local_order_and_ledger(reader)
    assert reader.archived_days() == [date(2026, 11, 19)]  # Thursday left the hot state
    assert all(o.status.is_terminal for o in orders.values())
    assert Counter(o.broker_order_id for o in orders.values()).most_common(1)[0][1] == 1  # each claimed once
    filled = broker_filled()
    assert {o.broker_order_id: (ledger[o.order_id].filled_qty if o.order_id in ledger else 0)
            for o in orders.values()} == {bid: filled[bid] for bid in (o.broker_order_id for o in orders.values())}
    assert sum(filled.values()) > 0 and any(o.status is OrderStatus.EXPIRED or o.status is OrderStatus.CANCELLED
                                            for o in orders.values())
    deliveries = [json.loads(line) for line in received.read_text().splitlines()]
    ids_by_seq = defaultdict(set)
    for d in deliveries:
        ids_by_seq[d["seq"]].add(d["id"])
    assert all(len(ids) == 1 for ids in ids_by_seq.values())  # a redelivered event keeps its id
    assert len({d["id"] for d in deliveries if d["kind"] == "order-filled"}) == len(
        [e for e in reader.journal() if e.rule in ("fill", "partial-fill", "late-fill")])
