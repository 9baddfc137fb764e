"""An example listener plugin: subscribes to the reconciler's signals and

- appends an alert line (JSON) to a file for every event worth a person's attention, dropping
  duplicates by ``event_id`` (delivery is at least once: the same event can arrive twice around a
  crash), across restarts too: the file is the seen-set's durable copy (see ``AlertListener``);
- keeps a per-symbol "hold new orders" flag while any order on that symbol is unresolved (missing
  from the broker's book, LOST, or disputed), so that a risk plugin can refuse new orders there:
  ``alert_listener.is_held(host, "INFY")``. Each change of the set is also written to the file and
  announced to the host's event sinks as a ``symbol-hold`` event, a kind of its own (``SymbolHold``).

Receivers run on the reconciler's thread, so they only append a line and read the store's cached
state. Configuration (all optional)::

    alerts:
      path: var/alerts.jsonl
      announce: false   # true: each change of the held symbols is also a ``symbol-hold`` event

Installed, it says once at startup where its alerts and holds go (one log line), and stays quiet on
the console unless ``announce`` is set.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

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

log = logging.getLogger("alerts")
ALERT_KINDS = tuple(payload.kind for payload in (ReconciliationDiscrepancy, OrderRejected, PositionSynced,
                                                 BrokerSessionExpired, ReconciliationError))


@dataclass(frozen=True)
class AlertSettings:
    """The ``alerts`` section."""

    path: str = setting("var/alerts.jsonl", "where alert lines are appended")
    announce: bool = setting(False, "also announce each change of the held symbols to the host's event sinks "
                                    "(a 'symbol-hold' line in tradehost run)")


_listeners: dict[int, AlertListener] = {}
SEEN_LIMIT = 10_000  # event ids remembered
TAIL_BYTES = 4 * 1024 * 1024  # how much of the file's end is read back at startup for them


@dataclass(frozen=True, kw_only=True)
class SymbolHold(Payload):
    """The symbols on which new orders should wait, announced each time the set changes."""

    kind: ClassVar[str] = "symbol-hold"
    held: list[str]


class AlertListener:
    """The alert file and the hold flags of one host.

    The seen-set survives a crash because the alert file is its durable copy: an alert line carries
    its event's id, and at startup the ids of the file's last lines are read back. Appending the line
    is one write, so an alert is written and marked seen together, atomically: a separate seen-file
    would need a second write, and a crash between the two would either repeat the alert (seen-file
    second) or lose it (seen-file first). A line torn by a crash is no alert: it is cut before the next
    append, and the event, delivered again, is written whole.
    """

    def __init__(self, host: Host, path: Path, announce: bool = False) -> None:
        self.host = host
        self.path = path
        self.announce = announce
        self.held: frozenset[str] = frozenset()
        self._seen: OrderedDict[str, None] = OrderedDict((i, None) for i in _ids_written(path))
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
            self._append({"at": event.at.isoformat(), "kind": event.kind, "id": event.event_id,
                          "symbol": event.symbol, "order_id": event.order_id, "summary": payload.summary})
            self._seen[event.event_id] = None  # once written: an alert that failed to write is not seen
            if len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)

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
        with self._lock:
            self._append({"at": utcnow().isoformat(), "kind": "symbol-hold", "hold": added, "release": released,
                          "held": sorted(held)})
        if self.announce:
            self.host.emit(Event.of(SymbolHold(held=sorted(held), summary=summary),
                                    stable_id("symbol-hold", sorted(held)), utcnow()))

    def _append(self, line: dict[str, Any]) -> None:
        """One line, in one write, durably; a torn last line (a crash mid-append) is cut first."""
        data = (json.dumps(line) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b", buffering=0) as handle:
            _cut_torn_tail(handle)
            view = memoryview(data)
            while view:
                view = view[handle.write(view) or 0:]
            os.fsync(handle.fileno())


def _cut_torn_tail(handle: BinaryIO) -> None:
    """Cut what follows the last complete line of an alert file open for update."""
    end = handle.seek(0, os.SEEK_END)
    if end:
        handle.seek(end - 1)
        if handle.read(1) != b"\n":
            handle.seek(max(0, end - TAIL_BYTES))
            tail = handle.read()
            handle.truncate(end - len(tail) + tail.rfind(b"\n") + 1)


def _ids_written(path: Path) -> list[str]:
    """The event ids of the last alerts in ``path`` (at most ``SEEN_LIMIT``), read from its tail; a line
    torn by a crash is cut first."""
    try:
        with path.open("r+b", buffering=0) as handle:
            _cut_torn_tail(handle)
    except FileNotFoundError:
        return []
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - TAIL_BYTES))
        lines = handle.read().split(b"\n")
    ids = []
    for line in lines[1:] if size > TAIL_BYTES else lines:  # the first line of a tail may be cut
        try:
            alert = json.loads(line)
        except ValueError:  # torn by a crash: never an alert
            continue
        if isinstance(alert, dict) and isinstance(alert.get("id"), str):
            ids.append(alert["id"])
    return ids[-SEEN_LIMIT:]


def is_held(host: Host, symbol: str) -> bool:
    """Whether new orders on ``symbol`` should wait: an order on it is unresolved."""
    listener = _listeners.get(id(host))
    return listener is not None and symbol in listener.held


@hookimpl
def hostspec_config_schema() -> dict[str, type]:
    return {"alerts": AlertSettings}


@hookimpl(tryfirst=True)  # before the reconciler's startup cycle, so nothing it finds is missed
def hostspec_startup(host: Host) -> None:
    settings = host.config.get(AlertSettings)
    listener = AlertListener(host, Path(settings.path), settings.announce)
    listener.connect()
    log.info("alert-listener (plugin 'alerts', from examples/alert-listener): alerts and symbol holds go to %s%s",
             settings.path, "" if settings.announce else " (alerts.announce: true shows holds as events)")
    _listeners[id(host)] = listener


@hookimpl(trylast=True)
def hostspec_shutdown(host: Host) -> None:
    listener = _listeners.pop(id(host), None)
    if listener is not None:
        listener.disconnect()
