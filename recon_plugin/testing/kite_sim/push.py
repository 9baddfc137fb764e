"""The simulator's push channel: Kite's WebSocket (``ws://127.0.0.1:PORT?api_key=…&access_token=…``,
a port of its own, ``KiteSimulator.ws_url``), with 1-byte binary heartbeats and a text frame
``{"type": "order", "data": {…}}`` on every change the simulator makes to an order (placement, each
interim status, fills, cancels, the broker's square-offs), as Kite's postback payload (``wire``'s
``push_payload``: ``UPDATE`` for a partial fill or a modification, ``unfilled_quantity``, a blank
``checksum``).

Faults on demand (``inject``): see ``PUSH_FAULTS``. ``send_state(order_id, index)`` pushes an old
state of an order (a push older than the last poll), ``send_text`` any frame.

It runs on ``websockets``' threaded server (a product dependency): one thread for the server, one
per connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit

from recon_plugin.testing.kite_sim.wire import push_payload

if TYPE_CHECKING:
    from websockets.http11 import Request, Response
    from websockets.sync.server import Server, ServerConnection

log = logging.getLogger("recon_plugin.testing.kite_simulator")
WIRE_LOG = logging.getLogger("recon_plugin.testing.kite_simulator.ws")
WIRE_LOG.setLevel(logging.WARNING)  # websockets' debug lines quote the handshake's query: the credentials
HEARTBEAT = b"\x00"  # Kite's heartbeat: a 1-byte binary frame
PUSH_FAULTS = {
    "drop": "every open connection is cut (no close frame); clients may connect again",
    "refuse": "the next connection attempts are refused at the handshake (HTTP 503)",
    "silence": "open connections get nothing (no heartbeat, no order) until clear_faults(), the socket stays up",
    "delay": "the next order messages are sent delay_seconds late",
    "duplicate": "the next order messages are sent twice",
    "reorder": "the next order message is held and sent after the one that follows it",
    "before-book": "the next new order's push goes out while GET /orders leaves it out (sim.hide(id, False))",
    "stale": "the next order message carries the order's previous state instead of its current one",
}


class Account(Protocol):
    """What the push server reads of the simulator (``KiteSimulator``)."""

    api_key: str
    access_token: str
    lock: threading.RLock
    histories: dict[str, list[dict[str, Any]]]
    hidden: set[str]


@dataclass
class _Fault:
    name: str
    remaining: int


class _Client:
    """One connected client: its outgoing queue, drained by its connection's thread."""

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.outbox: queue.Queue[str | None] = queue.Queue()


class PushServer:
    """The simulator's WebSocket (see the module's docstring)."""

    def __init__(self, sim: Account, heartbeat_seconds: float = 1.0) -> None:
        self.sim = sim
        self.heartbeat_seconds = heartbeat_seconds
        self.delay_seconds = 0.2
        self.sent: list[dict[str, Any]] = []  # every order message sent (the payloads), for tests
        self.connections = 0  # accepted, in total
        self._clients: set[_Client] = set()
        self._faults: list[_Fault] = []
        self._silent = False
        self._held: str | None = None  # a message held back by "reorder"
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        from websockets.sync.server import serve

        self._server = serve(self._serve, "127.0.0.1", port, process_request=self._check, compression=None,
                             ping_interval=None, close_timeout=1, logger=WIRE_LOG)
        self._thread = threading.Thread(target=self._server.serve_forever, name="kite-sim-ws", daemon=True)
        self._thread.start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self.drop()
        if self._thread is not None:
            self._thread.join(2)
        self._server = None

    # -- faults and the test's hand ----------------------------------------------------------------

    def inject(self, fault: str, times: int = 1) -> None:
        """``fault`` (see ``PUSH_FAULTS``) for the next ``times`` messages or connections; "drop" acts
        at once, "silence" lasts until ``clear_faults``."""
        if fault not in PUSH_FAULTS:
            raise ValueError(f"unknown push fault {fault!r}; known: {', '.join(PUSH_FAULTS)}")
        if fault == "drop":
            self.drop()
            return
        with self._lock:
            if fault == "silence":
                self._silent = True
            else:
                self._faults.append(_Fault(fault, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._silent = False

    def drop(self) -> None:
        """Cut every open connection at the socket (the client sees the connection lost)."""
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.connection.socket.shutdown(socket.SHUT_RDWR)
            client.outbox.put(None)

    @property
    def clients(self) -> int:
        """Connections open now."""
        with self._lock:
            return len(self._clients)

    def send_text(self, text: str) -> None:
        """Any text frame to every client (an ``error`` or ``message`` frame, garbage ...)."""
        self._broadcast(text)

    def send_state(self, order_id: str, index: int = -2) -> None:
        """Push the state at ``index`` of the order's history (by default the one before the
        current: a push older than the last poll)."""
        with self.sim.lock:
            state = dict(self.sim.histories[order_id][index])
        self._send_order(state)

    # -- the simulator's notifications -------------------------------------------------------------

    def order_changed(self, order: dict[str, Any], previous: dict[str, Any] | None) -> None:
        """Called by the simulator (under its lock) with the order's new state, and its state before."""
        if previous is None and self._take({"before-book"}):
            self.sim.hidden.add(order["order_id"])
        if previous is not None and self._take({"stale"}):
            order = previous
        self._send_order(order)

    def _send_order(self, order: dict[str, Any]) -> None:
        payload = push_payload(order)
        text = json.dumps({"type": "order", "data": payload})
        with self._lock:
            self.sent.append(payload)
        fault = self._take({"delay", "duplicate", "reorder"})
        if fault == "delay":
            timer = threading.Timer(self.delay_seconds, self._broadcast, (text,))
            timer.daemon = True
            timer.start()
            return
        if fault == "reorder":
            with self._lock:
                self._held = text
            return
        with self._lock:
            held, self._held = self._held, None
        self._broadcast(text)
        if held is not None:
            self._broadcast(held)
        if fault == "duplicate":
            self._broadcast(text)

    def _take(self, names: set[str]) -> str | None:
        with self._lock:
            for fault in self._faults:
                if fault.name in names:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault.name
        return None

    def _broadcast(self, text: str) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.outbox.put(text)

    # -- connections -------------------------------------------------------------------------------

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        """Kite's handshake: the API key and access token in the query; anything else is refused."""
        query = {k: v[-1] for k, v in parse_qs(urlsplit(request.path).query).items()}
        if self._take({"refuse"}):
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Service unavailable (simulated)\n")
        if query.get("api_key") != self.sim.api_key or query.get("access_token") != self.sim.access_token:
            return connection.respond(HTTPStatus.FORBIDDEN, "Invalid api_key or access_token\n")
        return None

    def _serve(self, connection: ServerConnection) -> None:
        client = _Client(connection)
        with self._lock:
            self._clients.add(client)
            self.connections += 1
        try:
            next_beat = time.monotonic() + self.heartbeat_seconds
            while True:
                try:
                    text = client.outbox.get(timeout=max(next_beat - time.monotonic(), 0))
                except queue.Empty:
                    text = ""
                if text is None:
                    return
                with self._lock:
                    silent = self._silent
                if silent:  # nothing goes out, not even a heartbeat
                    next_beat = time.monotonic() + self.heartbeat_seconds
                    continue
                if text:
                    connection.send(text)
                if time.monotonic() >= next_beat:
                    connection.send(HEARTBEAT)
                    next_beat = time.monotonic() + self.heartbeat_seconds
        except Exception as exc:  # the client went away
            log.debug("kite-sim: push connection ended: %s", type(exc).__name__)
        finally:
            with self._lock:
                self._clients.discard(client)
