"""The canonical order and position model every plugin speaks.

Money is exact: prices and values are ``Decimal``, quantities ``int``, timestamps timezone-aware.
Broker plugins translate their wire format into these types; nothing past a broker plugin knows
a broker's format. All records are frozen dataclasses: change one with ``dataclasses.replace``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar

from hostspec.events import Payload, PayloadError, decode

P = TypeVar("P", bound=Payload)
ZERO = Decimal(0)
SPARSE = {"sparse": True}
"""Field metadata: the stored form leaves the field out while it holds its default (``hostspec.codec``),
so a field most records never use costs nothing in a state file."""


def utcnow() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


class Mode(StrEnum):
    """How the host trades: against a simulated exchange or a real broker."""

    PAPER = "paper"
    LIVE = "live"


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: the direction a fill moves the net position."""
        return 1 if self is Side.BUY else -1


class OrderStatus(StrEnum):
    """The canonical order states.

    Status only moves forward: PENDING < SUBMITTED < PLACED < PARTIAL < a terminal state
    (FILLED, CANCELLED, REJECTED, EXPIRED). Two states sit outside that ladder:

    - ``LOST``: a local order the broker does not list, even when asked for it directly. It is not
      terminal: the engine keeps looking for it and applies what the broker says if it reappears.
    - ``UNKNOWN``: only ever on a broker's order, for a broker status the broker plugin could not
      map. It never terminalises a local order.
    """

    PENDING = "PENDING"  # recorded locally, not yet acknowledged as sent
    SUBMITTED = "SUBMITTED"  # sent; the broker has it but it is not yet working at the exchange
    PLACED = "PLACED"  # working at the exchange, nothing filled
    PARTIAL = "PARTIAL"  # working, some quantity filled
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"  # may carry fills
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"  # its trading day ended with it unfinished (the exchange cancels DAY orders); may carry fills
    LOST = "LOST"
    UNKNOWN = "UNKNOWN"

    @property
    def rank(self) -> int:
        """Position on the forward-only ladder; LOST ranks below everything so any sighting wins."""
        return _RANK[self]

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED})
_RANK = {
    OrderStatus.LOST: -1,
    OrderStatus.UNKNOWN: -1,
    OrderStatus.PENDING: 0,
    OrderStatus.SUBMITTED: 1,
    OrderStatus.PLACED: 2,
    OrderStatus.PARTIAL: 3,
    OrderStatus.FILLED: 4,
    OrderStatus.CANCELLED: 4,
    OrderStatus.REJECTED: 4,
    OrderStatus.EXPIRED: 4,
}


InstrumentKey = tuple[str, str, str]
"""(exchange, symbol, product): how positions are keyed."""


def key_str(key: InstrumentKey) -> str:
    """A position key as one readable string, e.g. ``NSE:INFY:CNC``."""
    return ":".join(key)


def stable_id(*parts: object) -> str:
    """A deterministic id: the same inputs always give the same id (24 hex characters)."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Order:
    """A local order: what this host believes about one order it placed or adopted.

    ``order_id`` is the local id, chosen by the host before submitting, and sent to the broker as
    the order's tag; ``broker_order_id`` is the broker's id once known. An order whose submit timed
    out has no broker id: reconciliation finds it by its tag if it went through.
    """

    order_id: str
    exchange: str
    symbol: str
    product: str
    side: Side
    quantity: int
    status: OrderStatus
    created_at: datetime
    updated_at: datetime
    price: Decimal | None = None  # limit price; None for a market order
    broker_order_id: str | None = None
    filled_qty: int = 0
    avg_price: Decimal | None = None  # the broker's reported average fill price
    external: bool = False  # placed outside this host (another app) and adopted
    missing_count: int = 0  # consecutive cycles the broker did not list it
    broker_status: str | None = None  # the broker's own last status string, for evidence
    message: str | None = None  # the broker's last status message (rejection reason)
    open_discrepancy: str | None = None  # fingerprint of the unresolved discrepancy last reported
    version: int = 0  # bumped by the store on every write; guards concurrent writers
    trading_date: date | None = None  # the session it belongs to, in its exchange's time zone (set once known)
    # How it was placed, in the broker's words (see ``BrokerOrder``); None when not known.
    order_type: str | None = field(default=None, metadata=SPARSE)
    trigger_price: Decimal | None = field(default=None, metadata=SPARSE)
    variety: str | None = field(default=None, metadata=SPARSE)
    validity: str | None = field(default=None, metadata=SPARSE)
    parent_order_id: str | None = field(default=None, metadata=SPARSE)
    """The local order this one was made from (an autoslice child, an iceberg leg, a cover order's second
    leg), or the broker's reference to what placed it when no local order did (``gtt:<id>``)."""
    tags: tuple[str, ...] = field(default=(), metadata=SPARSE)
    seen_at: datetime | None = field(default=None, metadata=SPARSE)
    """The broker's update time of the newest report of it applied: an older report (a poll that
    started before a push, a push older than the last poll) changes nothing."""

    @property
    def key(self) -> InstrumentKey:
        return (self.exchange, self.symbol, self.product)


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """One order as the broker reports it, normalised by the broker plugin.

    ``filled_qty`` and ``avg_price`` are cumulative over the order's life. ``status`` is canonical
    (``UNKNOWN`` when the plugin could not map the broker's status) and ``raw_status`` keeps the
    broker's own word for evidence.
    """

    broker_order_id: str
    exchange: str
    symbol: str
    product: str
    side: Side
    quantity: int
    status: OrderStatus
    raw_status: str
    filled_qty: int = 0
    avg_price: Decimal = ZERO
    tag: str | None = None  # the tag the host sent (its local order id, see ``TaggingBroker``), if any
    placed_at: datetime | None = None
    updated_at: datetime | None = None
    message: str | None = None
    # How it was placed, in the broker's words: what reconciliation needs to tie one order the trader
    # placed to the several orders a broker may make of it.
    order_type: str | None = None  # e.g. MARKET, LIMIT, SL, SL-M (a protected market order may list as LIMIT)
    price: Decimal | None = None  # the limit price; None for a market order
    trigger_price: Decimal | None = None
    variety: str | None = None  # e.g. regular, amo, co, iceberg, auction
    validity: str | None = None  # e.g. DAY, IOC, TTL
    validity_ttl: int | None = None  # minutes, for TTL
    parent_order_id: str | None = None
    """The broker's id of what this order was made from: a cover order's first leg, the parent of an
    autoslice or iceberg order, or ``gtt:<trigger id>`` for an order a GTT placed. None: none."""
    tags: tuple[str, ...] = ()
    exchange_order_id: str | None = None
    pending_qty: int | None = None
    cancelled_qty: int | None = None
    guid: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """The broker's fields the plugin does not map, as it sent them: kept, never lost (evidence)."""

    @property
    def key(self) -> InstrumentKey:
        return (self.exchange, self.symbol, self.product)


@dataclass(frozen=True, slots=True)
class Position:
    """A net position, kept as exact buy and sell totals so that no average is ever rounded.

    ``quantity`` is signed (negative is short). ``buy_value`` and ``sell_value`` are the exact sums
    of quantity times price of every fill on each side (a broker plugin divides out any lot
    multiplier its broker folds into values). ``broker_average`` is the broker's own average price of
    the net position, kept when a position is taken from the broker (a carried position whose buys
    are not all in today's figures still shows its price); fills applied locally clear it.
    """

    exchange: str
    symbol: str
    product: str
    quantity: int = 0
    buy_qty: int = 0
    buy_value: Decimal = ZERO
    sell_qty: int = 0
    sell_value: Decimal = ZERO
    broker_average: Decimal | None = None

    @property
    def key(self) -> InstrumentKey:
        return (self.exchange, self.symbol, self.product)

    def average_price(self, places: int = 4) -> Decimal | None:
        """Average price of the side that built the net position, rounded to ``places`` for display.

        The stored figures are exact; this is the one place a division happens, and it rounds
        explicitly (half-even) because a report has to print a finite number.
        """
        qty, value = (self.buy_qty, self.buy_value) if self.quantity >= 0 else (self.sell_qty, self.sell_value)
        if qty == 0 or (self.broker_average is not None and qty < abs(self.quantity)):
            # the side's figures do not cover the whole position (part carried from before): the broker's
            return None if self.broker_average is None else self.broker_average.quantize(Decimal(1).scaleb(-places))
        return (value / qty).quantize(Decimal(1).scaleb(-places))

    def with_fill(self, side: Side, quantity: int, value: Decimal) -> Position:
        """This position after one fill of ``quantity`` worth ``value`` on ``side``."""
        if side is Side.BUY:
            return Position(self.exchange, self.symbol, self.product, self.quantity + quantity,
                            self.buy_qty + quantity, self.buy_value + value, self.sell_qty, self.sell_value)
        return Position(self.exchange, self.symbol, self.product, self.quantity - quantity,
                        self.buy_qty, self.buy_value, self.sell_qty + quantity, self.sell_value + value)


@dataclass(frozen=True, slots=True)
class Holding:
    """Delivery (CNC) stock held in the demat account, as the broker reports it the day after the buy.

    ``quantity`` is everything held: ``t1_quantity`` (bought, not yet delivered: T+1) plus
    ``realised_quantity`` (delivered). ``average_price`` is the broker's, exact.
    """

    exchange: str
    symbol: str
    quantity: int
    t1_quantity: int = 0
    realised_quantity: int = 0
    average_price: Decimal = ZERO

    @property
    def key(self) -> tuple[str, str]:
        return (self.exchange, self.symbol)


def positions_from_fills(orders: Iterable[BrokerOrder],
                         start: Mapping[InstrumentKey, Position] | None = None) -> list[Position]:
    """Net positions implied by the cumulative fills of ``orders``, one per (exchange, symbol,
    product): for a broker (a simulator, a replay) that has no positions of its own to report.
    ``start``: the positions before those fills (carried overnight), each listed even without a fill."""
    positions: dict[InstrumentKey, Position] = dict(start or {})
    for bo in orders:
        if bo.filled_qty:
            current = positions.get(bo.key) or Position(*bo.key)
            positions[bo.key] = current.with_fill(bo.side, bo.filled_qty, bo.avg_price * bo.filled_qty)
    return list(positions.values())


@dataclass(frozen=True, slots=True)
class Trade:
    """One execution the broker reports for an order: its own quantity and exact price, never an
    average. ``identity`` names it across requests, processes and days; a broker plugin that knows
    more about its trade ids may not assume more than they promise (Kite: ``trade_id`` is exchange
    generated, unique only with the exchange, the order and the day)."""

    trade_id: str
    broker_order_id: str
    exchange: str
    symbol: str
    product: str
    side: Side
    quantity: int
    price: Decimal
    filled_at: datetime | None = None

    @property
    def identity(self) -> str:
        """Exchange, trade id, order id and trading day (the fill's date in its own time zone)."""
        day = self.filled_at.date().isoformat() if self.filled_at is not None else "-"
        return f"{self.exchange}|{self.trade_id}|{self.broker_order_id}|{day}"

    @property
    def value(self) -> Decimal:
        return self.price * self.quantity


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """What has been applied to positions for one order: cumulative quantity and exact value.

    The ledger is the exactly-once guard: a fill is applied only for quantity beyond ``filled_qty``,
    and the entry is written in the same atomic store write as the position change it causes.
    ``trades`` are the identities (``Trade.identity``) of the broker's trades applied: when they
    cover ``filled_qty``, ``filled_value`` is their exact sum, not an inference from an average.
    """

    order_id: str
    filled_qty: int = 0
    filled_value: Decimal = ZERO
    trades: tuple[str, ...] = field(default=(), metadata=SPARSE)


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill applied to a position.

    ``fill_id`` is deterministic (order id and the cumulative quantity it brings the order to), so
    the same fill always has the same id, across cycles, processes and restarts. ``value`` is exact;
    ``price`` is ``value / quantity`` (a non-terminating quotient is carried to 28 significant digits).
    """

    fill_id: str
    order_id: str
    broker_order_id: str | None
    exchange: str
    symbol: str
    product: str
    side: Side
    quantity: int
    value: Decimal
    price: Decimal
    cumulative_qty: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Event:
    """Something the reconciler found or did, announced to signal receivers and event sinks.

    ``event_id`` is a pure function of what the event describes: a consumer that sees the same id
    twice (possible around a crash) has seen the same event twice. ``seq`` is the outbox position,
    assigned by the store; events are delivered in ``seq`` order.

    ``data`` is the wire form (JSON-safe, stored and replayed as is); ``payload`` is the same data
    typed, as the class registered for ``kind`` (see ``hostspec.events``).
    """

    event_id: str
    kind: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    order_id: str | None = None
    symbol: str | None = None
    seq: int = 0

    @classmethod
    def of(cls, payload: Payload, event_id: str, at: datetime) -> Event:
        """The event carrying ``payload``: its kind, its data, and its ``order_id`` and ``symbol``
        when the payload has those fields."""
        if not payload.kind:
            raise ValueError(f"{type(payload).__qualname__} declares no event kind")
        data = payload.to_data()
        return cls(event_id, payload.kind, at, data, data.get("order_id"), data.get("symbol"))

    @property
    def payload(self) -> Payload:
        """``data`` decoded as the payload class registered for ``kind`` (a bare ``Payload`` when
        there is none). Raises ``hostspec.events.PayloadError`` when ``data`` does not fit it."""
        return decode(self.kind, self.data)

    def payload_as(self, cls: type[P]) -> P:
        """``payload``, which must be a ``cls`` (``PayloadError`` otherwise): for a sink that
        handles one kind, ``event.payload_as(OrderFilled).fill_qty`` is type-checked."""
        payload = self.payload
        if not isinstance(payload, cls):
            raise PayloadError(f"event {self.event_id} of kind {self.kind!r} carries a "
                               f"{type(payload).__qualname__}, not a {cls.__qualname__}")
        return payload

    @property
    def summary(self) -> str:
        """The one-line summary every kind carries ("" if the data has none); never raises."""
        return str(self.data.get("summary") or "")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One discrepancy and its resolution: what each side said, which rule decided, what was done."""

    entry_id: str
    at: datetime
    rule: str
    action: str
    order_id: str | None = None
    symbol: str | None = None
    local: dict[str, Any] = field(default_factory=dict)
    broker: dict[str, Any] = field(default_factory=dict)
    seq: int = 0


@dataclass(frozen=True, slots=True)
class LocalState:
    """Everything the store holds that reconciliation reads, as one consistent view.

    ``archived`` maps the broker order id of every order moved out to the per-day archive (a past
    trading day's terminal order, see ``StateStore.archive_before``) to its local order id. Those
    orders are no longer in ``orders`` nor their entries in ``ledger``, so a broker order listed under
    one of these ids must be recognised here: it is settled history, never adopted as external and
    never filled again. Read-only; an order archived without a broker id has no entry.
    """

    orders: dict[str, Order] = field(default_factory=dict)
    positions: dict[InstrumentKey, Position] = field(default_factory=dict)
    ledger: dict[str, LedgerEntry] = field(default_factory=dict)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    events_sent_upto: int = 0
    archived: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ChangeSet:
    """Changes that a store applies together, in one atomic, durable write.

    - ``orders``: upserts. An order's ``version`` is the version this change was based on; the store
      refuses the whole set (``ConflictError``) if any stored order has moved on since.
    - ``positions``: upserts, by (exchange, symbol, product).
    - ``ledger``, ``journal``, ``events``: the ledger entries to set, the journal entries and
      outbox events to append (the store assigns their ``seq``).
    - ``events_sent_upto``: advance the outbox watermark; events at or below it may be pruned.
    - ``checkpoint``: keys merged into the checkpoint record.
    """

    orders: list[Order] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    journal: list[JournalEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    events_sent_upto: int | None = None
    checkpoint: dict[str, Any] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.orders or self.positions or self.ledger or self.journal
                    or self.events or self.events_sent_upto is not None or self.checkpoint)
