"""Time to detect a fill: from the instant it happens at the (simulated) broker to the ``order-filled``
signal, with the push channel and with polling only.

    python bench/detect.py                   # the paper broker: push vs polling at 2 s, 40 orders each
    python bench/detect.py --orders 100 --json

The paper exchange's fills happen at known instants (each order's script, drawn at placement, says
at which tick it fills), so the delay of each detection is measured against the fill's own instant.
Prints p50, p99 and the maximum for each mode, and the ratio of polling's p50 to push's p99. These
are figures, never assertions: a loaded machine prints slower ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from hostspec.model import Order, OrderStatus, Side, utcnow
from recon_plugin import signals
from recon_plugin.brokers.paper import PaperExchange
from recon_plugin.plan import Settings
from recon_plugin.runner import Reconciler
from recon_plugin.stores.tinydb_store import TinyDBStore

TICK_SECONDS = 0.2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(push: bool, orders: int, interval: float) -> list[float]:
    """Place ``orders`` orders at a paper exchange, reconcile them with or without the push channel,
    and return each fill's detection delay in milliseconds."""
    with tempfile.TemporaryDirectory() as tmp:
        exchange = PaperExchange(Path(tmp) / "paper.json", seed=11, tick_seconds=TICK_SECONDS, reject_rate=0,
                                 cancel_rate=0)
        store = TinyDBStore(Path(tmp) / "state.json")
        delays: list[float] = []
        fill_at: dict[tuple[str, int], datetime] = {}
        lock = threading.Lock()

        def on_fill(sender: Any, **data: Any) -> None:
            seen = utcnow()
            with lock:
                expected = fill_at.get((data["order_id"], data["filled_qty"]))
                if expected is not None:
                    delays.append((seen - expected).total_seconds() * 1000)

        signals.order_filled.connect(on_fill)
        reconciler = Reconciler(exchange, store, Settings(interval_seconds=interval, push=push,
                                                          push_poll_seconds=60.0, missing_grace_seconds=30))
        try:
            reconciler.start()
            time.sleep(0.5)  # connected and resynced
            account_orders = exchange._account["orders"]
            for i in range(orders):
                local_id = f"D{i}"
                now = utcnow()
                store.record_order(Order(local_id, "NSE", "INFY", "CNC", Side.BUY, 10, OrderStatus.PENDING, now, now))
                broker_id = exchange.place_order(tag=local_id, exchange="NSE", symbol="INFY", product="CNC",
                                                 side=Side.BUY, quantity=10)
                store.record_order(Order(local_id, "NSE", "INFY", "CNC", Side.BUY, 10, OrderStatus.SUBMITTED, now,
                                         now, broker_order_id=broker_id, version=1))
                cumulative = 0
                for tick, action, quantity in account_orders[broker_id]["script"]:
                    if action == "fill":
                        cumulative += quantity
                        with lock:
                            fill_at[(local_id, cumulative)] = exchange.time_of(tick)
                time.sleep(TICK_SECONDS / 2)
            deadline = time.monotonic() + 30 + 3 * interval
            while time.monotonic() < deadline and len(delays) < len(fill_at):
                time.sleep(0.1)
        finally:
            reconciler.stop()
            signals.order_filled.disconnect(on_fill)
            exchange.close()
            store.close()
        return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=40, help="orders per mode (default 40)")
    parser.add_argument("--interval", type=float, default=2.0, help="the polling interval (default 2 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for mode, push in (("push", True), ("polling", False)):
        delays = run(push, args.orders, args.interval)
        results[mode] = {"fills": len(delays), "p50_ms": round(percentile(delays, 0.5), 1),
                         "p99_ms": round(percentile(delays, 0.99), 1), "max_ms": round(max(delays), 1),
                         "mean_ms": round(statistics.fmean(delays), 1)}
    results["ratio"] = {"polling_p50_over_push_p99": round(results["polling"]["p50_ms"] / results["push"]["p99_ms"], 1)}
    if args.json:
        print(json.dumps(results))
        return
    print(f"time to detect a fill (paper broker, tick {TICK_SECONDS} s, polling at {args.interval} s)")
    print(f"  {'mode':<8} {'fills':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for mode in ("push", "polling"):
        r = results[mode]
        print(f"  {mode:<8} {r['fills']:>5.0f} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}")
    print(f"  polling p50 / push p99: {results['ratio']['polling_p50_over_push_p99']}x")


if __name__ == "__main__":
    main()
