"""The HTTP endpoint of ``monitoring.address``: ``/metrics`` (Prometheus text format), ``/healthz``
(200, or 503 with the reason) and ``/readyz``, served by the standard library on a daemon thread."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from hostspec.errors import ResourceError
from recon_plugin.ops.health import Health
from recon_plugin.ops.settings import parse_address

log = logging.getLogger("recon.monitoring")

Exposition = Callable[[], tuple[bytes, str]]
"""The metrics page: its body and content type."""


class MonitoringServer:
    """Listens on ``address`` as soon as it is made (``ResourceError`` when the port is taken); serves on
    a daemon thread after ``start``; ``close`` stops it."""

    def __init__(self, address: str, health: Health, metrics: Exposition | None) -> None:
        host, port = parse_address(address)
        handler = type("Handler", (_Handler,), {"health": health, "metrics": metrics})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            why = "address in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ResourceError(f"monitoring.address {address}: cannot listen: {why}") from None
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="recon-monitoring", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()
        log.info("monitoring on %s (/metrics, /healthz, /readyz)", self.url)

    def close(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    health: Health
    metrics: Exposition | None

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics" and self.metrics is not None:
            body, content_type = self.metrics()
            self._send(200, body, content_type)
        elif path in ("/healthz", "/readyz"):
            status = self.health.status()
            good = status.healthy if path == "/healthz" else status.ready and status.healthy
            reason = status.reason if path == "/healthz" or not status.healthy else (
                "ok" if status.ready else "startup reconciliation not finished")
            self._send(200 if good else 503, f"{reason}\n".encode(), "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # scrapes are not worth a log line each
        log.debug("%s " + format, self.address_string(), *args)
