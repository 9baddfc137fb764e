"""Benchmarks: what a reconciliation cycle costs, against the unavoidable work of reading the broker.

    python bench/run.py                    # everything, a table per measurement
    python bench/run.py --json             # one JSON object
    python bench/run.py --only insync,e2e --sizes 500,5000

Measurements (see README "Measured"):
  insync   one in-process cycle with nothing changed vs json.loads of the same Kite /orders body
  changes  one in-process cycle with 1%, 10%, 100% of orders changed: time and durable writes
  e2e      one full live cycle over loopback (kiteconnect client, simulator, reconcile, write)
           vs the stock kite.orders() call alone on the same book
  growth   cycle time from 5,000 to 50,000 orders; store write cost with a 100,000-entry journal
  footprint  reconciler threads' CPU share at the live interval (2 s) on a 5,000-order book in sync,
             and resident memory over 10,000 cycles

These print figures; they never fail on a slow machine.
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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hostspec.model import ChangeSet, JournalEntry, Mode, utcnow
from recon_plugin.brokers.kite.broker import KiteBroker, gc_paused, read_book
from recon_plugin.brokers.kite.statuses import OrderParser
from recon_plugin.plan import Settings
from recon_plugin.runner import Reconciler
from recon_plugin.stores.tinydb_store import TinyDBStore
from recon_plugin.testing.kite_simulator import KiteSimulator

SYMBOLS = ["INFY", "TCS", "RELIANCE", "SBIN", "HDFCBANK", "ITC", "LT", "AXISBANK"]


# -- building books ----------------------------------------------------------------------------------

def kite_rows(n: int) -> list[dict[str, Any]]:
    """``n`` orders as Kite's /orders sends them: 60% COMPLETE, 20% OPEN partly filled, 20% OPEN."""
    return list(kite_account(n).orders.values())


def kite_account(n: int, working: bool = False, **kwargs: Any) -> KiteSimulator:
    """A simulated Kite account holding the book of ``kite_rows`` (or, ``working``, only OPEN orders,
    half of them partly filled), with its trades and positions."""
    sim = KiteSimulator(**{"rate_limits": False, **kwargs})  # these measure throughput: no 429 from the simulator
    for i in range(n):
        if working:
            oid = sim.add_order(symbol=SYMBOLS[i % len(SYMBOLS)], side="BUY" if i % 3 else "SELL",
                                quantity=20 + i % 40, price=1500.5)
            sim.fill(oid, 3, 1499.95) if i % 2 else sim.set_status(oid, "OPEN")
            continue
        oid = sim.add_order(symbol=SYMBOLS[i % len(SYMBOLS)], side="BUY" if i % 3 else "SELL",
                            quantity=10 + i % 40, tag=None, price=1500.5)
        kind = i % 5
        if kind < 3:
            sim.fill(oid, 10 + i % 40, 1500.0 + (i % 7) * 0.05)
        elif kind == 3:
            sim.fill(oid, 3, 1499.95)
        else:
            sim.set_status(oid, "OPEN")
    return sim


def body_of(rows: list[dict[str, Any]]) -> bytes:
    return json.dumps({"status": "success", "data": rows}).encode()


class WireBroker:
    """An in-process broker that reads a Kite /orders body exactly as the Kite broker does after the
    HTTP response arrived: json.loads of the body, then the Kite broker's own parsing."""

    name = "wire"

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.parser = OrderParser()

    def fetch_orders(self):
        return read_book("bench", lambda: json.loads(self.body)["data"], self.parser)

    def fetch_positions(self):
        return []

    def order_history(self, broker_order_id: str):
        return []

    def close(self) -> None:
        pass


def synced_reconciler(directory: Path, rows: list[dict[str, Any]],
                      mode: Mode = Mode.PAPER) -> tuple[Reconciler, TinyDBStore, WireBroker]:
    store = TinyDBStore(directory / f"state-{len(rows)}-{time.monotonic_ns()}.json")
    broker = WireBroker(body_of(rows))
    r = Reconciler(broker, store, Settings(mode=mode, missing_grace_seconds=10, interval_seconds=2.0))
    first = r.run_cycle()  # adopts the book: local state now agrees with it
    assert first.error is None, first.error
    assert r.run_cycle().writes == 0
    return r, store, broker


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def repeats(n: int) -> int:
    return 15 if n <= 5000 else 5


# -- the measurements --------------------------------------------------------------------------------

def bench_insync(sizes: list[int], tmp: Path) -> list[dict[str, Any]]:
    results = []
    for n in sizes:
        rows = kite_rows(n)
        r, store, broker = synced_reconciler(tmp, rows)
        body = broker.body
        def strict(body: bytes = body) -> None:
            with gc_paused():  # json.loads at its fastest, without the collector
                json.loads(body)

        loads_ms = best_of(lambda body=body: json.loads(body), repeats(n))
        strict_ms = best_of(strict, repeats(n))
        cycle_ms = best_of(r.run_cycle, repeats(n))
        writes = store.writes
        r.run_cycle()
        results.append({"orders": n, "json_loads_ms": round(loads_ms, 2), "cycle_ms": round(cycle_ms, 2),
                        "ratio": round(cycle_ms / loads_ms, 2), "loads_no_gc_ms": round(strict_ms, 2),
                        "ratio_no_gc": round(cycle_ms / strict_ms, 2), "writes_in_sync": store.writes - writes,
                        "body_mb": round(len(body) / 1e6, 2)})
        store.close()
    return results


def change_rows(rows: list[dict[str, Any]], share: float) -> list[dict[str, Any]]:
    """A copy of a working book with ``share`` of its orders moved on: a third fill completely, a
    third fill partly, a third are cancelled (keeping what filled)."""
    changed = [dict(r) for r in rows]
    step = max(1, round(1 / share))
    for n, i in enumerate(range(0, len(changed), step)):
        row = changed[i]
        filled, value = row["filled_quantity"], row["average_price"] * row["filled_quantity"]
        if n % 3 == 2:
            row["status"] = "CANCELLED"
            continue
        more = row["quantity"] - filled if n % 3 == 0 else 1
        row["filled_quantity"] = filled + more
        row["average_price"] = (value + more * 1501.05) / row["filled_quantity"]
        row["status"] = "COMPLETE" if row["filled_quantity"] == row["quantity"] else "OPEN"
        row["exchange_update_timestamp"] = "2026-01-02 10:00:00"
    return changed


def bench_changes(sizes: list[int], tmp: Path) -> list[dict[str, Any]]:
    results = []
    for n in sizes:
        rows = list(kite_account(n, working=True).orders.values())
        for share in (0.01, 0.10, 1.0):
            r, store, broker = synced_reconciler(tmp, rows)
            broker.body = body_of(change_rows(rows, share))
            writes = store.writes
            start = time.perf_counter()
            report = r.run_cycle()
            ms = (time.perf_counter() - start) * 1000
            results.append({"orders": n, "changed": f"{share:.0%}", "decisions": len(report.decisions),
                            "cycle_ms": round(ms, 2), "durable_writes": store.writes - writes,
                            "next_cycle_writes": r.run_cycle().writes})
            store.close()
    return results


def bench_e2e(sizes: list[int], tmp: Path) -> list[dict[str, Any]]:
    from kiteconnect import KiteConnect

    results = []
    for n in sizes:
        sim = kite_account(n, api_key="bench_key", access_token="bench_token")
        url = sim.start()
        stock = KiteConnect(api_key="bench_key", access_token="bench_token", root=url, timeout=30)
        broker = KiteBroker("bench_key", "bench_token", url, timeout=30)
        store = TinyDBStore(tmp / f"e2e-{n}.json")
        r = Reconciler(broker, store, Settings(mode=Mode.LIVE, missing_grace_seconds=10, interval_seconds=2.0))
        assert r.run_cycle().error is None
        stock_ms = best_of(stock.orders, max(3, repeats(n) // 2))
        ours_ms = best_of(r.run_cycle, max(3, repeats(n) // 2))
        results.append({"orders": n, "stock_orders_ms": round(stock_ms, 1), "our_cycle_ms": round(ours_ms, 1),
                        "ratio": round(ours_ms / stock_ms, 2), "requests_per_cycle": 2})
        broker.close()
        store.close()
        sim.stop()
    return results


def bench_growth(tmp: Path) -> dict[str, Any]:
    sizes = {}
    for n in (5000, 50000):
        r, store, _ = synced_reconciler(tmp, kite_rows(n))
        sizes[n] = best_of(r.run_cycle, repeats(n))
        store.close()
    store = TinyDBStore(tmp / "journal.json")
    entry = {"rule": "fill", "action": "applied 1 @ 100", "local": {"status": "PLACED"}, "broker": {"status": "OPEN"}}
    write_ms = {}
    written = 0
    for target in (0, 10_000, 100_000):
        while written < target:
            batch = min(5000, target - written)
            store.apply(ChangeSet(journal=[JournalEntry(f"j{written + i}", utcnow(), **entry)
                                           for i in range(batch)]))
            written += batch
        one = [JournalEntry("x", utcnow(), **entry)]
        write_ms[target] = best_of(lambda one=one: store.apply(ChangeSet(journal=one)), 7)
        written += 8
    store.close()
    return {"cycle_ms_5000": round(sizes[5000], 2), "cycle_ms_50000": round(sizes[50000], 2),
            "growth_ratio": round(sizes[50000] / sizes[5000], 2),
            "write_ms_by_journal_length": {str(k): round(v, 2) for k, v in write_ms.items()}}


def thread_cpu_seconds(names: tuple[str, ...]) -> float:
    """CPU time (user + system) of this process's threads whose names start with ``names``."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for thread in threading.enumerate():
        if thread.native_id and thread.name.startswith(names):
            fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_footprint(tmp: Path, seconds: float, cycles: int) -> dict[str, Any]:
    sim = kite_account(5000, api_key="bench_key", access_token="bench_token")
    url = sim.start()
    broker = KiteBroker("bench_key", "bench_token", url, timeout=30)
    store = TinyDBStore(tmp / "footprint.json")
    r = Reconciler(broker, store, Settings(mode=Mode.LIVE, missing_grace_seconds=10, interval_seconds=2.0))
    r.run_cycle()
    r.start()
    before, wall = thread_cpu_seconds(("recon-",)), time.monotonic()
    time.sleep(seconds)
    cpu = thread_cpu_seconds(("recon-",)) - before
    elapsed = time.monotonic() - wall
    r.stop()
    broker.close()
    store.close()
    sim.stop()

    r2, store2, _ = synced_reconciler(tmp, kite_rows(500))
    samples = {}
    for i in range(1, cycles + 1):
        r2.run_cycle()
        if i in (100, 1000, cycles // 2, cycles):
            gc.collect()
            samples[i] = round(rss_mb(), 1)
    store2.close()
    return {"live_interval_s": 2.0, "orders": 5000, "measured_s": round(elapsed, 1),
            "recon_threads_cpu_s": round(cpu, 2), "cpu_share_pct": round(100 * cpu / elapsed, 2),
            "rss_mb_by_cycle_500_orders": {str(k): v for k, v in samples.items()}}


# -- output ------------------------------------------------------------------------------------------

def table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  " + "  ".join(c.rjust(widths[c]) for c in columns))
    for r in rows:
        print("  " + "  ".join(str(r[c]).rjust(widths[c]) for c in columns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--sizes", default="500,5000,50000", help="order-book sizes (default 500,5000,50000)")
    parser.add_argument("--only", default="insync,changes,e2e,growth,footprint", help="which measurements")
    parser.add_argument("--footprint-seconds", type=float, default=30.0, help="how long to watch CPU share")
    parser.add_argument("--memory-cycles", type=int, default=10_000, help="cycles for the memory measurement")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # decisions are logged at WARNING; not what is measured
    sizes = [int(s) for s in args.sizes.split(",")]
    only = [name for name in args.only.split(",") if name]
    out: dict[str, Any] = {"machine": {"python": sys.version.split()[0], "cpus": os.cpu_count()}}
    if len(only) > 1:  # each measurement in a fresh process: one's heap must not slow the next
        for name in only:
            print(f"[{name}] running...", file=sys.stderr, flush=True)
            child = subprocess.run([sys.executable, __file__, "--json", "--only", name, "--sizes", args.sizes,
                                    "--footprint-seconds", str(args.footprint_seconds),
                                    "--memory-cycles", str(args.memory_cycles)],
                                   capture_output=True, text=True, check=True)
            out[name] = json.loads(child.stdout)[name]
        return report(out, args.json)
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        steps = [("insync", lambda: bench_insync(sizes, tmp)),
                 ("changes", lambda: bench_changes(sizes, tmp)),
                 ("e2e", lambda: bench_e2e([s for s in sizes if s <= 5000], tmp)),
                 ("growth", lambda: bench_growth(tmp)),
                 ("footprint", lambda: bench_footprint(tmp, args.footprint_seconds, args.memory_cycles))]
        for name, step in steps:
            if name in only:
                out[name] = step()
    return report(out, args.json)


def report(out: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(out, indent=1))
        return 0
    for name in ("insync", "changes", "e2e"):
        if name in out:
            table(name, out[name])
    for name in ("growth", "footprint"):
        if name in out:
            print(f"\n{name}")
            for key, value in out[name].items():
                print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
