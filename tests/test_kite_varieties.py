"""The Kite account as it really is (#14), end to end: the Kite broker through the real ``kiteconnect``
client against the simulator, reconciled: varieties tied to what the trader placed, modify and cancel
walks, IOC and TTL, "not found", newest-first histories and busts."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from hostspec.calendar import ManualClock
from hostspec.model import Mode, OrderStatus, Side
from recon_plugin import runner as runner_module
from recon_plugin.brokers.kite.broker import KiteBroker
from recon_plugin.brokers.kite.statuses import iceberg_family
from recon_plugin.plan import Settings
from recon_plugin.runner import Reconciler
from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY
from tests.helpers import THU, ist, order

S = OrderStatus
KEY = ("NSE", "INFY", "CNC")


@pytest.fixture
def kite_clock() -> ManualClock:
    return ManualClock(ist(THU, 10))  # a Thursday's session: the simulator's clock and the reconciler's


@pytest.fixture
def kite(kite_sim):
    kite_sim.rate_limits = False  # these tests read the book many times a second on a hand-moved clock
    broker = KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, kite_sim.url, timeout=2.0)
    yield broker
    broker.close()


@pytest.fixture
def recon(kite, store, kite_clock):
    events: list = []
    reconciler = Reconciler(kite, store, Settings(mode=Mode.LIVE, missing_grace_seconds=0, interval_seconds=0.05,
                                                  position_settle_seconds=0), emit=events.append, clock=kite_clock)
    reconciler.events = events
    return reconciler


def cycles(recon, kite_clock, n=6):
    for _ in range(n):
        kite_clock.advance(timedelta(seconds=2))
        report = recon.run_cycle()
        assert report.error is None, report.error


def listed(kite):
    return {bo.broker_order_id: bo for bo in kite.fetch_orders()}


def place(kite, **changes):
    request = {"tag": "L1", "exchange": "NSE", "symbol": "INFY", "product": "CNC", "side": Side.BUY, "quantity": 10,
               "price": Decimal("100")} | changes
    return kite.place_order(**request)


def test_an_autoslice_order_of_three_children_reconciles_to_its_parent_with_exact_fills(kite_sim, kite, store,
                                                                                         recon, kite_clock):
    kite_sim.set_freeze_quantity("INFY", 100)
    parent = kite.place_autoslice_order(tag="L1", exchange="NSE", symbol="INFY", product="CNC", side=Side.BUY,
                                        quantity=300, price=Decimal("100"))
    store.record_order(order("L1", status=S.SUBMITTED, broker_order_id=parent, quantity=300))
    children = sorted(listed(kite))
    assert len(children) == 3 and parent not in children
    kite_sim.settle()
    for i, child in enumerate(children):
        kite_sim.fill(child, 100, 100.0 + i * 0.05)
    cycles(recon, kite_clock)
    state = store.load()
    assert state.orders["L1"].status is S.FILLED and state.orders["L1"].filled_qty == 300
    linked = {o.order_id for o in state.orders.values() if o.parent_order_id == "L1"}
    assert linked == {f"L1/{c}" for c in children} and not any(o.external for o in state.orders.values())
    exact = Decimal("100") * 100 + Decimal("100.05") * 100 + Decimal("100.1") * 100
    assert state.positions[KEY].quantity == 300 and state.positions[KEY].buy_value == exact


def test_an_iceberg_order_reconciles_to_its_parent_leg_by_leg(kite_sim, kite, store, recon, kite_clock):
    family = place(kite, variety="iceberg", quantity=300, iceberg_legs=3, iceberg_quantity=100)
    assert family == iceberg_family("L1")
    store.record_order(order("L1", status=S.SUBMITTED, broker_order_id=family, quantity=300))
    for leg in range(3):
        kite_sim.settle()
        working = [bo for bo in kite.fetch_orders() if not bo.status.is_terminal]
        assert len(working) == 1, f"leg {leg + 1}: one leg works at a time"
        kite_sim.fill(working[0].broker_order_id, 100, 99.5)
        cycles(recon, kite_clock, 2)
        assert store.get_order("L1").status is (S.FILLED if leg == 2 else S.PARTIAL)
    state = store.load()
    assert state.orders["L1"].filled_qty == 300 and state.positions[KEY].quantity == 300
    assert len([o for o in state.orders.values() if o.parent_order_id == "L1"]) == 3


def test_a_cover_orders_stoploss_leg_is_linked_and_squares_the_position(kite_sim, kite, store, recon, kite_clock):
    entry = place(kite, variety="co", product="MIS", trigger_price=Decimal("95"))
    store.record_order(order("L1", status=S.SUBMITTED, broker_order_id=entry, product="MIS"))
    kite_sim.settle(entry)
    kite_sim.fill(entry, 10, 100.0)
    kite_sim.settle()  # the stoploss leg walks to TRIGGER PENDING
    cycles(recon, kite_clock, 3)
    state = store.load()
    (leg,) = [o for o in state.orders.values() if o.parent_order_id == "L1"]
    assert (leg.side, leg.order_type, leg.trigger_price, leg.status) == (Side.SELL, "SL-M", Decimal("95"), S.PLACED)
    kite_sim.trigger(leg.broker_order_id)
    kite_sim.settle()
    kite_sim.fill(leg.broker_order_id, 10, 95.0)
    cycles(recon, kite_clock, 3)
    position = store.load().positions[("NSE", "INFY", "MIS")]
    assert (position.quantity, position.buy_value, position.sell_value) == (0, Decimal("1000.0"), Decimal("950.0"))


def test_an_order_a_gtt_placed_is_adopted_and_linked_to_its_gtt(kite_sim, kite_client, store, recon, kite_clock):
    trigger = kite_client.place_gtt(trigger_type=kite_client.GTT_TYPE_SINGLE, tradingsymbol="INFY", exchange="NSE",
                                    trigger_values=[90.0], last_price=100.0, orders=[{
                                        "transaction_type": "BUY", "quantity": 5, "order_type": "LIMIT",
                                        "product": "CNC", "price": 90.0}])["trigger_id"]
    placed = kite_sim.fire_gtt(trigger)
    cycles(recon, kite_clock, 2)
    adopted = store.get_order(f"ext-{placed}")
    assert adopted.external and adopted.parent_order_id == f"gtt:{trigger}"
    assert any(e.data.get("parent_order_id") == f"gtt:{trigger}" for e in recon.events if e.kind == "order-external")


def test_each_modify_and_cancel_walk_leaves_the_order_working_until_it_really_ends(kite_sim, kite, store, recon,
                                                                                   kite_clock):
    oid = place(kite)
    store.record_order(order("L1", status=S.SUBMITTED, broker_order_id=oid, price=Decimal("100"),
                             order_type="LIMIT"))
    kite_sim.settle()
    cycles(recon, kite_clock, 1)
    walked = []

    def walk_through(n):
        """n cycles, each seeing the order's next status (one status per read of the book)."""
        for _ in range(n):
            at_broker = kite_sim.orders[oid]["status"]  # what the next read lists (read without a step)
            cycles(recon, kite_clock, 1)
            walked.append((at_broker, store.get_order("L1").status))

    kite.modify_order(oid, price=Decimal("101.5"))
    walk_through(5)
    assert [b for b, _ in walked[:4]] == ["MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED", "OPEN"]
    assert all(local is S.PLACED for _, local in walked) and store.get_order("L1").price == Decimal("101.5")
    walked.clear()
    kite.cancel_order(oid)
    walk_through(3)
    assert walked[:2] == [("CANCEL PENDING", S.PLACED), ("CANCELLED", S.CANCELLED)]


def test_ioc_and_ttl_orders_expire_as_kite_expires_them(kite_sim, kite, store, recon, kite_clock):
    ioc = place(kite, validity="IOC")
    ttl = place(kite, tag="L2", validity="TTL", validity_ttl=2)
    store.record_order(order("L1", status=S.SUBMITTED, broker_order_id=ioc))
    store.record_order(order("L2", status=S.SUBMITTED, broker_order_id=ttl))
    cycles(recon, kite_clock, 5)  # 10 s
    assert store.get_order("L1").status is S.CANCELLED and store.get_order("L2").status is S.PLACED
    kite_clock.advance(timedelta(minutes=2))
    cycles(recon, kite_clock, 2)
    assert store.get_order("L2").status is S.CANCELLED and store.get_order("L2").validity is None  # not recorded


def test_a_newest_first_history_is_read_for_its_most_advanced_state(kite_sim, kite, store, recon, kite_clock):
    kite_sim.history_newest_first = True
    oid = place(kite)
    store.record_order(order("L1", status=S.SUBMITTED, broker_order_id=oid))
    kite_sim.settle()
    kite_sim.fill(oid, 10, 100.0)
    kite_sim.hide(oid)  # the book lags; the targeted query answers
    cycles(recon, kite_clock, 5)
    assert store.get_order("L1").status is S.FILLED and store.load().positions[KEY].quantity == 10


def test_a_trade_bust_raises_its_alarm_and_holds_the_position(kite_sim, kite, store, recon, kite_clock, monkeypatch):
    monkeypatch.setattr(runner_module, "TRADES_EVERY_SECONDS", 6.0)  # the slow pace of trade reads, shortened
    oid = place(kite)
    store.record_order(order("L1", status=S.SUBMITTED, broker_order_id=oid))
    kite_sim.settle()
    kite_sim.fill(oid, 6, 100.0)
    kite_sim.fill(oid, 4, 100.5)
    cycles(recon, kite_clock, 2)
    assert store.load().positions[KEY].quantity == 10
    kite_sim.bust(oid)
    recon.stats.failures.clear()
    cycles(recon, kite_clock, 6)  # 12 s: the trades are read again at their slow pace
    busts = [e for e in recon.events if e.kind == "reconciliation-discrepancy" and e.data.get("rule") == "trade-bust"]
    assert len(busts) == 1
    assert store.load().positions[KEY].quantity == 10 and store.get_order("L1").open_discrepancy
