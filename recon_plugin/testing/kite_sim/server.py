"""The simulator's HTTP face: Kite's envelopes, headers and status codes on 127.0.0.1, the
injected faults, the rate limits, and the session route; everything else is ``KiteSimulator.route``."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from hostspec.calendar import Clock
from recon_plugin.testing.kite_sim.limits import RateLimits
from recon_plugin.testing.kite_sim.wire import TOO_MANY_REQUESTS, USER_ID, error, kite_time

log = logging.getLogger("recon_plugin.testing.kite_simulator")


class Account(Protocol):
    """What the HTTP face asks of the simulated account (``simulator.KiteSimulator``)."""

    api_key: str
    access_token: str
    api_secret: str
    slow_seconds: float
    clock: Clock
    lock: threading.RLock
    requests: list[tuple[str, str]]
    limits: RateLimits

    def take_fault(self, path: str) -> str | None: ...

    def route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]: ...


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KiteSimulator/1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the request log instead
        log.debug("kite-sim: " + format, *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        sim: Account = self.server.sim  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        form = {k: v[-1] for k, v in (parse_qs(url.query) | parse_qs(body)).items()}
        with sim.lock:
            sim.requests.append((method, url.path))
        if not sim.limits.admit(method, url.path):
            self._json(429, error(TOO_MANY_REQUESTS, "NetworkException"))
            return
        fault = sim.take_fault(url.path)
        if fault == "drop":
            self.close_connection = True
            return
        if fault == "slow":
            time.sleep(sim.slow_seconds)
        if fault in ("429", "token", "5xx", "html", "no-error-type"):
            self._fault(fault)
            return
        if url.path == "/session/token" and method == "POST":
            self._session(sim, form)
            return
        if self.headers.get("Authorization") != f"token {sim.api_key}:{sim.access_token}":
            self._json(403, error("Incorrect `api_key` or `access_token`.", "TokenException"))
            return
        try:
            status, data = sim.route(method, url.path, form)
        except LookupError:
            self._json(404, error("Route not found", "GeneralException"))
            return
        if status != 200:
            self._json(status, data)
            return
        if fault == "zero-timestamp" and isinstance(data, list):
            data = [{**row, "order_timestamp": "0000-01-01 09:35:36"} for row in data]
        if fault == "data-null":
            data = None
        if fault == "malformed-json":
            self._send(200, b"{not json", "application/json")
        elif fault == "no-content-type":
            self._send(200, json.dumps({"status": "success", "data": data}).encode(), None)
        else:
            self._json(200, {"status": "success", "data": data})

    def _session(self, sim: Account, form: dict[str, str]) -> None:
        expected = hashlib.sha256(f"{sim.api_key}{form.get('request_token', '')}{sim.api_secret}".encode()).hexdigest()
        if form.get("api_key") != sim.api_key or form.get("checksum") != expected:
            self._json(403, error("Invalid `checksum`.", "TokenException"))
            return
        self._json(200, {"status": "success", "data": {
            "user_id": USER_ID, "user_name": "Simulated User", "api_key": sim.api_key,
            "access_token": sim.access_token, "public_token": "sim_public", "refresh_token": "",
            "login_time": kite_time(sim.clock.now()), "enctoken": ""}})

    def _fault(self, fault: str) -> None:
        if fault == "429":
            self._json(429, error(TOO_MANY_REQUESTS, "NetworkException"))
        elif fault == "token":
            self._json(403, error("Incorrect `api_key` or `access_token`.", "TokenException"))
        elif fault == "5xx":
            self._json(503, error("Request failed (kitetrade-oms)", "NetworkException"))
        elif fault == "html":
            self._send(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
        else:
            self._json(500, {"status": "error", "message": "boom"})

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str | None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
