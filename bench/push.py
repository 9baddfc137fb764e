"""Benchmark: loopback latency of Kite's push channel, from a fill at the Kite simulator to the sink's
``order`` call, through the Kite broker's own WebSocket client (``PushingKiteBroker``, ``websockets``
on an asyncio loop standing for the reconciler's).

    python bench/push.py                 # 1,000 fills, one at a time
    python bench/push.py --fills 5000 --json

Each fill is made by the simulator's hand (``sim.fill``), which sends the order message; the time
is taken there and when the sink receives that fill (matched by order id and filled quantity).
Printed: p50, p99 and max in milliseconds. It prints figures; it never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time

from hostspec.model import BrokerOrder
from recon_plugin.brokers.kite.broker import PushingKiteBroker
from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY, KiteSimulator


class Sink:
    def __init__(self) -> None:
        self.arrived: dict[tuple[str, int], float] = {}
        self.connects = 0
        self.changed = threading.Condition()

    def order(self, update: BrokerOrder) -> None:
        at = time.perf_counter()
        with self.changed:
            self.arrived.setdefault((update.broker_order_id, update.filled_qty), at)
            self.changed.notify_all()

    def connected(self) -> None:
        with self.changed:
            self.connects += 1
            self.changed.notify_all()

    def disconnected(self, reason: str) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fills", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sim = KiteSimulator(api_key=SIM_API_KEY, access_token=SIM_ACCESS_TOKEN, rate_limits=False)
    sim.start()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="reconciler-loop", daemon=True)
    thread.start()
    broker = PushingKiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, sim.url, 2.0, ws_root=sim.ws_url)
    sink = Sink()
    broker.start_push(loop, sink)
    with sink.changed:
        sink.changed.wait_for(lambda: sink.connects, 10)
    oid = sim.add_order(quantity=args.fills * 2)
    latencies = []
    for n in range(1, args.fills + 1):
        start = time.perf_counter()
        sim.fill(oid, 1, 100.0)
        with sink.changed:
            if sink.changed.wait_for(lambda n=n: (oid, n) in sink.arrived, 5):
                latencies.append((sink.arrived[(oid, n)] - start) * 1000)
    broker.stop_push()
    broker.close()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(2)
    sim.stop()
    latencies.sort()
    result = {"client": "websockets (recon_plugin.brokers.kite.push)", "fills": args.fills,
              "received": len(latencies),
              "p50_ms": round(statistics.median(latencies), 3),
              "p99_ms": round(latencies[max(int(len(latencies) * 0.99) - 1, 0)], 3),
              "max_ms": round(latencies[-1], 3)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"push latency, simulator fill -> sink.order, {result['received']}/{args.fills} fills over loopback "
              f"({result['client']}): p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
              f"max {result['max_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
