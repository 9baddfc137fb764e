"""The soak's host: a real paper host (``hostspec.app.App``, every installed plugin, the reconciler on its
own thread) run in a child process by ``tests.soak`` for one step of the schedule, then SIGKILLed or
stopped. ``python -m tests.soak_child CONFIG PLAN_JSON`` from the repository's root.

What it adds to the host, as one in-process plugin (``soak``):

- the broker ``soak-paper``: the configured paper exchange behind a wrapper that, at the plan's rate,
  raises ``BrokerError`` or hands back garbage (not a list, a malformed record, a stale book, a book with
  an order left out, a slow answer), and whose push channel sends updates twice, late or never, or drops;
- an order flow placing a few orders (local, external, response lost, cancelled later, never sent);
- an event sink writing every event it receives to stdout (a pipe: no file size limit or read-only
  directory touches it), one JSON line each, before returning;
- the plan's disk fault: a file size limit (``RLIMIT_FSIZE``) for a while;
- a kill of its own right after a store write with events and before publishing, at the plan's rate.

Everything it reports is a JSON line on stdout: ``{"ready": pid}``, ``{"event": [seq, id, kind]}``,
``{"fault": kind}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any

from hostspec import hookimpl
from hostspec.app import App
from hostspec.broker import BrokerError, FailureKind, PushSink
from hostspec.calendar import MarketCalendar
from hostspec.config import Config
from hostspec.errors import HostError
from hostspec.hookspecs import BrokerFactory
from hostspec.host import Host
from hostspec.model import BrokerOrder, ChangeSet, Event, Holding, Order, OrderStatus, Position, Side, utcnow
from hostspec.store import StoreError
from recon_plugin.brokers.paper.exchange import PaperExchange
from recon_plugin.brokers.paper.plugin import open_paper
from recon_plugin.calendars.india import IndiaCalendar
from recon_plugin.testing.demo import record_sent

BROKER = "soak-paper"
_out_lock = threading.Lock()


def say(message: Mapping[str, Any]) -> None:
    """One JSON line on stdout, flushed: in the pipe, it survives this process's SIGKILL."""
    with _out_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


# -- broker faults ---------------------------------------------------------------------------------

def _garbage(record: BrokerOrder, rng: random.Random) -> Any:
    """A malformed stand-in for ``record``, as a careless broker plugin might hand back."""
    makers: list[Callable[[], Any]] = [
        lambda: None,
        lambda: {"broker_order_id": record.broker_order_id, "status": "COMPLETE"},
        lambda: replace(record, avg_price=float(record.avg_price)),  # type: ignore[arg-type]
        lambda: replace(record, filled_qty=str(record.filled_qty)),  # type: ignore[arg-type]
        lambda: replace(record, broker_order_id=None),  # type: ignore[arg-type]
        lambda: replace(record, status=record.status.value),  # type: ignore[arg-type]
    ]
    return rng.choice(makers)()


class FaultyBroker:
    """The paper exchange, failing on a seeded schedule: each read fails with probability ``rate``, by one
    of the kinds below (each reported on stdout as it is injected)."""

    name = BROKER
    BOOK_FAULTS = ("error-transient", "error-unreadable", "not-a-list", "malformed-record", "stale-book",
                   "order-left-out", "slow")

    def __init__(self, paper: PaperExchange, rate: float, seed: str) -> None:
        self.paper = paper
        self.rate = rate
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self._previous: list[BrokerOrder] = []

    def fault(self, kinds: Sequence[str], channel: str = "broker") -> str | None:
        with self._lock:
            if self.rate <= 0 or self.rng.random() >= self.rate:
                return None
            kind = self.rng.choice(kinds)
        say({"fault": f"{channel}:{kind}"})
        if kind == "error-transient":
            raise BrokerError("soak: the broker timed out", FailureKind.TRANSIENT)
        if kind == "error-unreadable":
            raise BrokerError("soak: the broker answered something unreadable", FailureKind.UNREADABLE)
        if kind == "slow":
            time.sleep(0.3)
        return kind

    def fetch_orders(self) -> list[BrokerOrder]:
        kind = self.fault(self.BOOK_FAULTS)
        book = self.paper.fetch_orders()
        if kind == "not-a-list":
            return None  # type: ignore[return-value]
        if kind == "stale-book" and self._previous:
            return list(self._previous)
        self._previous = book
        if kind == "malformed-record" and book:
            index = self.rng.randrange(len(book))
            return [*book[:index], _garbage(book[index], self.rng), *book[index + 1:]]
        if kind == "order-left-out" and book:
            index = self.rng.randrange(len(book))
            return book[:index] + book[index + 1:]
        return book

    def fetch_positions(self) -> list[Position]:
        self.fault(("error-transient", "slow"))
        return self.paper.fetch_positions()

    def fetch_holdings(self) -> list[Holding]:
        self.fault(("error-transient",))
        return self.paper.fetch_holdings()

    def order_history(self, broker_order_id: str) -> list[BrokerOrder]:
        kind = self.fault(("error-transient", "error-unreadable", "malformed-record", "slow"))
        history = self.paper.order_history(broker_order_id)
        if kind == "malformed-record" and history:
            return [*history[:-1], _garbage(history[-1], self.rng)]
        return history

    def start_push(self, loop: asyncio.AbstractEventLoop, sink: PushSink) -> None:
        self.paper.start_push(loop, FaultyPush(sink, self))

    def stop_push(self) -> None:
        self.paper.stop_push()

    def place_order(self, *, tag: str | None, exchange: str, symbol: str, product: str, side: Side,
                    quantity: int, price: Decimal | None = None) -> str:
        return self.paper.place_order(tag=tag, exchange=exchange, symbol=symbol, product=product, side=side,
                                      quantity=quantity, price=price)

    def cancel_order(self, broker_order_id: str) -> None:
        self.paper.cancel_order(broker_order_id)

    def close(self) -> None:
        self.paper.close()


class FaultyPush:
    """The paper exchange's push channel, failing as a real one does at the broker's rate: an update sent
    twice, an older update of the order sent after it, an update lost, the channel dropped (and back)."""

    PUSH_FAULTS = ("duplicate", "stale", "lost", "disconnect")

    def __init__(self, sink: PushSink, broker: FaultyBroker) -> None:
        self.sink = sink
        self.broker = broker
        self._last: dict[str, BrokerOrder] = {}

    def order(self, update: BrokerOrder) -> None:
        older = self._last.get(update.broker_order_id)
        self._last[update.broker_order_id] = update
        kind = self.broker.fault(self.PUSH_FAULTS, "push")
        if kind == "lost":
            return
        if kind == "disconnect":
            self.sink.disconnected("soak: the push channel dropped")
            self.sink.connected()
            return
        self.sink.order(update)
        if kind == "duplicate":
            self.sink.order(update)
        if kind == "stale" and older is not None:
            self.sink.order(older)

    def connected(self) -> None:
        self.sink.connected()

    def disconnected(self, reason: str) -> None:
        self.sink.disconnected(reason)


# -- the order flow ----------------------------------------------------------------------------------

SCENARIOS = ("normal", "normal", "normal", "external", "response-lost", "cancel-later", "never-sent")


class OrderFlow:
    """A strategy placing ``orders`` orders, ``every`` seconds apart, recording them as a host does."""

    def __init__(self, host: Host, orders: int, every: float, prefix: str, seed: str) -> None:
        assert host.broker is not None and host.store is not None
        self.broker, self.store = host.broker, host.store
        self.orders, self.every, self.prefix = orders, every, prefix
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="soak-flow", daemon=True)

    def _run(self) -> None:
        for i in range(self.orders):
            if self.stop.wait(self.every):
                return
            try:
                self.place(f"{self.prefix}-{i}")
            except (BrokerError, StoreError, OSError) as exc:  # a disk fault or a refused order: go on
                logging.getLogger("soak").info("order %s-%d: %s", self.prefix, i, exc)

    def place(self, order_id: str) -> None:
        scenario = self.rng.choice(SCENARIOS)
        symbol, side = self.rng.choice(("INFY", "TCS", "SBIN")), self.rng.choice((Side.BUY, Side.SELL))
        quantity = self.rng.randint(1, 20)
        if scenario == "external":
            self.broker.place_order(tag=None, exchange="NSE", symbol=symbol, product="CNC", side=side,
                                    quantity=quantity)
            return
        now = utcnow()
        self.store.record_order(Order(order_id=order_id, exchange="NSE", symbol=symbol, product="CNC", side=side,
                                      quantity=quantity, status=OrderStatus.PENDING, created_at=now, updated_at=now))
        if scenario == "never-sent":
            return
        broker_id = self.broker.place_order(tag=order_id, exchange="NSE", symbol=symbol, product="CNC", side=side,
                                            quantity=quantity)
        if scenario == "response-lost":
            return
        record_sent(self.store, order_id, broker_id)
        if scenario == "cancel-later" and not self.stop.wait(self.rng.uniform(0.1, 0.6)):
            with contextlib.suppress(BrokerError):  # already ended
                self.broker.cancel_order(broker_id)


# -- the plugin --------------------------------------------------------------------------------------

class SoakPlugin:
    """The step's faults, flow and sink, wired into the host as one in-process plugin."""

    def __init__(self, plan: Mapping[str, Any]) -> None:
        self.plan = plan
        self.rng = random.Random(f"{plan['seed']}:{plan['step']}:child")
        self.flow: OrderFlow | None = None

    @hookimpl
    def hostspec_market_calendar(self, config: Config) -> MarketCalendar | None:
        return IndiaCalendar.from_config(config) if config.broker.name == BROKER else None

    @hookimpl
    def hostspec_register_brokers(self, register: Callable[[str, BrokerFactory], None]) -> None:
        plan = self.plan
        register(BROKER, lambda host: FaultyBroker(open_paper(host), plan["broker_rate"],
                                                   f"{plan['seed']}:{plan['step']}:broker"))

    @hookimpl
    def hostspec_handle_event(self, event: Event) -> None:
        say({"event": [event.seq, event.event_id, event.kind]})

    @hookimpl(tryfirst=True)
    def hostspec_startup(self, host: Host) -> None:
        """Before the reconciler starts: the kill after a write, the flow and the disk fault."""
        assert host.store is not None
        store, rate, rng = host.store, float(self.plan["kill_after_write"]), self.rng
        apply = store.apply

        def apply_then_maybe_die(changes: ChangeSet) -> int:
            written = apply(changes)
            if written and changes.events and rng.random() < rate:
                say({"fault": "kill:after-write"})
                os.kill(os.getpid(), signal.SIGKILL)  # written, not yet published
            return written

        store.apply = apply_then_maybe_die  # type: ignore[method-assign]
        if self.plan["orders"]:
            self.flow = OrderFlow(host, int(self.plan["orders"]), float(self.plan["order_every"]),
                                  f"S{self.plan['step']}", f"{self.plan['seed']}:{self.plan['step']}:flow")
            self.flow.thread.start()
        if self.plan.get("fsize"):
            after, limit, lasting = self.plan["fsize"]
            threading.Thread(target=size_limit, args=(float(after), int(limit), float(lasting)), daemon=True).start()

    @hookimpl(tryfirst=True)
    def hostspec_shutdown(self) -> None:
        if self.flow is not None:
            self.flow.stop.set()
            self.flow.thread.join(5)


def size_limit(after: float, limit: int, lasting: float) -> None:
    """No file of this process may grow past ``limit`` bytes for ``lasting`` seconds."""
    time.sleep(after)
    say({"fault": "disk:file-size-limit"})
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    time.sleep(lasting)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def main(argv: Sequence[str]) -> int:
    config, plan = Path(argv[0]), json.loads(argv[1])
    logging.basicConfig(level=os.environ.get("SOAK_CHILD_LOG", "ERROR"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    app = App(extra_plugins=[("soak", SoakPlugin(plan))])
    try:
        host = app.open_host(config)
    except HostError as exc:  # refused to start (a read-only directory): one line, as tradehost says it
        print(f"soak: refused to start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_status
    try:
        app.start(host)
        say({"ready": os.getpid()})
        stop.wait()
    finally:
        app.stop(host)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
