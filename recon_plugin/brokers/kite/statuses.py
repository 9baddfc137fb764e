"""Kite Connect's order statuses, and its order, position and holding records, in the canonical model.

The map is declarative and complete for every status Kite documents or has been seen sending. A
status not in it maps to UNKNOWN: reported by the engine, never terminal. Kite has no PARTIAL
status: a partially filled order is OPEN with ``0 < filled_quantity < quantity`` (the engine makes
that PARTIAL), and a CANCELLED order may carry fills.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from operator import itemgetter
from typing import Any

from hostspec.model import BrokerOrder, Holding, OrderStatus, Position, Side, Trade

S = OrderStatus

STATUS_MAP: dict[str, OrderStatus] = {
    # received, being validated, on its way to the exchange
    "PUT ORDER REQ RECEIVED": S.SUBMITTED,
    "PUT ORDER REQUEST RECEIVED": S.SUBMITTED,  # the docs' spelling
    "AMO REQ RECEIVED": S.SUBMITTED,  # after-market order, waits for the open
    "VALIDATION PENDING": S.SUBMITTED,
    "OPEN PENDING": S.SUBMITTED,
    # working at the exchange (OPEN is also the status of a partially filled order)
    "OPEN": S.PLACED,
    "TRIGGER PENDING": S.PLACED,
    # a modification or cancellation of a working order, in flight: still working until it lands
    "MODIFY VALIDATION PENDING": S.PLACED,
    "MODIFY PENDING": S.PLACED,
    "MODIFIED": S.PLACED,
    "NOT MODIFIED": S.PLACED,
    "CANCEL PENDING": S.PLACED,
    "UPDATE": S.PLACED,  # postback / WebSocket only: a partial fill or a modification
    # terminal
    "COMPLETE": S.FILLED,
    "CANCELLED": S.CANCELLED,
    "CANCELLED AMO": S.CANCELLED,
    "REJECTED": S.REJECTED,
}

try:
    from zoneinfo import ZoneInfo

    IST: tzinfo = ZoneInfo("Asia/Kolkata")
except Exception:  # no tz database on the machine: India has kept +05:30 without DST since 1945
    IST = timezone(timedelta(hours=5, minutes=30), "IST")


def map_status(raw: str) -> OrderStatus:
    return STATUS_MAP.get(raw, S.UNKNOWN)


def to_decimal(value: Any) -> Decimal:
    """A JSON number as the exact Decimal of its shortest text (``repr`` of a parsed float is the
    shortest string that reads back to it, which is what a JSON encoder writes)."""
    if value is None:
        return Decimal(0)
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def parse_time(value: Any) -> datetime | None:
    """A Kite timestamp (IST wall time, ``YYYY-MM-DD HH:MM:SS``, or a datetime the client made) as an
    aware datetime; None when absent or unreadable (Kite has sent ``0000-01-01 09:35:36``)."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=IST)
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=IST)


_MAPPED = frozenset({
    "order_id", "exchange", "tradingsymbol", "product", "transaction_type", "quantity", "status", "filled_quantity",
    "average_price", "tag", "order_timestamp", "exchange_update_timestamp", "exchange_timestamp", "status_message",
    "order_type", "price", "trigger_price", "variety", "validity", "validity_ttl", "parent_order_id", "tags",
    "exchange_order_id", "pending_quantity", "cancelled_quantity", "guid"})
"""The fields of a Kite order that ``order_from_kite`` maps; every other one is kept in ``extra``."""


def _optional_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _price(value: Any) -> Decimal | None:
    """A price field: None when absent or 0 (Kite's "no price", e.g. a MARKET order's)."""
    return to_decimal(value) or None if value is not None else None


def iceberg_family(tag: str) -> str:
    """The id an iceberg order goes by (its legs' ``parent_order_id``): ``iceberg:<tag>``. Kite places
    the legs one at a time, each an order of its own with the order's tag and ``meta.iceberg``, and no
    leg names another; the tag is what ties them to the order placed."""
    return f"iceberg:{tag}"


def parent_of(row: dict[str, Any]) -> str | None:
    """What a Kite order was made from (``BrokerOrder.parent_order_id``): a cover order's first leg or
    another parent named in ``parent_order_id``; the parent of an autoslice child (``tags``
    ``["autoslice", "autoslice:<parent id>"]``: its own ``tag`` is null); the iceberg order of a leg
    (``iceberg_family``); the GTT that placed it
    (``meta: {"gtt": <trigger id>}`` or ``{"gtt": {"id": ...}}``), as ``gtt:<trigger id>``."""
    if row.get("parent_order_id"):
        return str(row["parent_order_id"])
    for tag in row.get("tags") or ():
        if isinstance(tag, str) and tag.startswith("autoslice:") and len(tag) > len("autoslice:"):
            return tag[len("autoslice:"):]
    meta = row.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("iceberg"), dict) and row.get("tag"):
        return iceberg_family(row["tag"])  # its legs share the tag, and no leg names another
    gtt = meta.get("gtt") if isinstance(meta, dict) else None
    if isinstance(gtt, dict):
        gtt = gtt.get("id") or gtt.get("trigger_id")
    return f"gtt:{gtt}" if gtt not in (None, "") else None


PROTECTED = "mktp"
"""The tag Kite gives a MARKET (or SL-M) order placed with market protection, which it then lists as a
LIMIT (or SL) order at its protection price: the canonical order is what was placed."""


def order_from_kite(row: dict[str, Any]) -> BrokerOrder:
    """One Kite order record (from ``/orders`` or an order's history) in the canonical model; the fields
    it does not map are kept in ``extra``. A protected market order is the MARKET (SL-M) order it was
    placed as, its listed type and protection price kept in ``extra`` (``listed_order_type``,
    ``protection_price``)."""
    raw = row["status"]
    tags = row.get("tags")
    if tags and PROTECTED in tags and row.get("order_type") in ("LIMIT", "SL"):
        row = {**row, "order_type": "MARKET" if row["order_type"] == "LIMIT" else "SL-M", "price": 0,
               "listed_order_type": row["order_type"], "protection_price": row.get("price")}
    return BrokerOrder(
        broker_order_id=str(row["order_id"]), exchange=row["exchange"], symbol=row["tradingsymbol"],
        product=row["product"], side=Side(row["transaction_type"]), quantity=int(row["quantity"]),
        status=map_status(raw), raw_status=raw, filled_qty=int(row.get("filled_quantity") or 0),
        avg_price=to_decimal(row.get("average_price")), tag=row.get("tag") or None,
        placed_at=parse_time(row.get("order_timestamp")),
        updated_at=parse_time(row.get("exchange_update_timestamp") or row.get("exchange_timestamp")),
        message=row.get("status_message"), order_type=row.get("order_type"), price=_price(row.get("price")),
        trigger_price=_price(row.get("trigger_price")), variety=row.get("variety"), validity=row.get("validity"),
        validity_ttl=_optional_int(row.get("validity_ttl")), parent_order_id=parent_of(row),
        tags=tuple(str(t) for t in tags) if tags else (),
        exchange_order_id=str(row["exchange_order_id"]) if row.get("exchange_order_id") else None,
        pending_qty=_optional_int(row.get("pending_quantity")),
        cancelled_qty=_optional_int(row.get("cancelled_quantity")), guid=row.get("guid"),
        extra={k: v for k, v in row.items() if k not in _MAPPED})


# The fields of a Kite order that can change after it is placed (a modification changes the prices,
# the type, the validity and the order timestamp). The others are fixed for an order id.
_FIELDS = ("order_id", "status", "filled_quantity", "average_price", "quantity", "exchange_update_timestamp",
           "status_message", "exchange_timestamp", "order_timestamp", "price", "trigger_price", "order_type",
           "validity", "pending_quantity", "cancelled_quantity", "exchange_order_id", "tags", "meta")
_ROW_KEY = itemgetter(*_FIELDS)


def _row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    try:
        key: tuple[Any, ...] = _ROW_KEY(row)
        return key
    except KeyError:  # a row without an optional field: slower, same meaning
        return tuple(row.get(f) for f in _FIELDS)


class OrderParser:
    """``order_from_kite`` for whole books, reusing the record of every row whose fields are the same
    as in the previous book: a poll of a 5,000-order book where little changed parses little.

    It keeps the previous decoded book (memory of the order of the book's own size, replaced on
    every poll, never accumulated)."""

    def __init__(self) -> None:
        self._previous: dict[Any, tuple[tuple[Any, ...], BrokerOrder]] = {}
        self._rows: list[dict[str, Any]] | None = None
        self._out: list[BrokerOrder] = []

    def parse(self, rows: list[dict[str, Any]]) -> list[BrokerOrder]:
        if rows == self._rows:  # one comparison in C: an unchanged book (the common case) costs ~1 ms/1,000
            return list(self._out)
        # Keyed by order id (one string hash), then the fields compared: hashing whole tuples of a
        # freshly decoded body's strings costs more than it saves.
        previous, current, out = self._previous, {}, []
        for row in rows:
            fields = _row_key(row)
            seen = previous.get(fields[0])
            order = seen[1] if seen is not None and seen[0] == fields else order_from_kite(row)
            current[fields[0]] = (fields, order)
            out.append(order)
        self._previous, self._rows, self._out = current, rows, out
        return list(out)


def position_from_kite(row: dict[str, Any]) -> Position:
    """One entry of ``/portfolio/positions`` ``net`` in the canonical model.

    Kite's values include the lot ``multiplier`` (MCX: price x quantity x multiplier); the model's are
    price x quantity, so they are divided by it (exact for Kite's multipliers, powers of ten and the
    like). The broker's ``average_price`` is kept as ``broker_average``.
    """
    multiplier = to_decimal(row.get("multiplier") or 1) or Decimal(1)
    average = to_decimal(row.get("average_price")) if row.get("average_price") else None
    return Position(
        exchange=row["exchange"], symbol=row["tradingsymbol"], product=row["product"],
        quantity=int(row["quantity"]), buy_qty=int(row.get("buy_quantity") or 0),
        buy_value=_unscaled(to_decimal(row.get("buy_value")), multiplier),
        sell_qty=int(row.get("sell_quantity") or 0),
        sell_value=_unscaled(to_decimal(row.get("sell_value")), multiplier), broker_average=average)


def _unscaled(value: Decimal, multiplier: Decimal) -> Decimal:
    return value if multiplier == 1 else value / multiplier


def holding_from_kite(row: dict[str, Any]) -> Holding:
    """One entry of ``/portfolio/holdings`` in the canonical model (``quantity`` is T1 plus realised)."""
    return Holding(
        exchange=row["exchange"], symbol=row["tradingsymbol"], quantity=int(row["quantity"]),
        t1_quantity=int(row.get("t1_quantity") or 0), realised_quantity=int(row.get("realised_quantity") or 0),
        average_price=to_decimal(row.get("average_price")))


def trade_from_kite(row: dict[str, Any]) -> Trade:
    """One entry of ``/trades`` (or an order's trades) in the canonical model: the trade's own quantity
    and its price (``average_price``, the exact decimal of what Kite sent)."""
    return Trade(trade_id=str(row["trade_id"]), broker_order_id=str(row["order_id"]), exchange=row["exchange"],
                 symbol=row["tradingsymbol"], product=row["product"], side=Side(row["transaction_type"]),
                 quantity=int(row["quantity"]), price=to_decimal(row["average_price"]),
                 filled_at=parse_time(row.get("fill_timestamp") or row.get("exchange_timestamp")))
