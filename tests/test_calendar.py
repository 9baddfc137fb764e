"""The Indian market calendar and the manual clock: trading days, sessions, square-off, AMO dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hostspec.calendar import Clock, ManualClock, MarketCalendar, SystemClock
from hostspec.config import Config, ConfigError
from recon_plugin.calendars.india import IST, CalendarSettings, IndiaCalendar

CAL = IndiaCalendar.default()
THU, FRI, MON, TUE_HOLIDAY, WED = (date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 23), date(2026, 11, 24),
                                   date(2026, 11, 25))


def ist(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=IST)


def test_it_is_a_market_calendar_and_clocks_are_clocks() -> None:
    assert isinstance(CAL, MarketCalendar)
    assert isinstance(SystemClock(), Clock) and isinstance(ManualClock(ist(THU, 9)), Clock)


def test_weekends_and_exchange_holidays_from_the_holidays_package() -> None:
    assert CAL.is_trading_day(THU, "NSE") and CAL.is_trading_day(FRI, "NFO")
    assert not CAL.is_trading_day(date(2026, 11, 21), "NSE")  # Saturday
    assert not CAL.is_trading_day(TUE_HOLIDAY, "NSE")  # Guru Nanak Jayanti, from financial_holidays("XNSE")
    assert not CAL.is_trading_day(TUE_HOLIDAY, "BSE")  # and from "XBOM"
    assert CAL.next_trading_day(FRI, "NSE") == MON
    assert CAL.next_trading_day(MON, "NSE") == WED
    assert CAL.previous_trading_day(WED, "NSE") == MON


def test_an_orders_trading_date_follows_the_session_it_belongs_to() -> None:
    assert CAL.trading_date(ist(THU, 8, 30), "NSE") == THU  # before the open: today's session
    assert CAL.trading_date(ist(THU, 15, 29), "NSE") == THU
    assert CAL.trading_date(ist(THU, 15, 30), "NSE") == FRI  # at the close: an AMO for tomorrow
    assert CAL.trading_date(ist(FRI, 18), "NSE") == MON  # Friday evening AMO: Monday's
    assert CAL.trading_date(ist(date(2026, 11, 22), 11), "NSE") == MON  # placed on Sunday
    assert CAL.trading_date(ist(MON, 20), "NSE") == WED  # the holiday moves nothing
    assert CAL.trading_date(ist(THU, 16, 30), "CDS") == THU  # currency trades until 17:00
    assert CAL.trading_date(ist(THU, 22), "MCX") == THU  # commodities until late
    assert CAL.trading_date(datetime(2026, 11, 19, 10, tzinfo=UTC), "NSE") == FRI  # 15:30 IST: closed


def test_sessions_and_square_off_per_segment_with_mcx_following_us_daylight_time() -> None:
    assert CAL.session_close(THU, "NSE") == ist(THU, 15, 30)
    assert CAL.square_off_time(THU, "NSE") == ist(THU, 15, 20)
    assert CAL.square_off_time(THU, "NFO") == ist(THU, 15, 25)
    assert CAL.square_off_time(THU, "CDS") == ist(THU, 16, 45)
    assert CAL.session_close(THU, "MCX") == ist(THU, 23, 55)  # November: US standard time
    june = date(2026, 6, 18)
    assert CAL.session_close(june, "MCX") == ist(june, 23, 30)
    assert CAL.square_off_time(june, "MCX") == ist(june, 23, 5)  # 25 minutes before the close


def test_configured_holidays_special_sessions_and_times() -> None:
    config = Config({"calendar": {"extra_holidays": ["2026-11-19"], "special_sessions": ["2026-11-08"],
                                  "equity_close": "15:00"}}, Path("c.yaml"), {CalendarSettings: "calendar"})
    cal = IndiaCalendar.from_config(config)
    assert not cal.is_trading_day(THU, "NSE")
    assert cal.is_trading_day(date(2026, 11, 8), "NSE")  # a Sunday: Muhurat trading
    assert cal.session_close(FRI, "NSE") == ist(FRI, 15)


@pytest.mark.parametrize(("section", "key"), [({"equity_close": "3pm"}, "calendar.equity_close"),
                                              ({"extra_holidays": ["24/11/2026"]}, "calendar.extra_holidays")])
def test_bad_times_and_dates_name_the_key(section: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        IndiaCalendar.from_config(Config({"calendar": section}, Path("c.yaml"), {CalendarSettings: "calendar"}))


def test_the_manual_clock_moves_only_forward() -> None:
    clock = ManualClock(ist(THU, 9))
    assert clock.advance(60) == ist(THU, 9, 1)
    assert clock.advance(timedelta(days=1)) == ist(FRI, 9, 1)
    with pytest.raises(ValueError, match="never goes back"):
        clock.set(ist(THU, 10))
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))


def test_a_muhurat_session_keeps_its_evening_orders_on_its_own_day() -> None:
    config = Config({"calendar": {"special_sessions": ["2026-11-08 18:00-19:15"]}}, Path("c.yaml"),
                    {CalendarSettings: "calendar"})
    cal = IndiaCalendar.from_config(config)
    sunday = date(2026, 11, 8)
    assert cal.is_trading_day(sunday, "NSE")
    assert cal.trading_date(ist(sunday, 18, 15), "NSE") == sunday  # was Monday: the usual 15:30 close
    assert cal.session_close(sunday, "NSE") == ist(sunday, 19, 15)
    assert cal.square_off_time(sunday, "NSE") == ist(sunday, 19, 5)
    assert cal.trading_date(ist(sunday, 19, 20), "NSE") == date(2026, 11, 9)
    with pytest.raises(ConfigError, match=r"calendar\.special_sessions"):
        IndiaCalendar.from_config(Config({"calendar": {"special_sessions": ["2026-11-08 evening"]}}, Path("c.yaml"),
                                         {CalendarSettings: "calendar"}))
