"""One order the trader placed, several orders at the broker: children linked to their parent, fills
applied once by each child and summed on the parent; trade busts; the current state of a history."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from hostspec.broker import BrokerError, FailureKind
from hostspec.model import BrokerOrder, LedgerEntry, Mode, OrderStatus, Position, Side
from recon_plugin.engine import plan_cycle
from recon_plugin.plan import Settings, Snapshot
from recon_plugin.resolve import current_state
from recon_plugin.runner import Reconciler
from tests.helpers import ScriptedBroker, advance, at, broker, order, state

S = OrderStatus
KEY = ("NSE", "INFY", "CNC")


def cycles(local, books, positions=None, missing_grace_seconds=0, **settings):
    plans = []
    for i, book in enumerate(books):
        snapshot = Snapshot(list(book), at(60 + 2 * i), positions[i] if positions else None)
        p = plan_cycle(local, snapshot, Settings(missing_grace_seconds=missing_grace_seconds, **settings))
        plans.append(p)
        local = advance(local, p.changes)
    return local, plans


def rules(plans):
    return [d.rule for p in plans for d in p.decisions]


def child(n, status, filled=0, avg="0", quantity=100, parent="P1", **changes):
    return broker(status, filled, avg, broker_order_id=f"C{n}", quantity=quantity, parent_order_id=parent,
                  tags=("autoslice", f"autoslice:{parent}"), **changes)


def test_autoslice_children_are_linked_and_their_fills_sum_to_the_parent_applied_once():
    parent = order("L1", status=S.SUBMITTED, quantity=300, broker_order_id="P1")
    books = [
        [child(1, S.PLACED), child(2, S.PLACED), child(3, S.PLACED)],
        [child(1, S.FILLED, 100, "10.05"), child(2, S.PLACED, 40, "10.10"), child(3, S.PLACED)],
        [child(1, S.FILLED, 100, "10.05"), child(2, S.FILLED, 100, "10.10"), child(3, S.FILLED, 100, "10.20")],
        [child(1, S.FILLED, 100, "10.05"), child(2, S.FILLED, 100, "10.10"), child(3, S.FILLED, 100, "10.20")],
    ]
    local, plans = cycles(state(parent), books)
    kids = {o.order_id: o for o in local.orders.values() if o.parent_order_id == "L1"}
    assert sorted(kids) == ["L1/C1", "L1/C2", "L1/C3"]
    assert all(not k.external and k.status is S.FILLED for k in kids.values())
    assert local.orders["L1"].status is S.FILLED and local.orders["L1"].filled_qty == 300
    assert local.orders["L1"].avg_price == Decimal("3035.00") / 300
    assert local.orders["L1"].missing_count == 0  # never on the missing ladder
    position = local.positions[KEY]
    assert (position.quantity, position.buy_value) == (300, Decimal("3035.00"))  # each child once, none by L1
    assert "L1" not in local.ledger
    assert sum(e.filled_qty for e in local.ledger.values()) == 300
    assert plans[3].is_empty()  # in step: nothing more to say or write
    assert "external-adopted" not in rules(plans) and rules(plans).count("child-linked") == 3
    linked = [e for p in plans for e in p.changes.events if e.kind == "order-external"]
    assert {e.data["action"] for e in linked} == {"linked"} and {e.data["parent_order_id"] for e in linked} == {"L1"}


def test_a_child_rejected_alone_is_reported_once_against_the_parent():
    parent = order("L1", status=S.SUBMITTED, quantity=200, broker_order_id="P1")
    rejected = child(2, S.REJECTED, message="insufficient margin")
    local, plans = cycles(state(parent), [
        [child(1, S.PLACED), rejected], [child(1, S.PLACED, 50, "10"), rejected],
        [child(1, S.FILLED, 100, "10"), rejected]])
    failed = [d for p in plans for d in p.decisions if d.rule == "child-failed"]
    assert len(failed) == 1 and failed[0].order_id == "L1" and "insufficient margin" in failed[0].action
    assert local.orders["L1"].status is S.CANCELLED and local.orders["L1"].filled_qty == 100
    assert local.positions[KEY].quantity == 100


def test_a_cover_orders_second_leg_is_linked_with_its_own_fills():
    entry = order("L1", status=S.PLACED, quantity=10, broker_order_id="CO1")
    books = [[broker(S.FILLED, 10, "100", broker_order_id="CO1", variety="co"),
              broker(S.PLACED, 0, broker_order_id="CO2", side=Side.SELL, parent_order_id="CO1", variety="co",
                     order_type="SL-M", trigger_price=Decimal("95"))],
             [broker(S.FILLED, 10, "100", broker_order_id="CO1", variety="co"),
              broker(S.FILLED, 10, "95", broker_order_id="CO2", side=Side.SELL, parent_order_id="CO1", variety="co")]]
    local, _ = cycles(state(entry), books)
    leg = local.orders["L1/CO2"]
    assert (leg.parent_order_id, leg.side, leg.variety, leg.order_type, leg.trigger_price) == (
        "L1", Side.SELL, "co", "SL-M", Decimal("95"))
    assert local.orders["L1"].filled_qty == 10  # the entry's own fills, not the sum of both legs
    position = local.positions[KEY]
    assert (position.quantity, position.buy_value, position.sell_value) == (0, Decimal("1000"), Decimal("950"))


def test_an_order_a_gtt_placed_is_adopted_and_keeps_its_gtt():
    local, plans = cycles(state(), [[broker(S.PLACED, broker_order_id="G1", parent_order_id="gtt:7731")]])
    adopted = local.orders["ext-G1"]
    assert adopted.external and adopted.parent_order_id == "gtt:7731"
    (event,) = [e for e in plans[0].changes.events if e.kind == "order-external"]
    assert event.data["parent_order_id"] == "gtt:7731" and "gtt:7731" in event.summary


def test_a_trade_bust_is_an_alarm_and_holds_the_position_until_the_figures_agree():
    filled = order("A", status=S.FILLED, filled_qty=10, avg_price=Decimal("100"))
    local = state(filled, positions={KEY: Position(*KEY, quantity=10, buy_qty=10, buy_value=Decimal("1000"))},
                  ledger={"A": LedgerEntry("A", 10, Decimal("1000"))})
    bust = broker(S.FILLED, 8, "100")
    eight = [Position(*KEY, quantity=8, buy_qty=8, buy_value=Decimal("800"))]
    local, plans = cycles(local, [[bust]] * 5, positions=[eight] * 5, mode=Mode.LIVE, position_mismatch_cycles=2)
    busts = [d for p in plans for d in p.decisions if d.rule == "trade-bust"]
    assert len(busts) == 1 and busts[0].rule.reported and busts[0].rule.severity == "error"
    assert busts[0].broker["filled_qty"] == 8 and busts[0].local["filled_qty"] == 10
    assert local.positions[KEY].quantity == 10  # held: not rebuilt from the broker while the bust is open
    assert "position-drift" not in rules(plans) and "position-drift-deferred" in rules(plans)
    assert local.orders["A"].open_discrepancy is not None and local.ledger["A"].filled_qty == 10


def test_the_current_state_of_a_history_is_the_most_advanced_whatever_the_order():
    oldest_first = [broker(S.SUBMITTED, raw="PUT ORDER REQ RECEIVED"), broker(S.PLACED, raw="OPEN"),
                    broker(S.PLACED, 4, "10", raw="OPEN"), broker(S.FILLED, 10, "10.2", raw="COMPLETE")]
    assert current_state(oldest_first) is oldest_first[-1]
    assert current_state(list(reversed(oldest_first))) is oldest_first[-1]
    modified = [broker(S.PLACED, raw="OPEN", updated_at=at(1)), broker(S.PLACED, raw="MODIFIED", updated_at=at(2)),
                broker(S.PLACED, raw="OPEN", updated_at=at(3), price=Decimal("11"))]
    assert current_state(list(reversed(modified))) is modified[-1]
    assert current_state([]) is None
    same = replace(oldest_first[1])
    assert current_state([oldest_first[1], same]) is same  # equals: the later in the list


def test_a_modification_walks_its_statuses_as_a_working_order_and_the_local_terms_follow():
    placed = order("A", status=S.PLACED, price=Decimal("100"), order_type="LIMIT")
    walk = [broker(S.PLACED, raw=raw, price=Decimal(price), order_type="LIMIT")
            for raw, price in (("MODIFY VALIDATION PENDING", "100"), ("MODIFY PENDING", "100"),
                               ("MODIFIED", "101.5"), ("OPEN", "101.5"), ("OPEN", "101.5"))]
    local, plans = cycles(state(placed), [[bo] for bo in walk])
    assert [p.changes.orders[0].status for p in plans if p.changes.orders] == [S.PLACED]
    assert local.orders["A"].status is S.PLACED and local.orders["A"].price == Decimal("101.5")
    assert rules(plans) == ["order-modified"] and plans[-1].is_empty()
    (event,) = [e for p in plans for e in p.changes.events]
    assert event.data["rule"] == "order-modified" and "price 101.5" in event.summary


def test_external_orders_in_report_mode_are_each_reported_once_and_forgotten_when_gone():
    books = [[broker(S.PLACED, broker_order_id=f"X{i}") for i in range(k)] for k in (1, 3, 3, 4)] + [[]]
    local, plans = cycles(state(), books, external_orders="report")
    reported = [d.broker["broker_order_id"] for p in plans for d in p.decisions
                if d.rule == "external-reported"]
    assert sorted(reported) == ["X0", "X1", "X2", "X3"]  # each once: not k + (k-1) + ... + 1
    assert local.checkpoint["reported_external"] == []  # the book no longer lists them: not kept for ever
    assert not local.orders


# -- #18: fills whose value the broker reports oddly -------------------------------------------------

def test_a_fill_at_a_negative_price_is_applied_exactly():
    local, _ = cycles(state(order("A", status=S.PLACED)), [[broker(S.FILLED, 10, "-37.63")]])
    assert local.orders["A"].status is S.FILLED and local.orders["A"].filled_qty == 10
    assert local.positions[KEY].buy_value == Decimal("-376.30") and local.ledger["A"].filled_qty == 10


def test_an_order_is_never_terminal_with_its_fills_unapplied():
    local, plans = cycles(state(order("A", status=S.PLACED)), [
        [broker(S.FILLED, 10, "0")], [broker(S.FILLED, 10, "0")], [broker(S.FILLED, 10, "101.5")]])
    first = advance(state(order("A", status=S.PLACED)), plans[0].changes)
    assert first.orders["A"].status is S.PLACED and first.orders["A"].filled_qty == 0  # not FILLED with 0 applied
    assert rules(plans[:2]) == ["implausible-fill"]  # once, while the figures stay the same
    assert local.orders["A"].status is S.FILLED and local.positions[KEY].quantity == 10
    assert local.positions[KEY].buy_value == Decimal("1015.0")


def test_a_revised_average_on_the_same_quantity_is_a_value_correction():
    local, plans = cycles(state(order("A", status=S.PLACED)), [
        [broker(S.FILLED, 10, "100")], [broker(S.FILLED, 10, "100.25")], [broker(S.FILLED, 10, "100.25")]])
    assert local.positions[KEY].buy_value == Decimal("1002.50") and local.ledger["A"].filled_value == Decimal("1002.50")
    assert local.orders["A"].avg_price == Decimal("100.25")
    (event,) = plans[1].changes.events
    assert event.kind == "fill-corrected" and event.data["difference"] == "2.50"
    assert (event.data["previous_value"], event.data["value"]) == ("1000", "1002.50")
    assert plans[2].is_empty()


class SteppedClock:
    """A wall clock that a VM resume or NTP can step back (``ManualClock`` refuses to)."""

    def __init__(self, when: datetime) -> None:
        self.when = when

    def now(self) -> datetime:
        return self.when

    def set(self, when: datetime) -> None:
        self.when = when


def test_a_clock_stepped_back_is_alarmed_once_and_fills_still_apply(store):
    clock = SteppedClock(at(3600))
    store.record_order(order("A", status=S.PLACED))
    book = ScriptedBroker([broker(S.PLACED, 2, "100")])
    reconciler = Reconciler(book, store, Settings(missing_grace_seconds=0), clock=clock)
    reconciler.run_cycle()
    clock.set(at(60))  # a VM resume or NTP step: an hour back
    book.book = [broker(S.PLACED, 6, "100")]
    reconciler.run_cycle()
    book.book = [broker(S.FILLED, 10, "100")]
    clock.set(at(62))
    reconciler.run_cycle()
    state = store.load()
    assert state.orders["A"].status is S.FILLED and state.positions[KEY].quantity == 10
    journal = [e.rule for e in store.journal()]
    assert journal.count("clock-stepped-back") == 1 and "stale-snapshot" not in journal
    assert state.checkpoint["last_snapshot_at"] == at(62).isoformat()  # healed: the stored time follows the clock
    again = Reconciler(book, store, Settings(missing_grace_seconds=0), clock=SteppedClock(at(30)))
    book.book = [broker(S.FILLED, 10, "100.5")]
    again.run_cycle()  # a new run after a restart, its clock behind the stored time: applied, alarmed
    assert store.load().ledger["A"].filled_value == Decimal("1005.0")


def test_an_adopted_order_stamped_in_the_future_climbs_the_missing_ladder_from_its_first_sighting():
    future = broker(S.PLACED, broker_order_id="X1", placed_at=at(86_400))  # a day ahead: skew, or IST as UTC
    local, plans = cycles(state(), [[future], [], [], []], missing_grace_seconds=1)
    adopted = local.orders["ext-X1"]
    assert adopted.created_at == at(60)
    assert [d.rule for d in plans[3].decisions] == ["missing"] and adopted.missing_count >= 2


# -- #18: what a book or a store should never hold ---------------------------------------------------

def test_one_broker_id_listed_twice_is_reported_once_and_its_most_advanced_record_used():
    twice = [broker(S.PLACED, 4, "100"), broker(S.PLACED, 6, "100")]
    local, plans = cycles(state(order("A", status=S.PLACED)), [twice, twice, list(reversed(twice))])
    assert local.orders["A"].filled_qty == 6 and local.positions[KEY].quantity == 6  # no fill ignored
    assert rules(plans).count("book-anomaly") == 1


def test_an_ended_orders_broker_id_reused_for_another_instrument_changes_nothing():
    filled = order("A", status=S.FILLED, filled_qty=10, avg_price=Decimal("100"))
    ledger = {"A": LedgerEntry("A", 10, Decimal("1000"))}
    reused = broker(S.PLACED, 0, quantity=50, symbol="TCS")
    local, plans = cycles(state(filled, ledger=ledger), [[reused], [reused]])
    assert local.orders["A"] == filled and local.ledger == ledger  # quantity, instrument and fills untouched
    assert rules(plans) == ["book-anomaly"]


def test_two_local_orders_claiming_one_broker_order_are_reported_once_and_the_fill_applied_once():
    adopted = order("ext-B-A", status=S.PLACED, external=True)
    strategy = order("S1", status=S.PLACED)  # recorded by the strategy after the cycle adopted it
    book = [broker(S.FILLED, 10, "100")]
    local, plans = cycles(state(adopted, strategy), [book, book, book, book])
    assert rules(plans).count("book-anomaly") == 1 and "missing" not in rules(plans)
    assert local.positions[KEY].quantity == 10 and sum(e.filled_qty for e in local.ledger.values()) == 10


def test_positions_trailing_the_order_book_never_undo_a_fill():
    flat, ten = [], [Position(*KEY, quantity=10, buy_qty=10, buy_value=Decimal("1000"))]
    book = [broker(S.FILLED, 10, "100")]
    local, plans = cycles(state(order("A", status=S.PLACED)), [book] * 6, positions=[flat, flat, flat, ten, ten, ten],
                          mode=Mode.LIVE, position_mismatch_cycles=2)
    assert local.positions[KEY].quantity == 10
    assert not {"position-drift", "position-mismatch", "position-drift-deferred"} & set(rules(plans))
    assert not [e for p in plans for e in p.changes.events if e.kind == "position-synced"]


def test_a_mismatch_that_outlasts_the_settle_window_is_still_rebuilt():
    flat = []
    book = [broker(S.FILLED, 10, "100")]
    local, plans = cycles(state(order("A", status=S.PLACED)), [book] * 10, positions=[flat] * 10,
                          mode=Mode.LIVE, position_mismatch_cycles=2, position_settle_seconds=5)
    assert local.positions[KEY].quantity == 0 and "position-drift" in rules(plans)


class FailingHistory(ScriptedBroker):
    """The order book answers; the targeted query (order history) always fails."""

    def order_history(self, broker_order_id: str) -> list[BrokerOrder]:
        self._call(f"history:{broker_order_id}")
        raise BrokerError("GET /orders/B-A: 503", FailureKind.TRANSIENT)


def test_a_missing_order_whose_query_never_answers_is_bounded_and_says_so(store):
    from hostspec.calendar import ManualClock

    clock = ManualClock(at(0))
    store.record_order(order("A", status=S.PLACED))
    reconciler = Reconciler(FailingHistory(), store, Settings(missing_grace_seconds=0), clock=clock)
    writes = []
    for _ in range(300):  # 10 minutes at 2 s
        clock.advance(2.0)
        reconciler.run_cycle()
        writes.append(store.writes)
    local = store.get_order("A")
    assert local.status is S.PLACED and local.missing_count == 3  # stops at the threshold: not LOST, not 60/3
    missing = [e for e in store.journal() if e.rule == "missing"]
    assert len(missing) == 3 + 1  # miss 1, 2, 3; then "has not answered" at most every 5 minutes
    assert "has not answered" in missing[-1].action
    assert writes[-1] - writes[10] <= 3  # no store write every cycle


def test_a_position_held_by_an_open_discrepancy_keeps_alarming_with_its_age():
    filled = order("A", status=S.FILLED, filled_qty=10, avg_price=Decimal("100"))
    local = state(filled, positions={KEY: Position(*KEY, quantity=10, buy_qty=10, buy_value=Decimal("1000"))},
                  ledger={"A": LedgerEntry("A", 10, Decimal("1000"))})
    eight = [Position(*KEY, quantity=8, buy_qty=8, buy_value=Decimal("800"))]
    plans = []
    for i in range(1000):  # 2,000 s at 2 s: a bust left open for over half an hour
        snapshot = Snapshot([broker(S.FILLED, 8, "100")], at(60 + 2 * i), eight)
        p = plan_cycle(local, snapshot, Settings(mode=Mode.LIVE, missing_grace_seconds=0))
        plans.append(p)
        local = advance(local, p.changes)
    persists = [d for p in plans for d in p.decisions if d.rule == "position-mismatch-persists"]
    assert [d.broker["minutes"] for d in persists] == [15, 30]  # never silent; not every cycle either
    assert local.positions[KEY].quantity == 10


def test_an_iceberg_placed_leg_by_leg_is_working_until_its_last_leg_and_sums_its_legs():
    parent = order("L1", status=S.SUBMITTED, quantity=300, broker_order_id="iceberg:L1")

    def leg(n, status, filled=0):
        return broker(status, filled, "50", broker_order_id=f"G{n}", quantity=100, parent_order_id="iceberg:L1",
                      tag="L1", variety="iceberg")

    books = [[leg(1, S.PLACED)], [leg(1, S.FILLED, 100)],  # between legs: the next is not placed yet
             [leg(1, S.FILLED, 100), leg(2, S.FILLED, 100)],
             [leg(1, S.FILLED, 100), leg(2, S.FILLED, 100), leg(3, S.PLACED, 40)],
             [leg(1, S.FILLED, 100), leg(2, S.FILLED, 100), leg(3, S.FILLED, 100)]]
    statuses = []
    local = state(parent)
    for book in books:
        local, _ = cycles(local, [book])
        statuses.append(local.orders["L1"].status)
    assert statuses == [S.PLACED, S.PARTIAL, S.PARTIAL, S.PARTIAL, S.FILLED]
    assert local.orders["L1"].filled_qty == 300 and local.positions[KEY].quantity == 300
    assert sorted(o for o in local.orders if o.startswith("L1/")) == ["L1/G1", "L1/G2", "L1/G3"]
