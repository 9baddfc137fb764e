"""The Indian markets' calendar (NSE, BSE, NFO, BFO, CDS, BCD, MCX) as Zerodha trades them.

Holidays come from the maintained ``holidays`` package (``financial_holidays("XNSE")`` and
``"XBOM"``), not from a hand-typed list; extra holidays and special sessions (Muhurat trading) are
added in the ``calendar`` section. Session, square-off and AMO times are configurable with today's
defaults, because exchanges and the broker change them. All times are Asia/Kolkata.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

from hostspec import hookimpl
from hostspec.config import Config, Section, setting
from hostspec.errors import ConfigError

IST = ZoneInfo("Asia/Kolkata")
NEW_YORK = ZoneInfo("America/New_York")


class Segment(StrEnum):
    EQUITY = "equity"
    DERIVATIVES = "derivatives"
    CURRENCY = "currency"
    COMMODITY = "commodity"


SEGMENTS = {"NSE": Segment.EQUITY, "BSE": Segment.EQUITY, "NFO": Segment.DERIVATIVES, "BFO": Segment.DERIVATIVES,
            "CDS": Segment.CURRENCY, "BCD": Segment.CURRENCY, "MCX": Segment.COMMODITY}
"""Kite's exchange codes by segment; an unknown code is treated as equity."""


@dataclass(frozen=True)
class CalendarSettings:
    """The ``calendar`` section: times as ``HH:MM`` in Asia/Kolkata, dates as ``YYYY-MM-DD``."""

    extra_holidays: tuple[str, ...] = setting((), "dates the exchanges are closed that the holidays package "
                                                  "does not list")
    special_sessions: tuple[str, ...] = setting((), "sessions on a weekend or holiday (Muhurat trading): "
                                                    "'YYYY-MM-DD' (normal hours) or 'YYYY-MM-DD HH:MM-HH:MM'")
    equity_open: str = setting("09:15", "NSE/BSE equity: normal session opens")
    equity_close: str = setting("15:30", "NSE/BSE equity: normal session closes")
    equity_square_off: str = setting("15:20", "broker's intraday square-off, equity")
    derivatives_open: str = setting("09:15", "NFO/BFO: session opens")
    derivatives_close: str = setting("15:30", "NFO/BFO: session closes")
    derivatives_square_off: str = setting("15:25", "broker's intraday square-off, derivatives")
    currency_open: str = setting("09:00", "CDS/BCD: session opens")
    currency_close: str = setting("17:00", "CDS/BCD: session closes")
    currency_square_off: str = setting("16:45", "broker's intraday square-off, currency")
    commodity_open: str = setting("09:00", "MCX: session opens")
    commodity_close_us_summer: str = setting("23:30", "MCX: session closes while the US keeps daylight time")
    commodity_close_us_winter: str = setting("23:55", "MCX: session closes while the US keeps standard time")
    commodity_square_off_minutes: int = setting(25, "broker's MCX intraday square-off: minutes before the close",
                                                minimum=0)


def _clock_time(text: str, key: str, config: Config) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ConfigError(config.path, f"calendar.{key}", f"expected a time as HH:MM, got {text!r}") from None


def _sessions(texts: tuple[str, ...], config: Config) -> dict[date, tuple[time, time] | None]:
    """Special sessions: a date, with its own hours when given (Muhurat trading is an evening hour)."""
    sessions: dict[date, tuple[time, time] | None] = {}
    for text in texts:
        day_text, _, hours = text.strip().partition(" ")
        try:
            day = date.fromisoformat(day_text)
            if hours:
                start, _, end = hours.strip().partition("-")
                sessions[day] = (time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
            else:
                sessions[day] = None
        except ValueError:
            raise ConfigError(config.path, "calendar.special_sessions",
                              f"expected 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM-HH:MM', got {text!r}") from None
    return sessions


def _dates(texts: tuple[str, ...], key: str, config: Config) -> frozenset[date]:
    try:
        return frozenset(date.fromisoformat(t) for t in texts)
    except ValueError as exc:
        raise ConfigError(config.path, f"calendar.{key}", f"expected dates as YYYY-MM-DD: {exc}") from None


@cache
def _exchange_holidays(market: str, year: int) -> frozenset[date]:
    return frozenset(holidays.financial_holidays(market, years=year))


class IndiaCalendar:
    """``hostspec.calendar.MarketCalendar`` for the Indian exchanges."""

    zone = IST

    def __init__(self, opens: dict[Segment, time], closes: dict[Segment, time], square_offs: dict[Segment, time],
                 commodity_close_winter: time, commodity_square_off: timedelta,
                 extra_holidays: frozenset[date] = frozenset(),
                 special_sessions: frozenset[date] | dict[date, tuple[time, time] | None] = frozenset()) -> None:
        self.opens = opens
        self.closes = closes
        self.square_offs = square_offs
        self.commodity_close_winter = commodity_close_winter
        self.commodity_square_off = commodity_square_off
        self.extra_holidays = extra_holidays
        self.special_sessions: dict[date, tuple[time, time] | None] = (
            dict(special_sessions) if isinstance(special_sessions, dict) else dict.fromkeys(special_sessions))

    @classmethod
    def from_config(cls, config: Config) -> IndiaCalendar:
        s = config.get(CalendarSettings)
        t = {name: _clock_time(getattr(s, name), name, config) for name in (
            "equity_open", "equity_close", "equity_square_off", "derivatives_open", "derivatives_close",
            "derivatives_square_off", "currency_open", "currency_close", "currency_square_off", "commodity_open",
            "commodity_close_us_summer", "commodity_close_us_winter")}
        return cls(
            opens={Segment.EQUITY: t["equity_open"], Segment.DERIVATIVES: t["derivatives_open"],
                   Segment.CURRENCY: t["currency_open"], Segment.COMMODITY: t["commodity_open"]},
            closes={Segment.EQUITY: t["equity_close"], Segment.DERIVATIVES: t["derivatives_close"],
                    Segment.CURRENCY: t["currency_close"], Segment.COMMODITY: t["commodity_close_us_summer"]},
            square_offs={Segment.EQUITY: t["equity_square_off"], Segment.DERIVATIVES: t["derivatives_square_off"],
                         Segment.CURRENCY: t["currency_square_off"]},
            commodity_close_winter=t["commodity_close_us_winter"],
            commodity_square_off=timedelta(minutes=s.commodity_square_off_minutes),
            extra_holidays=_dates(s.extra_holidays, "extra_holidays", config),
            special_sessions=_sessions(s.special_sessions, config))

    @classmethod
    def default(cls) -> IndiaCalendar:
        """Today's defaults, for code that has no configuration (simulators, tests)."""
        return cls.from_config(Config({}, Path("(built-in defaults)"), {CalendarSettings: "calendar"}))

    # -- MarketCalendar ----------------------------------------------------------------------------

    def is_trading_day(self, day: date, exchange: str) -> bool:
        if day in self.special_sessions:
            return True
        if day.weekday() >= 5 or day in self.extra_holidays:
            return False
        market = "XBOM" if exchange in ("BSE", "BFO", "BCD") else "XNSE"
        return day not in _exchange_holidays(market, day.year)

    def trading_date(self, at: datetime, exchange: str) -> date:
        local = at.astimezone(IST)
        day = local.date()
        if self.is_trading_day(day, exchange) and local < self.session_close(day, exchange):
            return day
        return self.next_trading_day(day, exchange)

    def session_close(self, day: date, exchange: str) -> datetime:
        hours = self.special_sessions.get(day)
        if hours is not None:
            return datetime.combine(day, hours[1], IST)
        segment = SEGMENTS.get(exchange, Segment.EQUITY)
        close = self.closes[segment]
        if segment is Segment.COMMODITY and not _us_daylight_time(day):
            close = self.commodity_close_winter
        return datetime.combine(day, close, IST)

    def square_off_time(self, day: date, exchange: str) -> datetime:
        segment = SEGMENTS.get(exchange, Segment.EQUITY)
        if self.special_sessions.get(day) is not None and segment is not Segment.COMMODITY:
            # a special session's square-off keeps the usual distance from its close
            usual = datetime.combine(day, self.closes[segment]) - datetime.combine(day, self.square_offs[segment])
            return self.session_close(day, exchange) - usual
        if segment is Segment.COMMODITY:
            return self.session_close(day, exchange) - self.commodity_square_off
        return datetime.combine(day, self.square_offs[segment], IST)

    # -- more than the protocol asks ------------------------------------------------------------------

    def session_open(self, day: date, exchange: str) -> datetime:
        hours = self.special_sessions.get(day)
        if hours is not None:
            return datetime.combine(day, hours[0], IST)
        return datetime.combine(day, self.opens[SEGMENTS.get(exchange, Segment.EQUITY)], IST)

    def next_trading_day(self, day: date, exchange: str) -> date:
        """The first trading day after ``day``."""
        following = day + timedelta(days=1)
        while not self.is_trading_day(following, exchange):
            following += timedelta(days=1)
        return following

    def previous_trading_day(self, day: date, exchange: str) -> date:
        """The last trading day before ``day``."""
        before = day - timedelta(days=1)
        while not self.is_trading_day(before, exchange):
            before -= timedelta(days=1)
        return before


def _us_daylight_time(day: date) -> bool:
    """MCX's close follows US daylight saving time (its international reference markets)."""
    noon = datetime.combine(day, time(12), NEW_YORK)
    return bool(noon.dst())


@hookimpl
def hostspec_config_schema() -> Mapping[str, Section]:
    """The ``calendar`` section, read by the brokers that follow this calendar (paper, kite)."""
    return {"calendar": CalendarSettings}
