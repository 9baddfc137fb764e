"""The trading-day rollover, rule by rule with plain data: yesterday's unfinished orders expire by rule
(never LOST, never an error), each asked for at most once after its day; AMOs, weekends and holidays
move nothing."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from hostspec.calendar import ManualClock
from hostspec.model import Holding, LedgerEntry, LocalState, Mode, Order, OrderStatus, Position, Side
from recon_plugin.calendars.india import IndiaCalendar
from recon_plugin.engine import orders_to_query, plan_cycle
from recon_plugin.events import OrderExpired
from recon_plugin.plan import Plan, Snapshot
from recon_plugin.rules import Rule, Severity
from recon_plugin.runner import Reconciler
from recon_plugin.settings import Settings
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import FRI, MON, THU, WED, ScriptedBroker, advance, broker, ist, order, state

S = OrderStatus
CAL = IndiaCalendar.default()



THU_10 = ist(THU, 10)


def placed(order_id: str = "A", at: datetime = THU_10, **changes: object) -> Order:
    return replace(order(order_id, broker_order_id=f"B-{order_id}"), created_at=at, updated_at=at, **changes)


def plan(local: LocalState, book: list, now: datetime, queried: dict | None = None, **settings: object) -> Plan:
    return plan_cycle(local, Snapshot(book, now, None, queried or {}, CAL), Settings(**settings))


def query(local: LocalState, book: list, now: datetime, **settings: object) -> list[str]:
    return [o.order_id for o in orders_to_query(local, book, Settings(**settings), now, lambda _: True, CAL)]


def test_yesterdays_working_order_is_asked_for_once_then_expired_never_lost() -> None:
    local = state(placed(status=S.PLACED))
    friday = ist(FRI, 9, 20)
    first = plan(local, [], friday)  # not yet asked: only its trading date is recorded, nothing alarms
    assert [d.rule for d in first.decisions] == []
    assert [o.trading_date for o in first.changes.orders] == [THU]
    local = advance(local, first.changes)
    assert query(local, [], friday) == ["A"]  # the one query after its day
    second = plan(local, [], friday, queried={"A": None})
    expired = next(o for o in second.changes.orders if o.order_id == "A")
    assert expired.status is S.EXPIRED and expired.trading_date == THU
    assert [d.rule for d in second.decisions] == [Rule.DAY_EXPIRY]
    assert Rule.DAY_EXPIRY.severity is Severity.INFO and not Rule.DAY_EXPIRY.reported
    assert [e.kind for e in second.changes.events] == ["order-expired"]
    payload = second.changes.events[0].payload_as(OrderExpired)
    assert (payload.previous_status, payload.status, payload.trading_date) == (S.PLACED, S.EXPIRED, "2026-11-19")
    local = advance(local, second.changes)
    assert query(local, [], friday + timedelta(hours=1)) == []  # terminal: never asked again
    assert plan(local, [], friday + timedelta(hours=1)).is_empty()


def test_a_half_filled_order_expires_keeping_its_fills() -> None:
    local = state(placed(status=S.PARTIAL, filled_qty=3, trading_date=THU),
                  ledger={"A": LedgerEntry("A", 3, Decimal("300"))},
                  positions={("NSE", "INFY", "CNC"): Position("NSE", "INFY", "CNC", 3, 3, Decimal("300"))})
    p = plan(local, [], ist(FRI, 9, 20), queried={"A": None})
    assert p.changes.ledger == [] and p.changes.positions == [] and p.fills == []
    assert next(o for o in p.changes.orders).filled_qty == 3


def test_the_one_query_may_find_the_last_fills_before_the_close() -> None:
    local = state(placed(status=S.PARTIAL, filled_qty=3, trading_date=THU),
                  ledger={"A": LedgerEntry("A", 3, Decimal("300"))})
    final = broker(S.FILLED, 10, "100", broker_order_id="B-A")
    p = plan(local, [], ist(FRI, 9, 20), queried={"A": final})
    assert [o.status for o in p.changes.orders] == [S.FILLED]
    assert [f.quantity for f in p.fills] == [7]
    assert Rule.DAY_EXPIRY not in [d.rule for d in p.decisions]
    still_open = broker(S.PLACED, 5, "100", broker_order_id="B-A")  # "still working" after its day
    p = plan(local, [], ist(FRI, 9, 20), queried={"A": still_open})
    assert [f.quantity for f in p.fills] == [2]  # its fills apply; it is asked again, not expired on that word
    assert [o.status for o in p.changes.orders] == [S.PARTIAL] and Rule.DAY_EXPIRY not in [d.rule for d in p.decisions]


def test_an_order_the_broker_cannot_settle_after_repeated_queries_expires_reported() -> None:
    local = state(placed(status=S.PARTIAL, filled_qty=3, trading_date=THU))
    p = plan_cycle(local, Snapshot([], ist(FRI, 9, 20), None, {}, CAL, unanswered=frozenset({"A"})), Settings())
    assert [o.status for o in p.changes.orders] == [S.EXPIRED]
    assert [e.kind for e in p.changes.events] == ["order-expired", "reconciliation-discrepancy"]


def test_an_expired_order_is_refined_by_the_brokers_own_end_without_a_conflict() -> None:
    local = state(placed(status=S.EXPIRED, filled_qty=3, trading_date=THU),
                  ledger={"A": LedgerEntry("A", 3, Decimal("300"))})
    p = plan(local, [broker(S.CANCELLED, 3, "100", broker_order_id="B-A")], ist(FRI, 9, 20))
    assert [o.status for o in p.changes.orders] == [S.CANCELLED]
    assert Rule.TERMINAL_CONFLICT not in [d.rule for d in p.decisions]


def test_an_order_sent_seconds_before_the_close_gets_its_grace_period_first() -> None:
    late = replace(placed("L", at=ist(THU, 15, 29, 58), status=S.PENDING), broker_order_id=None)
    p = plan(state(late), [], ist(THU, 15, 30, 2), missing_grace_seconds=10)
    assert p.decisions == [] and all(o.status is S.PENDING for o in p.changes.orders)


def test_a_past_days_query_never_crowds_out_todays_missing_order() -> None:
    old = [placed(f"P{i}", status=S.PLACED, trading_date=THU) for i in range(3)]
    today = replace(placed("T", at=ist(FRI, 9, 0), status=S.PLACED, missing_count=5), trading_date=FRI)
    assert query(state(*old, today), [], ist(FRI, 9, 20), max_queries_per_cycle=2)[0] == "T"


def test_orders_with_nothing_to_ask_by_expire_at_once() -> None:
    never_acked = replace(placed("N", status=S.PENDING), broker_order_id=None)
    lost = placed("L", status=S.LOST, missing_count=3)
    local = state(never_acked, lost)
    assert query(local, [], ist(FRI, 9, 20)) == []  # a LOST order of a past day is not asked again
    p = plan(local, [], ist(FRI, 9, 20))
    assert sorted((o.order_id, o.status) for o in p.changes.orders) == [("L", S.EXPIRED), ("N", S.EXPIRED)]
    assert Rule.LOST not in [d.rule for d in p.decisions] and Rule.MISSING not in [d.rule for d in p.decisions]
    switched_off = plan(state(placed("Q", status=S.PLACED)), [], ist(FRI, 9, 20), max_queries_per_cycle=0)
    assert [o.status for o in switched_off.changes.orders] == [S.EXPIRED]


def test_the_day_ends_at_the_close_not_at_midnight() -> None:
    local = state(placed(status=S.PLACED))
    assert plan(local, [], ist(THU, 15, 29)).decisions[0].rule is Rule.MISSING  # the session is on: the ladder
    after_close = plan(local, [], ist(THU, 15, 31), queried={"A": None})
    assert [o.status for o in after_close.changes.orders] == [S.EXPIRED]


def test_a_day_order_the_broker_still_lists_as_working_is_left_to_the_broker() -> None:
    local = state(placed(status=S.PLACED))
    assert plan(local, [broker(S.PLACED, broker_order_id="B-A")], ist(FRI, 9, 20)).decisions == []


def test_an_amo_placed_friday_evening_works_through_the_weekend_into_monday() -> None:
    amo = placed("AMO", at=ist(FRI, 18), status=S.PLACED)
    local = state(amo)
    listed = [broker(S.PLACED, broker_order_id="B-AMO")]
    for when in (ist(date(2026, 11, 21), 12), ist(date(2026, 11, 22), 12), ist(MON, 8), ist(MON, 9, 20)):
        p = plan(local, listed, when)
        assert p.decisions == [], when
        assert query(local, [], when) == []
        local = advance(local, p.changes)
    assert CAL.trading_date(amo.created_at, "NSE") == MON


def test_a_holiday_moves_nothing() -> None:
    amo = placed("AMO", at=ist(MON, 17), status=S.PLACED)  # after Monday's close: Wednesday's (Tuesday is a holiday)
    p = plan(state(amo), [broker(S.PLACED, broker_order_id="B-AMO")], ist(date(2026, 11, 24), 11))
    assert p.decisions == [] and all(o.status is S.PLACED for o in p.changes.orders)


def test_no_calendar_no_trading_days() -> None:
    local = state(placed(status=S.PLACED))
    p = plan_cycle(local, Snapshot([], ist(FRI, 9, 20)), Settings(missing_grace_seconds=0))
    assert [d.rule for d in p.decisions] == [Rule.MISSING]


def test_a_lost_order_is_asked_for_again_after_1_2_4_intervals_at_most_every_five_minutes(tmp_path) -> None:
    clock = ManualClock(ist(THU, 10, 0))
    store = TinyDBStore(tmp_path / "state.json")
    store.record_order(placed("L", status=S.LOST, at=ist(THU, 9, 30), missing_count=3))
    scripted = ScriptedBroker()
    reconciler = Reconciler(scripted, store, Settings(interval_seconds=2.0, missing_grace_seconds=0), clock=clock,
                            calendar=CAL)
    asked_at = []
    for _ in range(600):  # 1,200 s of 2 s cycles
        before = len(scripted.calls)
        reconciler.run_cycle()
        if "history:B-L" in scripted.calls[before:]:
            asked_at.append(round((clock.now() - ist(THU, 10)).total_seconds()))
        clock.advance(2.0)
    gaps = [b - a for a, b in itertools.pairwise(asked_at)]
    assert gaps[:5] == [2, 4, 8, 16, 32]
    assert max(gaps) == 300 and gaps[-1] == 300
    store.close()


# -- drift with a cause -------------------------------------------------------------------------------

CNC, MIS = ("NSE", "ITC", "CNC"), ("NSE", "ITC", "MIS")


def drift(local: LocalState, positions: list[Position], holdings: list[Holding] | None, now: datetime) -> Plan:
    """Two cycles with the same figures (a mismatch must persist before a rebuild); the second plan."""
    settings = Settings(mode=Mode.LIVE, missing_grace_seconds=0)
    first = plan_cycle(local, Snapshot([], now, positions, {}, CAL, holdings), settings)
    return plan_cycle(advance(local, first.changes), Snapshot([], now + timedelta(seconds=2), positions, {}, CAL,
                                                              holdings), settings)


def held(local_positions: dict) -> LocalState:
    return LocalState(positions=local_positions)


def test_a_delivery_position_that_moved_into_holdings_overnight_is_settlement_not_an_alarm() -> None:
    local = held({CNC: Position(*CNC, 3, 3, Decimal("1323.45"))})
    p = drift(local, [], [Holding("NSE", "ITC", 3, t1_quantity=3, average_price=Decimal("441.15"))], ist(FRI, 9, 20))
    assert [d.rule for d in p.decisions] == [Rule.SETTLEMENT]
    assert Rule.SETTLEMENT.severity is Severity.INFO and not Rule.SETTLEMENT.reported
    assert [(q.key, q.quantity) for q in p.changes.positions] == [(CNC, 0)]
    assert "reconciliation-discrepancy" not in [e.kind for e in p.changes.events]


def test_the_same_move_without_holdings_to_explain_it_is_unexplained_drift() -> None:
    local = held({CNC: Position(*CNC, 3, 3, Decimal("1323.45"))})
    for holdings in (None, [], [Holding("NSE", "ITC", 1, t1_quantity=1)]):
        p = drift(local, [], holdings, ist(FRI, 9, 20))
        assert [d.rule for d in p.decisions] == [Rule.POSITION_DRIFT], holdings
        assert Rule.POSITION_DRIFT.severity is Severity.WARNING


def test_quantity_moved_between_products_with_no_order_is_a_product_conversion() -> None:
    local = held({CNC: Position(*CNC, 5, 5, Decimal("2200"))})
    p = drift(local, [Position(*MIS, 5, 5, Decimal("2200"))], [], ist(THU, 11))
    assert sorted((d.rule, d.symbol) for d in p.decisions) == [(Rule.PRODUCT_CONVERSION, "NSE:ITC:CNC"),
                                                              (Rule.PRODUCT_CONVERSION, "NSE:ITC:MIS")]
    assert {(q.key, q.quantity) for q in p.changes.positions} == {(CNC, 0), (MIS, 5)}


def test_the_brokers_own_exit_at_the_square_off_time_is_adopted_as_such() -> None:
    exit_order = broker(S.FILLED, 5, "441", broker_order_id="SQ1", side=Side.SELL, quantity=5, symbol="ITC",
                        product="MIS", placed_at=ist(THU, 15, 21))
    p = plan(LocalState(), [exit_order], ist(THU, 15, 22))
    assert [d.rule for d in p.decisions][:1] == [Rule.SQUARE_OFF]
    assert Rule.SQUARE_OFF.severity is Severity.INFO
    earlier = replace(exit_order, placed_at=ist(THU, 15, 10))
    assert [d.rule for d in plan(LocalState(), [earlier], ist(THU, 15, 22)).decisions][:1] == [
        Rule.EXTERNAL_ADOPTED]


def test_an_expired_order_never_blocks_its_positions_rebuild() -> None:
    gone = placed("X", status=S.EXPIRED, missing_count=3, trading_date=THU)
    local = replace(held({CNC: Position(*CNC, 3, 3, Decimal("1323.45"))}), orders={"X": replace(gone, symbol="ITC")})
    p = drift(local, [], [Holding("NSE", "ITC", 3, t1_quantity=3)], ist(FRI, 9, 20))
    assert [d.rule for d in p.decisions] == [Rule.SETTLEMENT]


def test_the_rollover_archives_settled_days_and_an_archived_order_is_never_adopted_or_filled_again(tmp_path) -> None:
    clock = ManualClock(ist(THU, 10, 0))
    store = TinyDBStore(tmp_path / "state.json")
    store.record_order(placed("A", status=S.SUBMITTED))
    filled = broker(S.FILLED, 10, "100", broker_order_id="B-A")
    scripted = ScriptedBroker([filled])
    reconciler = Reconciler(scripted, store, Settings(interval_seconds=2.0, missing_grace_seconds=0), clock=clock,
                            calendar=CAL)
    assert [f.quantity for f in reconciler.run_cycle().plan.fills] == [10]
    clock.advance(timedelta(hours=2))  # Thursday noon: the day is on, nothing moves
    reconciler.run_cycle()
    assert list(store.load().orders) == ["A"] and store.archived_days() == []
    clock.set(ist(FRI, 9, 20))  # the next morning, with yesterday's order still listed (as the paper book was)
    report = reconciler.run_cycle()
    state_after = store.load()
    assert state_after.orders == {} and dict(state_after.archived) == {"B-A": "A"}
    assert store.archived_days() == [THU] and store.load_day(THU).orders["A"].status is S.FILLED
    assert report.plan.fills == [] and Rule.EXTERNAL_ADOPTED not in [d.rule for d in report.decisions]
    assert state_after.positions[("NSE", "INFY", "CNC")].quantity == 10  # applied once, and only once
    scripted.book = [broker(S.FILLED, 12, "100", broker_order_id="B-A", quantity=12)]  # even if it "grew"
    again = reconciler.run_cycle()
    assert again.plan.is_empty() and store.load().positions[("NSE", "INFY", "CNC")].quantity == 10
    store.close()


def test_a_position_taken_from_kite_keeps_the_brokers_average_and_divides_out_the_lot_multiplier() -> None:
    from recon_plugin.brokers.kite.statuses import position_from_kite

    carried = position_from_kite({"exchange": "NFO", "tradingsymbol": "NIFTY26NOVFUT", "product": "NRML",
                                  "quantity": 75, "overnight_quantity": 75, "buy_quantity": 0, "buy_value": 0,
                                  "sell_quantity": 0, "sell_value": 0, "average_price": 23650.05, "multiplier": 1})
    assert carried.average_price() == Decimal("23650.0500")  # was None: shown as "-"
    gold = position_from_kite({"exchange": "MCX", "tradingsymbol": "GOLDM26DECFUT", "product": "NRML",
                               "quantity": 2, "buy_quantity": 2, "buy_value": 1520010.0, "sell_quantity": 0,
                               "sell_value": 0, "average_price": 76000.5, "multiplier": 10})
    assert gold.buy_value == Decimal("152001.0") and gold.average_price() == Decimal("76000.5000")
    assert gold.with_fill(Side.BUY, 1, Decimal("76001")).broker_average is None  # local fills: local figures


def test_a_derivative_gone_after_its_expiry_is_contract_expiry_and_one_not_yet_expired_is_drift() -> None:
    expired = ("NFO", "NIFTY26NOVFUT", "NRML")
    local = held({expired: Position(*expired, 75, 75, Decimal("1773753.75"))})
    p = drift(local, [], [], ist(date(2026, 12, 1), 9, 20))  # December: the November contract is gone
    assert [d.rule for d in p.decisions] == [Rule.CONTRACT_EXPIRY]
    assert Rule.CONTRACT_EXPIRY.severity is Severity.INFO
    weekly = ("NFO", "NIFTY26N2423500PE", "NRML")  # the 24 November 2026 weekly option
    p = drift(held({weekly: Position(*weekly, 50, 50, Decimal("5000"))}), [], [], ist(WED, 9, 20))
    assert [d.rule for d in p.decisions] == [Rule.CONTRACT_EXPIRY]
    december = ("MCX", "GOLDM26DECFUT", "NRML")  # not yet in its month: gone is unexplained
    p = drift(held({december: Position(*december, 1, 1, Decimal("76000.5"))}), [], [], ist(FRI, 9, 20))
    assert [d.rule for d in p.decisions] == [Rule.POSITION_DRIFT]


def test_expiry_is_read_from_kite_symbols() -> None:
    from recon_plugin.contracts import latest_expiry

    assert latest_expiry("NIFTY26NOVFUT", "NFO") == date(2026, 11, 30)
    assert latest_expiry("BANKNIFTY26NOV52000CE", "NFO") == date(2026, 11, 30)
    assert latest_expiry("NIFTY26N2423500PE", "NFO") == date(2026, 11, 24)
    assert latest_expiry("USDINR26DECFUT", "CDS") == date(2026, 12, 31)
    assert latest_expiry("INFY", "NSE") is None and latest_expiry("NIFTYBEES", "NFO") is None


# -- from the review: causes only where the evidence holds -----------------------------------------------

def test_a_past_days_order_still_waiting_for_its_query_blocks_its_positions_rebuild() -> None:
    future = ("NFO", "NIFTY26DECFUT", "NRML")
    waiting = replace(placed("Y", status=S.PLACED, trading_date=THU), symbol="NIFTY26DECFUT", exchange="NFO",
                      product="NRML", quantity=75)
    p = drift(state(waiting), [Position(*future, 75, 75, Decimal("1773750"))], [], ist(FRI, 9, 20))
    assert Rule.POSITION_DRIFT not in [d.rule for d in p.decisions]  # its fill comes first, once
    assert [d.rule for d in p.decisions] == [Rule.POSITION_DRIFT_DEFERRED]


def test_delivery_stock_sold_from_holdings_is_settlement_the_next_morning() -> None:
    sold = held({CNC: Position(*CNC, -4, 0, Decimal(0), 4, Decimal("1764"))})
    p = drift(sold, [], [Holding("NSE", "ITC", 6, realised_quantity=6)], ist(FRI, 9, 20))
    assert [d.rule for d in p.decisions] == [Rule.SETTLEMENT]


def test_no_settlement_for_a_position_filled_today() -> None:
    bought_today = replace(placed("T", at=ist(FRI, 10), status=S.FILLED, filled_qty=3, trading_date=FRI),
                           symbol="ITC")
    local = replace(held({CNC: Position(*CNC, 3, 3, Decimal("1323"))}), orders={"T": bought_today})
    p = drift(local, [], [Holding("NSE", "ITC", 100, realised_quantity=100)], ist(FRI, 11))
    assert [d.rule for d in p.decisions] == [Rule.POSITION_DRIFT]


def test_a_monthly_contract_is_not_called_expired_before_its_expiry_week() -> None:
    contract = ("NFO", "NIFTY26NOVFUT", "NRML")
    p = drift(held({contract: Position(*contract, 75, 75, Decimal("1773750"))}), [], [],
              ist(date(2026, 11, 3), 9, 20))
    assert [d.rule for d in p.decisions] == [Rule.POSITION_DRIFT]


def test_with_external_orders_report_the_brokers_square_off_is_still_its_own() -> None:
    exit_order = broker(S.FILLED, 10, "441", broker_order_id="SQ1", side=Side.SELL, symbol="ITC", product="MIS",
                        placed_at=ist(THU, 15, 20, 5))
    p = plan(LocalState(), [exit_order], ist(THU, 15, 22), external_orders="report")
    assert [d.rule for d in p.decisions][:1] == [Rule.SQUARE_OFF]
    assert "reconciliation-discrepancy" not in [e.kind for e in p.changes.events]
    flat = drift(held({MIS: Position(*MIS, 10, 10, Decimal("4410"))}), [], [], ist(THU, 15, 40))
    assert [d.rule for d in flat.decisions] == [Rule.SQUARE_OFF]


def test_commodity_orders_hold_the_archive_back_until_their_session_ends_then_it_moves(tmp_path) -> None:
    clock = ManualClock(ist(THU, 10))
    store = TinyDBStore(tmp_path / "state.json")
    store.record_order(placed("N", status=S.SUBMITTED))
    store.record_order(replace(placed("M", status=S.SUBMITTED), exchange="MCX", symbol="GOLDM26DECFUT"))
    book = [broker(S.FILLED, 10, "100", broker_order_id="B-N"),
            broker(S.FILLED, 10, "100", broker_order_id="B-M", symbol="GOLDM26DECFUT", exchange="MCX")]
    reconciler = Reconciler(ScriptedBroker(book), store, Settings(missing_grace_seconds=0), clock=clock, calendar=CAL)
    for when in (ist(THU, 10), ist(THU, 18, 31), ist(FRI, 1)):  # MCX trades until 23:55: Thursday stays
        clock.set(when)
        reconciler.run_cycle()
        assert set(store.load().orders) == {"N", "M"}, when
    clock.set(ist(FRI, 3, 0))  # 3 h after MCX's close: Thursday leaves, without waiting for Friday evening
    reconciler.run_cycle()
    assert store.load().orders == {} and store.archived_days() == [THU]
    store.close()


def test_an_older_stores_history_gets_trading_dates_and_is_archived(tmp_path) -> None:
    clock = ManualClock(ist(MON, 9, 20))
    store = TinyDBStore(tmp_path / "state.json")
    for i in range(3):  # settled orders written before trading dates existed
        store.record_order(placed(f"H{i}", at=ist(THU, 10), status=S.FILLED, filled_qty=10))
    reconciler = Reconciler(ScriptedBroker(), store, Settings(missing_grace_seconds=0), clock=clock, calendar=CAL)
    reconciler.run_cycle()
    reconciler.run_cycle()
    assert store.load().orders == {} and store.archived_days() == [THU]
    store.close()
