"""The reconciler through real trading days: Thursday 2026-11-19, Friday 20 and, after the weekend,
Monday 23, with the real ``kiteconnect`` client over loopback against the Kite simulator, all on one
ManualClock (a week runs in seconds), and a restart each morning and one in the middle of Friday.

Each morning: no order is LOST, no decision at error level and nothing reported for a person;
yesterday's unfinished orders are EXPIRED with their fills kept; every past order is asked for at
most once after its day; positions equal the broker's; the delivery position that moved into the
broker's holdings is named settlement; an AMO placed on Friday evening is still working on Monday.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from kiteconnect import KiteConnect

from hostspec.calendar import ManualClock
from hostspec.model import Mode, OrderStatus
from recon_plugin.brokers.kite.broker import KiteBroker
from recon_plugin.calendars.india import IndiaCalendar
from recon_plugin.rules import Rule
from recon_plugin.runner import Reconciler
from recon_plugin.settings import Settings
from recon_plugin.stores.tinydb_store import TinyDBStore
from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY, KiteSimulator
from tests.helpers import FRI, MON, THU, DayDesk, alarms, ist

S = OrderStatus
CAL = IndiaCalendar.default()



@pytest.fixture
def kite_clock() -> ManualClock:
    return ManualClock(ist(THU, 9, 20))


class Desk(DayDesk):
    """The Kite desk: a Kite broker to the simulator and a reconciler on the shared store file;
    ``restart()`` is a host restart (new broker and reconciler, the store file reopened)."""

    def __init__(self, sim: KiteSimulator, clock: ManualClock, path: Path) -> None:
        super().__init__()
        self.sim, self.clock, self.path = sim, clock, path
        self.client = KiteConnect(api_key=SIM_API_KEY, access_token=SIM_ACCESS_TOKEN, root=sim.url, timeout=2)
        self.store = TinyDBStore(path)
        self._open()

    def _open(self) -> None:
        self.broker = KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, self.sim.url, timeout=2.0)
        self.reconciler = Reconciler(self.broker, self.store, Settings(mode=Mode.LIVE, interval_seconds=2.0,
                                                                       missing_grace_seconds=4), clock=self.clock,
                                     calendar=CAL)

    def restart(self) -> None:
        self.broker.close()
        self.store.close()
        self.store = TinyDBStore(self.path)
        self._open()

    def place(self, local_id: str, symbol: str, quantity: int, product: str = "CNC", exchange: str = "NSE",
              variety: str = "regular") -> str:
        """Place through the Kite API with the local id as the tag, and record it as the host would."""
        broker_id = str(self.client.place_order(variety=variety, exchange=exchange, tradingsymbol=symbol,
                                                transaction_type="BUY", quantity=quantity, product=product,
                                                order_type="LIMIT", price=100.0, tag=local_id))
        return self.record(local_id, broker_id, symbol, quantity, exchange, product)


def asked_after(sim: KiteSimulator, broker_ids: dict[str, str], since: int) -> Counter[str]:
    """How often each order was asked for directly (GET /orders/{id}) in requests after ``since``."""
    return Counter(local for method, path, *_ in sim.requests[since:] if method == "GET"
                   for local, bid in broker_ids.items() if path == f"/orders/{bid}")


@pytest.fixture
def desk(kite_sim: KiteSimulator, kite_clock: ManualClock, tmp_path: Path) -> Iterator[Desk]:
    d = Desk(kite_sim, kite_clock, tmp_path / "state.json")
    yield d
    d.broker.close()
    d.store.close()


def test_thursday_friday_and_monday_with_a_restart_every_morning(desk: Desk, kite_sim: KiteSimulator,
                                                                  kite_clock: ManualClock) -> None:
    # Thursday: four orders. One never fills, one half-fills, a future fills (NRML, carried), a
    # delivery buy fills; the trader stops the host at 15:00, before the close.
    ids = {"A": desk.place("A", "SBIN", 10), "B": desk.place("B", "ITC", 6),
           "F": desk.place("F", "NIFTY26NOVFUT", 75, "NRML", "NFO"), "C": desk.place("C", "INFY", 5)}
    desk.run(3)
    kite_sim.set_status(ids["A"], "OPEN")
    kite_sim.fill(ids["B"], 3, 441.15)
    kite_sim.fill(ids["F"], 75, 23650.0)
    kite_sim.fill(ids["C"], 5, 1520.5)
    desk.run(4)
    assert alarms(desk.reports) == []
    desk.positions_agree()
    assert {k: desk.local(k).status for k in ids} == {"A": S.PLACED, "B": S.PARTIAL, "F": S.FILLED, "C": S.FILLED}

    # Friday 09:20, after the exchange cancelled A and B at Thursday's close (unseen: the host was down)
    kite_sim.advance_to(ist(FRI, 9, 20))
    desk.restart()
    since = len(kite_sim.requests)
    friday = desk.run(6)
    assert alarms(friday) == []
    assert not [d for r in friday for d in r.decisions if d.rule in (Rule.LOST, Rule.MISSING)]
    assert (desk.local("A").status, desk.local("A").filled_qty) == (S.EXPIRED, 0)
    assert (desk.local("B").status, desk.local("B").filled_qty) == (S.EXPIRED, 3)  # its fills kept
    assert [e.kind for r in friday for e in r.plan.changes.events if e.kind == "order-expired"] == \
        ["order-expired", "order-expired"]
    assert Counter({"A": 1, "B": 1}) == asked_after(kite_sim, ids, since)  # once each, then never again
    settled = [d for r in friday for d in r.decisions if d.rule is Rule.SETTLEMENT]
    assert [(d.symbol, d.local, d.broker) for d in settled] == [
        ("NSE:INFY:CNC", {"quantity": 5}, {"quantity": 0}), ("NSE:ITC:CNC", {"quantity": 3}, {"quantity": 0})]
    assert {(h.symbol, h.t1_quantity) for h in desk.broker.fetch_holdings()} == {("INFY", 5), ("ITC", 3)}
    desk.positions_agree()  # the future carried overnight, both sides

    # a restart in the middle of Friday changes nothing
    kite_clock.advance(timedelta(hours=2))
    desk.restart()
    before = desk.store.load()
    midday = desk.run(3)
    assert all(r.plan.is_empty() for r in midday) and desk.store.load().orders == before.orders

    # Friday evening: an AMO for Monday; then the weekend
    kite_sim.advance_to(ist(FRI, 18))
    desk.place("AMO", "TCS", 2, variety="amo")
    desk.run(3)
    kite_sim.advance_to(ist(MON, 9, 20))
    desk.restart()
    since = len(kite_sim.requests)
    monday = desk.run(6)
    assert alarms(monday) == []
    assert desk.local("AMO").status is S.PLACED  # working: it belongs to Monday's session
    assert asked_after(kite_sim, ids, since) == Counter()  # past orders: never asked again
    desk.positions_agree()
    assert {(h.symbol, h.t1_quantity, h.realised_quantity) for h in desk.broker.fetch_holdings()} == {
        ("INFY", 0, 5), ("ITC", 0, 3)}
    # Thursday's settled orders left the hot state for the per-day archive; exactly once still holds
    assert THU in desk.store.archived_days()
    assert not set(ids) & set(desk.store.load().orders)
    assert {"A", "B", "C", "F"} <= set(desk.store.load_day(THU).orders)


def test_a_host_running_through_the_night_names_the_overnight_move_settlement(desk: Desk, kite_sim: KiteSimulator,
                                                                                kite_clock: ManualClock) -> None:
    bought = desk.place("C", "INFY", 5)
    kite_sim.fill(bought, 5, 1520.5)
    desk.run(3)
    for when in (ist(THU, 15, 31), ist(THU, 18, 31), ist(FRI, 6, 1), ist(FRI, 9, 20)):  # no restart
        kite_sim.advance_to(when)
        desk.run(3)
    rules = [d.rule for r in desk.reports for d in r.decisions]
    assert Rule.SETTLEMENT in rules and Rule.POSITION_DRIFT not in rules
    assert alarms(desk.reports) == []


def test_a_fill_after_the_hosts_last_look_on_an_order_that_expired_unseen_is_reported(
        desk: Desk, kite_sim: KiteSimulator) -> None:
    seen, unseen = desk.place("S", "ITC", 3), desk.place("U", "INFY", 5)
    kite_sim.fill(seen, 3, 441.15)
    kite_sim.set_status(unseen, "OPEN")
    desk.run(4)  # the host saw S filled and U working, then stopped
    kite_sim.advance_to(ist(THU, 14))
    kite_sim.fill(unseen, 5, 1500.0)  # filled while nobody looked
    kite_sim.advance_to(ist(FRI, 9, 20))
    desk.restart()
    friday = desk.run(6)
    mismatch = [d for r in friday for d in r.decisions if d.rule is Rule.HOLDINGS_MISMATCH]
    assert [(d.symbol, d.local["quantity"], d.broker["t1_quantity"]) for d in mismatch] == [("NSE:INFY", 0, 5)]
    assert mismatch[0].local["expired_unseen"] == ["U"]
    assert alarms(friday) == ["holdings-mismatch NSE:INFY"]  # reported once; ITC's settlement is quiet
