"""What a broker plugin provides: the ``Broker`` protocol and the one error type it raises."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from hostspec.errors import HostError
from hostspec.model import BrokerOrder, Holding, Position, Side


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
