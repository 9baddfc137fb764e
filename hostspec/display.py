"""How money and time are shown to a person: one convention for every command.

- Money at the instrument's tick precision: an NSE or BSE equity price (tick 0.05) has 2 decimals, a
  currency derivative on CDS (tick 0.0025) 4. Rounding is explicit (half-even) and only for display:
  exact figures go to ``--json`` as strings, never through here.
- Time in the exchange's own zone, with the zone named (``15:07:14 IST``); ISO 8601 in JSON.
- No line wider than ``WIDTH`` columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType

WIDTH = 120
TICK_DECIMALS: Mapping[str, int] = MappingProxyType({
    "NSE": 2, "BSE": 2,  # equity: tick 0.05 (0.01 for some), 2 decimals
    "NFO": 2, "BFO": 2,  # equity derivatives: tick 0.05
    "MCX": 2,  # commodities: tick 1, 0.05 or 0.10 by contract
    "CDS": 4, "BCD": 4,  # currency derivatives: tick 0.0025
})
DEFAULT_DECIMALS = 2


def decimals(exchange: str | None) -> int:
    """The decimals an exchange's prices are shown with (2 for one this table does not know)."""
    return TICK_DECIMALS.get((exchange or "").upper(), DEFAULT_DECIMALS)


def money(value: Decimal | None, exchange: str | None = None) -> str:
    """``value`` rounded (half-even) to the exchange's tick precision; ``-`` for no value."""
    if value is None:
        return "-"
    places = decimals(exchange)
    return f"{value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):f}"


def quantity(value: int) -> str:
    """A signed net quantity: ``+21``, ``-55``, ``0``."""
    return f"{value:+d}" if value else "0"


def clock_time(at: datetime, zone: tzinfo | None) -> str:
    """The time of day in ``zone`` (the machine's when None), to the second, with the zone's name."""
    local = at.astimezone(zone)
    return f"{local:%H:%M:%S} {local.tzname() or ''}".rstrip()


def date_time(at: datetime, zone: tzinfo | None, today: date | None = None) -> str:
    """The date (left out when it is ``today`` in ``zone``) and the time of day with the zone's name."""
    local = at.astimezone(zone)
    return clock_time(at, zone) if local.date() == today else f"{local:%Y-%m-%d} {clock_time(at, zone)}"


def wrap(head: str, items: Iterable[str], indent: int = 2, width: int = WIDTH) -> list[str]:
    """``head`` then ``items`` separated by commas, over as many lines as it takes, never splitting an
    item (``"reject 1"`` stays on one line); continuation lines are indented by ``indent``."""
    lines: list[str] = []
    line, first = head, True
    for item in items:
        if not first and len(line) + len(item) + 3 > width:  # ", " before it, "," after what stays
            lines.append(line + ",")
            line = " " * indent + item
        else:
            line += item if first else f", {item}"
        first = False
    return [*lines, line]


def clip(line: str, width: int = WIDTH) -> str:
    """``line`` cut to ``width`` columns, ending in ``…`` when it was longer."""
    return line if len(line) <= width else line[: width - 1] + "…"
