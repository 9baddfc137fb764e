"""The paper exchange through trading days (Thursday 2026-11-19, Friday 20, the weekend, Monday 23 and
the Tuesday 24 holiday) on a ManualClock: only the day's orders in the book, the close, the MIS
square-off, holdings T1 then delivered, NRML overnight, AMOs, the account file across days and
restarts, and the host's clock wired through the plugin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hostspec.broker import BrokerError, HoldingsBroker
from hostspec.calendar import ManualClock
from hostspec.model import Holding, OrderStatus, Position, Side
from recon_plugin.brokers.overnight import (
    EXCHANGE_MASS_CANCEL,
    MIS_BLOCKED_MESSAGE,
    SQUARE_OFF_CANCEL_MESSAGE,
    SQUARE_OFF_MESSAGE,
)
from recon_plugin.brokers.paper import PaperExchange, market_price
from recon_plugin.calendars.india import IndiaCalendar
from tests.helpers import FRI, MON, SAT, SUN, THU, TUE, WED, ist, write

S = OrderStatus



@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(ist(THU, 9, 20))


@pytest.fixture
def exchange(tmp_path: Path, clock: ManualClock) -> Iterator[PaperExchange]:
    paper = PaperExchange(tmp_path / "paper.json", seed=5, reject_rate=0, cancel_rate=0, clock=clock)
    yield paper
    paper.close()


def place(exchange: PaperExchange, symbol: str = "ITC", quantity: int = 10, product: str = "CNC",
          venue: str = "NSE", side: Side = Side.BUY) -> str:
    return exchange.place_order(tag="T", exchange=venue, symbol=symbol, product=product, side=side,
                                quantity=quantity)


def script(exchange: PaperExchange, broker_id: str, *steps: tuple[int, str, int]) -> None:
    """Give an order a known future: steps at ticks after its placement (tick_seconds is 1)."""
    order = exchange._account["orders"][broker_id]
    order["script"] = [[order["placed_tick"] + tick, action, quantity] for tick, action, quantity in steps]


def book(exchange: PaperExchange) -> dict[str, Any]:
    return {bo.broker_order_id: bo for bo in exchange.fetch_orders()}


def positions(exchange: PaperExchange) -> dict[tuple[str, str, str], Position]:
    return {p.key: p for p in exchange.fetch_positions()}


def everything(exchange: PaperExchange) -> tuple[Any, ...]:
    return exchange.fetch_orders(), exchange.fetch_positions(), exchange.fetch_holdings()


def test_the_book_holds_only_the_day_and_the_close_cancels_what_is_unfinished(exchange, clock):
    done, half, never = place(exchange), place(exchange, "INFY"), place(exchange, "TCS")
    script(exchange, done, (1, "ack", 0), (2, "fill", 10))
    script(exchange, half, (1, "ack", 0), (2, "fill", 3), (10**6, "fill", 7))
    script(exchange, never, (1, "ack", 0), (10**6, "fill", 10))
    exchange._save(exchange._account)
    clock.set(ist(THU, 15, 29, 59))
    assert [bo.status for bo in book(exchange).values()] == [S.FILLED, S.PARTIAL, S.PLACED]
    clock.set(ist(THU, 15, 30))
    at_close = book(exchange)
    assert [(at_close[i].status, at_close[i].filled_qty, at_close[i].message) for i in (half, never)] == [
        (S.CANCELLED, 3, EXCHANGE_MASS_CANCEL), (S.CANCELLED, 0, EXCHANGE_MASS_CANCEL)]
    assert at_close[half].updated_at == ist(THU, 15, 30) and at_close[done].status is S.FILLED
    with pytest.raises(BrokerError, match="already CANCELLED"):
        exchange.cancel_order(never)
    clock.set(ist(FRI, 5, 59))
    assert list(book(exchange)) == [done, half, never]  # until Friday's book begins
    clock.set(ist(FRI, 6))
    assert exchange.fetch_orders() == []
    assert [exchange.order_history(i) for i in (done, half, never)] == [[], [], []]
    with pytest.raises(BrokerError, match="in today's book"):
        exchange.cancel_order(half)
    today = place(exchange, "SBIN")
    assert list(book(exchange)) == [today] and today == "P00000004"
    assert len(json.loads(exchange.path.read_text())["orders"]) == 4  # the file keeps every input


def test_cnc_buys_become_t1_holdings_the_next_day_and_are_delivered_the_day_after(exchange, clock):
    assert isinstance(exchange, HoldingsBroker)
    first = place(exchange, "ITC", 10)
    script(exchange, first, (1, "ack", 0), (2, "fill", 4), (3, "fill", 6))
    clock.set(ist(THU, 16))
    price = (market_price(5, "ITC", 2 + exchange._account["orders"][first]["placed_tick"]) * 4
             + market_price(5, "ITC", 3 + exchange._account["orders"][first]["placed_tick"]) * 6)
    assert exchange.fetch_holdings() == [] and positions(exchange)[("NSE", "ITC", "CNC")].buy_value == price
    clock.set(ist(FRI, 9, 20))
    assert ("NSE", "ITC", "CNC") not in positions(exchange)
    assert exchange.fetch_holdings() == [Holding("NSE", "ITC", 10, 10, 0, price / 10)]
    second = place(exchange, "ITC", 5)
    script(exchange, second, (1, "ack", 0), (2, "fill", 5))
    clock.set(ist(FRI, 10))
    second_value = market_price(5, "ITC", 2 + exchange._account["orders"][second]["placed_tick"]) * 5
    clock.set(ist(MON, 9, 20))
    (holding,) = exchange.fetch_holdings()
    assert (holding.quantity, holding.t1_quantity, holding.realised_quantity) == (15, 5, 10)
    assert holding.average_price == (price + second_value) / 15
    clock.set(ist(WED, 9, 20))  # after the holiday
    assert [(h.t1_quantity, h.realised_quantity) for h in exchange.fetch_holdings()] == [(0, 15)]


def test_nrml_positions_carry_overnight_at_their_average_price(exchange, clock):
    future = place(exchange, "NIFTY26NOVFUT", 75, "NRML", "NFO", Side.SELL)
    script(exchange, future, (1, "ack", 0), (2, "fill", 75))
    clock.set(ist(FRI, 9, 20))
    carried = positions(exchange)[("NFO", "NIFTY26NOVFUT", "NRML")]
    assert (carried.quantity, carried.sell_qty, carried.buy_qty) == (-75, 75, 0)
    cover = place(exchange, "NIFTY26NOVFUT", 25, "NRML", "NFO")
    script(exchange, cover, (1, "ack", 0), (2, "fill", 25))
    clock.set(ist(FRI, 10))
    assert positions(exchange)[("NFO", "NIFTY26NOVFUT", "NRML")].quantity == -50
    clock.set(ist(MON, 9, 20))
    monday = positions(exchange)[("NFO", "NIFTY26NOVFUT", "NRML")]
    assert (monday.quantity, monday.sell_qty, monday.buy_qty) == (-50, 50, 0)
    assert monday.average_price() == carried.average_price()  # the side that built it keeps its price
    assert exchange.fetch_orders() == [] and exchange.fetch_holdings() == []


def test_mis_is_squared_off_by_the_brokers_own_orders(exchange, clock):
    bought, working = place(exchange, "SBIN", 5, "MIS"), place(exchange, "SBIN", 5, "MIS", side=Side.SELL)
    script(exchange, bought, (1, "ack", 0), (2, "fill", 5))
    script(exchange, working, (1, "ack", 0), (10**6, "fill", 5))
    clock.set(ist(THU, 15, 19, 59))
    assert [bo.broker_order_id for bo in exchange.fetch_orders()] == [bought, working]
    clock.set(ist(THU, 15, 20))
    now = book(exchange)
    assert (now[working].status, now[working].message) == (S.CANCELLED, SQUARE_OFF_CANCEL_MESSAGE)
    exit_order = now["SQ-2026-11-19-NSE-SBIN"]
    assert (exit_order.side, exit_order.quantity, exit_order.status, exit_order.tag, exit_order.message) == (
        Side.SELL, 5, S.FILLED, None, SQUARE_OFF_MESSAGE)
    assert exchange.order_history(exit_order.broker_order_id) == [exit_order]
    assert positions(exchange)[("NSE", "SBIN", "MIS")].quantity == 0
    late = place(exchange, "SBIN", 1, "MIS")
    clock.set(ist(THU, 15, 21))
    assert (book(exchange)[late].status, book(exchange)[late].message) == (S.REJECTED, MIS_BLOCKED_MESSAGE)
    clock.set(ist(FRI, 9, 20))
    assert exchange.fetch_orders() == [] and not positions(exchange)


def test_a_friday_evening_amo_is_working_on_monday_morning_and_a_weekend_and_holiday_move_nothing(tmp_path, clock):
    exchange = PaperExchange(tmp_path / "paper.json", seed=5, reject_rate=0, cancel_rate=0, clock=clock,
                             market_hours=True)
    held = place(exchange)
    script(exchange, held, (1, "ack", 0), (2, "fill", 10))
    clock.set(ist(FRI, 18))
    amo = place(exchange, "TCS", 3)
    assert exchange.trading_date(amo) == MON
    clock.set(ist(SAT, 0, 1))
    weekend = everything(exchange)
    assert [(bo.broker_order_id, bo.status) for bo in weekend[0]] == [(amo, S.SUBMITTED)]
    for when in (ist(SAT, 12), ist(SUN, 6), ist(SUN, 23, 59), ist(MON, 5, 59)):
        clock.set(when)
        assert everything(exchange) == weekend
    clock.set(ist(MON, 9, 0))
    (order,) = exchange.fetch_orders()
    assert (order.broker_order_id, order.status) == (amo, S.SUBMITTED)  # still working, waiting for the open
    assert exchange.fetch_holdings() == [Holding("NSE", "ITC", 10, 0, 10, weekend[2][0].average_price)]
    clock.set(ist(MON, 9, 30))
    assert exchange.fetch_orders()[0].status is S.FILLED  # it traded once the session opened
    clock.set(ist(MON, 16))
    monday = everything(exchange)
    for when in (ist(TUE, 6), ist(TUE, 9, 30), ist(TUE, 15, 25), ist(TUE, 23, 59), ist(WED, 5, 59)):
        clock.set(when)
        assert everything(exchange) == monday  # Guru Nanak Jayanti
    clock.set(ist(WED, 6))
    assert exchange.fetch_orders() == [] and [(h.symbol, h.t1_quantity) for h in exchange.fetch_holdings()] == [
        ("ITC", 0), ("TCS", 3)]


def test_without_market_hours_an_evening_order_trades_at_once_for_the_next_day(exchange, clock):
    clock.set(ist(THU, 20))
    evening = place(exchange)
    script(exchange, evening, (1, "ack", 0), (2, "fill", 10))
    clock.set(ist(THU, 20, 1))
    assert book(exchange)[evening].status is S.FILLED
    assert exchange.trading_date(evening) == FRI
    clock.set(ist(FRI, 9, 20))
    assert list(book(exchange)) == [evening] and positions(exchange)[("NSE", "ITC", "CNC")].quantity == 10
    clock.set(ist(MON, 9, 20))
    assert exchange.fetch_orders() == [] and exchange.fetch_holdings()[0].t1_quantity == 10


def test_the_account_survives_days_and_restarts_and_a_reader_agrees(tmp_path, clock):
    path = tmp_path / "paper.json"
    first = PaperExchange(path, seed=5, reject_rate=0, cancel_rate=0, clock=clock)
    for day in (THU, FRI, MON):
        clock.set(ist(day, 10))
        place(first, "ITC", 2)
        place(first, "NIFTY26NOVFUT", 25, "NRML", "NFO")
        clock.set(ist(day, 11))
        seen = everything(first)
        first.close()  # the host restarts: a new exchange on the same file and clock
        first = PaperExchange(path, seed=99, reject_rate=0, cancel_rate=0, clock=clock)
        assert everything(first) == seen
        assert everything(PaperExchange(path, read_only=True, clock=clock)) == seen
    holdings = first.fetch_holdings()
    assert [(h.quantity, h.t1_quantity, h.realised_quantity) for h in holdings] == [(4, 2, 2)]
    assert positions(first)[("NFO", "NIFTY26NOVFUT", "NRML")].quantity == 75
    first.close()


def test_an_account_written_before_trading_days_reads_its_orders_dates_from_their_placement(tmp_path, clock):
    path = tmp_path / "paper.json"
    writer = PaperExchange(path, seed=5, reject_rate=0, cancel_rate=0, clock=clock)
    oid = place(writer)
    writer.close()
    account = json.loads(path.read_text())
    del account["orders"][oid]["trading_date"]  # format 1 as it was
    path.write_text(json.dumps(account))
    reader = PaperExchange(path, read_only=True, clock=clock)
    assert reader.trading_date(oid) == THU
    clock.set(ist(FRI, 9))
    assert reader.fetch_orders() == [] and reader.fetch_holdings()[0].symbol == "ITC"


def test_the_paper_plugin_runs_on_the_hosts_clock_and_calendar(tmp_path):
    from hostspec.app import App

    config = write(tmp_path / "paper.yaml", f"""
        mode: paper
        broker: {{name: paper, paper: {{market_hours: true}}}}
        store: {{path: {tmp_path / 'state.json'}}}
        plugins: {{disabled: [demo]}}
    """)
    clock = ManualClock(ist(FRI, 18))
    host = App().open_host(config, clock=clock)
    try:
        broker = host.broker
        assert isinstance(broker, PaperExchange)
        assert broker.clock is clock and broker.market_hours and isinstance(broker.days.calendar, IndiaCalendar)
        assert broker.days.calendar is host.calendar
        oid = place(broker)
        assert broker.trading_date(oid) == MON
        assert datetime.fromisoformat(json.loads(broker.path.read_text())["started_at"]) == ist(FRI, 18)
    finally:
        host.close()
