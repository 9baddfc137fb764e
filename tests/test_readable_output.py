"""What a person reads: ``recon status``, ``recon report``, ``recon check`` and the end of ``tradehost run``.

The demo's book (the README's demo, run faster: same seeds, same scenarios, two LOST orders) is made
once for the module; a hand-built book gives exact snapshots. Every line fits 120 columns, prices are
at the instrument's tick precision, times in the exchange's zone, and the LOST orders come first.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from hostspec.model import ChangeSet, JournalEntry, Order, OrderStatus, Position, Side
from tests.helpers import at, demo_config, paper_config, seed_store, tradehost

S = OrderStatus
PRICE = re.compile(r"(?:avg|for|@) (\d+\.\d+)")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    directory = tmp_path_factory.mktemp("demo")
    config = demo_config(directory)
    run = tradehost("run", "--config", str(config), "--duration", "18", cwd=directory, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return config, run


def fits(text: str) -> None:
    wide = [line for line in text.splitlines() if len(line) > 120]
    assert wide == []


def at_tick(text: str, decimals: int = 2) -> None:
    prices = PRICE.findall(text)
    assert prices and all(len(p.split(".")[1]) == decimals for p in prices), prices


def section(lines: list[str], heading: str) -> list[str]:
    """The indented lines under the line starting with ``heading``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    rest = lines[start + 1:]
    return rest[: next((i for i, line in enumerate(rest) if not line.startswith("  ")), len(rest))]


# -- the demo's book -----------------------------------------------------------------------------------

def test_the_end_of_a_run_shows_the_book_lost_orders_first(demo):
    _config, run = demo
    out = run.stdout
    fits(out)
    lines = out.splitlines()
    tail = lines[next(i for i, line in enumerate(lines) if line.startswith("summary: ")):]
    assert "book: NOT in sync: 2 orders need attention (2 LOST)" in tail
    attention = section(tail, "needs attention (2):")
    assert [line.split()[0] for line in attention] == ["D-0003", "D-0011"]
    assert all("LOST" in line and " IST)" in line for line in attention)
    assert tail.index("needs attention (2):") < tail.index("open orders (0): none") < tail.index("positions (3):")
    positions = section(tail, "positions (3):")
    assert [line.split()[0] for line in positions] == ["NSE:INFY:CNC", "NSE:SBIN:CNC", "NSE:TCS:CNC"]
    at_tick("\n".join(positions))
    assert re.search(r"^\d\d:\d\d:\d\d IST  order-filled +D-0001 SBIN SELL \+\d+ @ \d+\.\d\d ", out, re.M)
    # stderr counts this run, as the summary does (a store's total is recon status's)
    assert "reconciler stopped; this run: " in run.stderr


def test_status_leads_with_the_lost_orders_then_open_orders_and_positions(demo):
    config, _run = demo
    result = tradehost("recon", "status", "--config", str(config))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    fits(out)
    lines = out.splitlines()
    assert lines[0].startswith("book: NOT in sync: 2 things need attention, 2 LOST; 12 orders, 3 positions; ")
    assert lines[1] == "needs attention (2):"
    assert [line.split()[:2] for line in section(lines, "needs attention")] == [["D-0003", "SBIN"], ["D-0011", "SBIN"]]
    assert lines.index("open orders (0): none") < lines.index("positions (3):")
    at_tick("\n".join(section(lines, "positions (3):")))
    rest = r"not shown: 10 other orders \((\d+ [A-Z]+(, )?)+\); --all lists them"
    assert any(re.fullmatch(rest, line) for line in lines)

    every = tradehost("recon", "status", "--config", str(config), "--all", "--symbol", "tcs").stdout
    fits(every)
    others = section(every.splitlines(), "other orders (")
    assert {line.split()[1] for line in others} == {"TCS"}
    at_tick("\n".join(others))
    assert all(" IST" in line for line in others)
    lost = json.loads(tradehost("recon", "status", "--config", str(config), "--json", "--status", "lost").stdout)
    assert [o["order_id"] for o in lost["orders"]] == ["D-0003", "D-0011"]
    assert [a["order_id"] for a in lost["needs_attention"]] == ["D-0003", "D-0011"]


def test_report_leads_with_a_summary_and_gives_one_line_per_entry_with_its_symbol(demo):
    config, _run = demo
    out = tradehost("recon", "report", "--config", str(config)).stdout
    fits(out)
    lines = out.splitlines()
    assert re.fullmatch(r"journal \d\d:\d\d:\d\d IST to \d\d:\d\d:\d\d IST: \d+ entries \(2 error, \d+ warning, "
                        r"\d+ info\); times IST", lines[0])
    assert re.fullmatch(r"  error    lost +2: D-0003 SBIN, D-0011 SBIN", lines[1])
    entries = lines[next(i for i, line in enumerate(lines) if line.startswith("entries (")) + 1:]
    assert len(entries) == int(lines[0].split(": ")[1].split()[0])
    assert all(len(line.split()) >= 6 and line.split()[4] in {"SBIN", "TCS", "INFY", "RELIANCE"} for line in entries)
    at_tick("\n".join(line for line in entries if " @ " in line))
    keyed = [" ".join(line.split()[1:]) for line in entries]
    assert len(keyed) == len(set(keyed)) or all("miss" in k or "applied" in k for k in keyed
                                                if keyed.count(k) > 1)
    confirmed = [line for line in entries if "submit-confirmed" in line]
    assert len(confirmed) == len({line.split()[3] for line in confirmed})  # one entry per confirmed order

    lost = tradehost("recon", "report", "--config", str(config), "--severity", "error").stdout.splitlines()
    assert [line.split()[3] for line in lost[lost.index(next(x for x in lost if x.startswith("entries"))) + 1:]] == [
        "D-0003", "D-0011"]
    last = tradehost("recon", "report", "--config", str(config), "--rule", "missing,lost", "--order", "D-0011",
                     "--limit", "1").stdout.splitlines()
    assert last[0].startswith("journal ") and "3 entries (1 error, 2 warning)" in last[0]
    assert last[-2].startswith("entries (1 of 3") and last[-1].split()[2:5] == ["lost", "D-0011", "SBIN"]
    tcs = tradehost("recon", "report", "--config", str(config), "--symbol", "TCS", "--json").stdout
    assert {e["symbol"] for e in json.loads(tcs)} == {"TCS"}
    bad = tradehost("recon", "report", "--config", str(config), "--rule", "nosuch")
    assert bad.returncode == 2 and "unknown rule nosuch" in bad.stderr


# -- a hand-built book: exact -----------------------------------------------------------------------------

def handmade_book() -> ChangeSet:
    def o(oid: str, symbol: str, side: Side, qty: int, status: OrderStatus, minute: int, **kw: object) -> Order:
        return Order(order_id=oid, exchange=str(kw.pop("exchange", "NSE")), symbol=symbol,
                     product=str(kw.pop("product", "CNC")), side=side, quantity=qty, status=status,
                     created_at=at(60 * minute), updated_at=at(60 * minute + 60), **kw)  # type: ignore[arg-type]

    orders = [o("A-1", "SBIN", Side.BUY, 10, S.LOST, 0, missing_count=3),
              o("A-2", "USDINR", Side.BUY, 5, S.PLACED, 2, exchange="CDS", product="NRML", broker_order_id="B-2"),
              o("A-3", "INFY", Side.SELL, 30, S.FILLED, 3, broker_order_id="B-3", filled_qty=30,
                avg_price=Decimal("831.7216666666666666666666667")),
              o("A-4", "TCS", Side.BUY, 45, S.PARTIAL, 4, broker_order_id="B-4", filled_qty=16,
                avg_price=Decimal("2707.803333333333333333333333"), open_discrepancy="unknown-status:WEIRD:16")]
    positions = [Position("NSE", "INFY", "CNC", -30, 0, Decimal(0), 30, Decimal("24951.65")),
                 Position("CDS", "USDINR", "NRML", 5, 5, Decimal("417.12625"), 0, Decimal(0)),
                 Position("NSE", "TCS", "CNC", 16, 16, Decimal("43324.853333333333333333333328"), 0, Decimal(0))]
    journal = [JournalEntry("j1", at(120), "lost", "PENDING -> LOST: never acknowledged", "A-1", "SBIN"),
               JournalEntry("j2", at(200), "partial-fill", "applied 16 @ 2707.8033", "A-4", "TCS"),
               JournalEntry("j3", at(210), "unknown-status", "broker status 'WEIRD' is not mapped; status kept",
                            "A-4", "TCS")]
    return ChangeSet(orders=orders, positions=positions, journal=journal,
                     checkpoint={"last_snapshot_at": at(300).isoformat()})


HANDMADE_STATUS = """\
book: NOT in sync: 2 things need attention, 1 LOST; 4 orders, 3 positions; broker last read 2026-01-02 14:50:00 IST
needs attention (2):
  A-1              SBIN       BUY       10  LOST: the broker does not know it (since 2026-01-02 14:46:00 IST)
  A-4              TCS        BUY       45  open unknown-status (broker says 'WEIRD') (since 2026-01-02 14:50:00 IST)
open orders (1):
  A-2              USDINR     BUY        5 PLACED          0 filled                   placed 2026-01-02 14:47:00 IST
positions (3):
  CDS:USDINR:NRML                    +5  avg 83.4252      bought 5 for 417.1262, sold 0 for 0.0000
  NSE:INFY:CNC                      -30  avg 831.72       bought 0 for 0.00, sold 30 for 24951.65
  NSE:TCS:CNC                       +16  avg 2707.80      bought 16 for 43324.85, sold 0 for 0.00
not shown: 1 other order (1 FILLED); --all lists them
statistics (since this store began): none yet
"""

HANDMADE_REPORT = """\
journal 2026-01-02 14:47:00 IST to 2026-01-02 14:48:30 IST: 3 entries (1 error, 1 warning, 1 info); times IST
  error    lost                        1: A-1 SBIN
  warning  unknown-status              1
  info     partial-fill                1
entries (oldest first; --json for both sides' evidence):
2026-01-02 14:47:00  error   lost              A-1            SBIN       PENDING -> LOST: never acknowledged
2026-01-02 14:48:20  info    partial-fill      A-4            TCS        applied 16 @ 2707.80
2026-01-02 14:48:30  warning unknown-status    A-4            TCS        broker status 'WEIRD' is not mapped; status ke…
"""


def test_status_and_report_of_a_handmade_book_exactly(tmp_path):
    config = paper_config(tmp_path, tmp_path / "state.json")
    seed_store(config, handmade_book())
    status = tradehost("recon", "status", "--config", str(config))
    assert status.stdout == HANDMADE_STATUS, status.stdout
    report = tradehost("recon", "report", "--config", str(config))
    assert report.stdout == HANDMADE_REPORT, report.stdout


# -- recon check ---------------------------------------------------------------------------------------------

def test_check_says_what_a_cycle_would_do_in_sentences_and_exits_by_what_it_says(tmp_path):
    """An order of a past trading day, open locally and absent from today's book: no rule fires yet,
    but a cycle would record its day and ask the broker for it, so it is a difference (exit 1), said so."""
    config = paper_config(tmp_path, tmp_path / "state.json")
    old = Order(order_id="OLD-1", exchange="NSE", symbol="INFY", product="CNC", side=Side.BUY, quantity=5,
                status=S.PLACED, created_at=at(0), updated_at=at(0), broker_order_id="P-GONE")
    seed_store(config, ChangeSet(orders=[old]))
    result = tradehost("recon", "check", "--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "recon check: 1 order of an ended trading day (2026-01-02) still open locally; the next cycles ask the broker "
        "for it,",
        "  then settle or expire it (dry run: nothing was changed):",
        "  OLD-1 INFY BUY 5 (PLACED)"]
    assert "0 differences" not in result.stdout and "would " not in result.stdout


# -- a closed pipe -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["recon status --json", "recon report --json", "recon status --all"])
def test_a_reader_that_closes_the_pipe_ends_the_command_with_status_0(tmp_path, command):
    """Through a real shell pipe, several times: the output is far larger than the pipe's buffer, so the
    writer always meets the closed pipe."""
    config = paper_config(tmp_path, tmp_path / "state.json")
    orders = [Order(order_id=f"P-{i:05d}", exchange="NSE", symbol="INFY", product="CNC", side=Side.BUY, quantity=1,
                    status=S.FILLED, created_at=at(i), updated_at=at(i), broker_order_id=f"B-{i}", filled_qty=1,
                    avg_price=Decimal("100.05")) for i in range(3000)]
    journal = [JournalEntry(f"j{i}", at(i), "fill", "applied 1 @ 100.05", f"P-{i:05d}", "INFY") for i in range(3000)]
    seed_store(config, ChangeSet(orders=orders, journal=journal))
    line = f"set -o pipefail; {sys.executable} -m hostspec.cli {command} --config {config} | head -1"
    for _ in range(4):
        result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
        assert len(result.stdout.splitlines()) == 1


def test_a_run_whose_reader_closes_the_pipe_runs_to_its_end_quietly(tmp_path):
    config = demo_config(tmp_path)
    line = f"set -o pipefail; {sys.executable} -m hostspec.cli run --config {config} --duration 4 | head -1"
    result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr and "raised" not in result.stderr
    assert "reconciler stopped" in result.stderr  # it ran to its end
