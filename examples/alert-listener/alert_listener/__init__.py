"""An example listener plugin: subscribes to the reconciler's signals and

- appends an alert line (JSON) to a file for every event worth a person's attention, dropping
  duplicates by ``event_id`` (delivery is at least once: the same event can arrive twice around a
  crash);
- keeps a per-symbol "hold new orders" flag while any order on that symbol is unresolved (missing
  from the broker's book, LOST, or disputed), so that a risk plugin can refuse new orders there:
  ``alert_listener.is_held(host, "INFY")``. Each change of the set is also written to the file and
  announced to the host's event sinks as a ``symbol-hold`` event, a kind of its own (``SymbolHold``).

Receivers run on the reconciler's thread, so they only append a line and read the store's cached
state. Configuration (all optional)::

    alerts:
      path: var/alerts.jsonl
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from hostspec import Event, OrderStatus, hookimpl, setting
from hostspec.events import Payload
from hostspec.host import Host
from hostspec.model import stable_id, utcnow
from recon_plugin import signals
from recon_plugin.events import (
    BrokerSessionExpired,
    OrderRejected,
    PositionSynced,
    ReconciliationDiscrepancy,
    ReconciliationError,
)
from recon_plugin.plugin import reconciler_for

ALERT_KINDS = tuple(payload.kind for payload in (ReconciliationDiscrepancy, OrderRejected, PositionSynced,
                                                 BrokerSessionExpired, ReconciliationError))


@dataclass(frozen=True)
class AlertSettings:
    """The ``alerts`` section."""

    path: str = setting("var/alerts.jsonl", "where alert lines are appended")


_listeners: dict[int, AlertListener] = {}


@dataclass(frozen=True, kw_only=True)
class SymbolHold(Payload):
    """The symbols on which new orders should wait, announced each time the set changes."""

    kind: ClassVar[str] = "symbol-hold"
    held: list[str]


class AlertListener:
    def __init__(self, host: Host, path: Path) -> None:
        self.host = host
        self.path = path
        self.held: frozenset[str] = frozenset()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def connect(self) -> None:
        for kind in ALERT_KINDS:
            signals.BY_KIND[kind].connect(self.on_alert, weak=False)
        signals.cycle_finished.connect(self.on_cycle, weak=False)

    def disconnect(self) -> None:
        for kind in ALERT_KINDS:
            signals.BY_KIND[kind].disconnect(self.on_alert)
        signals.cycle_finished.disconnect(self.on_cycle)

    def _mine(self, sender: Any) -> bool:
        return sender is reconciler_for(self.host)  # another host in this process has its own listener

    def on_alert(self, sender: Any, event: Event, payload: Payload, **extra: Any) -> None:
        if not self._mine(sender):
            return
        with self._lock:
            if event.event_id in self._seen:
                return
            self._seen[event.event_id] = None
            if len(self._seen) > 10_000:
                self._seen.popitem(last=False)
        self._write({"at": event.at.isoformat(), "kind": event.kind, "id": event.event_id,
                     "symbol": event.symbol, "order_id": event.order_id, "summary": payload.summary})

    def on_cycle(self, sender: Any, **extra: Any) -> None:
        if not self._mine(sender):
            return
        state = self.host.store.load()
        held = frozenset(o.symbol for o in state.orders.values()
                         if o.missing_count or o.status is OrderStatus.LOST or o.open_discrepancy)
        if held == self.held:
            return
        added, released = sorted(held - self.held), sorted(self.held - held)
        self.held = held
        summary = ", ".join([*(f"hold {s}" for s in added), *(f"release {s}" for s in released)])
        self._write({"at": utcnow().isoformat(), "kind": "symbol-hold", "hold": added, "release": released,
                     "held": sorted(held)})
        self.host.emit(Event.of(SymbolHold(held=sorted(held), summary=summary), stable_id("symbol-hold", sorted(held)),
                                utcnow()))

    def _write(self, line: dict[str, Any]) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as handle:
                handle.write(json.dumps(line) + "\n")


def is_held(host: Host, symbol: str) -> bool:
    """Whether new orders on ``symbol`` should wait: an order on it is unresolved."""
    listener = _listeners.get(id(host))
    return listener is not None and symbol in listener.held


@hookimpl
def hostspec_config_schema() -> dict[str, type]:
    return {"alerts": AlertSettings}


@hookimpl(tryfirst=True)  # before the reconciler's startup cycle, so nothing it finds is missed
def hostspec_startup(host: Host) -> None:
    listener = AlertListener(host, Path(host.config.get(AlertSettings).path))
    listener.connect()
    _listeners[id(host)] = listener


@hookimpl(trylast=True)
def hostspec_shutdown(host: Host) -> None:
    listener = _listeners.pop(id(host), None)
    if listener is not None:
        listener.disconnect()
