"""Threads and loops (#18): a hung broker call is alarmed and never holds the process, a receiver's
sys.exit() does not end reconciliation, a sink may use asyncio.run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal

from hostspec.model import OrderStatus
from recon_plugin import runner as runner_module
from recon_plugin import signals
from recon_plugin.plan import Settings
from recon_plugin.runner import Reconciler
from tests.helpers import ROOT, ScriptedBroker, broker, order

S = OrderStatus


def wait_for(condition, seconds=10.0):
    done = threading.Event()
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        done.wait(0.02)
    return condition()


def test_a_broker_call_that_never_returns_does_not_keep_the_process_alive():
    script = textwrap.dedent("""
        import threading, tempfile, pathlib
        from recon_plugin.plan import Settings
        from recon_plugin.runner import Reconciler
        from recon_plugin.stores.tinydb_store import TinyDBStore
        from tests.helpers import ScriptedBroker

        class Hung(ScriptedBroker):
            def fetch_orders(self):
                threading.Event().wait()  # a third-party plugin with no timeout

        store = TinyDBStore(pathlib.Path(tempfile.mkdtemp()) / "state.json")
        r = Reconciler(Hung(), store, Settings(interval_seconds=0.05))
        r.start()
        threading.Event().wait(0.3)
        print("stopped", r.stop(timeout=2.0))
        store.close()
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "stopped True" in result.stdout  # and the interpreter exited: no worker left to join


def test_a_broker_call_that_overruns_is_alarmed_while_it_runs(store, monkeypatch):
    monkeypatch.setattr(runner_module, "WATCHDOG_SECONDS", 0.1)
    release = threading.Event()

    class Slow(ScriptedBroker):
        def fetch_orders(self):
            release.wait(5)
            return []

    events = []
    r = Reconciler(Slow(), store, Settings(interval_seconds=0.05), emit=events.append)
    r.start()
    try:
        assert wait_for(lambda: any(e.data.get("error_kind") == "overrun" for e in events))
        overrun = next(e for e in events if e.data.get("error_kind") == "overrun")
        assert "running for" in overrun.summary
    finally:
        release.set()
        assert r.stop(timeout=5)


def test_a_receiver_calling_sys_exit_does_not_end_reconciliation(store):
    def exits(sender, **kwargs):
        raise SystemExit(3)  # a library calling sys.exit()

    signals.order_filled.connect(exits)
    try:
        store.record_order(order("A", status=S.PLACED))
        store.record_order(order("B", status=S.PLACED, broker_order_id="B-B"))
        book = ScriptedBroker([broker(S.FILLED, 10, "100")])
        r = Reconciler(book, store, Settings(interval_seconds=0.05, missing_grace_seconds=0))
        r.start()
        assert wait_for(lambda: store.get_order("A").status is S.FILLED)
        book.book = [broker(S.FILLED, 10, "100"), broker(S.FILLED, 5, "50", broker_order_id="B-B", quantity=5)]
        assert wait_for(lambda: store.get_order("B").status is S.FILLED)  # still reconciling after the exit
        assert r._thread is not None and r._thread.is_alive()
        assert r.stop(timeout=5)
    finally:
        signals.order_filled.disconnect(exits)


def test_a_sink_may_use_asyncio_run(store):
    delivered = []

    async def post(event):
        await asyncio.sleep(0)
        delivered.append(event.kind)

    store.record_order(order("A", status=S.PLACED))
    r = Reconciler(ScriptedBroker([broker(S.FILLED, 10, "100")]), store, Settings(interval_seconds=0.05),
                   emit=lambda event: asyncio.run(post(event)))  # the usual way with async alert clients
    r.start()
    try:
        assert wait_for(lambda: "order-filled" in delivered)
        assert not [k for k in r.stats.failures if k.startswith("sink:")]
    finally:
        assert r.stop(timeout=5)
    assert store.load().positions[("NSE", "INFY", "CNC")].buy_value == Decimal("1000")
