"""The day model the simulated brokers share (``recon_plugin.calendars.days``) and the broker's
overnight roll (``recon_plugin.brokers.overnight``), with plain data."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from hostspec.model import Holding, Position
from recon_plugin.brokers.overnight import carry, roll_holding
from recon_plugin.calendars.days import Moment, SessionCalendar, TradingDays
from recon_plugin.calendars.india import IST, IndiaCalendar

THU, FRI, SAT, MON, TUE, WED = (date(2026, 11, d) for d in (19, 20, 21, 23, 24, 25))
DAYS = TradingDays(IndiaCalendar.default())


def ist(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=IST)


def test_the_book_showing_is_the_last_days_until_the_next_trading_day_begins() -> None:
    assert isinstance(IndiaCalendar.default(), SessionCalendar)
    assert [DAYS.book_date(ist(d, h), "NSE") for d, h in [(THU, 5), (THU, 6), (THU, 16), (FRI, 5), (SAT, 12),
                                                          (MON, 6), (TUE, 12), (WED, 6)]] == [
        date(2026, 11, 18), THU, THU, THU, FRI, MON, MON, WED]
    assert DAYS.in_book(THU, ist(FRI, 5, 59), "NSE") and not DAYS.in_book(THU, ist(FRI, 6), "NSE")
    assert DAYS.in_book(MON, ist(TUE, 23), "NSE") and DAYS.next_day(MON, "NSE") == WED
    assert DAYS.previous_day(WED, "NSE") == MON and DAYS.is_open(ist(THU, 15, 29), "NSE")
    assert not DAYS.is_open(ist(THU, 15, 30), "NSE") and DAYS.is_open(ist(THU, 23), "MCX")


def test_the_moments_come_in_order_and_a_holiday_has_none() -> None:
    events = DAYS.events(ist(MON, 16), ist(WED, 10), {"NSE", "NFO"})
    assert [(e.at, e.moment, e.exchange) for e in events] == [
        (ist(WED, 6), Moment.DAY_START, "NFO"), (ist(WED, 6), Moment.DAY_START, "NSE"),
        (ist(WED, 9, 15), Moment.OPEN, "NFO"), (ist(WED, 9, 15), Moment.OPEN, "NSE")]
    upcoming = DAYS.next_event(ist(THU, 15, 21), {"NSE", "NFO"})
    assert upcoming is not None and (upcoming.at, upcoming.moment, upcoming.exchange) == (
        ist(THU, 15, 25), Moment.SQUARE_OFF, "NFO")
    assert DAYS.next_event(ist(THU, 10), set()) is None


def test_a_carried_position_keeps_the_average_of_the_side_that_built_it() -> None:
    day = Position("NFO", "FUT", "NRML", -50, 25, Decimal("590000"), 75, Decimal("1773750"))
    assert carry(day) == Position("NFO", "FUT", "NRML", -50, 0, Decimal("0"), 50, Decimal("1182500"))
    assert carry(Position("NFO", "FUT", "NRML", 0, 5, Decimal("5"), 5, Decimal("6"))) is None


def test_holdings_take_the_days_net_buy_as_t1_and_deliver_it_the_day_after() -> None:
    thursday = Position("NSE", "ITC", "CNC", 10, 10, Decimal("4108.0"))
    friday = roll_holding(None, thursday, "NSE", "ITC")
    assert friday == Holding("NSE", "ITC", 10, 10, 0, Decimal("410.8"))
    monday = roll_holding(friday, Position("NSE", "ITC", "CNC", 5, 5, Decimal("2100.5")), "NSE", "ITC")
    assert monday == Holding("NSE", "ITC", 15, 5, 10, Decimal("413.9"))
    sold = roll_holding(monday, Position("NSE", "ITC", "CNC", -12, sell_qty=12, sell_value=Decimal("5000")),
                        "NSE", "ITC")
    assert sold == Holding("NSE", "ITC", 3, 0, 3, Decimal("413.9"))
    assert roll_holding(sold, Position("NSE", "ITC", "CNC", -3, sell_qty=3, sell_value=Decimal("1")), "NSE",
                        "ITC") is None
