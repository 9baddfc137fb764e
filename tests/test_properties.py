"""Property: whatever order, repetition or staleness the broker's reports arrive in, after every
cycle fills are applied exactly once, filled quantities and statuses never regress, nothing is
applied that the broker never said, and the final true report brings local state exactly there."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostspec.model import OrderStatus, Position, Side, Trade
from recon_plugin.calendars.india import IST, IndiaCalendar
from recon_plugin.engine import SyncMemo, orders_to_query, plan_cycle
from recon_plugin.plan import Settings, Snapshot
from recon_plugin.resolve import effective_status
from tests.helpers import advance, at, broker, order, state

S = OrderStatus


@st.composite
def order_history(draw, index: int):
    """One order's true life at the broker: a list of cumulative reports, oldest first."""
    quantity = draw(st.integers(1, 50))
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    bid = f"B{index}"
    reports = [broker(S.SUBMITTED, broker_order_id=bid, quantity=quantity, side=side),
               broker(S.PLACED, broker_order_id=bid, quantity=quantity, side=side)]
    if draw(st.booleans()) and index % 3 == 0:
        return quantity, side, [*reports, broker(S.REJECTED, broker_order_id=bid, quantity=quantity, side=side)]
    filled, value = 0, Decimal(0)
    for _ in range(draw(st.integers(0, 4))):
        if filled >= quantity:
            break
        step = draw(st.integers(1, quantity - filled))
        price = Decimal(draw(st.integers(9000, 11000))) / 100
        filled, value = filled + step, value + price * step
        avg = (value / filled).quantize(Decimal("0.000001"))  # a broker reports a rounded average
        reports.append(broker(S.PLACED, filled, str(avg), broker_order_id=bid, quantity=quantity, side=side))
    final = S.FILLED if filled == quantity else draw(st.sampled_from([S.CANCELLED, S.PLACED]))
    last = reports[-1]
    reports.append(broker(final, last.filled_qty, str(last.avg_price), broker_order_id=bid, quantity=quantity,
                          side=side))
    return quantity, side, reports


@st.composite
def scenario(draw):
    histories = [draw(order_history(i)) for i in range(draw(st.integers(1, 4)))]
    deliveries = []
    for _ in range(draw(st.integers(1, 12))):
        book = []
        for _, _, reports in histories:
            choice = draw(st.integers(-1, len(reports) - 1))  # -1: left out of this snapshot
            if choice >= 0:
                report = reports[choice]
                if draw(st.integers(0, 9)) == 0:  # now and then a status the plugin could not map
                    report = broker(S.UNKNOWN, report.filled_qty, str(report.avg_price),
                                    broker_order_id=report.broker_order_id, quantity=report.quantity,
                                    side=report.side, raw="SOMETHING NEW")
                book.append(report)
        deliveries.append(book)
    deliveries.append([reports[-1] for _, _, reports in histories])  # the truth, at last
    return histories, deliveries


def positions_from_ledger(local):
    expected: dict[tuple[str, str, str], Position] = {}
    for order_id, entry in local.ledger.items():
        o = local.orders[order_id]
        expected[o.key] = (expected.get(o.key) or Position(*o.key)).with_fill(o.side, entry.filled_qty,
                                                                              entry.filled_value)
    return expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_invariants_hold_after_every_cycle(case):
    histories, deliveries = case
    local = state(*[order(f"O{i}", status=S.SUBMITTED, broker_order_id=f"B{i}", quantity=q, side=side)
                    for i, (q, side, _) in enumerate(histories)])
    max_true_filled = {f"O{i}": max(r.filled_qty for r in reports) for i, (_, _, reports) in enumerate(histories)}
    terminal_said = {f"O{i}": set() for i in range(len(histories))}
    memo = SyncMemo()
    for cycle, book in enumerate(deliveries):
        for report in book:
            terminal_said[f"O{report.broker_order_id[1:]}"].add(report.status)
        before = local
        snapshot = Snapshot(book, at(100 + cycle))
        plan = plan_cycle(local, snapshot, Settings(missing_grace_seconds=0))
        memoised = plan_cycle(local, snapshot, Settings(missing_grace_seconds=0), memo)
        assert memoised == plan  # the in-sync memo is an optimisation only
        local = advance(local, plan.changes)
        assert local.positions == positions_from_ledger(local)  # every fill applied exactly once
        for order_id, o in local.orders.items():
            prior = before.orders[order_id]
            entry = local.ledger.get(order_id)
            applied = entry.filled_qty if entry else 0
            prior_applied = before.ledger[order_id].filled_qty if order_id in before.ledger else 0
            assert applied >= prior_applied  # filled never decreases
            assert applied <= max_true_filled[order_id]  # nothing the broker never said
            assert o.filled_qty == applied
            if o.status is not prior.status and prior.status is not S.LOST:
                assert o.status.rank > prior.status.rank or o.status is S.FILLED  # forward only
            if o.status.is_terminal:
                assert o.status in terminal_said[order_id]  # never terminalised on an unknown status
    for i, (_, _, reports) in enumerate(histories):
        truth, o = reports[-1], local.orders[f"O{i}"]
        assert local.ledger.get(o.order_id, None) is None or local.ledger[o.order_id].filled_qty == truth.filled_qty
        assert o.filled_qty == truth.filled_qty
        assert o.status is effective_status(truth)
        if truth.filled_qty:
            assert local.ledger[o.order_id].filled_value == truth.avg_price * truth.filled_qty


THURSDAY_2PM = datetime(2026, 11, 19, 14, 0, tzinfo=IST)  # Friday 20 and Monday 23 are trading days too


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario(), st.data())
def test_invariants_hold_across_day_boundaries(case, data):
    """The same histories, delivered over a close, a night and a weekend: orders of an ended day are
    asked for (answered by any report of theirs, or "unknown") and expire. Fills still apply exactly
    once, nothing regresses but to EXPIRED (only once its day ended), and a later sighting still
    applies its fills."""
    histories, deliveries = case
    local = state(*[replace(order(f"O{i}", status=S.SUBMITTED, broker_order_id=f"B{i}", quantity=q, side=side),
                            created_at=THURSDAY_2PM, updated_at=THURSDAY_2PM)
                    for i, (q, side, _) in enumerate(histories)])
    reports_of = {f"O{i}": reports for i, (_, _, reports) in enumerate(histories)}
    max_true_filled = {o: max(r.filled_qty for r in reports) for o, reports in reports_of.items()}
    now, cal, memo = THURSDAY_2PM, IndiaCalendar.default(), SyncMemo()
    for book in deliveries:
        now += timedelta(minutes=data.draw(st.integers(0, 60 * 30)))  # up to 30 hours a step
        asked = orders_to_query(local, book, Settings(missing_grace_seconds=0), now, lambda _: True, cal)
        queried = {o.order_id: data.draw(st.sampled_from([None, *reports_of[o.order_id]])) for o in asked}
        before = local
        snapshot = Snapshot(book, now, None, queried, cal)
        plan = plan_cycle(local, snapshot, Settings(missing_grace_seconds=0))
        assert plan_cycle(local, snapshot, Settings(missing_grace_seconds=0), memo) == plan
        local = advance(local, plan.changes)
        assert local.positions == positions_from_ledger(local)  # every fill applied exactly once
        for order_id, o in local.orders.items():
            prior = before.orders[order_id]
            applied = local.ledger[order_id].filled_qty if order_id in local.ledger else 0
            prior_applied = before.ledger[order_id].filled_qty if order_id in before.ledger else 0
            assert prior_applied <= applied <= max_true_filled[order_id] and o.filled_qty == applied
            if o.status is not prior.status and prior.status is not S.LOST:
                refined = prior.status is S.EXPIRED and o.status.is_terminal  # the broker's own end refines it
                assert o.status.rank > prior.status.rank or o.status is S.FILLED or refined
            if o.status is S.EXPIRED:
                assert cal.trading_date(o.created_at, o.exchange) < cal.trading_date(now, o.exchange)
    for i, (_, _, reports) in enumerate(histories):
        truth, o = reports[-1], local.orders[f"O{i}"]
        assert o.filled_qty == truth.filled_qty  # the truth's fills arrive, even after an expiry
        assert o.status in (effective_status(truth), S.EXPIRED, S.FILLED)


@st.composite
def traded_history(draw, index: int):
    """One order's true life with its trades: reports stamped with the broker's update time, and the
    trades behind each fill step (exact prices; the reports carry a rounded average)."""
    quantity = draw(st.integers(1, 50))
    bid = f"B{index}"
    reports = [broker(S.PLACED, broker_order_id=bid, quantity=quantity, updated_at=at(1))]
    trades: list[list[Trade]] = [[]]
    filled, value = 0, Decimal(0)
    for step_no in range(draw(st.integers(0, 4))):
        if filled >= quantity:
            break
        step = draw(st.integers(1, quantity - filled))
        price = Decimal(draw(st.integers(9000, 11000))) / 100
        filled, value = filled + step, value + price * step
        avg = (value / filled).quantize(Decimal("0.000001"))
        status = S.FILLED if filled == quantity else S.PLACED
        reports.append(broker(status, filled, str(avg), broker_order_id=bid, quantity=quantity,
                              updated_at=at(2 + step_no)))
        trades.append([*trades[-1], Trade(f"T{index}-{step_no}", bid, "NSE", "INFY", "CNC", Side.BUY, step, price,
                                          at(2 + step_no))])
    return quantity, reports, trades


@st.composite
def pushed_scenario(draw):
    """Polls (each order's report drawn from any point of its life), pushes (one report, late, twice
    or out of order) and trade reads (each lists the trades so far: reads move forward in time),
    interleaved; then the truth."""
    histories = [draw(traded_history(i)) for i in range(draw(st.integers(1, 3)))]
    trades_read = [0] * len(histories)
    steps: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["poll", "push", "trades"]))
        if kind == "poll":
            steps.append(("poll", [reports[draw(st.integers(0, len(reports) - 1))] for _, reports, _ in histories]))
        elif kind == "push":
            _, reports, _ = histories[draw(st.integers(0, len(histories) - 1))]
            steps.append(("push", reports[draw(st.integers(0, len(reports) - 1))]))
        else:
            for i, (_, _, trades) in enumerate(histories):
                trades_read[i] = draw(st.integers(trades_read[i], len(trades) - 1))
            steps.append(("trades", [t for i, (_, _, trades) in enumerate(histories) for t in trades[trades_read[i]]]))
    steps.append(("poll", [reports[-1] for _, reports, _ in histories]))
    steps.append(("trades", [t for _, _, trades in histories for t in trades[-1]]))
    return histories, steps


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pushed_scenario())
def test_invariants_hold_with_trades_and_pushes_late_twice_and_out_of_order(case):
    histories, steps = case
    local = state(*[order(f"O{i}", status=S.SUBMITTED, broker_order_id=f"B{i}", quantity=q)
                    for i, (q, _, _) in enumerate(histories)])
    max_true_filled = {f"O{i}": reports[-1].filled_qty for i, (_, reports, _) in enumerate(histories)}
    last_book: list[Any] = [reports[0] for _, reports, _ in histories]
    for n, (kind, what) in enumerate(steps):
        before = local
        if kind == "push":
            snapshot = Snapshot([what], at(100 + n), partial=True)
        else:
            last_book = what if kind == "poll" else last_book
            by_order: dict[str, list[Trade]] = {}
            for t in what if kind == "trades" else []:
                by_order.setdefault(t.broker_order_id, []).append(t)
            snapshot = Snapshot(list(last_book), at(100 + n), trades=by_order if kind == "trades" else None,
                                run="r", sequence=n + 1)
        plan = plan_cycle(local, snapshot, Settings(missing_grace_seconds=0))
        local = advance(local, plan.changes)
        assert local.positions == positions_from_ledger(local)  # every fill applied exactly once
        assert "trade-bust" not in [d.rule for d in plan.decisions]  # late and repeated reports are no bust
        for order_id, o in local.orders.items():
            applied = local.ledger[order_id].filled_qty if order_id in local.ledger else 0
            prior = before.ledger[order_id].filled_qty if order_id in before.ledger else 0
            assert prior <= applied <= max_true_filled[order_id]
            assert o.filled_qty == applied
    for i, (_, reports, trades) in enumerate(histories):
        o, truth = local.orders[f"O{i}"], reports[-1]
        assert o.filled_qty == truth.filled_qty and o.status is effective_status(truth)
        if truth.filled_qty:  # the trades, read last, are the exact value of the fills
            assert local.ledger[o.order_id].filled_value == sum(t.price * t.quantity for t in trades[-1])
