"""What a broker plugin hands back, checked at the seam before any rule reads it.

A third-party plugin may return ``None`` for a list, a dict for an order, a float price or a string
quantity. Each record is checked against the model's types here, so that one bad record is named and
blamed on the plugin instead of surfacing as a bare ``TypeError`` deep in a plan, and never blocks
the well-formed records beside it:

- a whole answer of the wrong shape (not a list) is unreadable: ``BrokerError`` (``UNREADABLE``),
  never read as an empty book;
- a bad order record with a readable broker id is set aside: the local order with that id is neither
  reconciled nor counted missing this cycle (``Snapshot.unreadable``);
- a bad order record without a readable id could be any order: no order is counted missing this
  cycle (``Snapshot.unidentified``), and everything readable still reconciles;
- a bad position record makes the positions unread this cycle (None: never "flat").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from hostspec.broker import BrokerError, FailureKind
from hostspec.model import BrokerOrder, OrderStatus, Position, Side


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _amount(value: Any) -> bool:
    return isinstance(value, Decimal) and value.is_finite()


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def _aware(value: Any) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None


_ORDER_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "broker_order_id": (_text, "a non-empty str"), "exchange": (_text, "a non-empty str"),
    "symbol": (_text, "a non-empty str"), "product": (_text, "a non-empty str"),
    "side": (lambda v: isinstance(v, Side), "a Side"), "quantity": (_count, "an int >= 0"),
    "status": (lambda v: isinstance(v, OrderStatus), "an OrderStatus"),
    "raw_status": (lambda v: isinstance(v, str), "a str"),
    "filled_qty": (_count, "an int >= 0"), "avg_price": (_amount, "a finite Decimal"),
    "tag": (_optional(lambda v: isinstance(v, str)), "a str or None"),
    "placed_at": (_optional(_aware), "an aware datetime or None"),
    "updated_at": (_optional(_aware), "an aware datetime or None"),
    "price": (_optional(_amount), "a finite Decimal or None"),
    "trigger_price": (_optional(_amount), "a finite Decimal or None"),
    "parent_order_id": (_optional(_text), "a non-empty str or None"),
}
_POSITION_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "exchange": (_text, "a non-empty str"), "symbol": (_text, "a non-empty str"),
    "product": (_text, "a non-empty str"),
    "quantity": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an int"),
    "buy_qty": (_count, "an int >= 0"), "sell_qty": (_count, "an int >= 0"),
    "buy_value": (_amount, "a finite Decimal"), "sell_value": (_amount, "a finite Decimal"),
}


def _problem(record: Any, kind: type, fields: dict[str, tuple[Callable[[Any], bool], str]]) -> str | None:
    if not isinstance(record, kind):
        return f"a {type(record).__name__}, not a {kind.__name__}"
    for name, (check, wanted) in fields.items():
        value = getattr(record, name)
        if not check(value):
            return f"{name} is {type(value).__name__} {value!r:.40}, not {wanted}"
    return None


@dataclass
class CheckedBook:
    """An order book with its bad records set aside (see the module's docstring)."""

    orders: list[BrokerOrder]
    unreadable: dict[str, str] = field(default_factory=dict)  # broker id -> what is wrong with its record
    unidentified: list[str] = field(default_factory=list)  # what is wrong with records without a readable id


class OrderChecker:
    """``check`` of whole order books, skipping the records already found well formed in the previous
    book: a broker plugin that hands back the same (immutable) record for an unchanged order, as the
    Kite broker does, costs one dict lookup per order, not a check of every field. It keeps the
    previous book's good records (replaced on every call, never accumulated)."""

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self._good: dict[int, BrokerOrder] = {}  # by id(); the value keeps the object (and so its id) alive

    def check(self, what: str, answer: Any) -> CheckedBook:
        """``answer`` (what ``fetch_orders`` or ``order_history`` returned) checked record by record;
        raises ``BrokerError`` when it is not a list at all."""
        if not isinstance(answer, list):
            raise BrokerError(f"broker plugin {self.plugin!r}: {what} returned a {type(answer).__name__}, not a "
                              "list", FailureKind.UNREADABLE)
        book = CheckedBook([])
        previous, good = self._good, {}
        for index, record in enumerate(answer):
            problem = None if id(record) in previous else _problem(record, BrokerOrder, _ORDER_FIELDS)
            if problem is None:
                book.orders.append(record)
                good[id(record)] = record
                continue
            broker_id = getattr(record, "broker_order_id", None)
            text = f"broker plugin {self.plugin!r}: {what} record {index}: {problem}"
            if isinstance(broker_id, str) and broker_id:
                book.unreadable[broker_id] = text
            else:
                book.unidentified.append(text)
        self._good = good
        return book


def check_positions(plugin: str, answer: Any) -> list[Position]:
    """``answer`` (what ``fetch_positions`` returned) when every record is well formed; otherwise
    ``BrokerError`` naming the first bad one (positions are compared whole: one left out would look flat)."""
    if not isinstance(answer, list):
        raise BrokerError(f"broker plugin {plugin!r}: positions returned a {type(answer).__name__}, not a list",
                          FailureKind.UNREADABLE)
    for index, record in enumerate(answer):
        if problem := _problem(record, Position, _POSITION_FIELDS):
            raise BrokerError(f"broker plugin {plugin!r}: positions record {index}: {problem}",
                              FailureKind.UNREADABLE)
    return answer
