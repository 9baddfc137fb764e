"""What metrics cost a cycle: the same in-process cycle with ``monitoring.enabled`` off and on.

    python bench/metrics.py                 # 500 and 5,000 orders
    python bench/metrics.py --sizes 500 --json

"on" is a reconciler with its Monitor: the Prometheus registry, the histograms observed on
``cycle-finished``, the store-write hook and the order signals, the /metrics endpoint listening and
the heartbeat. Counters and gauges are read at scrape time on the server's thread, not in the
cycle; what one scrape costs is printed apart. Goal: a cycle costs under 5% more with metrics on.
Rounds alternate which of off and on goes first, so that drift of the machine (and the garbage of
the round before) hits both alike.
Prints figures; never fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import best_of, body_of, change_rows, kite_account, kite_rows, synced_reconciler

from recon_plugin.ops.monitor import Monitor
from recon_plugin.ops.settings import MonitoringSettings
from recon_plugin.runner import Reconciler

ON = MonitoringSettings(enabled=True, address="127.0.0.1:0", heartbeat_seconds=300)
OFF = MonitoringSettings(heartbeat_seconds=0)


def insync(n: int, tmp: Path, rounds: int) -> dict[str, Any]:
    r, store, _broker = synced_reconciler(tmp, kite_rows(n))
    off: list[float] = []
    on: list[float] = []
    scrape: list[float] = []
    for i in range(rounds):
        for settings in (OFF, ON) if i % 2 else (ON, OFF):
            monitor = Monitor(r, settings)
            (on if settings is ON else off).append(best_of(r.run_cycle, 5))
            if monitor.metrics is not None:
                scrape.append(best_of(monitor.metrics.exposition, 3))
            monitor.close()
    store.close()
    return row("in sync", n, off, on, scrape)


def changes(n: int, tmp: Path, rounds: int) -> dict[str, Any]:
    rows = list(kite_account(n, working=True).orders.values())
    changed = body_of(change_rows(rows, 0.10))
    off: list[float] = []
    on: list[float] = []
    hooks: list[float] = []
    for i in range(rounds):
        for settings in (OFF, ON) if i % 2 else (ON, OFF):  # each first in half the rounds
            times = on if settings is ON else off
            r, store, broker = synced_reconciler(tmp, rows)
            monitor = Monitor(r, settings)
            if monitor.metrics is not None:
                timed_hooks(r, hooks)
            broker.body = changed
            gc.collect()
            start = time.perf_counter()
            r.run_cycle()
            times.append((time.perf_counter() - start) * 1000)
            monitor.close()
            store.close()
    result = row("10% changed", n, off, on, [])
    result["hooks_ms"] = round(sum(hooks) / rounds, 2)
    result["hooks_pct"] = round(sum(hooks) / rounds / result["off_ms"] * 100, 1)
    return result


def timed_hooks(r: Reconciler, spent: list[float]) -> None:
    """Wrap the metrics' per-event and per-write hooks so that the time spent in them is counted:
    the cost metrics add to a cycle with changes, measured directly (the whole cycles' difference
    is within the noise of a shared machine)."""
    for name in ("on_published", "on_store_write"):
        hook = getattr(r, name)

        def timed(arg: Any, hook: Any = hook) -> None:
            start = time.perf_counter()
            hook(arg)
            spent.append((time.perf_counter() - start) * 1000)

        setattr(r, name, timed)


def row(book: str, n: int, off: list[float], on: list[float], scrape: list[float]) -> dict[str, Any]:
    off_ms, on_ms = statistics.median(off), statistics.median(on)
    return {"book": book, "orders": n, "off_ms": round(off_ms, 2), "on_ms": round(on_ms, 2),
            "overhead_pct": round((on_ms / off_ms - 1) * 100, 1),
            "scrape_ms": round(statistics.median(scrape), 2) if scrape else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,5000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        results = [insync(n, tmp, args.rounds) for n in sizes] + [changes(n, tmp, args.rounds) for n in sizes]
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'book':<12} {'orders':>7} {'off':>10} {'on':>10} {'more':>7} {'one scrape':>11}")
    for r in results:
        scrape = f"{r['scrape_ms']:.2f} ms" if r["scrape_ms"] is not None else "-"
        print(f"{r['book']:<12} {r['orders']:>7,} {r['off_ms']:>7.2f} ms {r['on_ms']:>7.2f} ms "
              f"{r['overhead_pct']:>6.1f}% {scrape:>11}")
    for r in results:
        if "hooks_ms" in r:
            print(f"time inside the metrics' hooks in one {r['book']} cycle of {r['orders']:,} orders: "
                  f"{r['hooks_ms']:.2f} ms ({r['hooks_pct']:.1f}% of the cycle)")
    print("goal: under 5% more with metrics on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
