"""Benchmark: a busy trading session through the Kite broker, against the Kite simulator with its own
rate limits on: does the broker stay within Kite's limits?

    python bench/kite_rate.py                 # 20 s, 3 threads sharing one broker
    python bench/kite_rate.py --seconds 60 --threads 4
    python bench/kite_rate.py --placements-only --seconds 90   # the orders-per-minute limit
    python bench/kite_rate.py --json

One ``recon_plugin.brokers.kite.broker.KiteBroker`` (its built-in limiter: 8 requests per second)
talks over loopback to a ``KiteSimulator`` (10 requests per second per endpoint, 10 orders per second,
200 orders per minute, answered 429). Threads share the broker, as a host's order flow and its
reconciler do, each looping over: place a LIMIT order, read the book, ask for an order's history,
modify an order, cancel an order, read the positions. The simulator records every request (monotonic
time, endpoint); printed: per endpoint, the requests made and the peak within any one second, the
peak orders per second and per minute, and how many requests were answered 429.

It prints figures; it never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from decimal import Decimal
from typing import Any

from hostspec.broker import BrokerError, FailureKind
from hostspec.model import Side
from recon_plugin.brokers.kite.broker import KiteBroker
from recon_plugin.testing.kite_simulator import (
    ORDERS_PER_MINUTE,
    ORDERS_PER_SECOND,
    PER_ENDPOINT_PER_SECOND,
    KiteSimulator,
)

SYMBOLS = ["INFY", "TCS", "RELIANCE", "SBIN", "HDFCBANK", "ITC"]
PLACE = "POST /orders/{variety}"


def session(broker: KiteBroker, until: float, seed: int, counts: dict[str, int], lock: threading.Lock,
            placements_only: bool) -> None:
    """One thread of the busy session: every step one request through the broker."""
    rng = random.Random(seed)
    mine: list[str] = []

    def count(what: str) -> None:
        with lock:
            counts[what] = counts.get(what, 0) + 1

    while time.monotonic() < until:
        step = "place" if placements_only else rng.choice(
            ("place", "place", "book", "history", "modify", "cancel", "positions"))
        try:
            if step == "place" or not mine:
                mine.append(broker.place_order(tag=f"B{seed}x{len(mine)}", exchange="NSE", symbol=rng.choice(SYMBOLS),
                                               product="CNC", side=Side.BUY, quantity=rng.randint(1, 20),
                                               price=Decimal("100.5")))
            elif step == "book":
                broker.fetch_orders()
            elif step == "history":
                broker.order_history(rng.choice(mine))
            elif step == "modify":  # the broker has no modify yet: the same limiter and error handling
                oid = rng.choice(mine)
                broker._call(f"PUT /orders/regular/{oid}",
                             lambda oid=oid: broker._kite.modify_order(variety="regular", order_id=oid, quantity=21))
            elif step == "cancel":
                broker.cancel_order(mine.pop(rng.randrange(len(mine))))
            else:
                broker.fetch_positions()
            count(step)
        except BrokerError as exc:
            reason = str(exc).rsplit(": ", 1)[-1][:60]
            count("rate-limited" if exc.kind is FailureKind.RATE_LIMIT else f"refused: {reason}")


def peak_per_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def run(seconds: float, threads: int, placements_only: bool = False) -> dict[str, Any]:
    sim = KiteSimulator(api_key="bench_key", access_token="bench_token")
    broker = KiteBroker("bench_key", "bench_token", sim.start(), timeout=5)
    counts: dict[str, int] = {}
    lock = threading.Lock()
    until = time.monotonic() + seconds
    workers = [threading.Thread(target=session, args=(broker, until, i, counts, lock, placements_only))
               for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    broker.close()
    sim.stop()
    log = sim.limits.log
    by_endpoint: dict[str, int] = {}
    for _, key in log:
        by_endpoint[key] = by_endpoint.get(key, 0) + 1
    peaks = sim.peak_per_second()
    placements = [at for at, key in log if key == PLACE]
    return {
        "seconds": seconds, "threads": threads, "requests": len(log),
        "requests_per_second": round(len(log) / seconds, 2),
        "endpoints": {k: {"requests": by_endpoint[k], "peak_per_second": peaks[k]} for k in sorted(by_endpoint)},
        "peak_any_endpoint_per_second": max(peaks.values(), default=0),
        "peak_all_endpoints_per_second": peak_per_window([at for at, _ in log], 1.0),
        "orders": len(placements), "peak_orders_per_second": peak_per_window(placements, 1.0),
        "peak_orders_per_minute": peak_per_window(placements, 60.0),
        "answered_429": len(sim.limits.refused), "steps": counts,
        "within_kite_limits": not sim.limits.refused
        and max(peaks.values(), default=0) <= PER_ENDPOINT_PER_SECOND
        and peak_per_window(placements, 1.0) <= ORDERS_PER_SECOND
        and peak_per_window(placements, 60.0) <= ORDERS_PER_MINUTE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--placements-only", action="store_true", help="every step a placement: the order limits")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.seconds, args.threads, args.placements_only)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"busy session: {result['seconds']:.0f} s, {result['threads']} threads on one KiteBroker, "
          f"{result['requests']} requests ({result['requests_per_second']}/s)")
    print(f"{'endpoint':32} {'requests':>9} {'peak/s':>7}  (Kite: {PER_ENDPOINT_PER_SECOND}/s per endpoint)")
    for key, row in result["endpoints"].items():
        print(f"{key:32} {row['requests']:>9} {row['peak_per_second']:>7}")
    print(f"all endpoints together: peak {result['peak_all_endpoints_per_second']}/s (the broker's limiter: 8/s)")
    print(f"orders: {result['orders']}, peak {result['peak_orders_per_second']}/s (Kite: {ORDERS_PER_SECOND}/s), "
          f"{result['peak_orders_per_minute']}/min (Kite: {ORDERS_PER_MINUTE}/min)")
    print(f"answered 429 by the simulator: {result['answered_429']}; steps: {result['steps']}")
    print("within Kite's limits" if result["within_kite_limits"] else "OVER Kite's limits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
