"""The logic of the reconciliation rules: plain data in, decisions into a ``PlanBuilder`` out.

The rules themselves (names, severities, meanings) are the catalogue in ``recon_plugin.rules``.

Invariants every rule keeps, whatever the broker sends:

- a fill is applied once: only quantity beyond the ledger's cumulative figure is applied;
- the filled quantity never decreases and the status only moves forward: a stale status is
  recorded and ignored, never applied (but a fill after CANCELLED is real and is applied); less
  filled than already applied (a trade bust) is an alarm, and nothing is undone by itself;
- a status the broker plugin could not map (UNKNOWN) never terminalises an order;
- an order missing from the book is never terminalised on one miss (see ``reconcile_missing``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypedDict

from hostspec.model import (
    ZERO,
    BrokerOrder,
    Fill,
    Holding,
    InstrumentKey,
    LedgerEntry,
    Order,
    OrderStatus,
    Position,
    Side,
    Trade,
    key_str,
    stable_id,
)
from recon_plugin.contracts import has_expired, latest_expiry
from recon_plugin.events import (
    FillCorrected,
    OrderCancelled,
    OrderExpired,
    OrderExternal,
    OrderFilled,
    OrderRejected,
    OrderUpdated,
    PositionDifference,
    PositionSynced,
)
from recon_plugin.plan import DAY_EXCHANGE, PlanBuilder, journal_price, position_summary, price_text
from recon_plugin.rules import Rule

R = Rule
S = OrderStatus


def effective_status(bo: BrokerOrder) -> OrderStatus:
    """The broker's status with partial fills made explicit: a working order with fills is PARTIAL
    (Kite, for one, reports a partially filled order as OPEN)."""
    if bo.status in (S.SUBMITTED, S.PLACED, S.PARTIAL):
        return S.PARTIAL if bo.filled_qty > 0 else (S.PLACED if bo.status is S.PARTIAL else bo.status)
    return bo.status


def current_state(history: Sequence[BrokerOrder]) -> BrokerOrder | None:
    """The order's current state from its history: the most advanced entry, not merely the last one.

    Kite lists the history oldest first, but nothing in the answer guarantees it. The most advanced
    entry is the one with the most filled, then the furthest status (``OrderStatus.rank``: a terminal
    one beyond a working one), then the latest timestamp; among equals, the later in the list. A modification's own
    statuses (MODIFIED, then OPEN again) are equals, decided by time and position."""
    if not history:
        return None
    oldest = datetime.min.replace(tzinfo=UTC)

    def advance(item: tuple[int, BrokerOrder]) -> tuple[int, int, datetime, int]:
        index, bo = item
        return (bo.filled_qty, bo.status.rank, bo.updated_at or bo.placed_at or oldest, index)

    return max(enumerate(history), key=advance)[1]


def may_move(current: OrderStatus, target: OrderStatus, bo: BrokerOrder, order: Order) -> bool:
    """Whether local status ``current`` may become ``target``: forward only, with one exception.

    A terminal order may become FILLED when the broker's fills cover its whole quantity: an order
    reported cancelled that had in fact filled (the fills are the proof).
    """
    if target is current or target is S.UNKNOWN:
        return False
    if current is S.LOST or target.rank > current.rank:
        return True
    if current is S.EXPIRED and target.is_terminal:
        return True  # EXPIRED says only that its day ended unseen: the broker's own end refines it
    return current.is_terminal and target is S.FILLED and bo.filled_qty >= order.quantity


TERMS = ("price", "trigger_price", "order_type", "validity")
"""An order's terms a modification at the broker may change (its quantity has a rule of its own)."""


def modified_terms(order: Order, bo: BrokerOrder) -> dict[str, object]:
    """The terms the broker lists otherwise than local: a modification there. A term either side does
    not state (None: the broker does not report it, or the host recorded the order without it) is
    never a difference."""
    return {name: value for name in TERMS
            if (value := getattr(bo, name)) is not None and (mine := getattr(order, name)) is not None
            and value != mine}


def reconcile_seen(b: PlanBuilder, order: Order, bo: BrokerOrder) -> None:
    """Resolve one local order against the broker's view of it."""
    if order.status.is_terminal and (bo.side, bo.key) != (order.side, order.key):
        b.reused.append((order, bo))  # its id reused for another instrument: an ended order never changes
        return
    if order.seen_at is not None and bo.updated_at is not None and (bo.updated_at < order.seen_at or (
            b.partial and bo.updated_at == order.seen_at and bo.filled_qty < b.applied(order.order_id).filled_qty)):
        return  # an older report than one applied (a poll begun before a push, a late push): nothing new
    changes: dict[str, object] = {}
    if order.broker_order_id is None:
        changes["broker_order_id"] = bo.broker_order_id
        b.decide(R.SUBMIT_CONFIRMED, "recorded the broker's order id", order, bo)
    if order.missing_count or order.status is S.LOST:
        changes["missing_count"] = 0
        b.decide(R.FOUND, f"listed again after {order.missing_count} misses", order, bo)
    if bo.quantity != order.quantity and bo.quantity > 0:
        changes["quantity"] = bo.quantity
        b.decide(R.QUANTITY_MODIFIED, f"quantity {order.quantity} -> {bo.quantity} (modified at the broker)",
                 order, bo)
    if terms := modified_terms(order, bo):
        changes.update(terms)
        b.decide(R.ORDER_MODIFIED, ", ".join(f"{name} {getattr(order, name)} -> {value}"
                                             for name, value in terms.items()) + " (at the broker)", order, bo)

    target = effective_status(bo)
    reports: list[tuple[Rule, str]] = []
    if (bo.side, bo.key) != (order.side, order.key):
        reports.append((R.FIELD_MISMATCH, f"broker has {bo.side} {key_str(bo.key)}, local "
                                          f"{order.side} {key_str(order.key)}; fills follow the broker"))
    fill = _reconcile_fill(b, order, bo, reports)
    new_status = order.status
    unapplied = bo.filled_qty > (fill.cumulative_qty if fill else b.applied(order.order_id).filled_qty)
    if unapplied and target.is_terminal:
        # never terminal with fills not applied: it stays working until the broker's figures read
        target = S.PARTIAL if order.filled_qty or fill else order.status
    if may_move(order.status, target, bo, order):
        new_status = target
    elif target is S.UNKNOWN:
        reports.append((R.UNKNOWN_STATUS, f"broker status {bo.raw_status!r} is not mapped; status kept"))
        if fill and not order.status.is_terminal and order.status.rank < S.PARTIAL.rank:
            new_status = S.PARTIAL
    elif target is not order.status and not _trails_its_trades(b, order, bo):
        rule = R.TERMINAL_CONFLICT if target.is_terminal and order.status.is_terminal else R.STALE_STATUS
        reports.append((rule, f"broker says {target} ({bo.raw_status}), local {order.status}; ignored"))

    fingerprint = "|".join(f"{rule}:{bo.raw_status}:{bo.filled_qty}" for rule, _ in reports) or None
    if fingerprint is None and (order.open_discrepancy or "").startswith(BUSTED_TRADES):
        fingerprint = order.open_discrepancy  # the trades' own alarm: cleared by the trades (or a person) only
    if fingerprint != order.open_discrepancy:
        changes["open_discrepancy"] = fingerprint
        for rule, action in reports:
            b.decide(rule, action, order, bo)  # each is reported: "<order id> <action>"

    if new_status is not order.status:
        changes["status"] = new_status
    if fill:
        changes.update(filled_qty=fill.cumulative_qty, avg_price=bo.avg_price)
    if not changes:
        return
    if bo.updated_at is not None and (order.seen_at is None or bo.updated_at > order.seen_at):
        changes["seen_at"] = bo.updated_at
    updated = b.update_order(order, **changes, broker_status=bo.raw_status, message=bo.message)
    _announce_status(b, order, updated, bo, fill)


def _trails_its_trades(b: PlanBuilder, order: Order, bo: BrokerOrder) -> bool:
    """Whether the book's record of ``order`` is behind the trades already applied to it: not stale
    news to report, only a book catching up."""
    applied = b.applied(order.order_id)
    return bool(applied.trades) and bo.filled_qty < applied.filled_qty


def _reconcile_fill(b: PlanBuilder, order: Order, bo: BrokerOrder,
                    reports: list[tuple[Rule, str]]) -> Fill | None:
    """Apply the fill increment the broker's cumulative figures imply, if any."""
    applied = b.applied(order.order_id)
    if _trails_its_trades(b, order, bo):
        return None  # the trades applied are ahead of the book: it catches up (a bust shows in the trades)
    if bo.filled_qty < applied.filled_qty:
        reports.append((R.TRADE_BUST, f"broker reports {bo.filled_qty} filled at average {bo.avg_price}, "
                                      f"{applied.filled_qty} worth {applied.filled_value} already applied; "
                                      f"{applied.filled_qty - bo.filled_qty} busted? nothing undone, position held"))
        return None
    total_value = bo.avg_price * bo.filled_qty
    if bo.filled_qty == applied.filled_qty:
        if bo.filled_qty and bo.avg_price and total_value != applied.filled_value and not applied.trades:
            _correct_value(b, order, bo, applied, total_value)  # trades, once applied, are exact: they stand
        return None
    quantity = bo.filled_qty - applied.filled_qty
    value = total_value - applied.filled_value
    # Prices may be negative (spreads, some futures): only an average of exactly 0, or an increment
    # worth nothing on an instrument whose average is positive, says the broker's figures are unreadable.
    if bo.avg_price == 0 or (bo.avg_price > 0 and value <= 0):
        reports.append((R.IMPLAUSIBLE_FILL, f"{quantity} more filled at average {bo.avg_price}: not a readable "
                                            "value; the order stays working until the broker reports one"))
        return None
    if bo.filled_qty > bo.quantity:
        reports.append((R.OVERFILL, f"broker reports {bo.filled_qty} filled of {bo.quantity}; applied as reported"))
    fill = Fill(fill_id=stable_id("fill", order.order_id, bo.filled_qty), order_id=order.order_id,
                broker_order_id=bo.broker_order_id, exchange=bo.exchange, symbol=bo.symbol, product=bo.product,
                side=bo.side, quantity=quantity, value=value, price=value / quantity,
                cumulative_qty=bo.filled_qty, at=b.now)
    b.add_fill(fill, LedgerEntry(order.order_id, bo.filled_qty, total_value))
    return fill


BUSTED_TRADES = "trade-bust:trades:"
"""An order's ``open_discrepancy`` while trades applied to it are gone from the broker's trades."""


def reconcile_trades(b: PlanBuilder, order: Order, trades: list[Trade]) -> None:
    """The broker's trades of one order: the fills themselves, each its own quantity and exact price.

    Applied once by identity, whatever arrived first. Trades that cover the quantity already applied
    (inferred from the order's cumulative figures) replace that inference: its value is corrected by
    the exact difference (``value-corrected``, a ``fill-corrected`` event naming both); quantity beyond
    it is applied trade by trade (``fill``/``partial-fill``, each fill at its trade's price). Trades
    short of the quantity applied wait for the rest (the trade book may trail the order book); an
    ended order whose trades still disagree is reported once (``trades-disagree``), with both figures.
    """
    applied = b.applied(order.order_id)
    known = set(applied.trades)
    if gone := known - {t.identity for t in trades}:  # a bust: reported once, nothing undone by itself
        fingerprint = f"{BUSTED_TRADES}{','.join(sorted(gone))}"
        if fingerprint != order.open_discrepancy:
            b.update_order(order, open_discrepancy=fingerprint)
            b.decide(R.TRADE_BUST, f"trades applied are gone from the broker's trades: {', '.join(sorted(gone))}; "
                     f"{applied.filled_qty} filled stays applied until a person resolves it", order, None,
                     summary=f"{order.order_id} {order.symbol}: {len(gone)} trades busted (gone from the broker's)")
        return
    if (order.open_discrepancy or "").startswith(BUSTED_TRADES):
        order = b.update_order(order, open_discrepancy=None)  # the busted trades are listed again
    if all(t.identity in known for t in trades):
        return
    ordered = sorted(trades, key=lambda t: (t.filled_at or b.now, t.trade_id))
    traded_qty = sum(t.quantity for t in ordered)
    if traded_qty < applied.filled_qty:
        current = b.orders.get(order.order_id, order)
        if current.status.is_terminal:
            b.anomalies[f"trades:{order.order_id}:{traded_qty}"] = (
                f"{order.order_id} {order.symbol}: its trades sum to {traded_qty} ({len(ordered)} trades), "
                f"{applied.filled_qty} filled applied; waiting for the broker's trades to agree")
        return
    covered, value_covered, fills = applied.filled_qty, ZERO, []
    for trade in ordered:  # the first ``covered`` units were applied by inference; the rest are new
        inside = min(trade.quantity, covered)
        value_covered += trade.price * inside
        covered -= inside
        if trade.quantity > inside:
            fills.append((trade, trade.quantity - inside))
    ledger = LedgerEntry(order.order_id, traded_qty, sum((t.value for t in ordered), ZERO),
                         tuple(sorted(t.identity for t in ordered)))
    if applied.filled_qty and value_covered != applied.filled_value:
        _correct_value(b, order, None, applied, value_covered, ledger, why="replaced by the broker's trades")
    before = b.orders.get(order.order_id, order)
    cumulative = applied.filled_qty
    for trade, quantity in fills:
        cumulative += quantity
        value = trade.price * quantity
        fill = Fill(fill_id=stable_id("trade", order.order_id, trade.identity), order_id=order.order_id,
                    broker_order_id=trade.broker_order_id, exchange=trade.exchange, symbol=trade.symbol,
                    product=trade.product, side=trade.side, quantity=quantity, value=value, price=trade.price,
                    cumulative_qty=cumulative, at=b.now)
        b.add_fill(fill, ledger)
        status = before.status if before.status.is_terminal else (
            S.FILLED if cumulative >= before.quantity else S.PARTIAL)
        after = b.update_order(before, filled_qty=cumulative, status=status)
        rule = _fill_rule(before, status)
        who = f"{after.order_id} {after.symbol} {after.side.value}"
        b.decide(rule, f"applied {quantity} @ {journal_price(trade.price)} (trade {trade.trade_id})", before, None,
                 event=OrderFilled(**_order_fields(before, after), rule=rule, fill_id=fill.fill_id, fill_qty=quantity,
                                   fill_price=trade.price, fill_value=value,
                                   summary=f"{who} +{quantity} @ {price_text(trade.price, trade.exchange)} "
                                           f"({cumulative}/"
                                           f"{after.quantity}, {after.status}) [{rule}, trade {trade.trade_id}]"))
        before = after
    b.ledger[order.order_id] = ledger


def _correct_value(b: PlanBuilder, order: Order, bo: BrokerOrder | None, applied: LedgerEntry, value: Decimal,
                   ledger: LedgerEntry | None = None, why: str = "revised by the broker") -> None:
    """The broker revised the average price of fills already applied (same quantity, another value):
    the position and the ledger take the exact difference, announced with both values."""
    difference = value - applied.filled_value
    b.correct_value(order.key, order.side, difference,
                    ledger or LedgerEntry(order.order_id, applied.filled_qty, value, applied.trades))
    who = f"{order.order_id} {order.symbol} {order.side.value}"
    updated = b.update_order(order, avg_price=bo.avg_price) if bo is not None else b.update_order(order)
    average = value / applied.filled_qty
    b.decide(R.VALUE_CORRECTED, f"value of {applied.filled_qty} filled {why}: {applied.filled_value} -> {value} "
             f"({difference:+})", order, bo, event=FillCorrected(
                 **_order_fields(order, updated), rule=R.VALUE_CORRECTED, previous_value=applied.filled_value,
                 value=value, difference=difference,
                 summary=f"{who} average {price_text(applied.filled_value / applied.filled_qty, order.exchange)} -> "
                         f"{price_text(average, order.exchange)} on {applied.filled_qty} filled, {why} "
                         f"({difference:+}) [value-corrected]"))


def _fill_rule(order: Order, target: OrderStatus) -> Rule:
    if order.status.is_terminal:
        return R.LATE_FILL
    return R.FILL if target is S.FILLED else R.PARTIAL_FILL


class _OrderFields(TypedDict):
    """The fields every order event shares (``recon_plugin.events.OrderChange`` but the rule)."""

    order_id: str
    symbol: str
    broker_order_id: str | None
    side: Side
    quantity: int
    status: OrderStatus
    previous_status: OrderStatus
    filled_qty: int


def _order_fields(before: Order, after: Order) -> _OrderFields:
    return {"order_id": after.order_id, "symbol": after.symbol, "broker_order_id": after.broker_order_id,
            "side": after.side, "quantity": after.quantity, "status": after.status,
            "previous_status": before.status, "filled_qty": after.filled_qty}


def _announce_status(b: PlanBuilder, before: Order, after: Order, bo: BrokerOrder, fill: Fill | None) -> None:
    """The events an order change causes: the fill first, then the status it ended in."""
    base = _order_fields(before, after)
    who = f"{after.order_id} {after.symbol} {after.side.value}"
    if fill:
        rule = _fill_rule(before, after.status)
        applied = f"{fill.quantity} @ {price_text(fill.price, fill.exchange)}"
        # the journal's action keeps its released text (4 decimals at most): the entry's id is made of it
        b.decide(rule, f"applied {fill.quantity} @ {journal_price(fill.price)}", before, bo, event=OrderFilled(
            **base, rule=rule, fill_id=fill.fill_id, fill_qty=fill.quantity, fill_price=fill.price,
            fill_value=fill.value, summary=f"{who} +{applied} ({after.filled_qty}/{after.quantity}, {after.status}) "
                                           f"[{rule}]"))
    linked = before.broker_order_id is None and after.broker_order_id is not None
    if after.status is before.status:
        terms_changed = any(getattr(after, name) != getattr(before, name) for name in TERMS)
        if not fill and (linked or after.quantity != before.quantity or terms_changed):  # decided in reconcile_seen
            rule = (R.SUBMIT_CONFIRMED if linked else R.QUANTITY_MODIFIED if after.quantity != before.quantity
                    else R.ORDER_MODIFIED)
            what = (f"broker id {after.broker_order_id}" if linked else
                    f"quantity {after.quantity}" + "".join(f", {name} {getattr(after, name)}" for name in TERMS
                                                         if getattr(after, name) != getattr(before, name)))
            b.announce(OrderUpdated(**base, rule=rule, summary=f"{who} {after.status}, {what} [{rule}]"))
        return
    if after.status is S.CANCELLED:
        b.decide(R.CANCEL, f"{before.status} -> CANCELLED with {after.filled_qty} filled", before, bo,
                 event=OrderCancelled(**base, rule=R.CANCEL, summary=f"{who} cancelled at the broker "
                                      f"({after.filled_qty}/{after.quantity} filled) [cancel]"))
    elif after.status is S.REJECTED:
        reason = bo.message or "no reason given"
        b.decide(R.REJECT, f"{before.status} -> REJECTED: {reason}", before, bo,
                 event=OrderRejected(**base, rule=R.REJECT, reason=bo.message,
                                     summary=f"{who} rejected: {reason} [reject]"),
                 summary=f"{after.order_id} rejected at the broker while local said {before.status}")
    elif not (fill and after.status in (S.PARTIAL, S.FILLED)):
        rule = (R.FOUND if before.status is S.LOST else R.CANCEL_WAS_FILL if before.status.is_terminal
                else R.SUBMIT_CONFIRMED if linked else R.ACK)
        event = OrderUpdated(**base, rule=rule, summary=f"{who} {before.status} -> {after.status} [{rule}]")
        if rule in (R.FOUND, R.SUBMIT_CONFIRMED):  # decided in reconcile_seen: one journal entry, not two
            b.announce(event)
        else:
            b.decide(rule, f"{before.status} -> {after.status}", before, bo, event=event)


def report_anomalies(b: PlanBuilder, duplicates: dict[str, list[BrokerOrder]],
                     double_claims: list[tuple[Order, Order]], malformed: dict[str, str]) -> None:
    """What the book and the store should never hold, each reported once while it lasts: one broker id
    listed twice in one book (its most advanced record was used), two local orders claiming one
    broker order (the later claimant is left alone: neither missing nor filled twice), and the id of
    an ended order listed for another instrument (``PlanBuilder.reused``: ignored), and a record the
    broker plugin handed back malformed (``recon_plugin.seam``: set aside). Remembered in
    the checkpoint (``book_anomalies``) while they last, so that they are reported again only if they
    come back."""
    seen: dict[str, str] = {f"malformed:{key}": f"{text}; set aside (the rest reconciles)"
                            for key, text in malformed.items()}
    seen.update(b.anomalies)
    for broker_id, rows in duplicates.items():
        seen[f"duplicate:{broker_id}"] = (f"broker order {broker_id} listed {len(rows)} times in one book ("
                                          + ", ".join(f"{r.symbol} {r.raw_status} {r.filled_qty}" for r in rows)
                                          + "): the most advanced record was used")
    for order, bo in b.reused:
        seen[f"reused:{order.order_id}"] = (f"broker order {bo.broker_order_id} is now {bo.side} {key_str(bo.key)} "
                                            f"({bo.raw_status}); {order.order_id} was {order.side} "
                                            f"{key_str(order.key)} and ended {order.status}: the record is ignored")
    for claimant, owner in double_claims:
        seen[f"claim:{claimant.order_id}"] = (f"{claimant.order_id} and {owner.order_id} both claim broker order "
                                              f"{claimant.broker_order_id}: {owner.order_id} follows it; "
                                              f"{claimant.order_id} is left as it is (neither missing nor filled)")
    before = b.state.checkpoint.get("book_anomalies", [])
    for key, text in seen.items():
        if key not in before:
            b.decide(R.BOOK_ANOMALY, text, None, None, summary=text)
    if sorted(seen) != before:
        b.checkpoint["book_anomalies"] = sorted(seen)


QUERY_OVERDUE_REPEAT_SECONDS = 300.0
"""How often a missing order whose targeted query does not answer is reported again."""


def reconcile_missing(b: PlanBuilder, order: Order) -> None:
    """A non-terminal local order the broker's book does not list.

    The ladder: within the grace period, nothing. Then each consecutive miss is counted and reported;
    at ``missing_retries`` misses the runner makes one targeted query (``Snapshot.queried``). Found:
    resolve by what the broker says. Not found (or nothing to query by): LOST, which is reported and
    keeps being checked every cycle. A failed fetch never reaches here: it is never a miss.
    """
    settings = b.settings
    if (b.now - order.created_at).total_seconds() < settings.missing_grace_seconds:
        return  # even across the close: an order sent seconds before it may not be listed yet
    if b.day_ended(order):
        _close_past_day(b, order)
        return
    queried = b.queried
    if order.order_id in queried:
        found = queried[order.order_id]
        if found is not None:
            reconcile_seen(b, order, found)
            return
        if order.status is not S.LOST:
            _mark_lost(b, order, "the broker does not know this order id")
        return
    if order.status is S.LOST:
        return
    misses = order.missing_count + 1
    if misses >= settings.missing_retries and order.broker_order_id is None:
        _mark_lost(b, order, "never acknowledged and not in the book by its tag")
        return
    if order.missing_count >= settings.missing_retries:
        # due for its targeted query, which did not happen (it failed, or waits its turn): the count
        # stays at the threshold, and the alarm says so at most every QUERY_OVERDUE_REPEAT_SECONDS
        if (b.now - order.updated_at).total_seconds() >= QUERY_OVERDUE_REPEAT_SECONDS:
            b.update_order(order)
            b.decide(R.MISSING, f"miss {order.missing_count} of {settings.missing_retries}: the targeted query "
                     "has not answered (failing, or waiting its turn); the order is not LOST until the broker "
                     "says it does not know it", order, None,
                     summary=f"{order.order_id} {order.symbol} not in the broker's book and its targeted query "
                             f"has not answered since {order.updated_at.isoformat(timespec='seconds')}")
        return
    updated = b.update_order(order, missing_count=misses)
    b.decide(R.MISSING, f"miss {misses} of {settings.missing_retries}; retry next cycle", order, None,
             summary=f"{order.order_id} {order.symbol} not in the broker's book "
                     f"(miss {updated.missing_count}/{settings.missing_retries})")


def _close_past_day(b: PlanBuilder, order: Order) -> None:
    """An unfinished order of a trading day that has ended, and that today's book does not list.

    Not the missing ladder: the exchange cancelled it at the close and the broker's book only holds
    today. It is asked for (its final fills may have come after our last look): the broker's end
    settles it; "unknown" expires it with the fills it carries; "still working" is asked again, at
    most a few times (``Snapshot.unanswered``), like a failing query. An order with nothing to ask
    by (no broker id, LOST, queries switched off) expires at once. Once terminal it is never asked
    for again. An expiry the broker never confirmed is reported: a fill after our last look would
    not show anywhere else.
    """
    can_ask = (order.broker_order_id is not None and order.status is not S.LOST
               and b.settings.max_queries_per_cycle > 0)
    if order.order_id in b.unanswered:
        _expire(b, order, None, "the broker could not say after repeated queries", unconfirmed=True)
        return
    if can_ask and order.order_id not in b.queried:
        if order.trading_date is None:
            b.update_order(order)  # records its trading date, by which the runner knows to ask for it
        return
    found = b.queried.get(order.order_id)
    if found is not None:
        reconcile_seen(b, order, found)
        order = b.orders.get(order.order_id, order)
        if order.status.is_terminal or not effective_status(found).is_terminal:
            return  # settled by the broker's own end, or the broker says it still works: asked again
    _expire(b, order, found, "the broker no longer knows it" if can_ask else "nothing to ask the broker by",
            unconfirmed=not can_ask and order.status is not S.LOST and order.broker_order_id is None)


def _expire(b: PlanBuilder, order: Order, bo: BrokerOrder | None, why: str, unconfirmed: bool = False) -> None:
    """EXPIRED, with its fills kept; ``unconfirmed`` (the broker never said what became of it) is also
    reported for a person: a fill after our last look would show nowhere else."""
    day = b.trading_date(order)
    updated = b.update_order(order, status=S.EXPIRED, trading_date=day)
    who = f"{order.order_id} {order.symbol} {order.side.value}"
    b.decide(R.DAY_EXPIRY, f"{order.status} -> EXPIRED: trading day {day} ended ({why}); "
             f"{order.filled_qty}/{order.quantity} filled stays applied", order, bo, event=OrderExpired(
                 **_order_fields(order, updated), rule=R.DAY_EXPIRY, trading_date=str(day),
                 summary=f"{who} expired: trading day {day} ended ({updated.filled_qty}/{updated.quantity} "
                         "filled) [day-expiry]"),
             report=True if unconfirmed else None,
             summary=f"{order.order_id} {order.symbol} expired unconfirmed ({why}): check the account for a fill "
                     "after the last look")


def _mark_lost(b: PlanBuilder, order: Order, why: str) -> None:
    misses = max(order.missing_count + 1, b.settings.missing_retries)
    b.update_order(order, status=S.LOST, missing_count=misses)
    b.decide(R.LOST, f"{order.status} -> LOST: {why}; asked for again at growing intervals", order, None,
             summary=f"{order.order_id} {order.symbol} LOST: {why}")


def _adopt(b: PlanBuilder, bo: BrokerOrder, order_id: str, parent_order_id: str | None, external: bool) -> Order:
    """A local order for a broker order no local order accounts for, with how it was placed."""
    status = effective_status(bo)
    return Order(order_id=order_id, exchange=bo.exchange, symbol=bo.symbol, product=bo.product, side=bo.side,
                 quantity=bo.quantity, status=S.SUBMITTED if status is S.UNKNOWN else S.PENDING,
                 # a broker time in the future (clock skew, local time labelled UTC) must not exempt it from
                 # the missing ladder: its age counts from the first sighting at the latest
                 created_at=min(bo.placed_at, b.now) if bo.placed_at else b.now, updated_at=b.now,
                 broker_order_id=bo.broker_order_id,
                 external=external, price=bo.price, order_type=bo.order_type, trigger_price=bo.trigger_price,
                 variety=bo.variety, validity=bo.validity, parent_order_id=parent_order_id, tags=bo.tags)


def reconcile_external(b: PlanBuilder, bo: BrokerOrder) -> None:
    """A broker order no local order accounts for (placed from another app, or by a GTT: its
    ``parent_order_id`` names the trigger and is kept)."""
    if b.settings.external_orders != "adopt" and not _is_square_off(b, bo):
        # this cycle's reports first: k new external orders in one cycle are each reported once
        reported = set(b.checkpoint.get("reported_external") or b.state.checkpoint.get("reported_external", []))
        if bo.broker_order_id not in reported:
            b.checkpoint["reported_external"] = sorted(reported | {bo.broker_order_id})
            b.decide(R.EXTERNAL_REPORTED, "reported, not adopted (external_orders: report)", None, bo,
                     summary=f"external order {bo.broker_order_id} {bo.symbol} {bo.side} {bo.quantity} "
                             f"({bo.raw_status}) not adopted")
        return
    order = _adopt(b, bo, f"ext-{bo.broker_order_id}", bo.parent_order_id, external=True)
    square_off = _is_square_off(b, bo)
    rule, action = (R.SQUARE_OFF, "adopted as the broker's square-off") if square_off else (
        R.EXTERNAL_ADOPTED, "adopted as a local order" + (f" (placed by {bo.parent_order_id})"
                                                          if bo.parent_order_id else ""))
    b.decide(rule, action, None, bo, event=OrderExternal(
        order_id=order.order_id, symbol=bo.symbol, broker_order_id=bo.broker_order_id, side=bo.side,
        quantity=bo.quantity, status=effective_status(bo), action="square-off" if square_off else "adopted",
        parent_order_id=bo.parent_order_id,
        summary=f"{order.order_id} {bo.symbol} {bo.side} {bo.quantity} adopted ({bo.raw_status})"
                + (" [square-off]" if square_off else f" from {bo.parent_order_id}" if bo.parent_order_id else "")))
    b.orders[order.order_id] = order  # version 0: a new order
    reconcile_seen(b, order, bo)


def reconcile_child(b: PlanBuilder, parent: Order, bo: BrokerOrder) -> None:
    """A broker order made of the local order ``parent`` (its ``parent_order_id`` is the parent's broker
    id): adopted as ``<parent>/<broker id>``, linked, never external; its fills are its own, applied
    once like any order's (a parent the broker lists no row for applies none: see ``reconcile_parent``)."""
    order = _adopt(b, bo, f"{parent.order_id}/{bo.broker_order_id}", parent.order_id, external=False)
    b.decide(R.CHILD_LINKED, f"linked to {parent.order_id}", None, bo, event=OrderExternal(
        order_id=order.order_id, symbol=bo.symbol, broker_order_id=bo.broker_order_id, side=bo.side,
        quantity=bo.quantity, status=effective_status(bo), action="linked", parent_order_id=parent.order_id,
        summary=f"{order.order_id} {bo.symbol} {bo.side} {bo.quantity} linked to {parent.order_id} "
                f"({bo.raw_status}) [child-linked]"))
    b.orders[order.order_id] = order
    reconcile_seen(b, order, bo)


def _family_status(parent: Order, children: list[BrokerOrder], filled: int) -> OrderStatus:
    statuses = [effective_status(c) for c in children]
    more_to_come = sum(c.quantity for c in children) < parent.quantity and not any(
        s in (S.REJECTED, S.CANCELLED, S.EXPIRED) and c.filled_qty < c.quantity for s, c in zip(statuses, children,
                                                                                               strict=True))
    if more_to_come or any(not s.is_terminal for s in statuses):  # an iceberg places its legs one by one
        return S.PARTIAL if filled else S.PLACED
    if filled >= parent.quantity:
        return S.FILLED
    if all(s is S.REJECTED for s in statuses):
        return S.REJECTED
    return S.EXPIRED if all(s is S.EXPIRED for s in statuses) else S.CANCELLED


def reconcile_parent(b: PlanBuilder, parent: Order, children: list[BrokerOrder]) -> None:
    """A local order the broker lists no row for, split into the listed ``children`` (autoslice
    children, iceberg legs). It follows them: its filled quantity is theirs summed and its average the
    value-weighted one, and its status the family's (working while any child works; then FILLED,
    REJECTED if every child was, else CANCELLED). Its fills reach positions through the children only,
    each applied once: the parent's ledger stays empty. A child rejected or cancelled while its
    siblings went on is reported against the parent, once."""
    filled = sum(c.filled_qty for c in children)
    value = sum((c.avg_price * c.filled_qty for c in children), ZERO)
    status = _family_status(parent, children, filled)
    failed = sorted(c.broker_order_id for c in children
                    if effective_status(c) in (S.REJECTED, S.CANCELLED) and c.filled_qty < c.quantity)
    family = f"children {len(children)}, failed {','.join(failed) or '-'}"
    if parent.status is not S.LOST and (status.rank < parent.status.rank or (
            parent.status.is_terminal and parent.status is not S.EXPIRED and status is not S.FILLED)):
        status = parent.status  # forward only, as ``may_move``
    if (filled, status, family) == (parent.filled_qty, parent.status, parent.broker_status):
        return
    before_failed = set((parent.broker_status or "").partition("failed ")[2].split(","))
    for child_id in failed:
        if child_id not in before_failed and status is not S.REJECTED:
            child = next(c for c in children if c.broker_order_id == child_id)
            b.decide(R.CHILD_FAILED, f"child {child_id} {child.raw_status} with {child.filled_qty}/{child.quantity} "
                     f"filled: {child.message or 'no reason given'}", parent, child,
                     summary=f"{parent.order_id} {parent.symbol}: child {child_id} {child.raw_status} "
                             f"({child.message or 'no reason given'})")
    updated = b.update_order(parent, status=status, filled_qty=filled, missing_count=0,
                             avg_price=(value / filled) if filled else parent.avg_price, broker_status=family)
    if status is not parent.status or filled != parent.filled_qty:
        who = f"{parent.order_id} {parent.symbol} {parent.side.value}"
        b.decide(R.CHILDREN, f"{parent.status} -> {status}, {filled}/{parent.quantity} filled by {len(children)} "
                 "children", parent, None, event=OrderUpdated(
                     **_order_fields(parent, updated), rule=R.CHILDREN,
                     summary=f"{who} {parent.status} -> {status}: {filled}/{parent.quantity} filled by "
                             f"{len(children)} children [children]"))


def _is_square_off(b: PlanBuilder, bo: BrokerOrder) -> bool:
    """An intraday (MIS) order placed elsewhere at or after the broker's square-off time: the broker's
    own exit of the position (Zerodha squares off MIS from 15:20 for equity)."""
    if b.calendar is None or bo.product != "MIS" or bo.placed_at is None:
        return False
    day = b.calendar.trading_date(bo.placed_at, bo.exchange)
    return bo.placed_at >= b.calendar.square_off_time(day, bo.exchange)


def _drift_cause(b: PlanBuilder, key: InstrumentKey, diffs: dict[InstrumentKey, tuple[int, int]],
                 drifted: list[InstrumentKey], holdings: dict[tuple[str, str], Holding] | None,
                 filled_today: set[InstrumentKey]) -> tuple[Rule, str]:
    """Why a persistent position mismatch happened, when the evidence says so:

    - settlement: a delivery (CNC) position with no fill today left the broker's positions for its
      holdings (a buy, with the holdings to show for it; or a sell, delivered out of them);
    - contract-expiry: a derivative gone after its contract's expiry (read from its symbol);
    - square-off: an intraday (MIS) position flat at the broker after the square-off time;
    - product-conversion: the same quantity moved between two products of one instrument.

    Anything else is unexplained drift, for a person.
    """
    exchange, symbol, product = key
    local_qty, broker_qty = diffs[key]
    gone = local_qty - broker_qty
    today = b.today(exchange) or b.now.date()
    if product == "CNC" and broker_qty == 0 and key not in filled_today:
        held = holdings.get((exchange, symbol)) if holdings is not None else None
        if gone > 0 and held is not None and held.quantity >= gone:
            return R.SETTLEMENT, (f"{gone} {symbol} moved into holdings (T1 {held.t1_quantity}, delivered "
                                  f"{held.realised_quantity}): local {local_qty} -> broker {broker_qty}")
        if gone < 0 and holdings is not None:
            return R.SETTLEMENT, f"{-gone} {symbol} sold from holdings, delivered: local {local_qty} -> broker 0"
    if broker_qty == 0 and has_expired(symbol, exchange, today):
        return R.CONTRACT_EXPIRY, (f"{symbol} expired (by {latest_expiry(symbol, exchange)}): local {local_qty} "
                                   "-> broker 0")
    if product == "MIS" and broker_qty == 0 and b.calendar is not None and (
            key not in filled_today  # intraday never carries: a past day's MIS was squared off
            or b.now >= b.calendar.square_off_time(b.now.astimezone(b.calendar.zone).date(), exchange)):
        return R.SQUARE_OFF, f"{symbol} intraday position flat at the broker after its square-off time"
    for other in drifted:
        other_local, other_broker = diffs[other]
        if other != key and other[:2] == key[:2] and other_broker - other_local == gone:
            return R.PRODUCT_CONVERSION, (f"{abs(gone)} {symbol} converted between {product} and {other[2]}: "
                                          f"local {local_qty} -> broker {broker_qty}")
    return R.POSITION_DRIFT, f"local {local_qty} -> broker {broker_qty}"


def reconcile_positions(b: PlanBuilder, broker_positions: list[Position],
                        holdings: list[Holding] | None = None) -> None:
    """Live mode: compare net quantities per (exchange, symbol, product), after this cycle's fills.

    A mismatch must be seen in ``position_mismatch_cycles`` consecutive cycles with the same figures
    before that position is rebuilt from the broker's: positions and orders are fetched at different
    instants, and a fill between the two must not be mistaken for drift. Only the keys whose mismatch
    persisted are rebuilt; the broker's figures for other keys may predate this cycle's fills.

    Missing fills are found first: while any order on a key is unresolved (missing from the book,
    LOST, or with an open discrepancy), that key is not rebuilt. Its fills may already be in the
    broker's position, and would be applied a second time when the order is found.
    """
    local = b.current_positions()
    broker = {p.key: p for p in broker_positions}
    diffs = {key: ((local[key].quantity if key in local else 0), (broker[key].quantity if key in broker else 0))
             for key in local.keys() | broker.keys()}
    diffs = {key: q for key, q in diffs.items() if q[0] != q[1]}
    settling = _settling(b, diffs)
    diffs = {key: q for key, q in diffs.items() if key not in settling}
    watch = b.state.checkpoint.get("position_watch", {})
    new_watch: dict[str, dict[str, Any]] = {}
    for key, (local_qty, broker_qty) in diffs.items():
        seen = watch.get(key_str(key))
        same = seen and seen["local"] == local_qty and seen["broker"] == broker_qty
        new_watch[key_str(key)] = {"local": local_qty, "broker": broker_qty,
                                   "cycles": seen["cycles"] + 1 if same else 1,
                                   "since": seen.get("since", b.now.isoformat()) if same else b.now.isoformat(),
                                   "alarms": seen.get("alarms", 0) if same else 0}
    persistent = sorted(k for k in diffs if new_watch[key_str(k)]["cycles"] >= b.settings.position_mismatch_cycles)
    # the scans over every order only when a mismatch persisted (never in an in-sync cycle)
    orders = list({**b.state.orders, **b.orders}.values()) if persistent else []
    unresolved = {o.key for o in orders  # an EXPIRED order's fills are final; a past day's still open are not
                  if ((o.missing_count or o.status is S.LOST or o.open_discrepancy) and o.status is not S.EXPIRED)
                  or (not o.status.is_terminal and o.trading_date is not None and b.day_ended(o))}
    filled_today = {o.key for o in orders if o.filled_qty and o.trading_date is not None and not b.day_ended(o)}
    for key in persistent:
        if key not in unresolved:
            continue
        local_qty, broker_qty = diffs[key]
        entry = new_watch[key_str(key)]
        if entry["cycles"] == b.settings.position_mismatch_cycles:
            b.decide(R.POSITION_DRIFT_DEFERRED, "not rebuilt while an order on it is unresolved (its fills "
                     "come first)", None, None, symbol=key_str(key), local={"quantity": local_qty},
                     broker={"quantity": broker_qty})
        age = (b.now - datetime.fromisoformat(entry["since"])).total_seconds()
        if age >= (entry["alarms"] + 1) * MISMATCH_REALARM_SECONDS:  # a held mismatch never goes quiet
            entry["alarms"] += 1
            b.decide(R.POSITION_MISMATCH_PERSISTS, f"local {local_qty} vs broker {broker_qty} for {age / 60:.0f} "
                     "minutes, held while an order on it is unresolved (missing, LOST, disputed or busted)",
                     None, None, symbol=key_str(key), local={"quantity": local_qty},
                     broker={"quantity": broker_qty, "minutes": round(age / 60)})
    drifted = sorted(k for k in persistent if k not in unresolved)
    for key in drifted:
        del new_watch[key_str(key)]
    if new_watch != watch:
        b.checkpoint["position_watch"] = new_watch
    for key, (local_qty, broker_qty) in sorted(diffs.items()):
        if key not in drifted and watch.get(key_str(key)) is None:
            b.decide(R.POSITION_MISMATCH, "watched; rebuilt from the broker's if it persists", None, None,
                     symbol=key_str(key), local={"quantity": local_qty}, broker={"quantity": broker_qty})
    if not drifted:
        return
    differences: list[PositionDifference] = []
    held = {h.key: h for h in holdings} if holdings is not None else None
    for key in drifted:
        local_qty, broker_qty = diffs[key]
        rule, action = _drift_cause(b, key, diffs, drifted, held, filled_today)
        if rule is R.SETTLEMENT and local_qty > broker_qty:
            _note_settled(b, key, local_qty - broker_qty)
        b.decide(rule, action, None, None, symbol=key_str(key), local={"quantity": local_qty},
                 broker={"quantity": broker_qty})
        b.positions[key] = broker.get(key) or Position(*key)
        differences.append({"key": key_str(key), "local": local_qty, "broker": broker_qty,
                            "delta": broker_qty - local_qty})
    b.announce(PositionSynced(differences=differences,
                              broker_quantities={key_str(k): p.quantity for k, p in broker.items()},
                              summary="positions rebuilt from the broker: " + "; ".join(
                                  position_summary(key, diffs[key][0], diffs[key][1]) for key in drifted)))


MISMATCH_REALARM_SECONDS = 900.0
"""A position mismatch held unrebuilt is reported again, with its age, every this many seconds."""


def _settling(b: PlanBuilder, diffs: dict[InstrumentKey, tuple[int, int]]) -> set[InstrumentKey]:
    """The positions a fill moved less than ``position_settle_seconds`` ago: the broker's positions may
    trail its order book, so a mismatch there is not counted yet (a correctly applied fill must not be
    undone by a stale figure). The time of each position's last fill is kept in the checkpoint
    (``filled_at``), for the window only."""
    window = b.settings.position_settle_seconds
    filled_at = {**b.state.checkpoint.get("filled_at", {}), **b.checkpoint.get("filled_at", {})}
    now = b.now.isoformat()
    recent = {k: t for k, t in filled_at.items()
              if (b.now - datetime.fromisoformat(t)).total_seconds() < window} if filled_at else {}
    recent.update({key_str(k): now for k in b.filled_keys} if window else {})
    if recent != b.state.checkpoint.get("filled_at", {}):
        b.checkpoint["filled_at"] = recent
    return {k for k in diffs if key_str(k) in recent}


def _settled_today(b: PlanBuilder) -> tuple[str, dict[str, int]]:
    day = str(b.today(DAY_EXCHANGE) or b.now.date())
    settled = {**b.state.checkpoint.get("settled", {}), **b.checkpoint.get("settled", {})}
    return day, dict(settled.get(day, {}))


def _note_settled(b: PlanBuilder, key: InstrumentKey, quantity: int) -> None:
    """Remember what settlement moved into holdings today, for ``reconcile_holdings`` (today only)."""
    day, today = _settled_today(b)
    symbol = f"{key[0]}:{key[1]}"
    today[symbol] = today.get(symbol, 0) + quantity
    b.checkpoint["settled"] = {day: today}


def reconcile_holdings(b: PlanBuilder, holdings: list[Holding]) -> None:
    """Live mode, on a fresh read of the broker's holdings: its T1 quantity (yesterday's delivery buys)
    must be what local delivery positions held overnight, or moved there by settlement today. More T1
    than that is a buy the host never saw applied: an order that filled after the host's last look
    and then ended unseen (the broker no longer shows it). Reported once a day per instrument, with
    the orders that ended without their broker's word as evidence."""
    day, settled = _settled_today(b)
    alarmed = set(b.state.checkpoint.get("holdings_alarmed", {}).get(day, []))
    local = b.current_positions()
    for h in holdings:
        symbol = f"{h.exchange}:{h.symbol}"
        if h.t1_quantity <= 0 or symbol in alarmed:
            continue
        carried = local.get((h.exchange, h.symbol, "CNC"))
        expected = max(carried.quantity, 0) if carried is not None else 0
        expected += settled.get(symbol, 0)
        if h.t1_quantity <= expected:
            continue
        unseen = sorted(o.order_id for o in {**b.state.orders, **b.orders}.values()
                        if o.symbol == h.symbol and o.exchange == h.exchange and o.status is S.EXPIRED)
        alarmed.add(symbol)
        b.decide(R.HOLDINGS_MISMATCH, f"broker T1 {h.t1_quantity} vs local {expected}: {h.t1_quantity - expected} "
                 f"bought and never applied (orders that expired unseen: {', '.join(unseen) or 'none'})",
                 None, None, symbol=symbol, local={"quantity": expected, "expired_unseen": unseen},
                 broker={"t1_quantity": h.t1_quantity, "quantity": h.quantity})
    if alarmed != set(b.state.checkpoint.get("holdings_alarmed", {}).get(day, [])):
        b.checkpoint["holdings_alarmed"] = {day: sorted(alarmed)}
