"""Time to detect a fill: from the instant it happens at the (simulated) broker to the ``order-filled``
signal, with the push channel and with polling only.

    python bench/detect.py                   # the Kite simulator and the paper broker: push vs polling at 2 s
    python bench/detect.py --broker kite --orders 100 --json

Kite: the real Kite broker (``PushingKiteBroker``: the WebSocket client on the reconciler's loop)
against the Kite simulator over loopback; each fill is made by the simulator's hand at a known
instant. Also: the REST requests a quiet session (nothing filling) makes in a minute, with push
healthy and with polling only. Paper: the paper exchange's fills happen at known instants (each
order's script says at which tick). Prints p50, p99 and the maximum for each mode, and the ratio of
polling's p50 to push's p99. These are figures, never assertions: a loaded machine prints slower ones.
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

from hostspec.model import Mode, Order, OrderStatus, Side, utcnow
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


def run_kite(push: bool, orders: int, interval: float, quiet_seconds: float) -> tuple[list[float], float]:
    """The Kite simulator: returns each fill's detection delay (ms) and the REST requests per minute
    of ``quiet_seconds`` with nothing happening."""
    from recon_plugin.brokers.kite.broker import KiteBroker, PushingKiteBroker
    from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY, KiteSimulator

    sim = KiteSimulator(api_key=SIM_API_KEY, access_token=SIM_ACCESS_TOKEN, rate_limits=False)
    root = sim.start()
    broker = (PushingKiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, root, 2.0, ws_root=sim.ws_url) if push
              else KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, root, 2.0))
    delays: list[float] = []
    filled_at: dict[str, float] = {}
    lock = threading.Lock()

    def on_fill(sender: Any, **data: Any) -> None:
        seen = time.perf_counter()
        with lock:
            start = filled_at.pop(data["order_id"], None)
        if start is not None:
            delays.append((seen - start) * 1000)

    with tempfile.TemporaryDirectory() as tmp:
        store = TinyDBStore(Path(tmp) / "state.json")
        signals.order_filled.connect(on_fill)
        reconciler = Reconciler(broker, store, Settings(mode=Mode.LIVE, interval_seconds=interval, push=push,
                                                        missing_grace_seconds=30))
        try:
            reconciler.start()
            time.sleep(1.0)  # connected, resynced
            before = len(sim.requests)
            time.sleep(quiet_seconds)
            per_minute = (len(sim.requests) - before) * 60 / quiet_seconds
            for i in range(orders):
                oid = sim.add_order(quantity=10, status="OPEN", tag=f"K{i}")
                now = utcnow()
                store.record_order(Order(f"K{i}", "NSE", "INFY", "CNC", Side.BUY, 10, OrderStatus.PLACED, now, now,
                                         broker_order_id=oid))
                time.sleep(0.1)
                with lock:
                    filled_at[f"K{i}"] = time.perf_counter()
                sim.fill(oid, 10, 100.0)
                time.sleep(0.15 if push else interval / 4)
            deadline = time.monotonic() + 3 * interval + 5
            while time.monotonic() < deadline and filled_at:
                time.sleep(0.1)
        finally:
            reconciler.stop()
            signals.order_filled.disconnect(on_fill)
            broker.close()
            store.close()
            sim.stop()
    return delays, per_minute


def summary(delays: list[float]) -> dict[str, float]:
    return {"fills": len(delays), "p50_ms": round(percentile(delays, 0.5), 1),
            "p99_ms": round(percentile(delays, 0.99), 1), "max_ms": round(max(delays), 1),
            "mean_ms": round(statistics.fmean(delays), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=40, help="orders per mode (default 40)")
    parser.add_argument("--interval", type=float, default=2.0, help="the polling interval (default 2 s)")
    parser.add_argument("--broker", choices=("kite", "paper", "both"), default="both")
    parser.add_argument("--quiet-seconds", type=float, default=90.0,
                        help="Kite: how long the quiet session is watched for its requests (default 90 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if args.broker in ("kite", "both"):
        push_delays, push_rpm = run_kite(True, args.orders, args.interval, args.quiet_seconds)
        poll_delays, poll_rpm = run_kite(False, args.orders, args.interval, args.quiet_seconds)
        results["kite"] = {"push": summary(push_delays), "polling": summary(poll_delays),
                           "quiet_requests_per_minute": {"push": round(push_rpm), "polling": round(poll_rpm)}}
    if args.broker in ("paper", "both"):
        results["paper"] = {"push": summary(run(True, args.orders, args.interval)),
                            "polling": summary(run(False, args.orders, args.interval))}
    for name in results:
        r = results[name]
        r["polling_p50_over_push_p99"] = round(r["polling"]["p50_ms"] / r["push"]["p99_ms"], 1)
    if args.json:
        print(json.dumps(results))
        return
    for name, r in results.items():
        print(f"time to detect a fill, {name} (polling at {args.interval} s): fill at the broker -> signal")
        print(f"  {'mode':<8} {'fills':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for mode in ("push", "polling"):
            m = r[mode]
            print(f"  {mode:<8} {m['fills']:>5.0f} {m['p50_ms']:>8} {m['p99_ms']:>8} {m['max_ms']:>8}")
        print(f"  polling p50 / push p99: {r['polling_p50_over_push_p99']}x")
        if "quiet_requests_per_minute" in r:
            q = r["quiet_requests_per_minute"]
            print(f"  REST requests per minute, quiet session: {q['push']} with push, {q['polling']} polling only")


if __name__ == "__main__":
    main()
