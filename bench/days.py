"""Benchmark: what a cycle's store write costs on the 30th trading day against the 1st, with the rollover
moving each past day out of the hot state (``TinyDBStore.archive_before``).

    python bench/days.py                            # 30 trading days of 5,000 orders
    python bench/days.py --orders 2000 --days 10
    python bench/days.py --quick                    # 30 days of 500 orders
    python bench/days.py --json                     # one JSON object
    python bench/days.py --quick --only archived,unarchived   # with the contrast: never archived

Each trading day, through one TinyDBStore (the same file all along):

- the order flow records N orders (PLACED, today's trading date) in bursts of N/10 per change set;
- then cycles, each settling 1% of the day's orders the way the reconciler writes them: one ChangeSet
  with the orders (6 in 10 filled, 2 cancelled with a partial fill, 1 rejected, 1 expired), their ledger
  entries, the positions they move, one journal entry and one outbox event each, and the outbox
  watermark moved past the previous cycle's events (they were published). 100 cycles settle the day;
- then the rollover: ``archive_before(next trading day)`` (unless measuring ``unarchived``).

Printed per day: the cycle writes (each ``store.apply`` timed, min and median over the day's 100), the
state file's size at the end of the day and after the rollover, and the rollover's time. The goals:
day 30's median within 1.2x of day 1's, and a state file holding today's orders only.

These print figures; they never fail on a slow machine. Each measurement runs in its own process.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hostspec.model import (
    ChangeSet,
    Event,
    JournalEntry,
    LedgerEntry,
    Order,
    OrderStatus,
    Position,
    Side,
    stable_id,
)
from recon_plugin.stores.tinydb_store import TinyDBStore

SYMBOLS = ["INFY", "TCS", "RELIANCE", "SBIN", "HDFCBANK", "ITC", "LT", "AXISBANK"]
FIRST_DAY = date(2026, 11, 2)  # a Monday
CYCLES_PER_DAY = 100  # each settles 1% of the day's orders


def trading_days(count: int) -> list[date]:
    """``count`` weekdays from FIRST_DAY, and the one after (the last rollover's)."""
    days: list[date] = []
    day = FIRST_DAY
    while len(days) <= count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def session_time(day: date, seconds: float) -> datetime:
    return datetime(day.year, day.month, day.day, 3, 45, tzinfo=UTC) + timedelta(seconds=seconds)  # 09:15 IST on


def record_day(store: TinyDBStore, n: int, number: int, day: date) -> None:
    """The order flow: ``n`` orders of ``day``, working at the exchange, recorded in 10 bursts."""
    at = session_time(day, 0)
    orders = [Order(f"D{number:02d}-{i:05d}", "NSE", SYMBOLS[i % len(SYMBOLS)], "CNC",
                    Side.BUY if i % 3 else Side.SELL, 10 + i % 40, OrderStatus.PLACED, at, at,
                    price=Decimal("1500.50"), broker_order_id=f"K{day:%y%m%d}{i:06d}", trading_date=day)
              for i in range(n)]
    burst = max(1, n // 10)
    for start in range(0, n, burst):
        store.apply(ChangeSet(orders=orders[start:start + burst]))


def settle(order: Order, kind: int, at: datetime) -> tuple[Order, int, Decimal]:
    """``order`` moved on by the broker: (the order as the reconciler writes it, quantity and value filled)."""
    if kind < 6:
        qty, status = order.quantity, OrderStatus.FILLED
    elif kind < 8:
        qty, status = order.quantity // 3, OrderStatus.CANCELLED
    elif kind < 9:
        qty, status = 0, OrderStatus.REJECTED
    else:
        qty, status = order.quantity // 2, OrderStatus.EXPIRED
    value = Decimal("1501.05") * qty
    avg = Decimal("1501.05") if qty else None
    return replace(order, status=status, filled_qty=qty, avg_price=avg, updated_at=at,
                   broker_status=status.value), qty, value


def cycle(batch: list[Order], positions: dict[str, Position], at: datetime, events_before: int) -> ChangeSet:
    """One cycle's change set, as the reconciler builds it, settling ``batch``."""
    changes = ChangeSet(events_sent_upto=events_before)
    for i, order in enumerate(batch):
        settled, qty, value = settle(order, (i * 7) % 10, at)
        changes.orders.append(settled)
        if qty:
            changes.ledger.append(LedgerEntry(order.order_id, qty, value))
            positions[order.symbol] = positions[order.symbol].with_fill(order.side, qty, value)
        rule = {OrderStatus.FILLED: "fill", OrderStatus.CANCELLED: "cancel", OrderStatus.REJECTED: "reject",
                OrderStatus.EXPIRED: "day-expiry"}[settled.status]
        changes.journal.append(JournalEntry(stable_id("j", order.order_id, settled.status), at, rule,
                                            f"{order.status.value} -> {settled.status.value}", order.order_id,
                                            order.symbol, {"status": order.status.value, "filled_qty": 0},
                                            {"status": settled.status.value, "filled_qty": qty,
                                             "avg_price": str(settled.avg_price)}))
        changes.events.append(Event(stable_id("e", order.order_id, settled.status), f"order-{rule}", at,
                                    {"filled_qty": qty, "value": str(value)}, order.order_id, order.symbol))
    changes.positions = [positions[s] for s in sorted({o.symbol for o in batch})]
    return changes


def timed_write(store: TinyDBStore, changes: ChangeSet) -> float:
    """One ``store.apply`` in milliseconds, after a collection (as bench/run.py times)."""
    gc.collect()
    start = time.perf_counter()
    store.apply(changes)
    return (time.perf_counter() - start) * 1000


def run_days(n: int, count: int, archive: bool, directory: Path) -> dict[str, Any]:
    path = directory / "state.json"
    store = TinyDBStore(path)
    positions = {s: Position("NSE", s, "CNC") for s in SYMBOLS}
    events = 0
    rows = []
    days = trading_days(count)
    per_cycle = max(1, n // CYCLES_PER_DAY)
    for number, day in enumerate(days[:count], 1):
        record_day(store, n, number, day)
        ids = sorted(o for o in store.load().orders if o.startswith(f"D{number:02d}-"))
        times = []
        for c, start in enumerate(range(0, n, per_cycle)):
            state = store.load()  # the reconciler reads the (cached) state every cycle
            batch = [state.orders[i] for i in ids[start:start + per_cycle]]
            changes = cycle(batch, positions, session_time(day, 2 * (c + 1)), events)
            times.append(timed_write(store, changes))
            events += len(changes.events)
        held = len(store.load().orders)
        size_end = path.stat().st_size
        archive_ms = None
        if archive:
            start_t = time.perf_counter()
            store.archive_before(days[number])
            archive_ms = round((time.perf_counter() - start_t) * 1000, 1)
        rows.append({"day": number, "date": day.isoformat(), "orders_held": held,
                     "write_min_ms": round(min(times), 2), "write_median_ms": round(statistics.median(times), 2),
                     "state_mb_end_of_day": round(size_end / 1e6, 3),
                     "state_kb_after_rollover": round(path.stat().st_size / 1e3, 1), "rollover_ms": archive_ms})
        print(f"  day {number:>2} {day}: median write {rows[-1]['write_median_ms']} ms, "
              f"state {rows[-1]['state_mb_end_of_day']} MB", file=sys.stderr, flush=True)
    archive_mb = sum(p.stat().st_size for p in store.days.directory.glob("*")) / 1e6 if archive else 0.0
    store.close()
    first, last = rows[0], rows[-1]
    return {"orders_per_day": n, "days": count, "cycles_per_day": len(times), "orders_per_cycle": per_cycle,
            "by_day": rows,
            "day1_median_ms": first["write_median_ms"], "last_day_median_ms": last["write_median_ms"],
            "ratio_median": round(last["write_median_ms"] / first["write_median_ms"], 2),
            "day1_min_ms": first["write_min_ms"], "last_day_min_ms": last["write_min_ms"],
            "ratio_min": round(last["write_min_ms"] / first["write_min_ms"], 2),
            "state_mb_day1": first["state_mb_end_of_day"], "state_mb_last_day": last["state_mb_end_of_day"],
            "archive_mb": round(archive_mb, 1)}


# -- output ------------------------------------------------------------------------------------------

def print_result(name: str, result: dict[str, Any]) -> None:
    print(f"\n{name}: {result['days']} trading days of {result['orders_per_day']} orders, "
          f"{result['cycles_per_day']} cycle writes a day ({result['orders_per_cycle']} orders settled each)")
    rows = result["by_day"]
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  " + "  ".join(c.rjust(widths[c]) for c in columns))
    for r in rows:
        print("  " + "  ".join(str(r[c]).rjust(widths[c]) for c in columns))
    last = result["days"]
    print(f"  cycle write, median: day 1 {result['day1_median_ms']} ms, day {last} {result['last_day_median_ms']} ms "
          f"-> {result['ratio_median']}x (goal <= 1.2x)")
    print(f"  cycle write, min:    day 1 {result['day1_min_ms']} ms, day {last} {result['last_day_min_ms']} ms "
          f"-> {result['ratio_min']}x")
    print(f"  state file at the end of the day: day 1 {result['state_mb_day1']} MB, day {last} "
          f"{result['state_mb_last_day']} MB; archive {result['archive_mb']} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=None, help="orders per trading day (default 5,000)")
    parser.add_argument("--days", type=int, default=30, help="trading days (default 30)")
    parser.add_argument("--quick", action="store_true", help="a small run: 500 orders a day")
    parser.add_argument("--only", default="archived",
                        help="archived (the rollover archives each day), unarchived (the contrast: it never "
                             "does; slow at 5,000 orders), or both, comma-separated")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    n = args.orders if args.orders is not None else (500 if args.quick else 5000)
    if n < 1 or args.days < 1:
        parser.error("--orders and --days must be positive")
    only = [name for name in args.only.split(",") if name]
    out: dict[str, Any] = {"machine": {"python": sys.version.split()[0], "cpus": os.cpu_count()}}
    if len(only) > 1:  # each measurement in a fresh process: one's heap must not slow the next
        for name in only:
            print(f"[{name}] running...", file=sys.stderr, flush=True)
            child = subprocess.run([sys.executable, __file__, "--json", "--only", name, "--orders", str(n),
                                    "--days", str(args.days)], stdout=subprocess.PIPE, text=True, check=True)
            out[name] = json.loads(child.stdout)[name]
    else:
        with tempfile.TemporaryDirectory() as directory:
            for name in only:
                out[name] = run_days(n, args.days, name == "archived", Path(directory))
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    for name in ("archived", "unarchived"):
        if name in out:
            print_result(name, out[name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
