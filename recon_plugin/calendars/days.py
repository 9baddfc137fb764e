"""A broker's book through trading days: when each day's book begins, opens, squares off and closes.

The simulated brokers (the Kite simulator and the paper exchange) both live through days with this
one model, so a test that drives them on one clock sees the same day boundaries from both:

- an order belongs to the trading date the calendar gives for the instant it was placed (after the
  close: the next trading day's, an after-market order);
- it stays in the book from its placement until the next trading day's book begins
  (``DAY_START``, 06:00 in the exchange's time zone: Kite's overnight maintenance, about
  00:30-05:30 IST, is over by then), so after the close the ended day's orders are still listed
  with the new day's AMOs, and the morning after they are gone;
- in between come the session's open (AMOs start working), the broker's intraday square-off and the
  close (the exchange cancels what is unfinished).

Weekends and holidays have no moments at all: the first trading day after them begins its book.
Everything here is a pure function of the calendar, cached because the brokers ask per order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import IntEnum
from typing import Protocol, runtime_checkable

from hostspec.calendar import MarketCalendar

DAY_START = time(6, 0)
"""When a trading day's book begins (exchange time): the previous day's orders and trades are gone."""

_SEARCH_DAYS = 31  # no market closes for longer than this: a bound on every day-by-day search


@runtime_checkable
class SessionCalendar(MarketCalendar, Protocol):
    """A market calendar that also says when a session opens (``IndiaCalendar`` is one): a simulated
    broker needs it to start after-market orders at the open."""

    def session_open(self, day: date, exchange: str) -> datetime:
        ...


class Moment(IntEnum):
    """The moments of one trading day, valued in the order they happen."""

    DAY_START = 0  # the ended day's orders and trades leave the book; positions roll overnight
    OPEN = 1  # after-market orders start working
    SQUARE_OFF = 2  # the broker closes intraday (MIS) positions with its own orders
    CLOSE = 3  # the exchange cancels the day's unfinished orders

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True, order=True)
class DayEvent:
    """One moment of one exchange's trading day; sorts by time, then by the order of the day."""

    at: datetime
    moment: Moment
    exchange: str
    day: date = field(compare=False)

    def __str__(self) -> str:
        return f"{self.exchange} {self.day.isoformat()} {self.moment.label} at {self.at.isoformat()}"


class TradingDays:
    """The day model over a ``SessionCalendar``, per exchange code."""

    def __init__(self, calendar: SessionCalendar, day_start: time = DAY_START) -> None:
        self.calendar = calendar
        self.day_start_time = day_start
        self._next: dict[tuple[date, str], date] = {}
        self._previous: dict[tuple[date, str], date] = {}
        self._moments: dict[tuple[date, str], tuple[datetime, datetime, datetime, datetime]] = {}

    # -- dates -------------------------------------------------------------------------------------

    def trading_date(self, at: datetime, exchange: str) -> date:
        """The trading date of an order placed at ``at`` (the calendar's answer)."""
        return self.calendar.trading_date(at, exchange)

    def next_day(self, day: date, exchange: str) -> date:
        """The first trading day after ``day``."""
        key = (day, exchange)
        if key not in self._next:
            # the calendar's own rule: an instant at the close belongs to the next trading day
            self._next[key] = self.calendar.trading_date(self.calendar.session_close(day, exchange), exchange)
        return self._next[key]

    def previous_day(self, day: date, exchange: str) -> date:
        """The last trading day before ``day``."""
        key = (day, exchange)
        if key not in self._previous:
            before = day - timedelta(days=1)
            for _ in range(_SEARCH_DAYS):
                if self.calendar.is_trading_day(before, exchange):
                    break
                before -= timedelta(days=1)
            self._previous[key] = before
        return self._previous[key]

    def book_date(self, at: datetime, exchange: str) -> date:
        """The trading day whose book is showing at ``at``: the last one whose book has begun.

        After Thursday's close it is still Thursday (its orders are listed, cancelled or done, with
        Friday's AMOs) until Friday's book begins; on Saturday it is Friday's.
        """
        day = self.trading_date(at, exchange)
        return day if at >= self.moments(day, exchange)[Moment.DAY_START] else self.previous_day(day, exchange)

    def in_book(self, day: date, at: datetime, exchange: str) -> bool:
        """Whether an order of trading date ``day`` (already placed) is still in the book at ``at``:
        until the next trading day's book begins."""
        return at < self.moments(self.next_day(day, exchange), exchange)[Moment.DAY_START]

    # -- the moments of a day ------------------------------------------------------------------------

    def moments(self, day: date, exchange: str) -> tuple[datetime, datetime, datetime, datetime]:
        """``day``'s book start, open, square-off and close, indexed by ``Moment``."""
        key = (day, exchange)
        if key not in self._moments:
            close = self.calendar.session_close(day, exchange)
            start = datetime.combine(day, self.day_start_time, close.tzinfo)
            self._moments[key] = (start, self.calendar.session_open(day, exchange),
                                  self.calendar.square_off_time(day, exchange), close)
        return self._moments[key]

    def session_open(self, day: date, exchange: str) -> datetime:
        return self.moments(day, exchange)[Moment.OPEN]

    def square_off_time(self, day: date, exchange: str) -> datetime:
        return self.moments(day, exchange)[Moment.SQUARE_OFF]

    def session_close(self, day: date, exchange: str) -> datetime:
        return self.moments(day, exchange)[Moment.CLOSE]

    def is_open(self, at: datetime, exchange: str) -> bool:
        """Whether ``exchange``'s normal session is trading at ``at``."""
        day = self.trading_date(at, exchange)
        return self.session_open(day, exchange) <= at < self.session_close(day, exchange)

    def events(self, after: datetime, upto: datetime, exchanges: set[str]) -> list[DayEvent]:
        """Every moment of every trading day of ``exchanges`` in (``after``, ``upto``], in order."""
        found: list[DayEvent] = []
        for exchange in exchanges:
            day = self.previous_day(self.trading_date(after, exchange), exchange)
            while True:
                moments = self.moments(day, exchange)
                if moments[Moment.DAY_START] > upto:
                    break
                found += [DayEvent(at, moment, exchange, day) for moment, at in zip(Moment, moments, strict=True)
                          if after < at <= upto]
                day = self.next_day(day, exchange)
        return sorted(found)

    def next_event(self, after: datetime, exchanges: set[str]) -> DayEvent | None:
        """The first moment of ``exchanges``' trading days after ``after`` (None without exchanges)."""
        first: DayEvent | None = None
        for exchange in exchanges:
            day = self.previous_day(self.trading_date(after, exchange), exchange)
            while first is None or self.moments(day, exchange)[Moment.DAY_START] <= first.at:
                upcoming = [DayEvent(at, moment, exchange, day)
                            for moment, at in zip(Moment, self.moments(day, exchange), strict=True) if at > after]
                if upcoming:
                    first = min([first, upcoming[0]] if first else [upcoming[0]])
                    break
                day = self.next_day(day, exchange)
        return first
