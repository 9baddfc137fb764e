"""The simulated market and exchange of the paper broker, as pure functions of its inputs: a price
per symbol and tick, an order's scripted future drawn from the seed when it is placed, and the state
an order is in at any tick (replayed from its script and any cancel request)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from hostspec.model import BrokerOrder, OrderStatus, Side, stable_id

PRICE_STEP = Decimal("0.05")


@dataclass(frozen=True)
class Step:
    """One scripted event of an order's future: at ``tick``, ``action`` (ack, fill, cancel, reject)."""

    tick: int
    action: str
    quantity: int = 0


def market_price(seed: int, symbol: str, tick: int) -> Decimal:
    """The simulated market's price of ``symbol`` at ``tick``: a pure function, rounded to the
    price step (0.05)."""
    base = 100 + int(stable_id(seed, symbol), 16) % 3000
    wobble = random.Random(f"{seed}:{symbol}:{tick}").randint(-40, 40)
    return (Decimal(base) + PRICE_STEP * wobble).quantize(PRICE_STEP)


def draw_script(rng: random.Random, placed_tick: int, quantity: int, reject_rate: float,
                cancel_rate: float) -> list[Step]:
    """An order's future, drawn once at placement: acknowledged after 1-3 ticks, then rejected,
    or filled in 1-3 parts (possibly cancelled after the first part)."""
    tick = placed_tick + rng.randint(1, 3)
    if rng.random() < reject_rate:
        return [Step(tick, "reject")]
    script = [Step(tick, "ack")]
    cancel = quantity > 1 and rng.random() < cancel_rate
    parts = 2 if cancel else min(quantity, rng.randint(1, 3))
    cuts = sorted(rng.sample(range(1, quantity), parts - 1)) if parts > 1 else []
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, quantity], strict=True)]
    for size in sizes[:1] if cancel else sizes:
        tick += rng.randint(1, 4)
        script.append(Step(tick, "fill", size))
    if cancel:
        script.append(Step(tick + rng.randint(1, 3), "cancel"))
    return script


def replay_order(seed: int, broker_id: str, order: dict[str, Any], now_tick: int,
                 time_of: Callable[[int], datetime], end: tuple[int, str] | None = None,
                 refused: str | None = None) -> BrokerOrder:
    """An order's state at ``now_tick``, replayed from its script and any cancel request: a pure
    function of the account's inputs, so every reader of the file sees the same book.

    ``end`` is the tick its trading day ends for it (the close, or the square-off for an intraday
    order) and the message it is cancelled with then if unfinished: nothing of its script happens
    from that tick on. ``refused``: the broker rejects it at once with that message (an MIS order
    after the square-off time)."""
    status, filled, value, message, updated = OrderStatus.SUBMITTED, 0, Decimal(0), None, order["placed_tick"]
    cancel_tick = order["cancel_tick"]
    end_tick, end_message = end if end is not None else (None, "")
    if refused is not None:
        if now_tick > updated:
            status, message, updated = OrderStatus.REJECTED, refused, updated + 1
        return _order(broker_id, order, status, 0, Decimal(0), message, time_of, updated)
    for tick, action, quantity in order["script"]:
        if tick > now_tick or status.is_terminal or (end_tick is not None and tick >= end_tick):
            break
        if cancel_tick is not None and cancel_tick <= tick and status is not OrderStatus.SUBMITTED:
            break
        updated = tick
        if action == "ack":
            status = OrderStatus.PLACED
        elif action == "reject":
            status, message = OrderStatus.REJECTED, "RMS: margin exceeds (simulated)"
        elif action == "fill":
            price = market_price(seed, order["symbol"], tick)
            filled, value = filled + quantity, value + price * quantity
            status = OrderStatus.FILLED if filled >= order["quantity"] else OrderStatus.PARTIAL
        elif action == "cancel":
            status, message = OrderStatus.CANCELLED, "cancelled by the exchange (simulated)"
    if not status.is_terminal:
        if (cancel_tick is not None and cancel_tick <= now_tick and status is not OrderStatus.SUBMITTED
                and (end_tick is None or cancel_tick < end_tick)):
            status, message, updated = OrderStatus.CANCELLED, "cancelled on request", cancel_tick
        elif end_tick is not None and end_tick <= now_tick:
            status, message, updated = OrderStatus.CANCELLED, end_message, end_tick
    return _order(broker_id, order, status, filled, value, message, time_of, updated)


def _order(broker_id: str, order: dict[str, Any], status: OrderStatus, filled: int, value: Decimal,
           message: str | None, time_of: Callable[[int], datetime], updated: int) -> BrokerOrder:
    return BrokerOrder(
        broker_order_id=broker_id, exchange=order["exchange"], symbol=order["symbol"],
        product=order["product"], side=Side(order["side"]), quantity=order["quantity"], status=status,
        raw_status=status.value, filled_qty=filled, avg_price=value / filled if filled else Decimal(0),
        tag=order["tag"], placed_at=time_of(order["placed_tick"]), updated_at=time_of(updated),
        message=message)
