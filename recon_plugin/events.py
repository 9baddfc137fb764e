"""The reconciler's event kinds: one payload class per kind (see ``hostspec.events``).

The reconciler builds every event it announces from one of these, and ``event.payload`` (or the
``payload=`` a signal passes) gives them back typed. Each field's meaning is documented in
docs/plugin-guide.md, section 5 (a test keeps the two in step). The wire form, ``Event.data``, is
``payload.to_data()``: enums as their value, ``Decimal`` as a string, the summary last.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, TypedDict

from hostspec.events import Payload
from hostspec.model import OrderStatus, Side
from recon_plugin.rules import Rule


@dataclass(frozen=True, kw_only=True)
class OrderChange(Payload):
    """What every order event says about the order (after the change)."""

    order_id: str
    symbol: str
    broker_order_id: str | None
    side: Side
    quantity: int
    status: OrderStatus
    previous_status: OrderStatus
    filled_qty: int
    rule: Rule


@dataclass(frozen=True, kw_only=True)
class OrderUpdated(OrderChange):
    kind: ClassVar[str] = "order-updated"


@dataclass(frozen=True, kw_only=True)
class OrderFilled(OrderChange):
    kind: ClassVar[str] = "order-filled"
    fill_id: str
    fill_qty: int
    fill_price: Decimal
    fill_value: Decimal


@dataclass(frozen=True, kw_only=True)
class FillCorrected(OrderChange):
    """The broker revised the value of fills already applied (another average price, the same
    quantity): the position and the ledger took ``difference`` (``value - previous_value``)."""

    kind: ClassVar[str] = "fill-corrected"
    previous_value: Decimal
    value: Decimal
    difference: Decimal


@dataclass(frozen=True, kw_only=True)
class OrderCancelled(OrderChange):
    kind: ClassVar[str] = "order-cancelled"


@dataclass(frozen=True, kw_only=True)
class OrderExpired(OrderChange):
    """Its trading day ended with it unfinished (rule ``day-expiry``): the fills it carries stay
    applied; ``trading_date`` is the day it belonged to (ISO ``YYYY-MM-DD``)."""

    kind: ClassVar[str] = "order-expired"
    trading_date: str


@dataclass(frozen=True, kw_only=True)
class OrderRejected(OrderChange):
    kind: ClassVar[str] = "order-rejected"
    reason: str | None


@dataclass(frozen=True, kw_only=True)
class OrderExternal(Payload):
    kind: ClassVar[str] = "order-external"
    order_id: str
    symbol: str
    broker_order_id: str
    side: Side
    quantity: int
    status: OrderStatus
    action: str
    parent_order_id: str | None = None


class PositionDifference(TypedDict):
    key: str
    local: int
    broker: int
    delta: int


@dataclass(frozen=True, kw_only=True)
class PositionSynced(Payload):
    kind: ClassVar[str] = "position-synced"
    order_id: None = None  # always None: a position event is about no one order (the key is kept on the wire)
    symbol: None = None
    differences: list[PositionDifference]
    broker_quantities: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class ReconciliationDiscrepancy(Payload):
    kind: ClassVar[str] = "reconciliation-discrepancy"
    order_id: str | None
    symbol: str | None
    rule: Rule
    action: str
    local: dict[str, Any]
    broker: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ReconciliationError(Payload):
    kind: ClassVar[str] = "reconciliation-error"
    step: str
    error_kind: str
    message: str
    consecutive: int


@dataclass(frozen=True, kw_only=True)
class BrokerSessionExpired(Payload):
    kind: ClassVar[str] = "broker-session-expired"
    message: str


@dataclass(frozen=True, kw_only=True)
class ReconcilerStopped(Payload):
    """The reconciliation thread ended while the host was still running: nothing is reconciled any more."""

    kind: ClassVar[str] = "reconciler-stopped"
    reason: str


@dataclass(frozen=True, kw_only=True)
class CycleFinished(Payload):
    kind: ClassVar[str] = "cycle-finished"
    stats: dict[str, Any]
    decisions: int
    fills: int
    writes: int
    duration_ms: float
    dry_run: bool


@dataclass(frozen=True, kw_only=True)
class DemoFlow(Payload):
    """What the demo order flow (``recon_plugin.testing.demo``) did: the summary says it all."""

    kind: ClassVar[str] = "demo-flow"


PAYLOADS: tuple[type[Payload], ...] = (
    OrderUpdated, OrderFilled, FillCorrected, OrderCancelled, OrderRejected, OrderExpired, OrderExternal,
    PositionSynced, ReconciliationDiscrepancy, ReconciliationError, BrokerSessionExpired, ReconcilerStopped,
    CycleFinished, DemoFlow)
"""Every kind this package announces, in the order the plugin guide documents them."""
