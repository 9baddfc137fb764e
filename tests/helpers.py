"""Small builders and runners shared by the tests.

A module of the ``tests`` package (``from tests.helpers import ...``), so that test modules share
code by import instead of by putting ``tests/`` on ``sys.path`` or importing one another.
"""

from __future__ import annotations

import ast
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hostspec.app import App
from hostspec.broker import BrokerError, FailureKind
from hostspec.model import (
    BrokerOrder,
    ChangeSet,
    InstrumentKey,
    LedgerEntry,
    LocalState,
    Order,
    OrderStatus,
    Position,
    Side,
)

ROOT = Path(__file__).resolve().parent.parent  # the repository: configs/, docs/, README.md
T0 = datetime(2026, 1, 2, 9, 15, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def order(order_id: str = "A", status: OrderStatus = OrderStatus.SUBMITTED, quantity: int = 10,
          broker_order_id: str | None = "B-A", side: Side = Side.BUY, symbol: str = "INFY",
          created: float = 0, **changes: Any) -> Order:
    base = Order(order_id=order_id, exchange="NSE", symbol=symbol, product="CNC", side=side, quantity=quantity,
                 status=status, created_at=at(created), updated_at=at(created), broker_order_id=broker_order_id)
    return replace(base, **changes)


def broker(status: OrderStatus, filled: int = 0, avg: str = "0", broker_order_id: str = "B-A",
           quantity: int = 10, side: Side = Side.BUY, symbol: str = "INFY", tag: str | None = None,
           raw: str | None = None, **changes: Any) -> BrokerOrder:
    base = BrokerOrder(broker_order_id=broker_order_id, exchange="NSE", symbol=symbol, product="CNC", side=side,
                       quantity=quantity, status=status, raw_status=raw or status.value, filled_qty=filled,
                       avg_price=Decimal(avg), tag=tag)
    return replace(base, **changes)


def state(*orders: Order, **kwargs: Any) -> LocalState:
    return LocalState(orders={o.order_id: o for o in orders}, **kwargs)


class ScriptedBroker:
    """A broker (the ``Broker`` protocol) whose book the test sets directly, and which can be told to
    fail. For engine and runner tests; the paper and Kite brokers have tests of their own."""

    name = "scripted"

    def __init__(self, book: Sequence[BrokerOrder] = (), positions: Sequence[Position] = ()) -> None:
        self.book = list(book)
        self.positions = list(positions)
        self.failure: BrokerError | Exception | None = None
        self.calls: list[str] = []
        self.history: dict[str, list[BrokerOrder]] = {}
        self.delay = 0.0
        self._lock = threading.Lock()

    def _call(self, name: str) -> None:
        with self._lock:
            self.calls.append(name)
        if self.delay:
            threading.Event().wait(self.delay)
        if self.failure is not None:
            raise self.failure

    def fetch_orders(self) -> list[BrokerOrder]:
        self._call("orders")
        return list(self.book)

    def fetch_positions(self) -> list[Position]:
        self._call("positions")
        return list(self.positions)

    def order_history(self, broker_order_id: str) -> list[BrokerOrder]:
        self._call(f"history:{broker_order_id}")
        return list(self.history.get(broker_order_id, []))

    def place_order(self, **kwargs: Any) -> str:
        raise BrokerError("the scripted broker does not take orders", FailureKind.REJECTED)

    def cancel_order(self, broker_order_id: str) -> None:
        raise BrokerError("the scripted broker does not take orders", FailureKind.REJECTED)

    def close(self) -> None:
        pass


def advance(local: LocalState, changes: Any) -> LocalState:
    """The local state after a plan's changes, as a store would hold it (without a store)."""
    orders = dict(local.orders)
    for o in changes.orders:
        orders[o.order_id] = replace(o, version=o.version + 1)
    positions = dict(local.positions)
    positions.update({p.key: p for p in changes.positions})
    ledger = {**local.ledger, **{e.order_id: e for e in changes.ledger}}
    checkpoint = {**local.checkpoint, **changes.checkpoint}
    return LocalState(orders, positions, ledger, checkpoint, local.events_sent_upto)


def every_local_order_and_ledger(store: Any) -> tuple[dict[str, Order], dict[str, LedgerEntry]]:
    """A TinyDB store's orders and ledger, the hot state's with every archived day's merged in (each
    order held once: never in the hot state and a day both)."""
    state = store.load()
    orders, ledger = dict(state.orders), dict(state.ledger)
    for day in store.archived_days():
        archived = store.load_day(day)
        assert archived is not None
        assert not set(archived.orders) & set(orders)  # never held twice
        orders.update(archived.orders)
        ledger.update(archived.ledger)
    return orders, ledger


def positions_from_ledger(orders: dict[str, Order], ledger: dict[str, LedgerEntry]) -> dict[InstrumentKey, Position]:
    """What positions must be if every ledger increment was applied exactly once: per instrument, the
    signed sum of its orders' ledger entries."""
    expected: dict[InstrumentKey, Position] = {}
    for order_id, entry in ledger.items():
        o = orders[order_id]
        expected[o.key] = (expected.get(o.key) or Position(*o.key)).with_fill(o.side, entry.filled_qty,
                                                                             entry.filled_value)
    return expected


def start_then_kill(args: Sequence[str], after: float) -> str:
    """Start a child process, wait for its first line, let it run ``after`` seconds, SIGKILL it.

    Returns the first line it printed (a child prints "ready" once it is working)."""
    child = subprocess.Popen(list(args), stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    first = child.stdout.readline().strip()
    time.sleep(after)
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    return first


def tradehost(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``tradehost ARGS`` in a child process, as a user runs it; ``env`` adds to this environment."""
    return subprocess.run([sys.executable, "-m", "hostspec.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)


def write(path: Path, text: str) -> Path:
    """Write ``text`` (dedented) to ``path``, creating its directory; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def modules_a_host_imports(config: Path, watch: Sequence[str], run_seconds: float = 0.0,
                           cwd: Path | None = None) -> list[str]:
    """Which of the modules ``watch`` a host imports, seen from a clean interpreter (``python -I``:
    no test runner, no PYTHONPATH, no user site).

    As ``tradehost run`` does: every plugin loaded and every command registered, the host opened from
    ``config``, started, left running ``run_seconds``, stopped and closed."""
    code = textwrap.dedent(f"""
        import sys, time
        from hostspec.app import App
        app = App()
        app.commands()
        host = app.open_host({str(config)!r})
        app.start(host)
        time.sleep({run_seconds!r})
        app.stop(host)
        print(sorted(m for m in {tuple(watch)!r} if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, cwd=cwd, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    imported: list[str] = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    return imported


class DayDesk:
    """A trader's desk through trading days, for the end-to-end tests: a store, a broker and a
    reconciler on one ManualClock; a subclass opens them (``restart``), the test drives the cycles."""

    clock: Any
    store: Any
    broker: Any
    reconciler: Any

    def __init__(self) -> None:
        self.reports: list[Any] = []

    def run(self, cycles: int = 6, every: float = 2.0) -> list[Any]:
        """``cycles`` cycles, ``every`` seconds apart on the clock; every one must complete."""
        done = []
        for _ in range(cycles):
            report = self.reconciler.run_cycle()
            assert report.error is None, report.error
            done.append(report)
            self.clock.advance(every)
        self.reports += done
        return done

    def record(self, local_id: str, broker_id: str, symbol: str, quantity: int, exchange: str,
               product: str) -> str:
        """Record a placed order locally, as the host's order flow does right after placing it."""
        now = self.clock.now()
        self.store.record_order(order(local_id, status=OrderStatus.SUBMITTED, broker_order_id=broker_id,
                                      symbol=symbol, quantity=quantity, side=Side.BUY, exchange=exchange,
                                      product=product, created_at=now, updated_at=now))
        return broker_id

    def local(self, local_id: str) -> Order:
        """A local order, from the hot state or, once archived, from its day."""
        state = self.store.load()
        if local_id in state.orders:
            return state.orders[local_id]  # type: ignore[no-any-return]
        for day in self.store.archived_days():
            archived = self.store.load_day(day)
            if archived is not None and local_id in archived.orders:
                return archived.orders[local_id]  # type: ignore[no-any-return]
        raise KeyError(local_id)

    def positions_agree(self) -> None:
        local = {k: p.quantity for k, p in self.store.load().positions.items() if p.quantity}
        assert local == {p.key: p.quantity for p in self.broker.fetch_positions() if p.quantity}


def alarms(reports: Sequence[Any]) -> list[str]:
    """Every decision of these cycles that a person is told about, or that is logged as an error."""
    return [f"{d.rule} {d.order_id or d.symbol}" for r in reports for d in r.decisions
            if d.rule.reported or d.rule.severity.value == "error"]


# -- trading days: the week the day tests live through (Tuesday 24 November 2026 is an exchange holiday) --

THU, FRI, SAT, SUN, MON, TUE, WED = (date(2026, 11, d) for d in range(19, 26))


def ist(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    """An instant of ``day`` on the exchanges' clock (Asia/Kolkata)."""
    from recon_plugin.calendars.india import IST

    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=IST)


# -- disks: a host's configuration, and child processes under a disk fault --

def paper_config(directory: Path, state: Path) -> Path:
    """A paper host's configuration (``directory/host.yaml``) whose store is ``state``; demo off."""
    return write(directory / "host.yaml", f"""
        mode: paper
        broker: {{name: paper, paper: {{path: {directory / 'paper-account.json'}}}}}
        store: {{path: {state}}}
        plugins: {{disabled: [demo]}}
    """)


def permissions_can_be_honoured() -> bool:
    """Whether a child can be made to respect file permissions (it is not root, or root can drop the
    capabilities that override them with ``setpriv``)."""
    return os.geteuid() != 0 or shutil.which("setpriv") is not None


def small_filesystems_can_be_mounted() -> bool:
    """Whether a child can mount a small tmpfs of its own (``unshare -m``), to fill a disk for real."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def python_child(code: str, *args: str, honour_permissions: bool = False, small_disk: tuple[Path, int] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -c code args`` in a child process; ``honour_permissions``: a root child loses the
    capabilities that override file permissions (so a read-only directory is read-only to it);
    ``small_disk=(directory, kib)``: the child sees a fresh tmpfs of ``kib`` KiB mounted on ``directory``
    (gone when it exits)."""
    command = child_command(["-c", code, *args], honour_permissions=honour_permissions, small_disk=small_disk)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def child_command(python_args: Sequence[str], honour_permissions: bool = False,
                  small_disk: tuple[Path, int] | None = None) -> list[str]:
    """The command line of ``python python_args`` in a child process under a disk fault (see
    ``python_child``), for a caller that starts it itself."""
    command = [sys.executable, *python_args]
    if honour_permissions and os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *command]
    if small_disk is not None:
        directory, kib = small_disk
        command = ["unshare", "-m", "sh", "-c", f'mount -t tmpfs -o size={kib}k tmpfs "$0" && exec "$@"',
                   str(directory), *command]
    return command


def demo_config(directory: Path, extra: str = "") -> Path:
    """The README's demo (configs/paper.yaml: the same seeds, so the same scenarios and book), run
    faster: its 12 orders, their fills and both LOST orders within about 12 seconds."""
    return write(directory / "demo.yaml", f"""
        mode: paper
        broker:
          name: paper
          paper: {{seed: 7, tick_seconds: 0.25}}
        store: {{name: tinydb, path: {directory / 'var' / 'recon-state.json'}}}
        reconciliation: {{interval_seconds: 0.5, missing_grace_seconds: 1.5, missing_retries: 3}}
        demo: {{enabled: true, orders: 12, interval_seconds: 0.5}}
        {extra}
    """)


def seed_store(config: Path, changes: ChangeSet) -> None:
    """Apply ``changes`` (a ``ChangeSet``) to the store ``config`` names, as one write."""
    with App().open_host(config, with_broker=False) as host:
        assert host.store is not None
        host.store.apply(changes)


# -- watching from outside (recon_plugin.ops) --------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of asking."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET ``url`` with the standard library's HTTP client: (status, body), 4xx and 5xx included."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics`` parsed with prometheus-client's own parser: every sample by (name, labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = http_get(base_url + "/metrics")
    assert status == 200, text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def eventually(condition: Any, timeout: float = 30.0, every: float = 0.1) -> bool:
    """Poll ``condition()`` until it is true (returns True) or ``timeout`` passes (returns False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return bool(condition())


class RecordingServer:
    """A local HTTP server (the standard library's) that records the JSON body of every POST and
    answers 200; ``with RecordingServer(port) as server: ... server.bodies``."""

    def __init__(self, port: int = 0) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        bodies: list[Any] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
