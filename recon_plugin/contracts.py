"""When a derivative contract expires, read from its Kite trading symbol.

Kite names derivatives by underlying, expiry and kind: monthly ``NIFTY26NOVFUT``, ``BANKNIFTY26NOV52000CE``,
``GOLDM26DECFUT`` (``YY`` + month); weekly options ``NIFTY2611245000CE`` (``YY`` + month digit, or
O/N/D for October to December, + day). A weekly symbol gives the exact expiry date; a monthly one
the month, so the latest date it can expire on (the month's last day) is what it gives. That is
evidence enough to name a derivative position that vanished overnight: it expired.
"""

from __future__ import annotations

import calendar
import re
from datetime import date

DERIVATIVE_EXCHANGES = frozenset({"NFO", "BFO", "MCX", "CDS", "BCD"})
_MONTHS = {name: i for i, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT",
                                             "NOV", "DEC"), start=1)}
_WEEKLY_MONTH = {**{str(i): i for i in range(1, 10)}, "O": 10, "N": 11, "D": 12}
_MONTHLY = re.compile(r"^[A-Z0-9&-]+?(\d{2})(" + "|".join(_MONTHS) + r")(FUT|\d+(?:\.\d+)?(?:CE|PE))$")
_WEEKLY = re.compile(r"^[A-Z&-]+?(\d{2})([1-9OND])(\d{2})\d+(?:\.\d+)?(?:CE|PE)$")


def latest_expiry(symbol: str, exchange: str) -> date | None:
    """The last day ``symbol`` can be trading on (its expiry, or its expiry month's last day); None
    for an instrument that does not expire or a symbol this cannot read."""
    if exchange not in DERIVATIVE_EXCHANGES:
        return None
    weekly = _WEEKLY.match(symbol)
    if weekly:
        try:
            return date(2000 + int(weekly[1]), _WEEKLY_MONTH[weekly[2]], int(weekly[3]))
        except ValueError:
            return None
    monthly = _MONTHLY.match(symbol)
    if monthly:
        year, month = 2000 + int(monthly[1]), _MONTHS[monthly[2]]
        return date(year, month, calendar.monthrange(year, month)[1])
    return None


def may_have_expired(symbol: str, exchange: str, today: date) -> bool:
    """Whether the contract can have expired before ``today``: a weekly option whose date has passed,
    or a monthly contract in (or after) its expiry month."""
    weekly = _WEEKLY.match(symbol) if exchange in DERIVATIVE_EXCHANGES else None
    last = latest_expiry(symbol, exchange)
    if last is None:
        return False
    if weekly:
        return last < today
    return (today.year, today.month) >= (last.year, last.month)
