"""A demo order flow for the paper run: places orders and records them locally as a real host would,
and deliberately misses broker updates so that reconciliation has real discrepancies to find.

It never applies fills or status updates from the broker: those are the reconciler's to find. The
scenarios cycle in a fixed order so a 30-second run shows each kind of discrepancy:

- ``normal``: placed and recorded as SUBMITTED; acknowledgement, fills, rejections and exchange
  cancels arrive only through reconciliation (missed updates);
- ``never-sent``: recorded, but the submit "timed out" before reaching the broker (becomes LOST);
- ``response-lost``: the submit reached the broker but its response was lost, so the local order has
  no broker id (reconciliation finds it by its tag);
- ``external``: placed at the broker as if from another app, never recorded (adopted as external);
- ``cancel-later``: cancelled at the broker a few seconds later; the flow misses the confirmation.

It is demo tooling, not part of reconciliation, hence ``recon_plugin.testing``; it still loads as the
``demo`` plugin (entry point in the ``hostspec`` group) and does nothing unless ``demo.enabled``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from hostspec import hookimpl
from hostspec.broker import BrokerError
from hostspec.config import Section, setting
from hostspec.host import Host
from hostspec.model import Event, Order, OrderStatus, Side, stable_id, utcnow
from hostspec.store import ConflictError, StateStore, StoreError
from recon_plugin.events import DemoFlow as DemoFlowPayload

log = logging.getLogger("demo")
SCENARIOS = ("normal", "normal", "never-sent", "response-lost", "external", "cancel-later", "normal", "normal")
CANCEL_AFTER_SECONDS = 3.0
BROKERS = ("paper", "kite-sim")  # simulated venues only: the flow never places an order at a real broker

@dataclass(frozen=True)
class DemoSettings:
    """The ``demo`` section."""

    enabled: bool = setting(False, "run the demo order flow (paper or kite-sim broker only)")
    orders: int = setting(10, "how many orders to place", minimum=0)
    interval_seconds: float = setting(1.5, "seconds between orders", minimum=0.01)
    seed: int = setting(11, "seed for symbols, sides and quantities")
    symbols: tuple[str, ...] = setting(("INFY", "TCS", "RELIANCE", "SBIN"), "symbols to trade")


class DemoFlow:
    def __init__(self, host: Host, settings: DemoSettings) -> None:
        assert host.broker is not None and host.store is not None
        self.host = host
        self.broker = host.broker
        self.store = host.store
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.cancels: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-flow", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        for i in range(self.settings.orders):
            if self._stop.is_set():
                return
            try:
                self.place(i)
            except (BrokerError, StoreError) as exc:
                log.warning("demo order %d failed: %s", i + 1, exc)
            self._cancel_due()
            self._stop.wait(self.settings.interval_seconds)
        while self.cancels and not self._stop.wait(0.5):
            self._cancel_due()

    def place(self, i: int) -> None:
        scenario = SCENARIOS[i % len(SCENARIOS)]
        order_id = f"D-{i + 1:04d}"
        symbol = self.rng.choice(self.settings.symbols)
        side = self.rng.choice((Side.BUY, Side.SELL))
        quantity = self.rng.randint(1, 10) * 5
        if scenario == "external":
            broker_id = self.broker.place_order(tag=None, exchange="NSE", symbol=symbol, product="CNC", side=side,
                                                quantity=quantity)
            self._say(f"{broker_id} {symbol} {side} {quantity} placed from another app (not recorded locally)")
            return
        now = utcnow()
        self.store.record_order(Order(order_id=order_id, exchange="NSE", symbol=symbol, product="CNC", side=side,
                                      quantity=quantity, status=OrderStatus.PENDING, created_at=now, updated_at=now))
        if scenario == "never-sent":
            self._say(f"{order_id} {symbol} {side} {quantity} recorded; submit timed out before reaching the broker")
            return
        broker_id = self.broker.place_order(tag=order_id, exchange="NSE", symbol=symbol, product="CNC", side=side,
                                            quantity=quantity, price=None)
        if scenario == "response-lost":
            self._say(f"{order_id} {symbol} {side} {quantity} sent; the response was lost (no broker id locally)")
            return
        record_sent(self.store, order_id, broker_id)
        self._say(f"{order_id} {symbol} {side} {quantity} sent as {broker_id}")
        if scenario == "cancel-later":
            self.cancels.append((time.monotonic() + CANCEL_AFTER_SECONDS, broker_id))

    def _cancel_due(self) -> None:
        now = time.monotonic()
        for due, broker_id in [c for c in self.cancels if c[0] <= now]:
            self.cancels.remove((due, broker_id))
            try:
                self.broker.cancel_order(broker_id)
                self._say(f"{broker_id} cancel requested (the confirmation will be missed)")
            except BrokerError as exc:
                self._say(f"{broker_id} cancel refused: {exc}")

    def _say(self, summary: str) -> None:
        self.host.emit(Event.of(DemoFlowPayload(summary=summary), stable_id("demo", summary), utcnow()))


def record_sent(store: StateStore, order_id: str, broker_id: str) -> None:
    """Record a sent order's broker id, never moving its status backwards (the reconciler may be ahead)."""
    for _ in range(5):
        current = store.get_order(order_id)
        if current is None or current.broker_order_id is not None:
            return
        status = OrderStatus.SUBMITTED if current.status is OrderStatus.PENDING else current.status
        try:
            store.record_order(replace(current, broker_order_id=broker_id, status=status, updated_at=utcnow()))
            return
        except ConflictError:
            continue


_flows: dict[int, DemoFlow] = {}


@hookimpl
def hostspec_config_schema() -> Mapping[str, Section]:
    return {"demo": DemoSettings}


@hookimpl
def hostspec_startup(host: Host) -> None:
    settings = host.config.get(DemoSettings)
    if not settings.enabled:
        return
    if host.config.broker.name not in BROKERS:
        log.warning("the demo order flow runs against the %s brokers only; not started", " or ".join(BROKERS))
        return
    assert host.store is not None
    state = host.store.load()
    first = "D-0001"
    if first in state.orders or first in state.archived.values():
        reset = "tradehost paper reset --config " + str(host.config.path)
        message = (f"this store already holds the demo's orders from an earlier run ({first} ...): "
                   f"'{reset}' starts a fresh account; the demo flow is not started")
        log.warning("%s", message)
        host.emit(Event.of(DemoFlowPayload(summary=message), stable_id("demo", message), utcnow()))
        return
    flow = DemoFlow(host, settings)
    _flows[id(host)] = flow
    flow.start()


@hookimpl(tryfirst=True)
def hostspec_shutdown(host: Host) -> None:
    flow = _flows.pop(id(host), None)
    if flow is not None:
        flow.stop()

