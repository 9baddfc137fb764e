"""Kite's postbacks: an opt-in HTTP receiver (``broker.kite.postback_address``, e.g. ``127.0.0.1:8765``;
put a TLS-terminating proxy in front for Kite's HTTPS postback URL) that delivers verified order
updates to the same ``PushSink`` as the WebSocket.

Kite POSTs the order as raw JSON with ``checksum`` = SHA-256 hex of ``order_id + order_timestamp +
api_secret``. The receiver recomputes it and compares in constant time (``hmac.compare_digest``).
Anything else (a wrong or missing checksum, a body that is not a JSON order, a body over 64 KiB) is
answered 400, counted (``refused``), logged without the secret, and reaches nothing: a refused
postback changes nothing. A verified one is answered 200 and handed to the sink.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hostspec.broker import PushSink
from hostspec.model import BrokerOrder
from hostspec.secrets import redact, register_secret
from recon_plugin.brokers.kite.statuses import order_from_kite

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


class Refused(Exception):
    """Why a postback is refused (the message never holds the secret)."""


def expected_checksum(order_id: str, order_timestamp: str, api_secret: str) -> str:
    return hashlib.sha256(f"{order_id}{order_timestamp}{api_secret}".encode()).hexdigest()


def verify(body: bytes, api_secret: str) -> BrokerOrder:
    """The order a postback body carries, when its checksum is right; raises ``Refused`` otherwise."""
    try:
        payload = json.loads(body)
    except ValueError:
        raise Refused("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise Refused("the body is not a JSON object")
    order_id, stamp, checksum = payload.get("order_id"), payload.get("order_timestamp"), payload.get("checksum")
    if not isinstance(checksum, str) or order_id is None or stamp is None:
        raise Refused("no checksum, order_id or order_timestamp")
    expected = expected_checksum(str(order_id), str(stamp), api_secret)
    if not hmac.compare_digest(checksum.encode(), expected.encode()):
        raise Refused(f"wrong checksum (order {redact(str(order_id))[:40]})")
    try:
        return order_from_kite(payload)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Refused(f"an unreadable order ({type(exc).__name__})") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone mid-request (a reset, a timeout): logged quietly, not printed to stderr."""
        log.debug("postback: a connection from %s ended badly", client_address[0] if client_address else "?")


class PostbackReceiver:
    """The HTTP receiver (see the module's docstring): its own server thread, started and stopped
    with the push channel."""

    def __init__(self, address: tuple[str, int], api_secret: str) -> None:
        register_secret(api_secret)
        self.address = address
        self.counts: Counter[str] = Counter()  # delivered, refused
        self._secret = api_secret
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostbackReceiver(address={self.address!r})"

    @property
    def url(self) -> str:
        """Where it listens (the bound port, when the configured one was 0)."""
        port = self._server.server_port if self._server else self.address[1]
        return f"http://{self.address[0]}:{port}/"

    def start(self, sink: PushSink) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("postback: " + format, *args)

            def do_POST(self) -> None:
                receiver._receive(self, sink)

        server = _Server(self.address, Handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="kite-postbacks", daemon=True)
        self._thread.start()
        log.info("Kite postbacks: listening on %s", self.url)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(2)
        self._server = self._thread = None

    def _receive(self, request: BaseHTTPRequestHandler, sink: PushSink) -> None:
        try:
            length = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        try:
            if not 0 < length <= MAX_BODY:
                raise Refused("no body, or a body over 64 KiB")
            order = verify(request.rfile.read(length), self._secret)
        except Refused as refused:
            with self._lock:
                self.counts["refused"] += 1
            log.warning("Kite postback refused: %s", refused)
            request.close_connection = length < 0 or length > MAX_BODY  # its body was not read
            self._answer(request, 400, {"status": "error", "message": "refused"})
            return
        with self._lock:
            self.counts["delivered"] += 1
        self._answer(request, 200, {"status": "success"})
        try:
            sink.order(order)
        except Exception:
            log.exception("the push sink failed on a postback")

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)


def parse_address(value: str) -> tuple[str, int]:
    """``"host:port"`` as a socket address; raises ``ValueError`` naming what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port, e.g. 127.0.0.1:8765")
    return host.strip("[]"), int(port)
