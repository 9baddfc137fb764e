"""The state of the book for a person: what needs attention, the open orders, the positions.

Read from a ``LocalState`` alone, so that the end of ``tradehost run`` and ``recon status`` say the
same thing the same way. Attention first, LOST orders first within it: an order the broker does not
list even when asked for directly, an order missing from its book, an order with a discrepancy still
open. An operator who dismissed one (``tradehost recon resolve ORDER --dismiss``) does not see it
again until its condition changes: the dismissals are kept in the checkpoint under ``DISMISSED``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any

from hostspec.display import date_time, money, quantity
from hostspec.model import LocalState, Order, OrderStatus, Position, key_str

DISMISSED = "dismissed"
"""Checkpoint key: order id -> the ``condition`` an operator dismissed."""


@dataclass(frozen=True)
class Attention:
    """One thing a person should look at: an order and why."""

    order: Order
    why: str

    @property
    def lost(self) -> bool:
        return self.order.status is OrderStatus.LOST


def condition(order: Order) -> str | None:
    """What is wrong with ``order`` as one comparable string, or None when nothing is."""
    parts = []
    if order.status is OrderStatus.LOST:
        parts.append("LOST")
    elif order.missing_count:
        parts.append(f"missing:{order.missing_count}")
    if order.open_discrepancy:
        parts.append(order.open_discrepancy)
    return "|".join(parts) or None


def _why(order: Order) -> str:
    reasons = []
    if order.status is OrderStatus.LOST:
        reasons.append("LOST: the broker does not know it")
    elif order.missing_count:
        reasons.append(f"missing from the broker's book ({order.missing_count} misses)")
    for part in (order.open_discrepancy or "").split("|"):
        if part:
            rule, _, rest = part.partition(":")
            raw = rest.rsplit(":", 1)[0]
            reasons.append(f"open {rule}" + (f" (broker says {raw!r})" if raw else ""))
    return "; ".join(reasons)


def needs_attention(state: LocalState) -> list[Attention]:
    """Orders a person should look at, LOST first, then the oldest first; dismissed ones left out
    while their condition stays the one dismissed."""
    dismissed: Mapping[str, Any] = state.checkpoint.get(DISMISSED, {})
    found = [Attention(o, _why(o)) for o in state.orders.values()
             if (c := condition(o)) is not None and dismissed.get(o.order_id) != c]
    return sorted(found, key=lambda a: (not a.lost, a.order.created_at, a.order.order_id))


def open_orders(orders: Iterable[Order]) -> list[Order]:
    """Orders still working (not terminal, not LOST), oldest first."""
    return sorted((o for o in orders if not o.status.is_terminal and o.status is not OrderStatus.LOST),
                  key=lambda o: (o.created_at, o.order_id))


def order_line(order: Order, zone: tzinfo | None, today: date | None = None) -> str:
    """One order on one line: id, instrument, side, quantity, status, filled, average, when placed."""
    avg = f"avg {money(order.avg_price, order.exchange)}" if order.avg_price is not None else ""
    return (f"  {order.order_id:<16} {order.symbol:<10} {order.side.value:<4} {order.quantity:>7} "
            f"{order.status.value:<9} {order.filled_qty:>7} filled  {avg:<16} "
            f"placed {date_time(order.created_at, zone, today)}")


def attention_line(item: Attention, zone: tzinfo | None, today: date | None = None) -> str:
    o = item.order
    since = date_time(o.updated_at, zone, today)
    return f"  {o.order_id:<16} {o.symbol:<10} {o.side.value:<4} {o.quantity:>7}  {item.why} (since {since})"


def position_line(p: Position) -> str:
    """One net position: key, signed quantity, average, and the exact totals at tick precision."""
    avg = p.average_price(12)
    return (f"  {key_str(p.key):<28} {quantity(p.quantity):>8}  avg {money(avg, p.exchange):<12} "
            f"bought {p.buy_qty} for {money(p.buy_value, p.exchange)}, "
            f"sold {p.sell_qty} for {money(p.sell_value, p.exchange)}")


def positions_lines(positions: Iterable[Position], symbol: str | None = None) -> list[str]:
    shown = sorted((p for p in positions if symbol is None or p.symbol.upper() == symbol.upper()),
                   key=lambda p: p.key)
    return [f"positions ({len(shown)}):" + ("" if shown else " none"), *(position_line(p) for p in shown)]


def book_lines(state: LocalState, zone: tzinfo | None, today: date | None = None) -> list[str]:
    """The state of the book in a few lines: in sync or not, what needs attention, open orders, positions."""
    attention = needs_attention(state)
    working = open_orders(state.orders.values())
    lost = sum(a.lost for a in attention)
    if attention:
        orders = f"{len(attention)} order needs" if len(attention) == 1 else f"{len(attention)} orders need"
        head = f"book: NOT in sync: {orders} attention" + (f" ({lost} LOST)" if lost else "")
    else:
        head = "book: in sync with the broker as of the last look"
    lines = [head]
    if attention:
        lines += [f"needs attention ({len(attention)}):", *(attention_line(a, zone, today) for a in attention)]
    lines += [f"open orders ({len(working)}):" + ("" if working else " none"),
              *(order_line(o, zone, today) for o in working)]
    return lines + positions_lines(state.positions.values())
