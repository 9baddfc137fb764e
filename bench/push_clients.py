"""Benchmark: which WebSocket client for Kite's order updates? The official ``KiteTicker`` (Twisted and
autobahn, a reactor thread) against ``websockets`` on an asyncio loop (``recon_plugin.brokers.kite.push``),
both speaking Kite's protocol to the Kite simulator's WebSocket on loopback.

    python bench/push_clients.py            # both clients, 200 fills each
    python bench/push_clients.py --fills 1000 --json

Each client runs in a fresh interpreter of its own (``--client ticker|websockets``), with the
simulator in it, after ``import kiteconnect`` (which every Kite host has done: it imports Twisted).
Measured, per client:

- threads added by the client (the reconciler's loop, which exists anyway, not counted), and RSS
  added by importing it (on top of kiteconnect) and by connecting (from /proc; the figure after the
  fills is mostly the simulator's own records);
- latency: a fill at the simulator to the client's callback, p50 and p99;
- reconnect: the simulator cuts the connection; the time until the client is connected again;
- silence: the simulator stops every frame (heartbeats too) for 12 s with the socket up: does
  the client notice (and reconnect) before the frames come back?
- restart: the client is stopped, then a new one started in the same process: does it connect? And
  how many threads are left once both are stopped?

It prints figures; it never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

PAGE = 4096
SIM_THREADS = 2  # the simulator's threads per open connection (websockets' threaded server)


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE // 1024


def wait_for(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


class Probe:
    """What a client reports: connections, and the arrival time of each order update by order id."""

    def __init__(self) -> None:
        self.connects = 0
        self.arrived: dict[tuple[str, int], float] = {}

    def connected(self) -> None:
        self.connects += 1

    def disconnected(self, reason: str) -> None:
        pass

    def order_row(self, row: dict[str, Any]) -> None:
        self.arrived.setdefault((str(row["order_id"]), int(row.get("filled_quantity") or 0)), time.monotonic())


class TickerClient:
    def __init__(self, root: str, probe: Probe) -> None:
        from kiteconnect import KiteTicker

        from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY

        self.kws = KiteTicker(SIM_API_KEY, SIM_ACCESS_TOKEN, root=root, reconnect_max_delay=5)
        self.kws.on_connect = lambda ws, response: probe.connected()
        self.kws.on_order_update = lambda ws, data: probe.order_row(data)
        self.kws.on_close = lambda ws, code, reason: probe.disconnected(str(reason))

    def start(self) -> None:
        self.kws.connect(threaded=True)

    def stop(self) -> None:
        self.kws.close()


_LOOP: list[asyncio.AbstractEventLoop] = []


def reconciler_loop() -> asyncio.AbstractEventLoop:
    """One running loop on a thread of its own: it stands for the reconciler's (which a host has anyway)."""
    if not _LOOP:
        _LOOP.append(asyncio.new_event_loop())
        threading.Thread(target=_LOOP[0].run_forever, daemon=True).start()
    return _LOOP[0]


class WebsocketsClient:
    def __init__(self, root: str, probe: Probe) -> None:
        from recon_plugin.brokers.kite.push import KitePush
        from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY

        self.probe = probe
        self.push = KitePush(root, lambda: (SIM_API_KEY, SIM_ACCESS_TOKEN))
        self.loop = reconciler_loop()

    def start(self) -> None:
        probe = self.probe

        class Sink:
            def order(self, update: Any) -> None:
                probe.arrived.setdefault((update.broker_order_id, update.filled_qty), time.monotonic())

            def connected(self) -> None:
                probe.connected()

            def disconnected(self, reason: str) -> None:
                probe.disconnected(reason)

        self.push.start(self.loop, Sink())

    def stop(self) -> None:
        self.push.stop()


def measure(client_name: str, fills: int) -> dict[str, Any]:
    import kiteconnect  # noqa: F401  (every Kite host has imported it, and Twisted with it)

    before_import = rss_kib()
    if client_name == "websockets":
        import websockets.asyncio.client  # noqa: F401  (what a Kite host would import on top of kiteconnect)
    import_rss = rss_kib() - before_import
    from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY, KiteSimulator

    sim = KiteSimulator(api_key=SIM_API_KEY, access_token=SIM_ACCESS_TOKEN, rate_limits=False)
    sim.start()
    loop_thread = 1 if client_name == "websockets" else 0  # the reconciler's loop exists anyway: not counted
    threads0, rss0 = threading.active_count() + loop_thread, rss_kib()
    probe = Probe()
    make = TickerClient if client_name == "ticker" else WebsocketsClient
    client = make(sim.ws_url, probe)
    client.start()
    assert wait_for(lambda: probe.connects == 1, 10), "never connected"
    time.sleep(0.2)
    connected_rss = rss_kib() - rss0
    names = sorted(t.name for t in threading.enumerate())
    latencies = []
    oid = sim.add_order(quantity=fills * 2)
    for n in range(1, fills + 1):
        sim.fill(oid, 1, 100.0)
        at = time.monotonic()
        if wait_for(lambda n=n: (oid, n) in probe.arrived, 5):
            latencies.append((probe.arrived[(oid, n)] - at) * 1000)
    threads, rss = threading.active_count() - SIM_THREADS * sim.push.clients - threads0, rss_kib() - rss0
    # reconnect after a cut
    start = time.monotonic()
    sim.push.inject("drop")
    reconnected = wait_for(lambda: probe.connects == 2, 30)
    reconnect_s = time.monotonic() - start if reconnected else None
    # silence: the socket stays up, no frame for 12 s
    sim.push.inject("silence")
    noticed = wait_for(lambda: probe.connects == 3, 12)
    sim.push.clear_faults()
    wait_for(lambda: probe.connects >= 3, 5)
    # stop, then start a new client in the same process
    client.stop()
    again = Probe()
    second = make(sim.ws_url, again)
    try:
        second.start()
        restarted = wait_for(lambda: again.connects == 1, 10)
    except Exception as exc:
        restarted = False
        print(f"{client_name}: a second client failed to start: {type(exc).__name__}: {exc}", file=sys.stderr)
    second.stop()
    wait_for(lambda: sim.push.clients == 0, 5)
    time.sleep(0.5)
    left = threading.active_count() - SIM_THREADS * sim.push.clients - threads0
    sim.stop()
    latencies.sort()
    return {"client": client_name, "threads_added": threads, "rss_kib_import": import_rss,
            "rss_kib_connected": connected_rss,
            "rss_kib_after_fills": rss, "threads": names,
            "latency_ms_p50": round(statistics.median(latencies), 3) if latencies else None,
            "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 3) if latencies else None,
            "received": f"{len(latencies)}/{fills}", "reconnect_s": round(reconnect_s, 2) if reconnect_s else None,
            "silence_noticed": noticed, "restart_in_process": restarted,
            "threads_left_after_stop": left}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=("ticker", "websockets"), help="measure one client, in this process")
    parser.add_argument("--fills", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.client:
        print(json.dumps(measure(args.client, args.fills)))
        return 0
    results = []
    for name in ("ticker", "websockets"):
        done = subprocess.run([sys.executable, __file__, "--client", name, "--fills", str(args.fills)],
                              capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    keys = [k for k in results[0] if k != "threads"] if results else []
    for key in keys:
        print(f"{key:<20}" + "".join(f"{r[key]!s:>16}" for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
