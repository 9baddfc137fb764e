"""Step 1 of a cycle: a pure function from (local state, broker snapshot) to a plan.

No thread, store, broker or clock here: the snapshot carries the time it was taken, so the same
inputs always give the same plan. ``recon_plugin.rules`` holds the rules; this module matches
orders and walks them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from hostspec.model import BrokerOrder, ChangeSet, LedgerEntry, LocalState, Mode, Order, OrderStatus
from recon_plugin.plan import Plan, PlanBuilder, Settings, Snapshot
from recon_plugin.rules import (
    effective_status,
    reconcile_external,
    reconcile_missing,
    reconcile_positions,
    reconcile_seen,
)


def match_book(state: LocalState, book: list[BrokerOrder]) -> tuple[dict[str, BrokerOrder], list[BrokerOrder]]:
    """Pair local orders with broker orders: by broker id, or by tag for an order whose submit never
    returned an id. Returns (local id -> broker order, broker orders no local order accounts for).

    A second broker order carrying a tag already matched (a duplicate submission) stays unmatched,
    so it is treated as an external order rather than hidden.
    """
    by_id = {bo.broker_order_id: bo for bo in book}
    by_tag: dict[str, BrokerOrder] = {}
    if any(order.broker_order_id is None for order in state.orders.values()):
        for bo in book:
            if bo.tag:
                by_tag.setdefault(bo.tag, bo)
    matched: dict[str, BrokerOrder] = {}
    used: set[str] = set()
    for order in state.orders.values():
        bo = by_id.get(order.broker_order_id) if order.broker_order_id else by_tag.get(order.order_id)
        if bo is not None and bo.broker_order_id not in used:
            matched[order.order_id] = bo
            used.add(bo.broker_order_id)
    return matched, [bo for bo in book if bo.broker_order_id not in used]


def in_sync(order: Order, bo: BrokerOrder, applied: LedgerEntry | None) -> bool:
    """The fast path: local and broker agree on everything the rules look at."""
    return (order.broker_order_id == bo.broker_order_id and order.missing_count == 0
            and order.open_discrepancy is None and order.status is effective_status(bo)
            and order.filled_qty == bo.filled_qty == (applied.filled_qty if applied else 0)
            and order.quantity == bo.quantity and order.side is bo.side and order.symbol == bo.symbol
            and order.exchange == bo.exchange and order.product == bo.product)


class SyncMemo:
    """Pairs of (local order, broker order) objects already found in sync.

    Both are immutable, and the store and the broker plugins hand out the same objects while
    nothing changed, so the same pair of objects is in sync again: checking identity instead of every
    field keeps an unchanged 5,000-order book cheap. Using it or not gives the same plan.
    """

    def __init__(self) -> None:
        self.pairs: dict[str, tuple[Order, BrokerOrder]] = {}


def plan_cycle(state: LocalState, snapshot: Snapshot, settings: Settings, memo: SyncMemo | None = None) -> Plan:
    """The changes and events that reconcile ``state`` with ``snapshot``, by the rules."""
    b = PlanBuilder(state, settings, snapshot.fetched_at)
    b.queried = snapshot.queried
    last = state.checkpoint.get("last_snapshot_at")
    if last and snapshot.fetched_at < datetime.fromisoformat(last):
        b.decide("stale-snapshot", f"snapshot taken {snapshot.fetched_at.isoformat()} is older than the last "
                 f"one applied ({last}); ignored", None, None, discrepancy=True)
        return Plan(ChangeSet(), b.decisions, [])
    matched, unmatched = match_book(state, snapshot.orders)
    known = memo.pairs if memo is not None else {}
    in_sync_now: dict[str, tuple[Order, BrokerOrder]] = {}
    for order_id, order in state.orders.items():
        bo = matched.get(order_id)
        if bo is not None:
            pair = known.get(order_id)
            if ((pair is not None and pair[0] is order and pair[1] is bo)
                    or in_sync(order, bo, state.ledger.get(order_id))):
                in_sync_now[order_id] = (order, bo)
            else:
                reconcile_seen(b, order, bo)
        elif not order.status.is_terminal:
            reconcile_missing(b, order)
    if memo is not None:
        memo.pairs = in_sync_now
    for bo in unmatched:
        reconcile_external(b, bo)
    if settings.mode is Mode.LIVE and snapshot.positions is not None:
        reconcile_positions(b, snapshot.positions)
    return b.build()


def orders_to_query(state: LocalState, book: list[BrokerOrder], settings: Settings, now: datetime,
                    lost_due: Callable[[str], bool]) -> list[Order]:
    """Missing orders that need a targeted query this cycle, at most ``max_queries_per_cycle``.

    An order qualifies on the miss that reaches ``missing_retries``, or when it is LOST and its
    periodic re-check is due (``lost_due(order_id)``, kept by the runner). Only orders with a broker id can be
    queried; the book scan by tag is the check for the others.
    """
    listed = {bo.broker_order_id for bo in book}
    due = []
    for order in state.orders.values():
        if (order.status.is_terminal or order.broker_order_id is None or order.broker_order_id in listed
                or (now - order.created_at).total_seconds() < settings.missing_grace_seconds):
            continue
        if (order.status is OrderStatus.LOST and lost_due(order.order_id)) or (
                order.status is not OrderStatus.LOST and order.missing_count + 1 >= settings.missing_retries):
            due.append(order)
    return due[: settings.max_queries_per_cycle]
