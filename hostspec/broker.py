"""What a broker plugin provides: the ``Broker`` protocol and the one error type it raises."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from hostspec.errors import HostError
from hostspec.model import BrokerOrder, Holding, Position, Side, Trade


class FailureKind(StrEnum):
    """Why a broker call failed; the reconciler chooses how to wait from it."""

    AUTH = "auth"  # the session is invalid or expired: a person must log in again
    RATE_LIMIT = "rate-limit"  # the broker asked us to slow down: back off with jitter
    TRANSIENT = "transient"  # network, timeout, 5xx: retry next cycle
    UNREADABLE = "unreadable"  # the broker answered something we cannot read: retry next cycle
    REJECTED = "rejected"  # the broker refused a request (bad input, order refused)


class BrokerError(HostError):
    """A broker call failed. Never means "empty": a fetch that raises this returned nothing.

    The message must never contain a secret (API key, access token, password).
    """

    def __init__(self, message: str, kind: FailureKind = FailureKind.TRANSIENT,
                 retry_after: float | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after
        self.status_code = status_code


@runtime_checkable
class Broker(Protocol):
    """A connection to one broker account, made by a factory registered through
    ``hostspec_register_brokers``.

    Thread rules: the reconciler calls the fetch methods from its own thread; the host's order flow
    may call ``place_order``/``cancel_order`` from another. An implementation must be safe for that.

    Failure rules: every method raises ``BrokerError`` when it cannot answer. A fetch never returns an
    empty list to mean "I could not tell": an empty list means the broker said it has nothing.
    """

    name: str

    def fetch_orders(self) -> list[BrokerOrder]:
        """Every order in the broker's order book (one request, however many orders)."""
        ...

    def fetch_positions(self) -> list[Position]:
        """The broker's net positions, one per (exchange, symbol, product)."""
        ...

    def order_history(self, broker_order_id: str) -> Sequence[BrokerOrder]:
        """The states of one order, oldest first; an empty sequence when the broker does not know
        the id. Used sparingly, for orders missing from the order book."""
        ...

    def place_order(self, *, tag: str | None, exchange: str, symbol: str, product: str, side: Side,
                    quantity: int, price: Decimal | None = None) -> str:
        """Submit an order; returns the broker's order id. Optional: the reconciler never calls it."""
        ...

    def cancel_order(self, broker_order_id: str) -> None:
        """Ask the broker to cancel a working order. Optional: the reconciler never calls it."""
        ...

    def close(self) -> None:
        """Release connections and files. Called once, at host shutdown."""
        ...


@runtime_checkable
class HoldingsBroker(Protocol):
    """Optional: a broker that reports delivery holdings (``isinstance(broker, HoldingsBroker)``).

    A broker without it keeps the behaviour of a host with no holdings: a delivery (CNC) position
    that leaves the broker's positions overnight is then drift like any other.
    """

    def fetch_holdings(self) -> list[Holding]:
        """Every holding in the account (one request). Raises ``BrokerError``, never ``[]``, when it
        cannot tell. Read at startup and after a trading day ends, not every cycle."""
        ...


@runtime_checkable
class TaggingBroker(Protocol):
    """Optional: a broker that cannot carry every local order id as an order's tag as it is (Kite:
    letters and digits, at most 20), so it sends each id as a tag of its own making.

    ``place_order(tag=...)`` still receives the local order id; the broker sends ``order_tag(tag)``
    and lists that in ``BrokerOrder.tag``. The mapping must be a pure function of the id (the same in
    every process, after every restart) and must not give two ids one tag: the reconciler finds an
    order whose submit never returned an id by ``order_tag(order_id)``. A broker without it sends and
    lists the local id unchanged.
    """

    def order_tag(self, order_id: str) -> str:
        """The tag this broker sends, and lists, for the local order id ``order_id``."""
        ...


@runtime_checkable
class TradesBroker(Protocol):
    """Optional: a broker that reports its trades, the executions behind an order's cumulative fill
    figures (``isinstance(broker, TradesBroker)``). A broker without it keeps inferred fills: the
    increment of an order's cumulative quantity, valued at its cumulative average.

    With it, fills are the trades themselves (each its own quantity and exact price), applied once by
    ``Trade.identity``; an inferred fill later confirmed by trades is replaced, not added, and a value
    that differs is corrected by the exact difference. The reconciler reads trades only when an
    order's filled quantity moved, and at a slow pace otherwise, within the broker's rate limit.
    """

    def fetch_trades(self) -> list[Trade]:
        """Every trade of the trading day (one request). Raises ``BrokerError``, never ``[]``, when it
        cannot tell."""
        ...


class PushSink(Protocol):
    """Where a pushing broker delivers what it is told; every method may be called from any thread
    and returns at once (the reconciler queues the work on its own loop)."""

    def order(self, update: BrokerOrder) -> None:
        """One order as the broker's push channel reported it: a partial snapshot of that order alone
        (it says nothing about any other order). Sent in any order, possibly twice, possibly older
        than the last poll: the reconciler applies it through the same rules as a poll."""
        ...

    def connected(self) -> None:
        """The channel is (re)connected. Pushes are not replayed after a disconnect: the reconciler
        makes a full resync (a poll) on every call."""
        ...

    def disconnected(self, reason: str) -> None:
        """The channel went down (``reason`` names why, without a secret); polling speeds up."""
        ...


@runtime_checkable
class PushingBroker(Protocol):
    """Optional: a broker that pushes order updates as they happen (``isinstance(broker, PushingBroker)``),
    such as Kite's WebSocket order updates. Polling stays the backstop: the reconciler polls more
    slowly while the channel is healthy, faster when it goes quiet or down, and resyncs on every
    (re)connect.
    """

    def start_push(self, loop: asyncio.AbstractEventLoop, sink: PushSink) -> None:
        """Start the channel, delivering to ``sink``. ``loop`` is the reconciler's running event loop,
        for a client that runs as a task on it (or the plugin may use a thread of its own). Returns at
        once; (re)connecting is the plugin's job, reported through ``sink``."""
        ...

    def stop_push(self) -> None:
        """Stop the channel (at shutdown, before ``close``); returns within a second or two."""
        ...
