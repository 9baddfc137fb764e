"""The plan: what one reconciliation cycle would change, why, and which events that causes.

``PlanBuilder`` is the only place the rules write to. It keeps the working copy of the local state
for the cycle (orders, positions, ledger), so that two changes to one order or one position in the
same cycle compose, and it turns each decision (one ``decide`` call) into a journal entry and the
events it causes, each with a deterministic id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from hostspec.calendar import MarketCalendar
from hostspec.display import money
from hostspec.events import Payload
from hostspec.model import (
    BrokerOrder,
    ChangeSet,
    Event,
    Fill,
    Holding,
    InstrumentKey,
    JournalEntry,
    LedgerEntry,
    LocalState,
    Order,
    Position,
    Side,
    Trade,
    key_str,
    stable_id,
)
from recon_plugin.events import ReconciliationDiscrepancy
from recon_plugin.rules import Rule
from recon_plugin.settings import Settings

DAY_EXCHANGE = "NSE"
"""Whose session says the day moved on for things that name no exchange (delivery holdings, the
archive, what settled today): equity's."""


@dataclass(frozen=True)
class Snapshot:
    """What the broker said this cycle.

    ``positions`` is None when positions were not fetched (paper mode) or the fetch failed: never
    read None as "flat". ``queried`` holds the targeted queries made for missing orders, by local
    order id: the broker's latest state of the order, or None when the broker does not know it.
    ``calendar`` is the market calendar the broker's markets follow (None: no trading days): with
    ``fetched_at`` it says which trading day each order belongs to and whether that day has ended.
    ``holdings``: the broker's delivery holdings as last read (at startup and after each trading
    day), or None when the broker reports none; they explain a delivery position's overnight move.
    """

    orders: list[BrokerOrder]
    fetched_at: datetime
    positions: list[Position] | None = None
    queried: dict[str, BrokerOrder | None] = field(default_factory=dict)
    calendar: MarketCalendar | None = None
    holdings: list[Holding] | None = None
    holdings_fresh: bool = False  # ``holdings`` were read for this cycle (not carried from an earlier one)
    unanswered: frozenset[str] = frozenset()
    """Local ids of past-day orders the broker could not settle after repeated queries (failed, or
    "still working" after its day): they expire, reported."""
    order_tag: Callable[[str], str] | None = None
    """The tag the broker lists for a local order id (``hostspec.broker.TaggingBroker``); None: the id."""
    run: str | None = None
    sequence: int = 0
    """The reconciler run that took it and its place in that run's snapshots: a run's snapshots are
    ordered by ``sequence``, never by the wall clock (which a VM resume or NTP may step back). None:
    ordered by ``fetched_at`` alone."""
    unreadable: Mapping[str, str] = field(default_factory=dict)
    """Broker ids whose record the broker plugin handed back malformed, with what is wrong
    (``recon_plugin.seam``): their local orders are left as they are this cycle, never missing."""
    unidentified: tuple[str, ...] = ()
    """Malformed records without a readable id: no order is counted missing this cycle."""
    partial: bool = False
    """Some orders only, as pushed (``hostspec.broker.PushSink.order``): nothing about any other order
    or about positions."""
    trades: Mapping[str, list[Trade]] | None = None
    """The day's trades by broker order id, when read this cycle (``hostspec.broker.TradesBroker``);
    None: not read (inferred fills stand until they are)."""


@dataclass(frozen=True)
class Decision:
    """One rule firing: the evidence from both sides and what the plan does about it.

    Every decision resolves a difference between the two sides, so ``discrepancy`` is always True
    (it is kept for the JSON of ``recon check``); ``rule.reported`` says whether a person is told.
    """

    rule: Rule
    action: str
    order_id: str | None
    symbol: str | None
    local: dict[str, Any]
    broker: dict[str, Any]
    discrepancy: bool = True


@dataclass
class Plan:
    changes: ChangeSet
    decisions: list[Decision]
    fills: list[Fill]

    def is_empty(self) -> bool:
        """True when local state and broker agree: nothing would change and nothing is reported."""
        return not self.decisions and self.changes.is_empty()


def local_evidence(order: Order | None) -> dict[str, Any]:
    if order is None:
        return {}
    return {"status": order.status.value, "filled_qty": order.filled_qty, "quantity": order.quantity,
            "broker_order_id": order.broker_order_id, "missing_count": order.missing_count}


def broker_evidence(bo: BrokerOrder | None) -> dict[str, Any]:
    if bo is None:
        return {"listed": False}
    return {"status": bo.status.value, "raw_status": bo.raw_status, "filled_qty": bo.filled_qty,
            "avg_price": str(bo.avg_price), "quantity": bo.quantity, "broker_order_id": bo.broker_order_id}


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, default=str)


class PlanBuilder:
    """Accumulates one cycle's changes over a working copy of the local state."""

    def __init__(self, state: LocalState, settings: Settings, now: datetime,
                 calendar: MarketCalendar | None = None) -> None:
        self.state = state
        self.settings = settings
        self.now = now
        self.calendar = calendar
        self._today: dict[str, date] = {}
        self.orders: dict[str, Order] = {}  # changed orders, by local id (version = the one read)
        self.positions: dict[InstrumentKey, Position] = {}
        self.ledger: dict[str, LedgerEntry] = {}
        self.checkpoint: dict[str, Any] = {}
        self.decisions: list[Decision] = []
        self.filled_keys: set[InstrumentKey] = set()  # positions a fill moved this cycle
        self.anomalies: dict[str, str] = {}  # found by a rule, reported once while they last (report_anomalies)
        self.reused: list[tuple[Order, BrokerOrder]] = []  # ended orders whose broker id now lists another instrument
        self.run: str | None = None  # the snapshot's run and sequence, recorded with every write
        self.sequence = 0
        self.partial = False  # a push: its write records no snapshot time (a poll's ordering is not a push's)
        self.journal: list[JournalEntry] = []
        self.events: list[Event] = []
        self.fills: list[Fill] = []
        self.queried: dict[str, BrokerOrder | None] = {}
        self.unanswered: frozenset[str] = frozenset()

    # -- working state ------------------------------------------------------------------------

    def applied(self, order_id: str) -> LedgerEntry:
        return self.ledger.get(order_id) or self.state.ledger.get(order_id) or LedgerEntry(order_id)

    def position(self, key: InstrumentKey) -> Position:
        return self.positions.get(key) or self.state.positions.get(key) or Position(*key)

    def current_positions(self) -> dict[InstrumentKey, Position]:
        return {**self.state.positions, **self.positions}

    def trading_date(self, order: Order) -> date | None:
        """The trading date ``order`` belongs to: the stored one, or the calendar's for its creation."""
        if order.trading_date is not None or self.calendar is None:
            return order.trading_date
        return self.calendar.trading_date(order.created_at, order.exchange)

    def today(self, exchange: str) -> date | None:
        """The trading date now belongs to on ``exchange`` (after the close: the next session's)."""
        if self.calendar is None:
            return None
        if exchange not in self._today:
            self._today[exchange] = self.calendar.trading_date(self.now, exchange)
        return self._today[exchange]

    def day_ended(self, order: Order) -> bool:
        """Whether the trading day ``order`` belongs to is over (False without a calendar)."""
        day, today = self.trading_date(order), self.today(order.exchange)
        return day is not None and today is not None and day < today

    def update_order(self, order: Order, **changes: Any) -> Order:
        """Record a change to an order; the stored version stays the one read (the store checks it).
        The order's trading date is recorded with its first change, once the calendar knows it."""
        if order.trading_date is None and "trading_date" not in changes and self.calendar is not None:
            changes["trading_date"] = self.trading_date(order)
        updated = replace(order, **changes, updated_at=self.now)
        self.orders[order.order_id] = updated
        return updated

    def correct_value(self, key: InstrumentKey, side: Side, difference: Decimal, ledger: LedgerEntry) -> None:
        """Add ``difference`` to the value of ``side`` of the position ``key`` (fills already applied,
        revised by the broker), with the order's corrected ledger entry."""
        position = self.position(key)
        self.positions[key] = (replace(position, buy_value=position.buy_value + difference, broker_average=None)
                               if side is Side.BUY else
                               replace(position, sell_value=position.sell_value + difference, broker_average=None))
        self.ledger[ledger.order_id] = ledger

    def add_fill(self, fill: Fill, ledger: LedgerEntry) -> None:
        key = (fill.exchange, fill.symbol, fill.product)
        self.filled_keys.add(key)
        self.positions[key] = self.position(key).with_fill(fill.side, fill.quantity, fill.value)
        self.ledger[fill.order_id] = ledger
        self.fills.append(fill)

    # -- decisions and events -----------------------------------------------------------------

    def decide(self, rule: Rule, action: str, order: Order | None, bo: BrokerOrder | None, *,
               event: Payload | None = None, summary: str | None = None, report: bool | None = None,
               symbol: str | None = None, local: dict[str, Any] | None = None,
               broker: dict[str, Any] | None = None) -> Decision:
        """Record one rule firing, with everything it causes, in this order:

        - the decision and its journal entry, with the evidence taken from ``order`` and ``bo``
          (``local``/``broker`` replace it when the rule is about something else: a position);
        - ``event``, when the firing announces one (an order event);
        - a ``reconciliation-discrepancy`` event when the rule is ``reported`` in the catalogue (or
          ``report`` says otherwise), its summary ``summary`` or else "<order id or symbol> <action>".
        """
        local = local if local is not None else local_evidence(order)
        broker = broker if broker is not None else broker_evidence(bo)
        order_id = order.order_id if order else None
        symbol = symbol or (order.symbol if order else bo.symbol if bo else None)
        decision = Decision(rule, action, order_id, symbol, local, broker)
        self.decisions.append(decision)
        self.journal.append(JournalEntry(
            entry_id=stable_id("journal", rule, order_id, _canonical(local), _canonical(broker), action),
            at=self.now, rule=rule.value, action=action, order_id=order_id, symbol=symbol, local=local, broker=broker))
        if event is not None:
            self.announce(event)
        if rule.reported if report is None else report:
            self.announce(ReconciliationDiscrepancy(
                order_id=order_id, symbol=symbol, rule=rule, action=action, local=local, broker=broker,
                summary=summary if summary is not None else f"{order_id or symbol} {action}"))
        return decision

    def announce(self, payload: Payload) -> Event:
        """Queue an event for the outbox. Its id is a pure function of its kind and data (but the
        summary, which is for people). For an event that follows from decisions already recorded
        (a position rebuilt after its drift decisions); one decision's event goes with ``decide``."""
        data = payload.to_data()
        del data["summary"]
        event = Event.of(payload, stable_id(payload.kind, _canonical(data)), self.now)
        self.events.append(event)
        return event

    # -- result -------------------------------------------------------------------------------

    def build(self) -> Plan:
        changes = ChangeSet(
            orders=list(self.orders.values()), positions=list(self.positions.values()),
            ledger=list(self.ledger.values()),
            journal=self.journal, events=self.events, checkpoint=self.checkpoint)
        if not changes.is_empty() and not self.partial:
            changes.checkpoint = {**self.checkpoint, "last_snapshot_at": self.now.isoformat(),
                                  "last_snapshot_run": self.run, "last_snapshot_sequence": self.sequence}
        return Plan(changes, self.decisions, self.fills)


def position_summary(key: InstrumentKey, local_qty: int, broker_qty: int) -> str:
    return f"{key_str(key)} local {local_qty} vs broker {broker_qty}"


def price_text(value: Decimal, exchange: str | None = None) -> str:
    """A price for a human, at the exchange's tick precision (``hostspec.display.money``: rounded
    half-even, explicitly; the event data keeps the exact figure)."""
    return money(value, exchange)


def journal_price(value: Decimal) -> str:
    """A price as journal actions write it: at most 4 decimals (the text is part of the entry's id)."""
    return f"{value.quantize(Decimal('0.0001')).normalize():f}"
