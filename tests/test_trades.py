"""Fills from the broker's own trades (#13): exact prices, each trade applied once whatever arrives
first, an inference from cumulative figures replaced (and corrected) when the trades come."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from hostspec.model import OrderStatus, Side, Trade
from recon_plugin.engine import plan_cycle
from recon_plugin.plan import Settings, Snapshot
from tests.helpers import advance, at, broker, order, state

S = OrderStatus
KEY = ("NSE", "INFY", "CNC")


def trade(trade_id, quantity, price, order_id="B-A", second=0):
    return Trade(trade_id=trade_id, broker_order_id=order_id, exchange="NSE", symbol="INFY", product="CNC",
                 side=Side.BUY, quantity=quantity, price=Decimal(price), filled_at=at(second))


def cycle(local, book, trades=None, now=60, partial=False):
    by_order = None
    if trades is not None:
        by_order = {}
        for t in trades:
            by_order.setdefault(t.broker_order_id, []).append(t)
    snapshot = Snapshot(list(book), at(now), trades=by_order, partial=partial,
                        run=None if partial else "r", sequence=now)
    p = plan_cycle(local, snapshot, Settings(missing_grace_seconds=0))
    return advance(local, p.changes), p


T1, T2, T3 = (trade("7001", 3, "100.05", second=1), trade("7002", 5, "100.10", second=2),
              trade("7003", 2, "99.95", second=3))
EXACT = Decimal("100.05") * 3 + Decimal("100.10") * 5 + Decimal("99.95") * 2  # 1000.55


def test_an_inferred_fill_corrected_by_the_trades_leaves_positions_exactly_their_sum():
    local, _ = cycle(state(order("A", status=S.PLACED)), [broker(S.FILLED, 10, "100.06")])  # Kite's rounded VWAP
    assert local.positions[KEY].buy_value == Decimal("1000.60")  # inferred
    local, p = cycle(local, [broker(S.FILLED, 10, "100.06")], [T1, T2, T3], now=62)
    assert local.positions[KEY].buy_value == EXACT and local.positions[KEY].quantity == 10
    assert local.ledger["A"].filled_value == EXACT and len(local.ledger["A"].trades) == 3
    (event,) = p.changes.events
    assert event.kind == "fill-corrected" and event.data["previous_value"] == "1000.60"
    assert event.data["value"] == str(EXACT) and event.data["difference"] == "-0.05"
    local, p = cycle(local, [broker(S.FILLED, 10, "100.06")], [T1, T2, T3], now=64)
    assert p.is_empty()  # the trades stand; the book's rounded average no longer "revises" them


def test_trades_before_the_book_are_applied_trade_by_trade_at_their_own_prices():
    local, p = cycle(state(order("A", status=S.PLACED)), [broker(S.PLACED)], [T1, T2])
    assert [(e.data["fill_qty"], e.data["fill_price"]) for e in p.changes.events] == [(3, "100.05"), (5, "100.10")]
    assert local.orders["A"].filled_qty == 8 and local.orders["A"].status is S.PARTIAL
    local, p = cycle(local, [broker(S.PLACED, 8, "100.08")], [T1, T2], now=62)
    assert not p.fills and local.positions[KEY].quantity == 8  # the book catching up adds nothing


ARRIVALS = [a for a in itertools.permutations(["poll-8", "trades-8", "poll-10", "trades-10"])
            if a.index("trades-8") < a.index("trades-10")]  # a trades read lists the day's trades so far


@pytest.mark.parametrize("arrival", ARRIVALS)
def test_the_same_fills_by_poll_and_by_trades_in_any_order_are_applied_once(arrival):
    """Polls in any order (an older one changes nothing), trade reads in time order (each lists every
    trade so far: one that lists fewer is a bust), interleaved every way."""
    local = state(order("A", status=S.PLACED))
    book = [broker(S.PLACED, updated_at=at(1))]  # what the book said last: a trades read comes with a poll
    polls = {"poll-8": [broker(S.PLACED, 8, "100.08", updated_at=at(2))],
             "poll-10": [broker(S.FILLED, 10, "100.06", updated_at=at(3))]}
    trade_reads = {"trades-8": [T1, T2], "trades-10": [T1, T2, T3]}
    applied = []
    for i, name in enumerate(arrival):
        book = polls.get(name, book)
        local, p = cycle(local, book, trade_reads.get(name), now=60 + i)
        applied += p.fills
        assert "trade-bust" not in [d.rule for d in p.decisions]  # a book trailing its trades is no bust
        assert local.positions.get(KEY, None) is None or local.positions[KEY].quantity == local.ledger["A"].filled_qty
    assert local.positions[KEY].quantity == 10 and local.ledger["A"].filled_qty == 10
    assert sum(f.quantity for f in applied) == 10  # each unit once, by whichever came first
    assert local.orders["A"].status is S.FILLED
    assert local.positions[KEY].buy_value == EXACT  # the trades were read last or before: their value stands


def test_trades_that_disagree_with_an_ended_order_are_reported_once_and_applied_never_twice():
    local, _ = cycle(state(order("A", status=S.PLACED)), [broker(S.FILLED, 10, "100")])
    plans = []
    for now in (62, 64, 66):
        local, p = cycle(local, [broker(S.FILLED, 10, "100")], [T1, T2], now=now)  # 8 of 10
        plans.append(p)
    reported = [d for p in plans for d in p.decisions if d.rule == "book-anomaly"]
    assert len(reported) == 1 and "sum to 8" in reported[0].action
    assert local.positions[KEY].quantity == 10 and local.ledger["A"].filled_qty == 10


def test_a_trade_of_an_order_nobody_knows_is_reported_and_not_applied():
    local, p = cycle(state(), [], [trade("9", 4, "50", order_id="B-Z")])
    assert [d.rule for d in p.decisions] == ["book-anomaly"] and "B-Z" in p.decisions[0].action
    assert not local.positions and not local.ledger


def test_book_ahead_of_its_trades_then_the_trades_catch_up():
    local, _ = cycle(state(order("A", status=S.PLACED)), [broker(S.PLACED, 3, "100.05")], [T1])
    local, _ = cycle(local, [broker(S.FILLED, 10, "100.06")], [T1], now=62)  # 7 more, inferred
    assert local.positions[KEY].quantity == 10
    local, p = cycle(local, [broker(S.FILLED, 10, "100.06")], [T1, T2, T3], now=64)
    assert local.positions[KEY].buy_value == EXACT and local.ledger["A"].filled_qty == 10
    assert [e.kind for e in p.changes.events] == ["fill-corrected"]


def test_a_trade_identity_names_the_exchange_the_trade_the_order_and_the_day():
    one = trade("7001", 3, "100.05")
    assert one.identity == "NSE|7001|B-A|2026-01-02"
    next_day = replace(one, filled_at=at(0) + timedelta(days=1))
    assert next_day.identity != one.identity  # the same exchange trade id on another day is another trade


def test_a_trade_gone_from_the_brokers_trades_is_a_bust_alarm_once():
    local, _ = cycle(state(order("A", status=S.PLACED)), [broker(S.FILLED, 10, "100.06")], [T1, T2, T3])
    plans = []
    for now in (62, 64, 66):
        local, p = cycle(local, [broker(S.FILLED, 10, "100.06")], [T1, T3], now=now)
        plans.append(p)
    busts = [d for p in plans for d in p.decisions if d.rule == "trade-bust"]
    assert len(busts) == 1 and T2.identity in busts[0].action
    assert local.positions[KEY].quantity == 10 and local.orders["A"].open_discrepancy  # held for a person
