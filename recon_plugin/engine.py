"""Step 1 of a cycle: a pure function from (local state, broker snapshot) to a plan.

No thread, store, broker or clock here: the snapshot carries the time it was taken, so the same
inputs always give the same plan. ``recon_plugin.resolve`` holds the rules; this module matches
orders and walks them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from hostspec.calendar import MarketCalendar
from hostspec.model import BrokerOrder, ChangeSet, LedgerEntry, LocalState, Mode, Order, OrderStatus, Trade
from recon_plugin.plan import Plan, PlanBuilder, Snapshot
from recon_plugin.resolve import (
    current_state,
    effective_status,
    modified_terms,
    reconcile_child,
    reconcile_external,
    reconcile_holdings,
    reconcile_missing,
    reconcile_parent,
    reconcile_positions,
    reconcile_seen,
    reconcile_trades,
    report_anomalies,
)
from recon_plugin.rules import Rule
from recon_plugin.settings import Settings


@dataclass
class Matching:
    """Local orders paired with the broker's book."""

    orders: list[Order]  # local orders the book lists ...
    brokers: list[BrokerOrder]  # ... and the broker's view of each, position by position
    missing: list[Order]  # non-terminal local orders the book does not list
    unmatched: list[BrokerOrder]  # broker orders no local order accounts for
    duplicates: dict[str, list[BrokerOrder]] = field(default_factory=dict)  # ids the book lists twice or more
    double_claims: list[tuple[Order, Order]] = field(default_factory=list)  # (a later claimant, the one paired)


def match_book(state: LocalState, book: list[BrokerOrder], order_tag: Callable[[str], str] | None = None,
               unreadable: Mapping[str, str] | None = None) -> Matching:
    """Pair local orders with broker orders: by broker id, or by tag for an order whose submit never
    returned an id (the tag the broker lists for its local id: ``order_tag(order_id)``).

    A broker order is paired at most once: a second broker order carrying a tag already paired (a
    duplicate submission) stays unmatched, so it is treated as an external order rather than hidden.
    """
    remaining: dict[str, BrokerOrder] = {bo.broker_order_id: bo for bo in book}
    duplicates: dict[str, list[BrokerOrder]] = {}
    if len(remaining) != len(book):  # one id listed twice: its most advanced record stands, and it is reported
        for row in book:
            duplicates.setdefault(row.broker_order_id, []).append(row)
        duplicates = {i: rows for i, rows in duplicates.items() if len(rows) > 1}
        for broker_id, rows in duplicates.items():
            remaining[broker_id] = current_state(rows) or rows[-1]
    orders: list[Order] = []
    brokers: list[BrokerOrder] = []
    missing: list[Order] = []
    untagged: list[Order] = []
    paired: dict[str, Order] = {}
    double_claims: list[tuple[Order, Order]] = []
    for order in state.orders.values():
        if order.broker_order_id is None:
            untagged.append(order)
            continue
        bo = remaining.pop(order.broker_order_id, None)
        if bo is not None:
            orders.append(order)
            brokers.append(bo)
            paired[order.broker_order_id] = order
        elif order.broker_order_id in paired:  # two local orders claim one broker order
            double_claims.append((order, paired[order.broker_order_id]))
        elif unreadable and order.broker_order_id in unreadable:
            continue  # listed, but its record is malformed: left as it is this cycle, never missing
        elif not order.status.is_terminal:
            missing.append(order)
    if untagged:
        by_tag: dict[str, BrokerOrder] = {}
        for bo in remaining.values():
            if bo.tag:
                by_tag.setdefault(bo.tag, bo)
        for order in untagged:
            bo = by_tag.pop(order_tag(order.order_id) if order_tag else order.order_id, None)
            if bo is not None:
                del remaining[bo.broker_order_id]
                orders.append(order)
                brokers.append(bo)
            elif not order.status.is_terminal:
                missing.append(order)
    archived = state.archived
    unmatched = [bo for bo in remaining.values() if bo.broker_order_id not in archived] if archived else list(
        remaining.values())  # an archived order is settled history: never adopted, never filled again
    return Matching(orders, brokers, missing, unmatched, duplicates, double_claims)


def in_sync(order: Order, bo: BrokerOrder, applied: LedgerEntry | None) -> bool:
    """The fast path: local and broker agree on everything the rules look at."""
    return (order.broker_order_id == bo.broker_order_id and order.missing_count == 0
            and order.open_discrepancy is None and order.status is effective_status(bo)
            and order.filled_qty == bo.filled_qty == (applied.filled_qty if applied else 0)
            and (bo.filled_qty == 0 or order.avg_price == bo.avg_price)
            and order.quantity == bo.quantity and order.side is bo.side and order.symbol == bo.symbol
            and order.exchange == bo.exchange and order.product == bo.product and not modified_terms(order, bo))


class SyncMemo:
    """The last cycle's pairing, kept when every pair in it was in sync.

    Records are immutable and the store and broker plugins hand out the same ones while nothing
    changed, so when this cycle pairs equal records against the same ledger, every pair is in sync
    again: one comparison of two lists (identity first, in C) instead of every field of every order.
    Using it or not gives the same plan.
    """

    def __init__(self) -> None:
        self.orders: list[Order] = []
        self.brokers: list[BrokerOrder] = []
        self.ledger: object = None


def plan_cycle(state: LocalState, snapshot: Snapshot, settings: Settings, memo: SyncMemo | None = None) -> Plan:
    """The changes and events that reconcile ``state`` with ``snapshot``, by the rules."""
    b = PlanBuilder(state, settings, snapshot.fetched_at, snapshot.calendar)
    b.queried = snapshot.queried
    b.unanswered = snapshot.unanswered
    b.run, b.sequence, b.partial = snapshot.run, snapshot.sequence, snapshot.partial
    if snapshot.partial:
        return _plan_partial(b, state, snapshot)
    if stale := _stale(state, snapshot):
        b.decide(Rule.STALE_SNAPSHOT, stale, None, None)
        return Plan(ChangeSet(), b.decisions, [])
    last = state.checkpoint.get("last_snapshot_at")
    if last and snapshot.fetched_at < datetime.fromisoformat(last):  # a newer snapshot by its run's order
        b.decide(Rule.CLOCK_STEPPED_BACK, f"this snapshot is newer than the last one applied, yet the clock says "
                 f"{snapshot.fetched_at.isoformat()}, before {last}: the clock stepped back (or was ahead); applied, "
                 "and the stored time follows the clock", None, None)
    m = match_book(state, snapshot.orders, snapshot.order_tag, snapshot.unreadable)
    if snapshot.unidentified:
        m.missing = []  # a malformed record could be any of them: none is counted missing this cycle
    traded: set[str] = set()
    if snapshot.trades:  # first: a fill the trades show is applied at its own price, never inferred first
        for order, bo in zip(m.orders, m.brokers, strict=True):
            if (of_order := snapshot.trades.get(bo.broker_order_id)) is not None:
                reconcile_trades(b, order, of_order)
                traded.add(bo.broker_order_id)
    if (memo is None or memo.ledger is not state.ledger or m.orders != memo.orders or m.brokers != memo.brokers
            or b.orders):
        all_in_sync = True
        for order, bo in zip(m.orders, m.brokers, strict=True):
            if not in_sync(order, bo, b.ledger.get(order.order_id) or state.ledger.get(order.order_id)):
                all_in_sync = False
                reconcile_seen(b, b.orders.get(order.order_id, order), bo)
        if memo is not None and all_in_sync:
            memo.orders, memo.brokers, memo.ledger = m.orders, m.brokers, state.ledger
        elif memo is not None:
            memo.orders, memo.brokers, memo.ledger = [], [], None
    if m.missing or m.unmatched or state.checkpoint.get("reported_external"):
        _reconcile_unpaired(b, state, snapshot.orders, m)
    if snapshot.trades:
        _reconcile_trades(b, state, m, {i: t for i, t in snapshot.trades.items() if i not in traded})
    if (m.duplicates or m.double_claims or b.reused or b.anomalies or snapshot.unreadable or snapshot.unidentified
            or state.checkpoint.get("book_anomalies")):
        report_anomalies(b, m.duplicates, m.double_claims, {**snapshot.unreadable, **{
            f"#{i}": text for i, text in enumerate(snapshot.unidentified)}})
    if snapshot.calendar is not None and not state.checkpoint.get("trading_dates_recorded"):
        # once per store: orders from before trading dates were recorded get theirs, so that a
        # store's existing history can leave the hot state with its day like any other
        for o in state.orders.values():
            if o.trading_date is None and o.order_id not in b.orders:
                b.update_order(o)
        b.checkpoint["trading_dates_recorded"] = True
    if settings.mode is Mode.LIVE and snapshot.positions is not None:
        reconcile_positions(b, snapshot.positions, snapshot.holdings)
        if snapshot.holdings is not None and snapshot.holdings_fresh:
            reconcile_holdings(b, snapshot.holdings)
    return b.build()


def _plan_partial(b: PlanBuilder, state: LocalState, snapshot: Snapshot) -> Plan:
    """A partial snapshot (a push: some orders, as the broker just reported them) through the same
    rules as a poll, for those orders only: it says nothing about any other order (none is missing),
    nor about positions; a pushed order no local order accounts for is adopted (or linked to its
    parent) like a polled one. Which report of one order is newer is decided per order, by its broker
    time (``reconcile_seen``), never by the run's snapshot order: a poll that started before a push may
    be applied after it."""
    m = match_book(state, snapshot.orders, snapshot.order_tag, snapshot.unreadable)
    for order, bo in zip(m.orders, m.brokers, strict=True):
        if not in_sync(order, bo, state.ledger.get(order.order_id)):
            reconcile_seen(b, order, bo)
    m.missing = []
    if m.unmatched:
        _reconcile_unpaired(b, state, snapshot.orders, m, prune_reported=False)
    return b.build()


def _reconcile_trades(b: PlanBuilder, state: LocalState, m: Matching, trades: Mapping[str, list[Trade]]) -> None:
    """The day's trades against the orders they belong to: matched orders (and today's local orders the
    book no longer lists) by broker id. A trade of an order no local order accounts for, and that the
    book does not list either, is reported once; it is never applied on its own."""
    local = {o.broker_order_id: o for o in state.orders.values() if o.broker_order_id is not None}
    for new in b.orders.values():  # orders adopted or linked this cycle
        if new.broker_order_id is not None:
            local.setdefault(new.broker_order_id, new)
    listed = {bo.broker_order_id for bo in m.unmatched}
    for broker_id, of_order in trades.items():
        owner = local.get(broker_id)
        if owner is not None:
            reconcile_trades(b, b.orders.get(owner.order_id, owner), of_order)
        elif broker_id not in listed and broker_id not in state.archived:
            b.anomalies[f"trade-of-unknown:{broker_id}"] = (
                f"{len(of_order)} trades of broker order {broker_id} ({of_order[0].symbol}), which no local order "
                "accounts for and the book does not list: not applied")


def _stale(state: LocalState, snapshot: Snapshot) -> str | None:
    """Why ``snapshot`` is older than the last one applied (None: it is not). Within one run the
    snapshots' sequence decides; a snapshot of another run (the previous process is gone: one writer
    per store) or without a run is newer unless its own run says otherwise, or, without a run, its
    time is before the last applied."""
    checkpoint = state.checkpoint
    if snapshot.run is not None:
        if snapshot.run == checkpoint.get("last_snapshot_run") and snapshot.sequence <= checkpoint.get(
                "last_snapshot_sequence", 0):
            return (f"snapshot {snapshot.sequence} of this run is not newer than snapshot "
                    f"{checkpoint.get('last_snapshot_sequence')} already applied; ignored")
        return None
    last = checkpoint.get("last_snapshot_at")
    if last and snapshot.fetched_at < datetime.fromisoformat(last):
        return f"snapshot taken {snapshot.fetched_at.isoformat()} is older than the last one applied ({last}); ignored"
    return None


def _reconcile_unpaired(b: PlanBuilder, state: LocalState, book: list[BrokerOrder], m: Matching,
                        prune_reported: bool = True) -> None:
    """The local orders the book does not list and the broker orders no local order accounts for.

    A broker order made of another (``BrokerOrder.parent_order_id``) whose parent is a local order is
    that order's child, never external; a local order the book does not list but whose children it
    does follows them (``reconcile_parent``) and is not missing. The book is scanned for named parents
    only in a cycle with an order missing or unmatched; the local orders are indexed by broker id only
    when a broker order names a parent."""
    children: dict[str, list[BrokerOrder]] = {}
    for bo in book:
        if bo.parent_order_id is not None:
            children.setdefault(bo.parent_order_id, []).append(bo)
    for order in m.missing:
        family = children.get(order.broker_order_id) if order.broker_order_id is not None else None
        if family:
            reconcile_parent(b, order, family)
        else:
            reconcile_missing(b, order)
    by_broker_id = {o.broker_order_id: o for o in state.orders.values()
                    if o.broker_order_id is not None} if children and m.unmatched else {}
    for bo in m.unmatched:
        parent = by_broker_id.get(bo.parent_order_id) if bo.parent_order_id is not None else None
        if parent is not None:
            reconcile_child(b, parent, bo)
        else:
            reconcile_external(b, bo)
    reported = b.checkpoint.get("reported_external", state.checkpoint.get("reported_external"))
    if reported and prune_reported:  # external orders reported and not adopted: remembered while the book lists them
        listed = {bo.broker_order_id for bo in m.unmatched}
        if (kept := [i for i in reported if i in listed]) != reported:
            b.checkpoint["reported_external"] = kept


def orders_to_query(state: LocalState, book: list[BrokerOrder], settings: Settings, now: datetime,
                    lost_due: Callable[[str], bool], calendar: MarketCalendar | None = None) -> list[Order]:
    """Missing orders that need a targeted query this cycle, at most ``max_queries_per_cycle``.

    An order qualifies on the miss that reaches ``missing_retries``; when it is LOST and its
    periodic re-check is due (``lost_due(order_id)``, kept by the runner); or, once, when its trading
    day has ended (its recorded ``trading_date`` is before today's on its exchange): the plan then
    resolves or expires it, and never asks again. Only orders with a broker id can be queried; the
    book scan by tag is the check for the others.
    """
    today: dict[str, date] = {}

    def past_day(o: Order, recorded_only: bool = True) -> bool:
        """Whether o's trading day has ended. With ``recorded_only`` (the test every working order
        passes through) only a recorded trading date counts: the plan records it the first cycle it
        finds the order missing after its day, and the calendar is not consulted per order."""
        if calendar is None or (o.trading_date is None and recorded_only):
            return False
        if o.exchange not in today:
            today[o.exchange] = calendar.trading_date(now, o.exchange)
        return (o.trading_date or calendar.trading_date(o.created_at, o.exchange)) < today[o.exchange]

    # cheap attribute tests first: in a book in sync no order gets as far as the set of listed ids
    candidates = [o for o in state.orders.values()
                  if o.broker_order_id is not None and not o.status.is_terminal
                  and ((o.status is not OrderStatus.LOST
                        and (o.missing_count + 1 >= settings.missing_retries or past_day(o)))
                       or (o.status is OrderStatus.LOST and lost_due(o.order_id)
                           and not past_day(o, recorded_only=False)))]
    if not candidates:
        return []
    listed = {bo.broker_order_id for bo in book}
    due = [o for o in candidates if o.broker_order_id not in listed
           and (now - o.created_at).total_seconds() >= settings.missing_grace_seconds]
    due.sort(key=past_day)  # today's first: a past day's orders never crowd out a missing order of today
    return due[: settings.max_queries_per_cycle]
