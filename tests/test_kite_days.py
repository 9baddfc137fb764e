"""The Kite simulator through trading days (Thursday 2026-11-19, Friday 20, the weekend, Monday 23 and
the Guru Nanak Jayanti holiday on Tuesday 24), on a ManualClock, through the real ``kiteconnect``
client and the Kite broker over loopback: the close, the next morning's empty book, yesterday's ids,
holdings T1 then realised, NRML overnight, the MIS square-off, AMOs, weekends and holidays."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex

from hostspec.broker import BrokerError, FailureKind, HoldingsBroker
from hostspec.calendar import ManualClock
from hostspec.model import Holding, OrderStatus
from recon_plugin.brokers.kite.broker import KiteBroker, is_unknown_order
from recon_plugin.brokers.overnight import EXCHANGE_MASS_CANCEL, MIS_BLOCKED_MESSAGE, SQUARE_OFF_MESSAGE
from recon_plugin.testing.kite_simulator import (
    SIM_ACCESS_TOKEN,
    SIM_API_KEY,
    SQUARE_OFF_PLACED_BY,
    USER_ID,
    KiteSimulator,
    _error,
)
from tests.helpers import FRI, MON, SAT, SUN, THU, TUE, WED, ist

S = OrderStatus



@pytest.fixture
def kite_clock() -> ManualClock:
    """Overrides the plugin's fixture: ``kite_sim`` runs on this clock, from Thursday 09:20 IST."""
    return ManualClock(ist(THU, 9, 20))


@pytest.fixture
def kite(kite_sim: KiteSimulator) -> Iterator[KiteBroker]:
    broker = KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, kite_sim.url, timeout=1.0)
    yield broker
    broker.close()


def place(client: KiteConnect, symbol: str = "ITC", quantity: int = 10, product: str = "CNC",
          exchange: str = "NSE", side: str = "BUY", variety: str = "regular", tag: str | None = "recon1") -> str:
    return str(client.place_order(variety=variety, exchange=exchange, tradingsymbol=symbol, transaction_type=side,
                                  quantity=quantity, product=product, order_type="LIMIT", price=100.0, tag=tag))


def net(client: KiteConnect) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(p["exchange"], p["tradingsymbol"], p["product"]): p for p in client.positions()["net"]}


def snapshot(sim: KiteSimulator) -> tuple[Any, ...]:
    with sim.lock:
        return copy.deepcopy((sim.orders, sim.histories, sim.trades, sim.overnight, sim.holdings, sim.adjustments))


# -- timestamps ------------------------------------------------------------------------------------

def test_every_timestamp_comes_from_the_clock_in_ist(kite_sim, kite_client, kite_clock):
    kite_clock.set(datetime(2026, 11, 19, 4, 5, 6, tzinfo=UTC))  # 09:35:06 IST
    oid = place(kite_client)
    kite_sim.fill(oid, 10, 410.5)
    (order,) = kite_client.orders()
    assert order["order_timestamp"] == datetime(2026, 11, 19, 9, 35, 6)  # the client's naive IST
    assert order["exchange_timestamp"] == datetime(2026, 11, 19, 9, 35, 6)
    assert order["exchange_update_timestamp"] == "2026-11-19 09:35:06"
    (trade,) = kite_client.trades()
    assert trade["fill_timestamp"] == datetime(2026, 11, 19, 9, 35, 6) and trade["order_timestamp"] == "09:35:06"
    assert kite_sim.trading_date(oid) == THU


# -- the close -------------------------------------------------------------------------------------

def test_at_the_close_the_exchange_cancels_unfinished_day_orders_keeping_their_fills(kite_sim, kite_client, kite):
    unfilled, half, done = place(kite_client), place(kite_client, "INFY"), place(kite_client, "TCS")
    kite_sim.set_status(unfilled, "OPEN")
    kite_sim.fill(half, 3, 1899.5)
    kite_sim.fill(done, 10, 3500.0)
    kite_sim.advance_to(ist(THU, 15, 29, 59))
    assert {o["status"] for o in kite_client.orders()} == {"OPEN", "COMPLETE"}
    lines = kite_sim.advance_to(ist(THU, 15, 45))
    assert lines == ["NSE 2026-11-19 close at 2026-11-19T15:30:00+05:30: the exchange cancelled 2 unfinished orders"]
    book = {o["order_id"]: o for o in kite_client.orders()}  # still listed until the next day's book begins
    assert [(book[i]["status"], book[i]["status_message"], book[i]["filled_quantity"]) for i in (unfilled, half)] \
        == [("CANCELLED", EXCHANGE_MASS_CANCEL, 0), ("CANCELLED", EXCHANGE_MASS_CANCEL, 3)]
    assert book[half]["exchange_update_timestamp"] == "2026-11-19 15:30:00" and book[done]["status"] == "COMPLETE"
    statuses = {bo.broker_order_id: (bo.status, bo.filled_qty) for bo in kite.fetch_orders()}
    assert statuses == {unfilled: (S.CANCELLED, 0), half: (S.CANCELLED, 3), done: (S.FILLED, 10)}


# -- the next morning ------------------------------------------------------------------------------

@pytest.mark.parametrize("status, error", [(500, kex.OrderException), (400, kex.InputException)])
def test_next_morning_the_book_is_empty_and_yesterdays_ids_are_not_found(kite_sim, kite_client, kite, status,
                                                                          error):
    kite_sim.unknown_order_status = status
    old = place(kite_client)
    kite_sim.fill(old, 4, 410.5)
    kite_sim.advance_to(ist(FRI, 5, 59))
    assert [o["order_id"] for o in kite_client.orders()] == [old] and len(kite_client.trades()) == 1
    kite_sim.advance_to(ist(FRI, 6))
    assert kite_client.orders() == [] and kite_client.trades() == []
    for ask in (kite_client.order_history, kite_client.order_trades):
        with pytest.raises(error) as caught:
            ask(old)
        assert (caught.value.code, str(caught.value)) == (status, "Couldn't find that `order_id`.")
    assert kite.order_history(old) == []  # unknown, the one way Kite says it
    today = place(kite_client, "INFY")
    assert [o["order_id"] for o in kite_client.orders()] == [today] and kite_sim.trading_date(today) == FRI


@pytest.mark.parametrize("status, body", [
    (400, _error("Invalid `order_id`.", "InputException")),
    (400, _error("Missing or invalid order parameters.", "InputException")),
    (500, _error("Get Rms Limits Entity Response : Request not registered", "GeneralException")),
    (503, _error("Couldn't find that `order_id`.", "NetworkException")),
])
def test_no_other_error_makes_an_order_look_unknown(kite_sim, kite, monkeypatch, status, body):
    oid = kite_sim.add_order()
    monkeypatch.setattr(kite_sim, "route", lambda method, path, form: (status, body))
    with pytest.raises(BrokerError) as caught:
        kite.order_history(oid)
    assert caught.value.status_code == status


def test_the_unknown_order_answer_is_matched_robustly():
    for text, code in [("Couldn't find that `order_id`.", 500), ("Couldn\u2019t find that order_id", 400),
                       ("could not find that order id.", 500), ("COULDN'T FIND THAT `ORDER_ID`", 400)]:
        assert is_unknown_order(kex.OrderException(text, code=code)), text
    assert not is_unknown_order(kex.OrderException("Couldn't find that `order_id`.", code=503))
    assert not is_unknown_order(kex.InputException("Invalid `order_id`.", code=400))
    assert not is_unknown_order(ValueError("Couldn't find that `order_id`."))


# -- AMOs, weekends and holidays ---------------------------------------------------------------------

def test_an_amo_placed_on_friday_evening_is_working_on_monday_morning(kite_sim, kite_client, kite):
    kite_sim.advance_to(ist(FRI, 10))
    with pytest.raises(kex.InputException):
        place(kite_client, variety="amo")  # not while the market is open
    kite_sim.advance_to(ist(FRI, 18))
    amo = place(kite_client, variety="amo")
    assert kite_sim.trading_date(amo) == MON
    for when in (ist(SAT, 10), ist(SUN, 22), ist(MON, 6, 30), ist(MON, 9, 14)):
        kite_sim.advance_to(when)
        (order,) = kite_client.orders()
        assert (order["order_id"], order["status"], order["variety"]) == (amo, "AMO REQ RECEIVED", "amo")
        (bo,) = kite.fetch_orders()
        assert bo.status is S.SUBMITTED and not bo.status.is_terminal  # working, waiting for the open
    kite_sim.advance_to(ist(MON, 9, 16))
    (order,) = kite_client.orders()
    assert (order["status"], order["variety"], order["exchange_update_timestamp"]) == \
        ("OPEN", "amo", "2026-11-23 09:15:00")
    assert [h["status"] for h in kite_client.order_history(amo)] == ["AMO REQ RECEIVED", "OPEN"]


def test_a_weekend_and_a_holiday_move_nothing(kite_sim, kite_client):
    cnc, nrml = place(kite_client), place(kite_client, "NIFTY26NOVFUT", 75, "NRML", "NFO")
    kite_sim.fill(cnc, 10, 410.5)
    kite_sim.fill(nrml, 75, 23650.0)
    kite_sim.advance_to(ist(FRI, 16))  # Thursday's positions rolled this morning, Friday's book closed
    before = snapshot(kite_sim)
    for when in (ist(SAT, 0), ist(SAT, 12), ist(SUN, 6), ist(SUN, 23, 59)):
        assert kite_sim.advance_to(when) == []
        assert snapshot(kite_sim) == before
    assert kite_sim.advance_to(ist(MON, 6))  # Monday's book begins: the T1 quantity is delivered
    assert kite_client.holdings()[0]["realised_quantity"] == 10
    kite_sim.advance_to(ist(MON, 16))
    before = snapshot(kite_sim)
    for when in (ist(TUE, 6), ist(TUE, 9, 15), ist(TUE, 15, 20), ist(TUE, 15, 30), ist(TUE, 23)):
        assert kite_sim.advance_to(when) == []  # Guru Nanak Jayanti: no session at all
        assert snapshot(kite_sim) == before
    assert [line.split(" at ")[0] for line in kite_sim.advance_to(ist(WED, 6))] == \
        ["NFO 2026-11-25 day-start", "NSE 2026-11-25 day-start"]
    assert net(kite_client)[("NFO", "NIFTY26NOVFUT", "NRML")]["overnight_quantity"] == 75


# -- holdings ----------------------------------------------------------------------------------------

def test_cnc_buys_become_t1_holdings_the_next_day_and_are_delivered_the_day_after(kite_sim, kite_client, kite):
    assert isinstance(kite, HoldingsBroker)
    first = place(kite_client, "ITC", 10)
    kite_sim.fill(first, 4, 410.5)
    kite_sim.fill(first, 6, 411.0)
    kite_sim.advance_to(ist(THU, 16))
    assert kite.fetch_holdings() == [] and net(kite_client)[("NSE", "ITC", "CNC")]["quantity"] == 10

    kite_sim.advance_to(ist(FRI, 9, 20))  # Friday: T1, gone from positions
    assert ("NSE", "ITC", "CNC") not in net(kite_client) and kite_client.positions()["day"] == []
    (row,) = kite_client.holdings()
    assert {k: row[k] for k in ("tradingsymbol", "exchange", "product", "quantity", "t1_quantity",
                                "realised_quantity")} == {"tradingsymbol": "ITC", "exchange": "NSE", "product": "CNC",
                                                          "quantity": 10, "t1_quantity": 10, "realised_quantity": 0}
    assert kite.fetch_holdings() == [Holding("NSE", "ITC", 10, 10, 0, Decimal("410.8"))]
    second = place(kite_client, "ITC", 5)
    kite_sim.fill(second, 5, 420.1)

    kite_sim.advance_to(ist(MON, 9, 20))  # Monday: Thursday's delivered, Friday's in T1, averaged
    (holding,) = kite.fetch_holdings()
    assert (holding.quantity, holding.t1_quantity, holding.realised_quantity) == (15, 5, 10)
    assert holding.average_price == Decimal(repr(float((Decimal("4108") + Decimal("2100.5")) / 15)))
    kite_sim.advance_to(ist(WED, 9, 20))  # after the holiday: everything delivered
    assert [(h.quantity, h.t1_quantity, h.realised_quantity) for h in kite.fetch_holdings()] == [(15, 0, 15)]


def test_holdings_are_read_whole_or_not_at_all(kite_sim, kite, monkeypatch):
    kite_sim.inject("data-null", path="/portfolio/holdings")
    with pytest.raises(BrokerError) as caught:
        kite.fetch_holdings()
    assert caught.value.kind is FailureKind.UNREADABLE
    good = {"tradingsymbol": "ITC", "exchange": "NSE", "quantity": 3, "t1_quantity": 3, "realised_quantity": 0,
            "average_price": 410.5}
    for bad in ({k: v for k, v in good.items() if k != "quantity"}, {**good, "average_price": "n/a"},
                {**good, "t1_quantity": "x"}, "ITC"):
        monkeypatch.setattr(kite_sim, "holdings_rows", lambda bad=bad: [good, bad])
        with pytest.raises(BrokerError) as caught:
            kite.fetch_holdings()  # never the readable half, never []
        assert caught.value.kind is FailureKind.UNREADABLE


# -- positions overnight ---------------------------------------------------------------------------

def test_nrml_and_mcx_positions_carry_overnight_and_the_day_list_starts_empty(kite_sim, kite_client, kite):
    fut = place(kite_client, "NIFTY26NOVFUT", 75, "NRML", "NFO", side="SELL")
    kite_sim.fill(fut, 75, 23650.0)
    kite_sim.advance_to(ist(THU, 22))
    gold = place(kite_client, "GOLDM26DECFUT", 2, "NRML", "MCX")  # MCX trades into the night
    assert kite_sim.trading_date(gold) == THU
    kite_sim.fill(gold, 2, 76000.5)

    kite_sim.advance_to(ist(FRI, 9, 20))
    positions = net(kite_client)
    future, commodity = positions[("NFO", "NIFTY26NOVFUT", "NRML")], positions[("MCX", "GOLDM26DECFUT", "NRML")]
    assert (future["quantity"], future["overnight_quantity"], future["sell_quantity"], future["sell_value"],
            future["average_price"], future["day_sell_quantity"]) == (-75, -75, 75, 1773750.0, 23650.0, 0)
    assert (commodity["quantity"], commodity["overnight_quantity"], commodity["buy_value"]) == (2, 2, 152001.0)
    assert kite_client.positions()["day"] == []
    cover = place(kite_client, "NIFTY26NOVFUT", 25, "NRML", "NFO")
    kite_sim.fill(cover, 25, 23600.0)
    future = net(kite_client)[("NFO", "NIFTY26NOVFUT", "NRML")]
    assert (future["quantity"], future["overnight_quantity"], future["day_buy_quantity"]) == (-50, -75, 25)
    (day,) = kite_client.positions()["day"]
    assert (day["tradingsymbol"], day["quantity"], day["overnight_quantity"]) == ("NIFTY26NOVFUT", 25, 0)
    by_key = {p.key: p for p in kite.fetch_positions()}
    assert by_key[("NFO", "NIFTY26NOVFUT", "NRML")].quantity == -50
    assert by_key[("MCX", "GOLDM26DECFUT", "NRML")].buy_value == Decimal("152001.0")

    kite_sim.advance_to(ist(MON, 9, 20))
    future = net(kite_client)[("NFO", "NIFTY26NOVFUT", "NRML")]
    assert (future["quantity"], future["overnight_quantity"], future["sell_quantity"]) == (-50, -50, 50)
    assert future["average_price"] == 23650.0  # the side that built it keeps its price


# -- the MIS square-off ---------------------------------------------------------------------------------

def test_mis_positions_are_squared_off_by_the_brokers_own_orders(kite_sim, kite_client, kite):
    bought, working = place(kite_client, "SBIN", 5, "MIS"), place(kite_client, "SBIN", 5, "MIS", side="SELL")
    kite_sim.fill(bought, 5, 800.0)
    short = place(kite_client, "NIFTY26NOVFUT", 50, "MIS", "NFO", side="SELL")
    kite_sim.fill(short, 50, 23650.0)
    lines = kite_sim.advance_to(ist(THU, 15, 26))
    assert [line.split(": ", 1)[1].split(" (")[0] for line in lines] == [
        "1 working MIS orders cancelled", "the broker squared off +5 SBIN MIS",
        "the broker squared off -50 NIFTY26NOVFUT MIS"]
    book = {o["order_id"]: o for o in kite_client.orders()}
    assert book[working]["status"] == "CANCELLED"
    exits = [o for o in book.values() if o["order_id"] not in (bought, working, short)]
    assert [(o["tradingsymbol"], o["transaction_type"], o["quantity"], o["status"], o["product"]) for o in exits] \
        == [("SBIN", "SELL", 5, "COMPLETE", "MIS"), ("NIFTY26NOVFUT", "BUY", 50, "COMPLETE", "MIS")]
    assert all(o["tag"] is None and o["tags"] == [] and o["placed_by"] == SQUARE_OFF_PLACED_BY != USER_ID
               and o["status_message"] == SQUARE_OFF_MESSAGE for o in exits)
    assert exits[0]["order_timestamp"] == datetime(2026, 11, 19, 15, 20)
    assert [p["quantity"] for k, p in net(kite_client).items() if k[2] == "MIS"] == [0, 0]
    exit_ids = {o["order_id"] for o in exits}
    assert {(bo.symbol, bo.tag, bo.message) for bo in kite.fetch_orders() if bo.broker_order_id in exit_ids} == {
        ("SBIN", None, SQUARE_OFF_MESSAGE), ("NIFTY26NOVFUT", None, SQUARE_OFF_MESSAGE)}
    late = place(kite_client, "SBIN", 1, "MIS")  # after the square-off time: refused
    assert (kite_client.order_history(late)[-1]["status"], kite_client.order_history(late)[-1]["status_message"]) \
        == ("REJECTED", MIS_BLOCKED_MESSAGE)
    kite_sim.advance_to(ist(FRI, 9, 20))
    assert not [k for k in net(kite_client) if k[2] == "MIS"]  # nothing intraday carries


# -- three days through the client -----------------------------------------------------------------------

def test_thursday_friday_monday_through_the_client(kite_sim, kite_client, kite):
    """The issue's trader: Thursday's unfinished DAY orders (one never filled, one half filled), a CNC
    buy that goes to holdings, an NRML future carried; Friday and Monday mornings as Kite shows them."""
    never, half = place(kite_client, "INFY", 5), place(kite_client, "ITC", 10)
    kite_sim.fill(half, 3, 410.5)
    fut = place(kite_client, "NIFTY26NOVFUT", 75, "NRML", "NFO")
    kite_sim.fill(fut, 75, 23650.0)
    kite_sim.advance_to(ist(FRI, 9, 0))
    assert kite.fetch_orders() == [] and kite.order_history(never) == [] and kite.order_history(half) == []
    assert {p.key: p.quantity for p in kite.fetch_positions()} == {("NFO", "NIFTY26NOVFUT", "NRML"): 75}
    assert kite.fetch_holdings() == [Holding("NSE", "ITC", 3, 3, 0, Decimal("410.5"))]
    friday = place(kite_client, "ITC", 2)
    kite_sim.fill(friday, 2, 412.0)
    kite_sim.advance_to(ist(FRI, 18))
    amo = place(kite_client, "TCS", 1, variety="amo")
    kite_sim.advance_to(ist(MON, 9, 0))
    assert [(bo.broker_order_id, bo.status) for bo in kite.fetch_orders()] == [(amo, S.SUBMITTED)]
    assert kite.order_history(friday) == []
    assert kite.fetch_holdings() == [Holding("NSE", "ITC", 5, 2, 3, Decimal(repr(float(Decimal("2055.5") / 5))))]
    assert {p.key: p.quantity for p in kite.fetch_positions()} == {("NFO", "NIFTY26NOVFUT", "NRML"): 75}
    assert [d.split(" at ")[0] for d in kite_sim.day_log] == [
        "NSE 2026-11-19 close", "NFO 2026-11-20 day-start", "NSE 2026-11-20 day-start",
        "NFO 2026-11-23 day-start", "NSE 2026-11-23 day-start"]
