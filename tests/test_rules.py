"""The plan function, rule by rule: plain data in, plain data out."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from hostspec.model import LedgerEntry, Mode, OrderStatus, Position, Side
from recon_plugin.engine import orders_to_query, plan_cycle
from recon_plugin.events import OrderUpdated
from recon_plugin.plan import PlanBuilder, Settings, Snapshot
from recon_plugin.rules import Rule, Severity
from recon_plugin.runner import Reconciler
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import ScriptedBroker, advance, at, broker, order, state

S = OrderStatus


def plan(local, book, now=60.0, positions=None, queried=None, **settings):
    return plan_cycle(local, Snapshot(list(book), at(now), positions, queried or {}), Settings(**settings))


def kinds(p):
    return [e.kind for e in p.changes.events]


def rules(p):
    return [d.rule for d in p.decisions]


def the_order(p, order_id="A"):
    return next(o for o in p.changes.orders if o.order_id == order_id)


# -- the catalogue ---------------------------------------------------------------------------------

# The names journals, statistics and stored events already hold: a value never changes once released.
RELEASED = {"ack", "submit-confirmed", "found", "quantity-modified", "fill", "partial-fill", "late-fill", "cancel",
            "cancel-was-fill", "reject", "field-mismatch", "unknown-status", "terminal-conflict", "stale-status",
            "stale-fill", "trade-bust", "implausible-fill", "overfill", "missing", "lost", "external-adopted",
            "external-reported",
            "position-mismatch", "position-drift", "position-drift-deferred", "stale-snapshot"}


def test_released_rule_names_are_kept():
    assert {r.value for r in Rule} >= RELEASED
    assert all(type(r.value) is str and r == r.value and f"{r}" == r.value for r in Rule)


def test_every_rule_has_a_severity_a_log_level_and_a_meaning():
    levels = {Severity.INFO: logging.DEBUG, Severity.WARNING: logging.WARNING, Severity.ERROR: logging.ERROR}
    for rule in Rule:
        assert rule.log_level == levels[rule.severity], rule
        assert rule.meaning and "\n" not in rule.meaning, rule
    assert [r for r in Rule if r.severity is Severity.ERROR] == [Rule.TRADE_BUST, Rule.LOST]


def test_reported_rules_are_the_ones_worth_a_persons_attention():
    assert {r for r in Rule if r.reported} == {
        Rule.REJECT, Rule.FIELD_MISMATCH, Rule.UNKNOWN_STATUS, Rule.TERMINAL_CONFLICT, Rule.STALE_STATUS,
        Rule.STALE_FILL, Rule.TRADE_BUST, Rule.IMPLAUSIBLE_FILL, Rule.OVERFILL, Rule.MISSING, Rule.LOST,
        Rule.EXTERNAL_REPORTED, Rule.HOLDINGS_MISMATCH, Rule.CHILD_FAILED, Rule.CLOCK_STEPPED_BACK,
        Rule.BOOK_ANOMALY, Rule.POSITION_MISMATCH_PERSISTS}
    assert all(r.severity is not Severity.INFO for r in Rule if r.reported)


def test_one_call_records_a_decision_its_journal_entry_its_event_and_its_report():
    b = PlanBuilder(state(), Settings(), at(60))
    a, bo = order(status=S.PLACED), broker(S.REJECTED)
    updated = OrderUpdated(order_id="A", symbol="INFY", broker_order_id="B-A", side=Side.BUY, quantity=10,
                           status=S.PLACED, previous_status=S.SUBMITTED, filled_qty=0, rule=Rule.ACK,
                           summary="A placed")
    b.decide(Rule.ACK, "SUBMITTED -> PLACED", a, bo, event=updated)
    b.decide(Rule.STALE_STATUS, "ignored", a, bo)
    b.decide(Rule.REJECT, "rejected", a, bo, summary="A rejected at the broker")
    b.decide(Rule.MISSING, "miss 1", a, None, report=False)
    b.decide(Rule.FILL, "applied", a, bo, report=True)
    assert [d.rule for d in b.decisions] == [j.rule for j in b.journal] == ["ack", "stale-status", "reject", "missing",
                                                                            "fill"]
    assert [(e.kind, e.payload.summary) for e in b.events] == [
        ("order-updated", "A placed"), ("reconciliation-discrepancy", "A ignored"),
        ("reconciliation-discrepancy", "A rejected at the broker"), ("reconciliation-discrepancy", "A applied")]
    report = b.events[1].data
    assert (report["rule"], report["action"], report["local"], report["broker"]) == (
        "stale-status", "ignored", b.journal[1].local, b.journal[1].broker)


def test_the_runner_logs_each_decision_at_its_rules_level(tmp_path, caplog):
    store = TinyDBStore(tmp_path / "state.json")
    try:
        store.record_order(order("A", status=S.PLACED))
        store.record_order(order("L", status=S.PENDING, broker_order_id=None, missing_count=2))
        r = Reconciler(ScriptedBroker([broker(S.FILLED, 10, "100")]), store, Settings(missing_grace_seconds=0), 1.0)
        caplog.set_level(logging.DEBUG, "recon")
        r.run_cycle()
    finally:
        store.close()
    levels = {rec.message.split("[")[1].split("]")[0]: rec.levelno for rec in caplog.records if "] " in rec.message}
    assert levels == {"fill": logging.DEBUG, "lost": logging.ERROR}


# -- the rules table, row by row ------------------------------------------------------------------

@pytest.mark.parametrize("local_status", [S.PENDING, S.SUBMITTED])
def test_working_at_broker_moves_pending_or_submitted_to_placed(local_status):
    p = plan(state(order(status=local_status)), [broker(S.PLACED)])
    assert the_order(p).status is S.PLACED
    assert kinds(p) == ["order-updated"]
    assert not p.fills


@pytest.mark.parametrize("local_status", [S.PENDING, S.SUBMITTED, S.PLACED, S.PARTIAL])
def test_filled_at_broker_applies_the_remaining_fill(local_status):
    applied = LedgerEntry("A", 4, Decimal("400.00")) if local_status is S.PARTIAL else None
    local = state(order(status=local_status, filled_qty=4 if applied else 0),
                  ledger={"A": applied} if applied else {},
                  positions={("NSE", "INFY", "CNC"): Position("NSE", "INFY", "CNC", 4, 4, Decimal("400.00"))}
                  if applied else {})
    p = plan(local, [broker(S.FILLED, 10, "103")])
    fill_qty = 6 if applied else 10
    assert [f.quantity for f in p.fills] == [fill_qty]
    assert the_order(p).status is S.FILLED and the_order(p).filled_qty == 10
    assert p.changes.ledger == [LedgerEntry("A", 10, Decimal("1030"))]
    assert p.changes.positions[0].quantity == 10
    assert p.changes.positions[0].buy_value == Decimal("1030")
    assert "last_snapshot_at" in p.changes.checkpoint  # the checkpoint is written with the fill
    assert kinds(p) == ["order-filled"]


def test_partial_fill_applies_only_the_increment_at_the_inferred_price():
    local = state(order(status=S.PARTIAL, filled_qty=4), ledger={"A": LedgerEntry("A", 4, Decimal("400"))},
                  positions={("NSE", "INFY", "CNC"): Position("NSE", "INFY", "CNC", 4, 4, Decimal("400"))})
    p = plan(local, [broker(S.PLACED, 7, "101.5")])  # cumulative 7 @ 101.5 = 710.5
    (fill,) = p.fills
    assert fill.quantity == 3
    assert fill.value == Decimal("310.5")  # 710.5 - 400, exact
    assert fill.price == Decimal("103.5")
    assert the_order(p).status is S.PARTIAL
    assert p.changes.positions == [Position("NSE", "INFY", "CNC", 7, 7, Decimal("710.5"))]
    assert kinds(p) == ["order-filled"]


def test_cancel_carrying_fills_applies_the_fill_then_cancels():
    p = plan(state(order(status=S.PLACED)), [broker(S.CANCELLED, 3, "100")])
    assert [f.quantity for f in p.fills] == [3]
    assert the_order(p).status is S.CANCELLED
    assert kinds(p) == ["order-filled", "order-cancelled"]


@pytest.mark.parametrize("local_status", [S.PENDING, S.SUBMITTED, S.PLACED])
def test_rejection_is_announced_and_reported_as_a_discrepancy(local_status):
    p = plan(state(order(status=local_status)), [broker(S.REJECTED, message="margin")])
    assert the_order(p).status is S.REJECTED
    assert kinds(p) == ["order-rejected", "reconciliation-discrepancy"]
    assert p.changes.events[0].data["reason"] == "margin"


def test_one_miss_is_reported_but_changes_no_status():
    p = plan(state(order(status=S.PLACED)), [])
    assert the_order(p).status is S.PLACED and the_order(p).missing_count == 1
    assert kinds(p) == ["reconciliation-discrepancy"]
    assert rules(p) == ["missing"]


# -- sequences -------------------------------------------------------------------------------------

def run_cycles(local, books, start=60.0, step=2.0, **settings):
    """Feed snapshots one per cycle; returns the final state and every plan."""
    plans = []
    for i, book in enumerate(books):
        p = plan(local, book, now=start + i * step, **settings)
        plans.append(p)
        local = advance(local, p.changes)
    return local, plans


def test_partial_fills_then_fill_sum_to_the_order():
    local, plans = run_cycles(state(order(status=S.SUBMITTED)), [
        [broker(S.PLACED)], [broker(S.PLACED, 2, "100")], [broker(S.PLACED, 5, "101")],
        [broker(S.FILLED, 10, "102")]])
    assert [f.quantity for p in plans for f in p.fills] == [2, 3, 5]
    assert local.positions[("NSE", "INFY", "CNC")].quantity == 10
    assert local.positions[("NSE", "INFY", "CNC")].buy_value == Decimal("1020")
    assert local.orders["A"].status is S.FILLED


def test_partial_fill_then_cancel_keeps_only_what_filled():
    local, _ = run_cycles(state(order(status=S.PLACED)), [
        [broker(S.PLACED, 4, "100")], [broker(S.CANCELLED, 4, "100")]])
    assert local.orders["A"].status is S.CANCELLED
    assert local.positions[("NSE", "INFY", "CNC")].quantity == 4  # not the full 10 (Freqtrade #2383)


def test_fill_after_cancel_is_real_and_applied():
    local, plans = run_cycles(state(order(status=S.PLACED)), [
        [broker(S.CANCELLED, 0)], [broker(S.CANCELLED, 3, "99")]])
    assert local.orders["A"].status is S.CANCELLED
    assert local.positions[("NSE", "INFY", "CNC")].quantity == 3
    assert plans[1].changes.events[0].data["rule"] == "late-fill"


def test_order_reported_cancelled_that_in_fact_filled_becomes_filled():
    local, _plans = run_cycles(state(order(status=S.PLACED)), [
        [broker(S.CANCELLED, 0)], [broker(S.FILLED, 10, "100")]])
    assert local.orders["A"].status is S.FILLED
    assert local.positions[("NSE", "INFY", "CNC")].quantity == 10


def test_a_fill_reported_back_to_zero_is_a_trade_bust_alarm_once_and_nothing_undone():
    local, plans = run_cycles(state(order(status=S.PLACED)), [
        [broker(S.FILLED, 10, "100")], [broker(S.PLACED, 0)], [broker(S.PLACED, 0)], [broker(S.FILLED, 10, "100")]])
    assert local.orders["A"].status is S.FILLED
    assert local.positions[("NSE", "INFY", "CNC")].quantity == 10
    assert rules(plans[1]) == ["trade-bust", "stale-status"]
    assert plans[2].is_empty()  # the same stale report again: nothing new to say or write
    assert local.orders["A"].open_discrepancy is None  # cleared once the broker agrees again


def test_cumulative_figures_are_not_treated_as_increments():
    local, plans = run_cycles(state(order(status=S.PLACED)), [[broker(S.PLACED, 5, "100")]] * 4)
    assert local.positions[("NSE", "INFY", "CNC")].quantity == 5  # LEAN #4014
    assert sum(len(p.fills) for p in plans) == 1
    assert all(p.is_empty() for p in plans[1:])


def test_unknown_status_never_terminalises_and_is_reported():
    p = plan(state(order(status=S.PLACED)), [broker(S.UNKNOWN, raw="SOMETHING NEW")])
    assert rules(p) == ["unknown-status"]
    assert all(o.status is S.PLACED for o in p.changes.orders)
    assert "reconciliation-discrepancy" in kinds(p)


def test_unknown_status_with_fills_still_applies_them():
    p = plan(state(order(status=S.PLACED)), [broker(S.UNKNOWN, 4, "100", raw="ODD")])
    assert [f.quantity for f in p.fills] == [4]
    assert the_order(p).status is S.PARTIAL


def test_terminal_conflict_is_reported_not_applied():
    p = plan(state(order(status=S.FILLED, filled_qty=10), ledger={"A": LedgerEntry("A", 10, Decimal(1000))}),
             [broker(S.CANCELLED, 10, "100")])
    assert rules(p) == ["terminal-conflict"]
    assert the_order(p).status is S.FILLED


def test_overfill_is_applied_as_reported_and_flagged():
    p = plan(state(order(status=S.PLACED)), [broker(S.FILLED, 12, "100", quantity=10)])
    assert [f.quantity for f in p.fills] == [12]
    assert "overfill" in rules(p)


def test_fill_without_a_price_waits():
    p = plan(state(order(status=S.PLACED)), [broker(S.PLACED, 4, "0")])
    assert not p.fills
    assert "implausible-fill" in rules(p)


def test_modified_quantity_is_adopted():
    p = plan(state(order(status=S.PLACED)), [broker(S.PLACED, quantity=15)])
    assert the_order(p).quantity == 15
    assert rules(p) == ["quantity-modified"]


# -- matching, external orders -------------------------------------------------------------------

def test_timed_out_submit_that_went_through_is_found_by_tag():
    p = plan(state(order(status=S.PENDING, broker_order_id=None)), [broker(S.PLACED, tag="A", broker_order_id="X1")])
    assert the_order(p).broker_order_id == "X1"
    assert the_order(p).status is S.PLACED
    assert "submit-confirmed" in rules(p)
    assert not any(d.rule.startswith("external") for d in p.decisions)


def test_duplicate_submission_with_the_same_tag_is_not_hidden():
    local = state(order(status=S.PLACED, broker_order_id="X1"))
    p = plan(local, [broker(S.PLACED, broker_order_id="X1", tag="A"), broker(S.PLACED, broker_order_id="X2", tag="A")])
    assert rules(p)[0] == "external-adopted"
    assert {o.order_id for o in p.changes.orders} == {"ext-X2"}


def test_external_order_is_adopted_with_its_fills():
    p = plan(state(), [broker(S.FILLED, 5, "200", broker_order_id="E1", quantity=5, side=Side.SELL)])
    adopted = the_order(p, "ext-E1")
    assert adopted.external and adopted.status is S.FILLED and adopted.version == 0
    assert p.changes.positions[0].quantity == -5
    assert kinds(p) == ["order-external", "order-filled"]


def test_external_order_report_only_mode_reports_once():
    local, plans = run_cycles(state(), [[broker(S.PLACED, broker_order_id="E1")]] * 3, external_orders="report")
    assert not local.orders
    assert [rules(p) for p in plans] == [["external-reported"], [], []]


# -- the missing-order ladder --------------------------------------------------------------------

def test_young_orders_are_not_counted_missing():
    p = plan(state(order(status=S.SUBMITTED, created=55)), [], now=60, missing_grace_seconds=10)
    assert p.is_empty()


def test_missing_ladder_queries_after_the_retries_then_marks_lost():
    local, _plans = run_cycles(state(order(status=S.PLACED)), [[], []])
    assert local.orders["A"].missing_count == 2
    settings = Settings()
    due = orders_to_query(local, [], settings, at(70), lambda order_id: False)
    assert [o.order_id for o in due] == ["A"]
    p = plan(local, [], now=70, queried={"A": None})
    assert the_order(p).status is S.LOST
    assert rules(p) == ["lost"]


def test_targeted_query_that_finds_the_order_applies_what_the_broker_says():
    local, _ = run_cycles(state(order(status=S.PLACED)), [[], []])
    p = plan(local, [], now=70, queried={"A": broker(S.FILLED, 10, "100")})
    assert the_order(p).status is S.FILLED and the_order(p).missing_count == 0
    assert [f.quantity for f in p.fills] == [10]


def test_lost_order_is_found_again_when_the_broker_lists_it():
    local, _ = run_cycles(state(order(status=S.PLACED)), [[], []])
    local = advance(local, plan(local, [], now=70, queried={"A": None}).changes)
    assert local.orders["A"].status is S.LOST
    quiet = plan(local, [], now=72)
    assert quiet.is_empty()  # LOST keeps being checked without rewriting anything
    p = plan(local, [broker(S.PARTIAL, 3, "100")], now=74)
    assert the_order(p).status is S.PARTIAL
    assert "found" in rules(p)


def test_order_never_acknowledged_becomes_lost_after_the_retries_without_a_query():
    local, plans = run_cycles(state(order(status=S.PENDING, broker_order_id=None)), [[], [], []])
    assert local.orders["A"].status is S.LOST
    assert [rules(p) for p in plans] == [["missing"], ["missing"], ["lost"]]


def test_lost_orders_are_queried_again_only_when_their_recheck_is_due():
    lost = order(status=S.LOST, missing_count=3)
    assert orders_to_query(state(lost), [], Settings(), at(60), lambda order_id: False) == []
    assert orders_to_query(state(lost), [], Settings(), at(60), lambda order_id: True) == [lost]
    assert orders_to_query(state(lost), [broker(S.PLACED)], Settings(), at(60), lambda order_id: True) == []


def test_orders_in_sync_are_never_queried():
    assert orders_to_query(state(order(status=S.PLACED)), [broker(S.PLACED)], Settings(missing_retries=1),
                           at(60), lambda order_id: True) == []


def test_query_cap_per_cycle():
    orders = [order(f"O{i}", status=S.PLACED, broker_order_id=f"B{i}", missing_count=2) for i in range(25)]
    due = orders_to_query(state(*orders), [], Settings(max_queries_per_cycle=10), at(60), lambda order_id: False)
    assert len(due) == 10


def test_terminal_local_orders_missing_from_the_book_are_left_alone():
    p = plan(state(order(status=S.FILLED, filled_qty=10)), [])
    assert p.is_empty()


# -- positions --------------------------------------------------------------------------------

KEY = ("NSE", "INFY", "CNC")


def test_position_drift_must_persist_before_a_rebuild_in_live_mode():
    local = state(positions={KEY: Position(*KEY, 5, 5, Decimal(500))})
    broker_pos = [Position(*KEY, 8, 8, Decimal(800))]
    first = plan(local, [], positions=broker_pos, mode=Mode.LIVE)
    assert rules(first) == ["position-mismatch"] and not first.changes.positions
    local = advance(local, first.changes)
    second = plan(local, [], now=62, positions=broker_pos, mode=Mode.LIVE)
    assert rules(second) == ["position-drift"]
    assert second.changes.positions == broker_pos
    (event,) = second.changes.events
    assert event.kind == "position-synced"
    assert event.data["differences"] == [{"key": "NSE:INFY:CNC", "local": 5, "broker": 8, "delta": 3}]


def test_transient_position_difference_is_not_adopted():
    local = state(positions={KEY: Position(*KEY, 5, 5, Decimal(500))})
    first = plan(local, [], positions=[Position(*KEY, 8)], mode=Mode.LIVE)
    local = advance(local, first.changes)
    second = plan(local, [], now=62, positions=[Position(*KEY, 5)], mode=Mode.LIVE)
    assert not second.changes.positions
    assert second.changes.checkpoint["position_watch"] == {}


def test_only_the_drifted_position_is_rebuilt():
    other = ("NSE", "TCS", "CNC")
    local = state(positions={KEY: Position(*KEY, 5), other: Position(*other, 2, 2, Decimal(20))})
    broker_pos = [Position(*KEY, 8), Position(*other, 1)]  # TCS differs only this once (a fill in between)
    local = advance(local, plan(local, [], positions=[Position(*KEY, 8), Position(*other, 2)], mode=Mode.LIVE).changes)
    p = plan(local, [], now=62, positions=broker_pos, mode=Mode.LIVE)
    assert [pos.key for pos in p.changes.positions] == [KEY]
    assert p.changes.checkpoint["position_watch"] == {"NSE:TCS:CNC": {"local": 2, "broker": 1, "cycles": 1,
                                                                      "since": at(62).isoformat(), "alarms": 0}}


def test_drift_on_a_key_with_an_unresolved_order_waits_for_its_fills():
    """The broker's position already holds a fill of an order missing from the book: adopting the
    position now and applying the fill when the order is found would count it twice."""
    missing = order(status=S.PLACED, missing_count=1)
    local = state(missing)
    for now in (60, 62, 64):
        p = plan(local, [], now=now, positions=[Position(*KEY, 10)], mode=Mode.LIVE)
        assert not p.changes.positions
        local = advance(local, p.changes)
    assert "position-drift-deferred" in [d.rule for d in
                                         plan(state(missing, checkpoint={"position_watch": {"NSE:INFY:CNC": {
                                             "local": 0, "broker": 10, "cycles": 1}}}), [], now=70,
                                             positions=[Position(*KEY, 10)], mode=Mode.LIVE).decisions]
    found = plan(local, [], now=66, positions=[Position(*KEY, 10)], mode=Mode.LIVE,
                 queried={"A": broker(S.FILLED, 10, "100")})
    local = advance(local, found.changes)
    assert local.positions[KEY].quantity == 10  # the fill, once; no drift left to adopt


def test_a_position_the_broker_no_longer_has_is_rebuilt_flat():
    local = advance(state(positions={KEY: Position(*KEY, 5)}),
                    plan(state(positions={KEY: Position(*KEY, 5)}), [], positions=[], mode=Mode.LIVE).changes)
    p = plan(local, [], now=62, positions=[], mode=Mode.LIVE)
    assert p.changes.positions == [Position(*KEY)]


def test_positions_are_not_reconciled_in_paper_mode_or_without_a_fetch():
    local = state(positions={KEY: Position(*KEY, 5)})
    assert plan(local, [], positions=[Position(*KEY, 8)], mode=Mode.PAPER).is_empty()
    assert plan(local, [], positions=None, mode=Mode.LIVE).is_empty()  # failed fetch is not "flat"


# -- determinism and staleness ------------------------------------------------------------------

def test_the_same_inputs_give_the_same_plan_and_event_ids():
    local = state(order(status=S.PLACED))
    a = plan(local, [broker(S.FILLED, 10, "100")])
    b = plan(local, [broker(S.FILLED, 10, "100")])
    assert [e.event_id for e in a.changes.events] == [e.event_id for e in b.changes.events]
    assert [f.fill_id for f in a.fills] == [f.fill_id for f in b.fills]


def test_fill_id_is_a_function_of_order_and_cumulative_quantity():
    one = plan(state(order(status=S.PLACED)), [broker(S.FILLED, 10, "100")], now=60)
    two = plan(state(order(status=S.PLACED)), [broker(S.FILLED, 10, "100")], now=99)
    assert one.fills[0].fill_id == two.fills[0].fill_id
    assert one.changes.events[0].event_id == two.changes.events[0].event_id


def test_snapshot_older_than_the_last_applied_is_ignored():
    local = state(order(status=S.PLACED), checkpoint={"last_snapshot_at": at(100).isoformat()})
    p = plan(local, [broker(S.FILLED, 10, "100")], now=90)
    assert rules(p) == ["stale-snapshot"]
    assert p.changes.is_empty()


def test_in_sync_book_gives_an_empty_plan():
    local = state(order(status=S.PARTIAL, filled_qty=4), ledger={"A": LedgerEntry("A", 4, Decimal(400))})
    assert plan(local, [broker(S.PLACED, 4, "100")]).is_empty()


def test_non_terminating_average_keeps_exact_value():
    p = plan(state(order(status=S.PLACED, quantity=3)), [broker(S.FILLED, 3, "100.01", quantity=3)])
    assert p.changes.positions[0].buy_value == Decimal("300.03")
    assert p.changes.ledger[0].filled_value == Decimal("300.03")
