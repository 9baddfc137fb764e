"""Time as markets keep it: the clock every part reads, and the market calendar a broker's markets
follow (``hostspec_market_calendar``).

One clock object is passed down to the reconciler, the brokers and the simulators, so a test drives
days by moving a ``ManualClock`` instead of sleeping. The calendar answers questions about trading
days in the exchange's own time zone; the reconciler turns its answers into plain data (a trading
date per order, today's trading date) before planning, so the plan stays a pure function.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Where "now" comes from: timezone-aware, never naive."""

    def now(self) -> datetime:
        ...


class SystemClock:
    """The machine's clock (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told: for tests and simulators that live through days in seconds.

    Thread-safe: a simulator's thread and a test's thread may read it while the test advances it.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock's time must be timezone-aware")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by ``delta`` (a timedelta or seconds); returns the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError("a clock never goes back")
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (never backwards)."""
        with self._lock:
            if when < self._now:
                raise ValueError(f"a clock never goes back ({when.isoformat()} < {self._now.isoformat()})")
            self._now = when


@runtime_checkable
class MarketCalendar(Protocol):
    """The trading days and sessions of the markets a broker trades on, per exchange code (``NSE``,
    ``NFO``, ``MCX`` ...). Answers in the exchange's time zone (``zone``); accepts any aware datetime."""

    @property
    def zone(self) -> tzinfo:
        """The exchanges' time zone (for dates of things that name no exchange)."""
        ...

    def is_trading_day(self, day: date, exchange: str) -> bool:
        """Whether ``exchange`` has a session on ``day`` (weekends, holidays and special sessions
        considered)."""
        ...

    def trading_date(self, at: datetime, exchange: str) -> date:
        """The trading date an order placed at ``at`` belongs to: the day of the session it is placed
        in or before (same day before or during the session), else the next trading day (an order
        placed after the close, an AMO, belongs to the next session)."""
        ...

    def session_close(self, day: date, exchange: str) -> datetime:
        """When the normal session of ``day`` ends (a trading day of ``exchange``)."""
        ...

    def square_off_time(self, day: date, exchange: str) -> datetime:
        """When the broker squares off intraday (MIS) positions on ``day``."""
        ...
