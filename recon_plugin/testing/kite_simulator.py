"""A Kite Connect simulator: a local HTTP server that the real ``kiteconnect`` client talks to.

It serves the routes the Kite broker uses (``/orders``, ``/orders/{id}``, ``/orders/{id}/trades``,
``/trades``, ``/portfolio/positions``, order placement, modification and cancellation,
``/user/profile``, ``/session/token``) with Kite's envelopes, headers and status codes, on 127.0.0.1
only. Its order book evolves, by the test's hand (``fill``, ``set_status``, ``cancel`` ...) or by
itself (``auto=True``), with consistent trades and positions. Every fault of the client's failure
matrix can be injected on demand (``inject``): see ``FAULTS``.

Run it with ``tradehost kite-sim --port PORT``, or in tests with the ``kite_sim`` fixture (from
``recon_plugin.testing.pytest_plugin``, which pytest loads by itself). It uses the standard library
only, so a live demo can serve it without any test dependency.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)
IST = timezone(timedelta(hours=5, minutes=30))

# The credentials of the ``kite_sim`` fixture's simulator: recognisable, so that a test can search
# for them in everything produced (they must never appear).
SIM_API_KEY = "simkey_7Qx2"
SIM_ACCESS_TOKEN = "simtoken_Zr81pW"

FAULTS = {
    "429": "HTTP 429 NetworkException 'Too many requests' (rate limit)",
    "token": "HTTP 403 TokenException (session expired or logged out)",
    "5xx": "HTTP 503 NetworkException 'Request failed (kitetrade-oms)'",
    "html": "HTTP 502 text/html gateway page",
    "no-content-type": "HTTP 200 JSON body without a Content-Type header",
    "malformed-json": "HTTP 200 application/json body that is not JSON",
    "data-null": "HTTP 200 {'status': 'success', 'data': null}",
    "no-error-type": "HTTP 500 error envelope without error_type",
    "slow": "a response slower than the client's timeout",
    "drop": "the connection closed without a response",
    "zero-timestamp": "order timestamps of '0000-01-01 09:35:36' (kiteconnect issue #235)",
}
TERMINAL = {"COMPLETE", "CANCELLED", "REJECTED"}
PENDING_STEPS = ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING", "OPEN"]


@dataclass
class Fault:
    name: str
    remaining: int
    path: str | None  # only requests whose path starts with this


def _now() -> str:
    return datetime.now(IST).strftime("%Y-%m-%d %H:%M:%S")


class KiteSimulator:
    """The simulated Kite account and its HTTP server."""

    def __init__(self, api_key: str = "sim_api_key", access_token: str = "sim_access_token",
                 api_secret: str = "sim_api_secret", seed: int = 1, auto: bool = False,
                 tick_seconds: float = 0.5, slow_seconds: float = 3.0) -> None:
        self.api_key = api_key
        self.access_token = access_token
        self.api_secret = api_secret
        self.auto = auto
        self.tick_seconds = tick_seconds
        self.slow_seconds = slow_seconds
        self.rng = random.Random(seed)
        self.orders: dict[str, dict[str, Any]] = {}
        self.histories: dict[str, list[dict[str, Any]]] = {}
        self.trades: list[dict[str, Any]] = []
        self.adjustments: dict[tuple[str, str, str], int] = {}
        self.hidden: set[str] = set()  # in the order's history, left out of the order book
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self._next_id = 250102000000100
        self._next_trade = 10000000
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.ticks = 0

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1:``port`` (0: any free port); returns the root URL for the client."""
        server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        server.daemon_threads = True
        server.sim = self  # type: ignore[attr-defined]
        self._server = server
        self._threads.append(threading.Thread(target=server.serve_forever, name="kite-sim", daemon=True))
        if self.auto:
            self._threads.append(threading.Thread(target=self._tick_forever, name="kite-sim-clock", daemon=True))
        for t in self._threads:
            t.start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- the test's hand ---------------------------------------------------------------------------

    def add_order(self, symbol: str = "INFY", side: str = "BUY", quantity: int = 10, status: str = "OPEN",
                  tag: str | None = None, exchange: str = "NSE", product: str = "CNC",
                  price: float = 0.0, order_id: str | None = None) -> str:
        """An order in the book, as if placed from any app (the API or Kite's own terminal)."""
        with self.lock:
            oid = order_id or self._new_id()
            self.orders[oid] = {
                "account_id": "AB1234", "placed_by": "AB1234", "order_id": oid, "exchange_order_id": None,
                "parent_order_id": None, "status": status, "status_message": None, "status_message_raw": None,
                "order_timestamp": _now(), "exchange_update_timestamp": None, "exchange_timestamp": None,
                "variety": "regular", "modified": False, "exchange": exchange, "tradingsymbol": symbol,
                "instrument_token": int(hashlib.sha256(symbol.encode()).hexdigest()[:6], 16),
                "order_type": "LIMIT" if price else "MARKET", "transaction_type": side, "validity": "DAY",
                "validity_ttl": 0, "product": product, "quantity": quantity, "disclosed_quantity": 0,
                "price": price, "trigger_price": 0, "average_price": 0, "filled_quantity": 0,
                "pending_quantity": quantity, "cancelled_quantity": 0, "market_protection": 0, "meta": {},
                "tag": tag, "tags": [tag] if tag else [], "guid": f"sim{oid[-6:]}"}
            self.histories[oid] = []
            self._record(oid)
            return oid

    def set_status(self, order_id: str, status: str, message: str | None = None) -> None:
        with self.lock:
            order = self.orders[order_id]
            order["status"] = status
            order["status_message"] = message
            if status not in PENDING_STEPS[:3]:
                order["exchange_order_id"] = order["exchange_order_id"] or f"11{order_id[-14:]}"
            if status in ("CANCELLED", "REJECTED"):
                order["cancelled_quantity"] = order["quantity"] - order["filled_quantity"]
            self._touch(order_id)

    def fill(self, order_id: str, quantity: int, price: float) -> None:
        """A trade on the order; OPEN while partial, COMPLETE when whole."""
        with self.lock:
            order = self.orders[order_id]
            filled = order["filled_quantity"] + quantity
            value = order["average_price"] * order["filled_quantity"] + price * quantity
            order["filled_quantity"] = filled
            order["average_price"] = value / filled
            order["pending_quantity"] = max(order["quantity"] - filled, 0)
            self._next_trade += 1
            self.trades.append({
                "trade_id": str(self._next_trade), "order_id": order_id,
                "exchange_order_id": order["exchange_order_id"], "exchange": order["exchange"],
                "tradingsymbol": order["tradingsymbol"], "instrument_token": order["instrument_token"],
                "product": order["product"], "average_price": price, "quantity": quantity,
                "transaction_type": order["transaction_type"], "fill_timestamp": _now(),
                "order_timestamp": _now()[11:], "exchange_timestamp": _now()})
            self.set_status(order_id, "COMPLETE" if filled >= order["quantity"] else "OPEN")

    def cancel(self, order_id: str) -> None:
        self.set_status(order_id, "CANCELLED")

    def reject(self, order_id: str, message: str = "Insufficient funds (simulated)") -> None:
        self.set_status(order_id, "REJECTED", message)

    def hide(self, order_id: str, hidden: bool = True) -> None:
        """Leave an order out of ``GET /orders`` while its history still answers (a lagging book)."""
        with self.lock:
            (self.hidden.add if hidden else self.hidden.discard)(order_id)

    def remove(self, order_id: str) -> None:
        """Drop an order from the book and its history, as if the broker never had it."""
        with self.lock:
            self.orders.pop(order_id, None)
            self.histories.pop(order_id, None)

    def adjust_position(self, exchange: str, symbol: str, product: str, quantity: int) -> None:
        """Change a net position outside the order book (a conversion, an auto square-off)."""
        with self.lock:
            key = (exchange, symbol, product)
            self.adjustments[key] = self.adjustments.get(key, 0) + quantity

    def inject(self, fault: str, times: int = 1, path: str | None = None) -> None:
        """The next ``times`` requests (whose path starts with ``path``, if given) get ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        with self.lock:
            self.faults.append(Fault(fault, times, path))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    # -- state as Kite reports it ------------------------------------------------------------------

    def positions(self) -> dict[str, list[dict[str, Any]]]:
        with self.lock:
            books: dict[tuple[str, str, str], dict[str, Any]] = {}
            for t in self.trades:
                key = (t["exchange"], t["tradingsymbol"], t["product"])
                p = books.setdefault(key, {"buy_quantity": 0, "buy_value": 0.0, "sell_quantity": 0,
                                           "sell_value": 0.0, "instrument_token": t["instrument_token"]})
                side = "buy" if t["transaction_type"] == "BUY" else "sell"
                p[f"{side}_quantity"] += t["quantity"]
                p[f"{side}_value"] += t["quantity"] * t["average_price"]
            for key in self.adjustments:
                books.setdefault(key, {"buy_quantity": 0, "buy_value": 0.0, "sell_quantity": 0, "sell_value": 0.0,
                                       "instrument_token": 0})
            net = []
            for key, p in sorted(books.items()):
                quantity = p["buy_quantity"] - p["sell_quantity"] + self.adjustments.get(key, 0)
                side_qty, side_value = ((p["buy_quantity"], p["buy_value"]) if quantity >= 0
                                        else (p["sell_quantity"], p["sell_value"]))
                net.append({
                    "tradingsymbol": key[1], "exchange": key[0], "instrument_token": p["instrument_token"],
                    "product": key[2], "quantity": quantity, "overnight_quantity": 0, "multiplier": 1,
                    "average_price": side_value / side_qty if side_qty else 0, "close_price": 0, "last_price": 0,
                    "value": p["sell_value"] - p["buy_value"], "pnl": 0, "m2m": 0, "unrealised": 0, "realised": 0,
                    "buy_quantity": p["buy_quantity"], "buy_price": p["buy_value"] / p["buy_quantity"]
                    if p["buy_quantity"] else 0, "buy_value": p["buy_value"], "buy_m2m": p["buy_value"],
                    "sell_quantity": p["sell_quantity"], "sell_price": p["sell_value"] / p["sell_quantity"]
                    if p["sell_quantity"] else 0, "sell_value": p["sell_value"], "sell_m2m": p["sell_value"],
                    "day_buy_quantity": p["buy_quantity"], "day_buy_price": 0, "day_buy_value": p["buy_value"],
                    "day_sell_quantity": p["sell_quantity"], "day_sell_price": 0,
                    "day_sell_value": p["sell_value"]})
            return {"net": net, "day": net}

    # -- the automatic market (auto=True) --------------------------------------------------------

    def _tick_forever(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            self.tick()

    def tick(self) -> None:
        """One step of the automatic market: working orders advance, fill in parts, some are rejected
        or cancelled."""
        with self.lock:
            self.ticks += 1
            for oid, order in list(self.orders.items()):
                status = order["status"]
                if status in TERMINAL:
                    continue
                if status in PENDING_STEPS[:3]:
                    if status == "VALIDATION PENDING" and self.rng.random() < 0.08:
                        self.reject(oid, "RMS: margin exceeds (simulated)")
                    else:
                        self.set_status(oid, PENDING_STEPS[PENDING_STEPS.index(status) + 1])
                elif self.rng.random() < 0.05 and order["filled_quantity"]:
                    self.cancel(oid)
                elif self.rng.random() < 0.5:
                    remaining = order["quantity"] - order["filled_quantity"]
                    self.fill(oid, self.rng.randint(1, remaining), self.market_price(order["tradingsymbol"]))

    def market_price(self, symbol: str) -> float:
        base = 100 + int(hashlib.sha256(symbol.encode()).hexdigest()[:6], 16) % 3000
        return round(base + self.rng.randint(-40, 40) * 0.05, 2)

    # -- internals ---------------------------------------------------------------------------------

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _touch(self, order_id: str) -> None:
        order = self.orders[order_id]
        order["exchange_update_timestamp"] = _now()
        if order["exchange_order_id"]:
            order["exchange_timestamp"] = order["exchange_timestamp"] or _now()
        self._record(order_id)

    def _record(self, order_id: str) -> None:
        self.histories[order_id].append(dict(self.orders[order_id]))

    def take_fault(self, path: str) -> str | None:
        with self.lock:
            for fault in self.faults:
                if fault.remaining > 0 and (fault.path is None or path.startswith(fault.path)):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    return fault.name
        return None

    def route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        """(HTTP status, data) for an authorised request; raises LookupError for 404."""
        with self.lock:
            if method == "GET" and path == "/orders":
                return 200, [dict(o) for oid, o in self.orders.items() if oid not in self.hidden]
            if method == "GET" and path == "/trades":
                return 200, list(self.trades)
            if method == "GET" and path == "/portfolio/positions":
                return 200, self.positions()
            if method == "GET" and path == "/user/profile":
                return 200, {"user_id": "AB1234", "user_name": "Simulated User", "broker": "ZERODHA"}
            match = re.fullmatch(r"/orders/(\d+)(/trades)?", path)
            if method == "GET" and match:
                oid = match.group(1)
                if oid not in self.orders:
                    return 400, _error("Invalid `order_id`.", "InputException")
                if match.group(2):
                    return 200, [t for t in self.trades if t["order_id"] == oid]
                return 200, [dict(h) for h in self.histories[oid]]
            match = re.fullmatch(r"/orders/(\w+)(?:/(\d+))?", path)
            if match and method in ("POST", "PUT", "DELETE"):
                return self._order_write(method, match.group(2), form)
        raise LookupError(path)

    def _order_write(self, method: str, order_id: str | None, form: dict[str, str]) -> tuple[int, Any]:
        if method == "POST" and order_id is None:
            try:
                quantity = int(form["quantity"])
                side = form["transaction_type"]
                symbol = form["tradingsymbol"]
            except (KeyError, ValueError):
                return 400, _error("Missing or invalid order parameters.", "InputException")
            oid = self.add_order(symbol=symbol, side=side, quantity=quantity, status="PUT ORDER REQ RECEIVED",
                                 tag=form.get("tag") or None, exchange=form.get("exchange", "NSE"),
                                 product=form.get("product", "CNC"), price=float(form.get("price") or 0))
            return 200, {"order_id": oid}
        if order_id is None or order_id not in self.orders:
            return 500, _error("Couldn't find that `order_id`.", "OrderException")
        order = self.orders[order_id]
        if order["status"] in TERMINAL:
            return 400, _error(f"Order is already {order['status'].lower()}.", "InputException")
        if method == "DELETE":
            self.cancel(order_id)
        elif "quantity" in form:
            order["quantity"] = int(form["quantity"])
            order["modified"] = True
            self.set_status(order_id, "OPEN")
        return 200, {"order_id": order_id}


def _error(message: str, error_type: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "data": None, "error_type": error_type}


class _Handler(BaseHTTPRequestHandler):
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
        sim: KiteSimulator = self.server.sim  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        form = {k: v[-1] for k, v in parse_qs(body).items()}
        with sim.lock:
            sim.requests.append((method, url.path))
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
            self._json(403, _error("Incorrect `api_key` or `access_token`.", "TokenException"))
            return
        try:
            status, data = sim.route(method, url.path, form)
        except LookupError:
            self._json(404, _error("Route not found", "GeneralException"))
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

    def _session(self, sim: KiteSimulator, form: dict[str, str]) -> None:
        expected = hashlib.sha256(f"{sim.api_key}{form.get('request_token', '')}{sim.api_secret}".encode()).hexdigest()
        if form.get("api_key") != sim.api_key or form.get("checksum") != expected:
            self._json(403, _error("Invalid `checksum`.", "TokenException"))
            return
        self._json(200, {"status": "success", "data": {
            "user_id": "AB1234", "user_name": "Simulated User", "api_key": sim.api_key,
            "access_token": sim.access_token, "public_token": "sim_public", "refresh_token": "",
            "login_time": _now(), "enctoken": ""}})

    def _fault(self, fault: str) -> None:
        if fault == "429":
            self._json(429, _error("Too many requests", "NetworkException"))
        elif fault == "token":
            self._json(403, _error("Incorrect `api_key` or `access_token`.", "TokenException"))
        elif fault == "5xx":
            self._json(503, _error("Request failed (kitetrade-oms)", "NetworkException"))
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

