"""An operator's hand on the book: ``tradehost recon resolve ORDER --as STATUS | --dismiss --reason TEXT``.

A resolution goes through the reconciler's own path: a ``PlanBuilder`` over the stored state, one
``decide`` (journal entry and event, rule ``operator-resolved`` or ``operator-dismissed``, with who
and why in the local evidence), one ``store.apply``. Its events wait in the outbox and are published
by the next host that starts, to signals and event sinks like any other.

Refused, with nothing changed:

- an order the broker lists (working, filled, cancelled ...): the reconciler settles it by its rules
  at its next cycle, from the broker's own figures; a hand is for an order the broker does not know;
- an order already terminal (only ``--dismiss`` of an open alarm applies to one);
- ``--as filled`` without ``--price`` (the fill's value is needed for the position);
- ``--dismiss`` of an order with no alarm.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from hostspec.book import DISMISSED, condition
from hostspec.broker import Broker
from hostspec.calendar import MarketCalendar
from hostspec.errors import HostError
from hostspec.model import BrokerOrder, Fill, LedgerEntry, LocalState, Order, OrderStatus, stable_id
from hostspec.store import StateStore
from recon_plugin.events import OrderCancelled, OrderExpired, OrderFilled
from recon_plugin.plan import Plan, PlanBuilder, broker_evidence, local_evidence, price_text
from recon_plugin.resolve import _order_fields, effective_status
from recon_plugin.rules import Rule
from recon_plugin.settings import Settings

AS_STATUS = {"cancelled": OrderStatus.CANCELLED, "filled": OrderStatus.FILLED, "expired": OrderStatus.EXPIRED}


class Refused(HostError):
    """The resolution contradicts what is known (the broker's book, the order's state): nothing changed."""

    exit_status = 2


@dataclass(frozen=True)
class Request:
    """What the operator asked for: ``target`` None means ``--dismiss``."""

    order_id: str
    target: OrderStatus | None
    reason: str
    user: str
    price: Decimal | None = None


def operator_name() -> str:
    """Who is at the keyboard: ``TRADEHOST_USER``, else the login name from the environment."""
    return os.environ.get("TRADEHOST_USER") or getpass.getuser()


def broker_view(broker: Broker, order: Order) -> BrokerOrder | None:
    """The broker's order for ``order``, by broker id or by its tag in the book; then asked for by id."""
    for bo in broker.fetch_orders():
        if bo.broker_order_id == order.broker_order_id or (order.broker_order_id is None and bo.tag == order.order_id):
            return bo
    if order.broker_order_id is None:
        return None
    history = broker.order_history(order.broker_order_id)
    return history[-1] if history else None


def plan_resolution(state: LocalState, request: Request, broker_says: BrokerOrder | None, settings: Settings,
                    now: datetime, calendar: MarketCalendar | None = None) -> Plan:
    """The plan of one operator action (pure). Raises ``Refused`` for a request the facts contradict."""
    order = state.orders.get(request.order_id)
    if order is None:
        raise Refused(f"no order {request.order_id!r} in today's state (recon status lists them)")
    b = PlanBuilder(state, settings, now, calendar)
    by: dict[str, Any] = {"by": request.user, "reason": request.reason}
    if request.target is None:
        current = condition(order)
        if current is None:
            raise Refused(f"{order.order_id} has no alarm to dismiss ({order.status})")
        b.checkpoint[DISMISSED] = {**state.checkpoint.get(DISMISSED, {}), order.order_id: current}
        b.decide(Rule.OPERATOR_DISMISSED, f"alarm dismissed by {request.user} ({current}): {request.reason}",
                 order, broker_says, local={**local_evidence(order), **by})
        return b.build()
    if broker_says is not None:
        raise Refused(f"the broker lists {order.order_id} as {effective_status(broker_says)} "
                      f"({broker_says.raw_status}, {broker_says.filled_qty}/{broker_says.quantity} filled): the "
                      f"reconciler settles it from the broker's figures; --as {request.target.lower()} is refused")
    if order.status.is_terminal:
        raise Refused(f"{order.order_id} is already {order.status}: nothing to resolve")
    target = request.target
    who = f"{order.order_id} {order.symbol} {order.side.value}"
    tail = f"by {request.user}: {request.reason}"
    changes: dict[str, Any] = {"status": target, "missing_count": 0, "open_discrepancy": None}
    fill = None
    if target is OrderStatus.FILLED:
        if request.price is None or request.price <= 0:
            raise Refused("--as filled needs --price, the average price it filled at (positive)")
        applied = b.applied(order.order_id)
        qty = order.quantity - applied.filled_qty
        value = request.price * order.quantity - applied.filled_value
        if qty > 0:
            fill = Fill(stable_id("fill", order.order_id, order.quantity), order.order_id, order.broker_order_id,
                        order.exchange, order.symbol, order.product, order.side, qty, value, value / qty,
                        order.quantity, now)
            b.add_fill(fill, LedgerEntry(order.order_id, order.quantity, request.price * order.quantity))
        changes.update(filled_qty=order.quantity, avg_price=request.price)
    if target is OrderStatus.EXPIRED:
        changes["trading_date"] = b.trading_date(order)
    after = b.update_order(order, **changes)
    fields = _order_fields(order, after)
    rule = Rule.OPERATOR_RESOLVED
    summary = f"{who} {order.status} -> {target} {tail} [{rule}]"
    event: OrderCancelled | OrderExpired | OrderFilled
    if fill is not None:
        price = price_text(fill.price, order.exchange)
        event = OrderFilled(**fields, rule=rule, fill_id=fill.fill_id, fill_qty=fill.quantity, fill_price=fill.price,
                            fill_value=fill.value, summary=f"{who} +{fill.quantity} @ {price}{summary[len(who):]}")
    elif target is OrderStatus.EXPIRED:
        event = OrderExpired(**fields, rule=rule, trading_date=str(after.trading_date), summary=summary)
    elif target is OrderStatus.CANCELLED:
        event = OrderCancelled(**fields, rule=rule, summary=summary)
    else:  # FILLED with nothing left to apply
        event = OrderFilled(**fields, rule=rule, fill_id=stable_id("fill", order.order_id, order.quantity),
                            fill_qty=0, fill_price=request.price or Decimal(0), fill_value=Decimal(0), summary=summary)
    b.decide(rule, f"{order.status} -> {target} {tail}", order, None, event=event,
             local={**local_evidence(order), **by}, broker=broker_evidence(None))
    return b.build()


def resolve(store: StateStore, broker: Broker | None, request: Request, settings: Settings, now: datetime,
            calendar: MarketCalendar | None = None) -> Plan:
    """Ask the broker (for a resolution), plan, and apply in one store write; returns the plan applied."""
    state = store.load()
    order = state.orders.get(request.order_id)
    broker_says = broker_view(broker, order) if (broker is not None and order is not None
                                                 and request.target is not None) else None
    plan = plan_resolution(state, request, broker_says, settings, now, calendar)
    plan.changes.checkpoint.pop("last_snapshot_at", None)  # a hand, not a look at the broker
    store.apply(plan.changes)
    return plan
