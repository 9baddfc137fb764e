"""One display convention: money at the instrument's tick precision, the exchange's time, 120 columns;
and ``recon check`` in sentences."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from hostspec.display import clock_time, date_time, money, wrap
from hostspec.model import Mode, OrderStatus, Position
from recon_plugin.commands import check_lines
from recon_plugin.engine import plan_cycle
from recon_plugin.plan import Snapshot
from recon_plugin.settings import Settings
from tests.helpers import at, broker, order, state

IST = ZoneInfo("Asia/Kolkata")


def test_money_is_shown_at_the_exchanges_tick_precision_rounded_half_even():
    assert money(Decimal("2707.803333333333333333333333"), "NSE") == "2707.80"
    assert money(Decimal("104700.050000000005"), "BSE") == "104700.05"
    assert money(Decimal("308"), "NSE") == "308.00"
    assert money(Decimal("83.42525"), "CDS") == "83.4252"  # half-even
    assert money(Decimal("83.42535"), "CDS") == "83.4254"
    assert money(Decimal("1.005"), "NFO") == "1.00" and money(Decimal("1.015"), "NFO") == "1.02"
    assert money(Decimal("12.3"), "XYZ") == "12.30" and money(None, "NSE") == "-"


def test_times_are_the_exchanges_with_the_zone_named():
    when = datetime(2026, 11, 25, 15, 7, 14, 123456, tzinfo=UTC)
    assert clock_time(when, IST) == "20:37:14 IST"
    assert date_time(when, IST, today=date(2026, 11, 25)) == "20:37:14 IST"
    assert date_time(when, IST, today=date(2026, 11, 26)) == "2026-11-25 20:37:14 IST"


def test_a_list_wraps_at_120_columns_without_splitting_an_item():
    lines = wrap("decisions by rule: ", [f"rule-number-{i} {i}" for i in range(20)], indent=4)
    assert len(lines) > 1 and all(len(line) <= 120 for line in lines)
    assert all(line.endswith(",") for line in lines[:-1]) and all(line.startswith("    ") for line in lines[1:])
    items = ", ".join(line.strip().rstrip(",") for line in lines).removeprefix("decisions by rule: ").split(", ")
    assert items == [f"rule-number-{i} {i}" for i in range(20)]


def test_recon_check_says_each_difference_in_a_sentence_with_prices_at_tick():
    fill = plan_cycle(state(order(status=OrderStatus.PLACED)), Snapshot([broker(OrderStatus.FILLED, 10, "100.5")],
                                                                          at(60)), Settings())
    assert check_lines(fill, [], {"A": "NSE"}) == [
        "recon check: 1 difference; a cycle would resolve it as follows (dry run: nothing was changed):",
        "  A [fill]: filled at the broker; applied 10 @ 100.50"]
    key = ("NSE", "INFY", "CNC")
    drift = plan_cycle(state(positions={key: Position(*key, 10)}), Snapshot([], at(60), [Position(*key, 8)]),
                       Settings(mode=Mode.LIVE))
    assert check_lines(drift, [], {})[1:] == [
        "  NSE:INFY:CNC [position-mismatch]: local and broker positions differ; watched; rebuilt from the broker's "
        "if it persists"]
