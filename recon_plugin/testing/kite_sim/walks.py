"""How an order walks through Kite's interim statuses, one status per step, so that a poller sees
each (pure: the simulator applies the steps).

- placement: ``PUT ORDER REQ RECEIVED`` (at once) → ``VALIDATION PENDING`` → ``OPEN PENDING`` →
  ``OPEN``, or ``TRIGGER PENDING`` for SL and SL-M orders (they wait there until triggered); an IOC
  order that reaches the exchange has its unfilled remainder cancelled at once (``OPEN`` then
  ``CANCELLED`` in the same step). AMOs do not walk: they wait in ``AMO REQ RECEIVED`` for the open.
- modify (``PUT /orders/{variety}/{id}``): ``MODIFY VALIDATION PENDING`` (at once, with a new
  ``order_timestamp``) → ``MODIFY PENDING`` → ``MODIFIED`` (the new figures apply) → back to
  ``OPEN`` (or ``TRIGGER PENDING``); a modification the exchange refuses (a quantity not above
  the filled quantity) walks ``NOT MODIFIED`` instead of ``MODIFIED``. A modify while one is in
  flight is refused (HTTP 400), and so is an order's 26th ("Maximum allowed order modifications
  exceeded.", Kite's limit of 25).
- cancel (``DELETE /orders/{variety}/{id}``): ``CANCEL PENDING`` (at once) → ``CANCELLED``.

**When a step happens** (``Pace``): ``"read"`` (the default): each read of the order (it listed in
``GET /orders``, or its ``GET /orders/{id}``) shows its status, then the order takes one step;
a ``timedelta``: one step per that much time on the simulator's clock; ``"manual"``: only the
test's ``step()`` (and ``settle()``, which finishes every walk). The automatic market
(``auto=True``) also takes one step per tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

Pace = Literal["read", "manual"] | timedelta
MODIFY_VALIDATION = "MODIFY VALIDATION PENDING"
CANCEL_PENDING = "CANCEL PENDING"


@dataclass(frozen=True)
class Step:
    status: str
    effect: str | None = None  # "modify": the modification applies; "ioc": the remainder is cancelled


@dataclass
class Walk:
    """The steps an order has still to take, and when it took its last one."""

    steps: list[Step]
    since: datetime
    modification: dict[str, str] = field(default_factory=dict)  # the figures a modify walk applies


def placement(order_type: str, validity: str) -> list[Step]:
    working = "TRIGGER PENDING" if order_type in ("SL", "SL-M") else "OPEN"
    last = Step(working, "ioc" if validity == "IOC" and working == "OPEN" else None)
    return [Step("VALIDATION PENDING"), Step("OPEN PENDING"), last]


def modification(back_to: str, accepted: bool) -> list[Step]:
    verdict = Step("MODIFIED", "modify") if accepted else Step("NOT MODIFIED")
    return [Step("MODIFY PENDING"), verdict, Step(back_to)]


def cancellation() -> list[Step]:
    return [Step("CANCELLED")]


def due_steps(pace: Pace, since: datetime, now: datetime) -> int:
    """How many steps a walk paced by time has taken since ``since`` (0 for other paces)."""
    if not isinstance(pace, timedelta) or pace <= timedelta(0) or now <= since:
        return 0
    return int((now - since) / pace)
