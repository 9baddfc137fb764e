"""Pushed order updates (#13) through the same plan as a poll: partial snapshots, each fill once
whatever arrives first, an older report of an order changing nothing."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from hostspec.model import OrderStatus
from recon_plugin.engine import plan_cycle
from recon_plugin.plan import Settings, Snapshot
from tests.helpers import advance, at, broker, order, state

S = OrderStatus
KEY = ("NSE", "INFY", "CNC")


def poll(local, book, now):
    p = plan_cycle(local, Snapshot(list(book), at(now), run="r1", sequence=int(now)), Settings(missing_grace_seconds=0))
    return advance(local, p.changes), p


def push(local, update, now):
    p = plan_cycle(local, Snapshot([update], at(now), partial=True), Settings(missing_grace_seconds=0))
    return advance(local, p.changes), p


def partly(filled, when):
    return broker(S.PLACED, filled, "100", updated_at=at(when), raw="UPDATE" if filled else "OPEN")


def done(when):
    return broker(S.FILLED, 10, "100.5", updated_at=at(when), raw="COMPLETE")


@pytest.mark.parametrize("order_of_arrival", list(itertools.permutations(["push-4", "poll-4", "push-10", "poll-10"])))
def test_the_same_fills_by_push_and_by_poll_in_any_order_are_applied_once(order_of_arrival):
    local = state(order("A", status=S.PLACED))
    reports = {"push-4": (push, partly(4, 10)), "poll-4": (poll, partly(4, 10)), "push-10": (push, done(20)),
               "poll-10": (poll, done(20))}
    for i, name in enumerate(order_of_arrival):
        how, report = reports[name]
        local, _ = how(local, [report] if how is poll else report, 30 + i)
    assert local.orders["A"].status is S.FILLED and local.orders["A"].filled_qty == 10
    assert local.positions[KEY].quantity == 10 and local.positions[KEY].buy_value == Decimal("1005.0")
    assert local.ledger["A"].filled_qty == 10


def test_a_push_older_than_the_last_poll_changes_nothing_and_alarms_nothing():
    local, _ = poll(state(order("A", status=S.PLACED)), [done(20)], 30)
    local, p = push(local, partly(4, 10), 31)
    assert p.is_empty()
    assert local.orders["A"].status is S.FILLED


def test_a_poll_begun_before_a_push_and_applied_after_it_changes_nothing():
    local, _ = push(state(order("A", status=S.PLACED)), done(20), 30)
    local, p = poll(local, [partly(4, 10)], 29)  # fetched before the push was applied
    assert not [d for d in p.decisions if d.rule in ("trade-bust", "stale-status")]
    assert local.orders["A"].status is S.FILLED and local.positions[KEY].quantity == 10


def test_a_push_says_nothing_about_other_orders():
    local = state(order("A", status=S.PLACED), order("B", status=S.PLACED, broker_order_id="B-B"))
    for now in range(30, 40):
        local, _p = push(local, partly(4, 10), now)
    assert local.orders["B"].missing_count == 0 and local.orders["B"].status is S.PLACED
    assert "last_snapshot_at" not in local.checkpoint  # a push's write records no poll time


def test_a_push_for_an_order_placed_elsewhere_is_adopted():
    local, p = push(state(), broker(S.PLACED, 2, "99", broker_order_id="X9", updated_at=at(5)), 30)
    assert local.orders["ext-X9"].external and local.positions[KEY].quantity == 2
    assert [e.kind for e in p.changes.events] == ["order-external", "order-filled"]


def test_a_push_before_the_order_is_in_the_book_is_found_by_its_tag():
    local = state(order("L-1", status=S.PENDING, broker_order_id=None))
    local, _p = push(local, broker(S.PLACED, broker_order_id="B-9", tag="L-1", updated_at=at(5)), 30)
    assert local.orders["L-1"].broker_order_id == "B-9" and not any(o.external for o in local.orders.values())


# -- the paper broker pushes (#13) -------------------------------------------------------------------

def test_the_paper_exchange_pushes_its_fills_to_a_running_reconciler(tmp_path):
    """Polls every 60 s; the fills reach the store through the push channel long before the next poll."""
    import threading

    from hostspec.calendar import ManualClock
    from hostspec.model import Side
    from recon_plugin.brokers.paper import PaperExchange
    from recon_plugin.runner import Reconciler
    from recon_plugin.stores.tinydb_store import TinyDBStore

    clock = ManualClock(at(0))
    exchange = PaperExchange(tmp_path / "paper.json", seed=3, tick_seconds=1.0, reject_rate=0, cancel_rate=0,
                             clock=clock)
    store = TinyDBStore(tmp_path / "state.json")
    ids = [exchange.place_order(tag=f"P{i}", exchange="NSE", symbol="INFY", product="CNC", side=Side.BUY,
                                quantity=10) for i in range(3)]
    for i, broker_id in enumerate(ids):
        store.record_order(order(f"P{i}", status=S.SUBMITTED, broker_order_id=broker_id))
    reconciler = Reconciler(exchange, store, Settings(missing_grace_seconds=0, interval_seconds=60), clock=clock)
    reconciler.start()
    try:
        done = threading.Event()
        for _ in range(400):  # the simulated market moves on; the pusher notices within a quarter tick
            clock.advance(1.0)
            if all(o.status is S.FILLED for o in store.load().orders.values()):
                done.set()
                break
            done.wait(0.05)
        assert done.is_set(), {o.order_id: o.status for o in store.load().orders.values()}
        assert reconciler.stats.pushes >= 3 and reconciler.push_connected
        assert reconciler.stats.cycles <= 3  # the first poll and the resync on connect: the rest came by push
        assert store.load().positions[KEY].quantity == 30
    finally:
        reconciler.stop()
        exchange.close()
        store.close()


def test_fills_made_while_the_channel_was_down_are_caught_by_the_resync_on_reconnect(tmp_path):
    """Pushes are not replayed after a disconnect: every (re)connect polls at once, whatever the slow
    pace of polls while the channel is up."""
    import threading

    from recon_plugin.runner import Reconciler
    from recon_plugin.stores.tinydb_store import TinyDBStore
    from tests.helpers import ScriptedBroker

    class Pushing(ScriptedBroker):
        sink = None

        def start_push(self, loop, sink):
            self.sink = sink
            sink.connected()

        def stop_push(self):
            pass

    broker_ = Pushing([broker(S.PLACED, updated_at=at(1))])
    store = TinyDBStore(tmp_path / "state.json")
    store.record_order(order("A", status=S.PLACED))
    reconciler = Reconciler(broker_, store, Settings(missing_grace_seconds=0, interval_seconds=0.05,
                                                     push_poll_seconds=3600))
    reconciler.start()
    try:
        waited = threading.Event()
        for _ in range(100):
            if reconciler.push_connected and reconciler.stats.cycles >= 2:  # the first poll, the resync
                break
            waited.wait(0.02)
        polls = reconciler.stats.cycles
        broker_.sink.disconnected("connection reset")
        broker_.book = [broker(S.FILLED, 10, "100", updated_at=at(5))]  # filled while the channel was down
        waited.wait(0.3)  # down: polling at the interval again
        assert store.get_order("A").status is S.FILLED and reconciler.stats.cycles > polls
        broker_.sink.connected()
        broker_.book = [broker(S.FILLED, 10, "100", updated_at=at(5))]
        for _ in range(100):
            if reconciler.push_connected:
                break
            waited.wait(0.02)
        settled = reconciler.stats.cycles
        waited.wait(0.3)
        assert reconciler.stats.cycles <= settled + 1  # up again: one resync poll, then the slow pace
    finally:
        reconciler.stop()
        store.close()
