"""When a derivative contract has expired, read from its Kite trading symbol.

Kite names derivatives by underlying, expiry and kind: monthly ``NIFTY26NOVFUT``, ``BANKNIFTY26NOV52000CE``,
``GOLDM26DECFUT`` (``YY`` + month); weekly options ``NIFTY2611245000CE`` (``YY`` + month digit, or
O/N/D for October to December, + day). A weekly symbol gives the exact expiry date; a monthly one
the month. The claim made is conservative: only when the contract has certainly expired is a
vanished position named an expiry; otherwise it stays drift, for a person.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

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


def has_expired(symbol: str, exchange: str, today: date) -> bool:
    """Whether the contract has certainly expired before ``today``: a weekly option after its date; a
    monthly NSE/BSE contract from the day after its month's last Tuesday (their monthly expiry day
    since September 2025; a Thursday expiry comes later, never earlier). MCX contracts expire on
    dates the symbol does not tell (natural gas before its named month): never claimed."""
    last = latest_expiry(symbol, exchange)
    if last is None:
        return False
    if _WEEKLY.match(symbol):
        return last < today
    if exchange == "MCX":
        return False
    last_tuesday = last - timedelta(days=(last.weekday() - 1) % 7)
    return last_tuesday < today
