"""A Kite Connect simulator: a local HTTP server that the real ``kiteconnect`` client talks to.

It serves the routes the Kite broker uses (``/orders``, ``/orders/{id}``, ``/orders/{id}/trades``,
``/trades``, ``/portfolio/positions``, ``/portfolio/holdings``, order placement, modification and
cancellation, ``/user/profile``, ``/session/token``) with Kite's envelopes, headers and status codes,
on 127.0.0.1 only. Its order book evolves, by the test's hand (``fill``, ``set_status``, ``cancel``
...) or by itself (``auto=True``), with consistent trades, positions and holdings. Every fault of the
client's failure matrix can be injected on demand (``inject``): see ``FAULTS``.

**Trading days.** The simulator reads the time from ``clock`` (a ``hostspec.calendar.Clock``, the
system clock by default; every timestamp it writes is that clock's, in IST as Kite writes them) and
lives through the trading days of ``calendar`` (``IndiaCalendar.default()`` by default), with the day
model of ``recon_plugin.calendars.days`` and the broker's end of day of
``recon_plugin.brokers.overnight``. A test drives days by moving a ``ManualClock``::

    sim = KiteSimulator(clock=ManualClock(thursday_10am))
    sim.advance_to(friday_9am)   # sets the clock, then applies every moment due: returns what happened

Moving the clock by any other means is enough too: every request and every method of the test's
hand first brings the account up to the clock (``roll()``). On each trading day of each exchange
traded on, in order:

- **06:00, the day's book begins** (``DAY_START``): the previous day's orders and trades are gone;
  asking for one of them answers "Couldn't find that `order_id`." (HTTP 500 OrderException, or 400
  InputException with ``unknown_order_status=400``: both are reported in reality). CNC day positions
  leave ``positions`` for the holdings as ``t1_quantity``, and the previous T1 quantity is delivered
  (``realised_quantity``); NRML and MCX positions carry over (``net`` lists them with
  ``overnight_quantity``, the ``day`` list starts empty); MIS positions do not carry.
- **The open**: AMOs (``variety: amo``, placed outside the session, status ``AMO REQ RECEIVED``)
  start working (``OPEN``; ``variety`` stays ``amo``).
- **The square-off time**: working MIS orders are cancelled and open MIS positions are closed by the
  broker's own orders (no tag, ``placed_by`` not the account's user, a status message saying so);
  new MIS orders are rejected until the close.
- **The close**: the exchange cancels every unfinished order of the day (``CANCELLED``, "exchange
  mass cancel"); after-market orders for the next session stay.

Weekends and holidays have no moments: nothing moves until the next trading day begins. A regular
order placed outside the session is accepted (the test's hand decides its fate) and belongs to the
next session, like an AMO; AMOs start at the session's open (09:15 for equity, where Kite sends
equity MARKET and LIMIT AMOs at 09:00).

Run it with ``tradehost kite-sim --port PORT``, or in tests with the ``kite_sim`` fixture (from
``recon_plugin.testing.pytest_plugin``, which pytest loads by itself). It needs no test dependency
(the standard library and the product's own packages), so a live demo can serve it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from datetime import time as clock_time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hostspec.calendar import Clock, ManualClock, SystemClock
from hostspec.model import Holding, InstrumentKey, Position, Side
from recon_plugin.brokers.overnight import (
    EXCHANGE_MASS_CANCEL,
    MIS_BLOCKED_MESSAGE,
    SQUARE_OFF_CANCEL_MESSAGE,
    SQUARE_OFF_MESSAGE,
    Overnight,
    carry,
    overnight,
    roll_holding,
)
from recon_plugin.calendars.days import DAY_START, DayEvent, Moment, SessionCalendar, TradingDays
from recon_plugin.calendars.india import IndiaCalendar

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
AMO_STATUS = "AMO REQ RECEIVED"
USER_ID = "AB1234"
SQUARE_OFF_PLACED_BY = "RMS-SQUAREOFF"  # a broker's id, not the user's (Zerodha's real value is unconfirmed)
UNKNOWN_ORDER = "Couldn't find that `order_id`."
AMO_IN_SESSION = "AMOs are accepted only outside the market session (simulated)"


@dataclass
class Fault:
    name: str
    remaining: int
    path: str | None  # only requests whose path starts with this


def kite_time(at: datetime) -> str:
    """``at`` as Kite writes a timestamp: IST wall time, no zone."""
    return at.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


def _token(symbol: str) -> int:
    return int(hashlib.sha256(symbol.encode()).hexdigest()[:6], 16)


def _decimal(value: float) -> Decimal:
    """A float as the Decimal of its shortest text: what a JSON reader of it gets."""
    return Decimal(repr(value))


@dataclass
class _Book:
    """One instrument's activity in today's trades, in Kite's float figures."""

    buy_quantity: int = 0
    buy_value: float = 0.0
    sell_quantity: int = 0
    sell_value: float = 0.0


class KiteSimulator:
    """The simulated Kite account and its HTTP server (see the module's docstring for its days)."""

    def __init__(self, api_key: str = "sim_api_key", access_token: str = "sim_access_token",
                 api_secret: str = "sim_api_secret", seed: int = 1, auto: bool = False,
                 tick_seconds: float = 0.5, slow_seconds: float = 3.0, clock: Clock | None = None,
                 calendar: SessionCalendar | None = None, unknown_order_status: int = 500,
                 day_start: clock_time = DAY_START) -> None:
        if unknown_order_status not in (400, 500):
            raise ValueError("Kite answers an unknown order id with HTTP 500 (OrderException) or 400 (InputException)")
        self.api_key = api_key
        self.access_token = access_token
        self.api_secret = api_secret
        self.auto = auto
        self.tick_seconds = tick_seconds
        self.slow_seconds = slow_seconds
        self.clock: Clock = clock or SystemClock()
        self.days = TradingDays(calendar or IndiaCalendar.default(), day_start)
        self.unknown_order_status = unknown_order_status
        self.rng = random.Random(seed)
        self.orders: dict[str, dict[str, Any]] = {}  # the book: today's orders and the next session's AMOs
        self.histories: dict[str, list[dict[str, Any]]] = {}
        self.trades: list[dict[str, Any]] = []  # the trades of the orders in the book
        self.order_days: dict[str, date] = {}  # the trading date of each order in the book
        self.adjustments: dict[InstrumentKey, int] = {}  # outside the book, since the day began
        self.overnight: dict[InstrumentKey, Position] = {}  # positions carried into today (NRML, MCX)
        self.holdings: dict[tuple[str, str], Holding] = {}  # by (exchange, symbol)
        self.day_log: list[str] = []  # every day moment applied, in order: what ``roll`` returned
        self.hidden: set[str] = set()  # in the order's history, left out of the order book
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self._next_id = 250102000000100
        self._next_trade = 10000000
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._exchanges: set[str] = set()  # the exchanges the account has traded on: whose days matter
        self._rolled_to = self.clock.now()
        self._upcoming: DayEvent | None = None
        self._upcoming_known = False
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

    # -- trading days --------------------------------------------------------------------------------

    def roll(self) -> list[str]:
        """Bring the account up to the clock: apply every day moment (book start, open, square-off,
        close) of the exchanges traded on that is due by now and not yet applied, in order.

        Every request and every method of the test's hand calls it first, so moving the clock is
        enough; a test calls it to apply a moment without a request. Returns one line per thing that
        happened (also kept in ``day_log``)."""
        with self.lock:
            now = self.clock.now()
            if now <= self._rolled_to:
                return []
            if self._upcoming_known and (self._upcoming is None or self._upcoming.at > now):
                self._rolled_to = now  # nothing due: the common case costs one comparison
                return []
            done: list[str] = []
            for event in self.days.events(self._rolled_to, now, self._exchanges):
                done += self._apply(event)
            self._rolled_to = now
            self._upcoming = self.days.next_event(now, self._exchanges)
            self._upcoming_known = True
            self.day_log += done
            for line in done:
                log.info("kite-sim: %s", line)
            return done

    def advance_to(self, when: datetime) -> list[str]:
        """Move the simulator's ``ManualClock`` to ``when`` (never backwards) and apply every day
        moment due by then; returns what happened."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance_to needs the simulator to run on a ManualClock")
        self.clock.set(when)
        return self.roll()

    def trading_date(self, order_id: str) -> date:
        """The trading date of an order in the book (its exchange's, from its placement)."""
        with self.lock:
            return self.order_days[order_id]

    def _trading_on(self, exchange: str) -> None:
        if exchange not in self._exchanges:
            self._exchanges.add(exchange)
            self._upcoming_known = False

    def _apply(self, event: DayEvent) -> list[str]:
        if event.moment is Moment.DAY_START:
            return self._begin_day(event)
        ids = [oid for oid, o in self.orders.items()
               if o["exchange"] == event.exchange and self.order_days[oid] == event.day]
        if event.moment is Moment.OPEN:
            amos = [oid for oid in ids if self.orders[oid]["status"] == AMO_STATUS]
            for oid in amos:
                self._set_status(oid, "OPEN", None, event.at)
            return [f"{event}: {len(amos)} AMOs started working"] if amos else []
        if event.moment is Moment.SQUARE_OFF:
            return self._square_off(event, ids)
        working = [oid for oid in ids if self.orders[oid]["status"] not in TERMINAL]
        for oid in working:
            self._set_status(oid, "CANCELLED", EXCHANGE_MASS_CANCEL, event.at)
        return [f"{event}: the exchange cancelled {len(working)} unfinished orders"] if working else []

    def _square_off(self, event: DayEvent, ids: list[str]) -> list[str]:
        """Cancel the working MIS orders, then close every open MIS position with an order of the
        broker's own, filled at the instrument's last traded price."""
        working = [oid for oid in ids if self.orders[oid]["product"] == "MIS"
                   and self.orders[oid]["status"] not in TERMINAL]
        for oid in working:
            self._set_status(oid, "CANCELLED", SQUARE_OFF_CANCEL_MESSAGE, event.at)
        done = [f"{event}: {len(working)} working MIS orders cancelled"] if working else []
        books = self._books(t for t in self.trades if t["exchange"] == event.exchange)
        for key in sorted(books.keys() | self.adjustments.keys()):
            if key[0] != event.exchange or key[2] != "MIS":
                continue
            book = books.get(key, _Book())
            quantity = book.buy_quantity - book.sell_quantity + self.adjustments.get(key, 0)
            if quantity == 0:
                continue
            oid = self._add(key[1], "SELL" if quantity > 0 else "BUY", abs(quantity), "OPEN", None, key[0], "MIS",
                            0.0, None, "regular", event.at, placed_by=SQUARE_OFF_PLACED_BY)
            self.orders[oid]["status_message"] = SQUARE_OFF_MESSAGE
            self._fill(oid, abs(quantity), self._last_price(key), event.at)
            done.append(f"{event}: the broker squared off {quantity:+d} {key[1]} MIS (order {oid})")
        return done

    def _begin_day(self, event: DayEvent) -> list[str]:
        """The ended days' orders and trades leave the book; their positions roll overnight."""
        exchange, day = event.exchange, event.day
        ended = {oid for oid, d in self.order_days.items() if d < day and self.orders[oid]["exchange"] == exchange}
        trades = [t for t in self.trades if t["order_id"] in ended]
        self.trades = [t for t in self.trades if t["order_id"] not in ended]
        for oid in ended:
            del self.orders[oid], self.histories[oid], self.order_days[oid]
            self.hidden.discard(oid)
        # the ended day's positions: what carried into it, its fills, its adjustments
        positions = {k: p for k, p in self.overnight.items() if k[0] == exchange}
        for t in trades:
            key = (t["exchange"], t["tradingsymbol"], t["product"])
            positions[key] = (positions.get(key) or Position(*key)).with_fill(
                Side(t["transaction_type"]), t["quantity"], _decimal(t["average_price"]) * t["quantity"])
        for key in [k for k in self.adjustments if k[0] == exchange]:
            current = positions.get(key) or Position(*key)
            positions[key] = replace(current, quantity=current.quantity + self.adjustments.pop(key))
        carried = 0
        for key, position in positions.items():
            self.overnight.pop(key, None)
            if overnight(key[2]) is Overnight.CARRY and (leg := carry(position)) is not None:
                self.overnight[key] = leg
                carried += 1
        delivered = {k[1]: p for k, p in positions.items() if overnight(k[2]) is Overnight.HOLDINGS}
        for symbol in delivered.keys() | {s for (e, s) in self.holdings if e == exchange}:
            holding = roll_holding(self.holdings.pop((exchange, symbol), None), delivered.get(symbol), exchange,
                                   symbol)
            if holding is not None:
                self.holdings[(exchange, symbol)] = holding
        return [f"{event}: the book begins; {len(ended)} orders of ended days left it, {carried} positions "
                f"carried overnight, {len(delivered)} delivery positions moved to the holdings"]

    # -- the test's hand ---------------------------------------------------------------------------

    def add_order(self, symbol: str = "INFY", side: str = "BUY", quantity: int = 10, status: str | None = None,
                  tag: str | None = None, exchange: str = "NSE", product: str = "CNC",
                  price: float = 0.0, order_id: str | None = None, variety: str = "regular") -> str:
        """An order in the book, as if placed from any app (the API or Kite's own terminal), now.
        ``status`` defaults to OPEN (``AMO REQ RECEIVED`` for ``variety="amo"``)."""
        with self.lock:
            self.roll()
            status = status or (AMO_STATUS if variety == "amo" else "OPEN")
            return self._add(symbol, side, quantity, status, tag, exchange, product, price, order_id, variety,
                             self.clock.now())

    def _add(self, symbol: str, side: str, quantity: int, status: str, tag: str | None, exchange: str,
             product: str, price: float, order_id: str | None, variety: str, at: datetime,
             placed_by: str = USER_ID) -> str:
        oid = order_id or self._new_id()
        self._trading_on(exchange)
        self.orders[oid] = {
            "account_id": USER_ID, "placed_by": placed_by, "order_id": oid, "exchange_order_id": None,
            "parent_order_id": None, "status": status, "status_message": None, "status_message_raw": None,
            "order_timestamp": kite_time(at), "exchange_update_timestamp": None, "exchange_timestamp": None,
            "variety": variety, "modified": False, "exchange": exchange, "tradingsymbol": symbol,
            "instrument_token": _token(symbol),
            "order_type": "LIMIT" if price else "MARKET", "transaction_type": side, "validity": "DAY",
            "validity_ttl": 0, "product": product, "quantity": quantity, "disclosed_quantity": 0,
            "price": price, "trigger_price": 0, "average_price": 0, "filled_quantity": 0,
            "pending_quantity": quantity, "cancelled_quantity": 0, "market_protection": 0, "meta": {},
            "tag": tag, "tags": [tag] if tag else [], "guid": f"sim{oid[-6:]}"}
        self.histories[oid] = []
        self.order_days[oid] = self.days.trading_date(at, exchange)
        self._record(oid)
        return oid

    def set_status(self, order_id: str, status: str, message: str | None = None) -> None:
        with self.lock:
            self.roll()
            self._set_status(order_id, status, message, self.clock.now())

    def _set_status(self, order_id: str, status: str, message: str | None, at: datetime) -> None:
        order = self.orders[order_id]
        order["status"] = status
        order["status_message"] = message
        if status not in (*PENDING_STEPS[:3], AMO_STATUS):
            order["exchange_order_id"] = order["exchange_order_id"] or f"11{order_id[-14:]}"
        if status in ("CANCELLED", "REJECTED"):
            order["cancelled_quantity"] = order["quantity"] - order["filled_quantity"]
        self._touch(order_id, at)

    def fill(self, order_id: str, quantity: int, price: float) -> None:
        """A trade on the order now; OPEN while partial, COMPLETE when whole."""
        with self.lock:
            self.roll()
            self._fill(order_id, quantity, price, self.clock.now())

    def _fill(self, order_id: str, quantity: int, price: float, at: datetime) -> None:
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
            "transaction_type": order["transaction_type"], "fill_timestamp": kite_time(at),
            "order_timestamp": kite_time(at)[11:], "exchange_timestamp": kite_time(at)})
        self._set_status(order_id, "COMPLETE" if filled >= order["quantity"] else "OPEN", order["status_message"], at)

    def cancel(self, order_id: str) -> None:
        self.set_status(order_id, "CANCELLED")

    def reject(self, order_id: str, message: str = "Insufficient funds (simulated)") -> None:
        self.set_status(order_id, "REJECTED", message)

    def hide(self, order_id: str, hidden: bool = True) -> None:
        """Leave an order out of ``GET /orders`` while its history still answers (a lagging book)."""
        with self.lock:
            self.roll()
            (self.hidden.add if hidden else self.hidden.discard)(order_id)

    def remove(self, order_id: str) -> None:
        """Drop an order from the book and its history, as if the broker never had it."""
        with self.lock:
            self.roll()
            self.orders.pop(order_id, None)
            self.histories.pop(order_id, None)
            self.order_days.pop(order_id, None)
            self.trades = [t for t in self.trades if t["order_id"] != order_id]

    def adjust_position(self, exchange: str, symbol: str, product: str, quantity: int) -> None:
        """Change a net position outside the order book (a conversion, an auto square-off)."""
        with self.lock:
            self.roll()
            self._trading_on(exchange)
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
        """``GET /portfolio/positions``: ``net`` (carried positions with today's activity) and ``day``
        (today's activity only)."""
        with self.lock:
            self.roll()
            books = self._books(self.trades)
            net, day = [], []
            for key in sorted(books.keys() | self.adjustments.keys() | self.overnight.keys()):
                book, adjustment = books.get(key, _Book()), self.adjustments.get(key, 0)
                net.append(_position_row(key, book, self.overnight.get(key), adjustment))
                if key in books or key in self.adjustments:
                    day.append(_position_row(key, book, None, adjustment))
            return {"net": net, "day": day}

    def holdings_rows(self) -> list[dict[str, Any]]:
        """``GET /portfolio/holdings``, in the shape of Kite's official mock."""
        with self.lock:
            self.roll()
            stamp = kite_time(self.clock.now())[:10] + " 00:00:00"
            return [_holding_row(h, stamp) for _, h in sorted(self.holdings.items())]

    # -- the automatic market (auto=True) --------------------------------------------------------

    def _tick_forever(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            self.tick()

    def tick(self) -> None:
        """One step of the automatic market: working orders advance, fill in parts, some are rejected
        or cancelled. AMOs wait for their session's open."""
        with self.lock:
            self.roll()
            self.ticks += 1
            now = self.clock.now()
            for oid, order in list(self.orders.items()):
                status = order["status"]
                if status in TERMINAL or status == AMO_STATUS:
                    continue
                if status in PENDING_STEPS[:3]:
                    if status == "VALIDATION PENDING" and self.rng.random() < 0.08:
                        self._set_status(oid, "REJECTED", "RMS: margin exceeds (simulated)", now)
                    else:
                        self._set_status(oid, PENDING_STEPS[PENDING_STEPS.index(status) + 1], None, now)
                elif self.rng.random() < 0.05 and order["filled_quantity"]:
                    self._set_status(oid, "CANCELLED", None, now)
                elif self.rng.random() < 0.5:
                    remaining = order["quantity"] - order["filled_quantity"]
                    self._fill(oid, self.rng.randint(1, remaining), self.market_price(order["tradingsymbol"]), now)

    def market_price(self, symbol: str) -> float:
        base = 100 + int(hashlib.sha256(symbol.encode()).hexdigest()[:6], 16) % 3000
        return round(base + self.rng.randint(-40, 40) * 0.05, 2)

    # -- internals ---------------------------------------------------------------------------------

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def _touch(self, order_id: str, at: datetime) -> None:
        order = self.orders[order_id]
        order["exchange_update_timestamp"] = kite_time(at)
        if order["exchange_order_id"]:
            order["exchange_timestamp"] = order["exchange_timestamp"] or kite_time(at)
        self._record(order_id)

    def _record(self, order_id: str) -> None:
        self.histories[order_id].append(dict(self.orders[order_id]))

    @staticmethod
    def _books(trades: Iterable[dict[str, Any]]) -> dict[InstrumentKey, _Book]:
        books: dict[InstrumentKey, _Book] = {}
        for t in trades:
            book = books.setdefault((t["exchange"], t["tradingsymbol"], t["product"]), _Book())
            if t["transaction_type"] == "BUY":
                book.buy_quantity += t["quantity"]
                book.buy_value += t["quantity"] * t["average_price"]
            else:
                book.sell_quantity += t["quantity"]
                book.sell_value += t["quantity"] * t["average_price"]
        return books

    def _last_price(self, key: InstrumentKey) -> float:
        prices = [t["average_price"] for t in self.trades if (t["exchange"], t["tradingsymbol"], t["product"]) == key]
        return prices[-1] if prices else self.market_price(key[1])

    def take_fault(self, path: str) -> str | None:
        with self.lock:
            for fault in self.faults:
                if fault.remaining > 0 and (fault.path is None or path.startswith(fault.path)):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    return fault.name
        return None

    def unknown_order(self) -> tuple[int, dict[str, Any]]:
        """Kite's answer about an order id it does not hold (yesterday's, or never placed)."""
        if self.unknown_order_status == 400:
            return 400, _error(UNKNOWN_ORDER, "InputException")
        return 500, _error(UNKNOWN_ORDER, "OrderException")

    def route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        """(HTTP status, data) for an authorised request; raises LookupError for 404."""
        with self.lock:
            self.roll()
            if method == "GET" and path == "/orders":
                return 200, [dict(o) for oid, o in self.orders.items() if oid not in self.hidden]
            if method == "GET" and path == "/trades":
                return 200, list(self.trades)
            if method == "GET" and path == "/portfolio/positions":
                return 200, self.positions()
            if method == "GET" and path == "/portfolio/holdings":
                return 200, self.holdings_rows()
            if method == "GET" and path == "/user/profile":
                return 200, {"user_id": USER_ID, "user_name": "Simulated User", "broker": "ZERODHA"}
            match = re.fullmatch(r"/orders/(\d+)(/trades)?", path)
            if method == "GET" and match:
                oid = match.group(1)
                if oid not in self.orders:
                    return self.unknown_order()
                if match.group(2):
                    return 200, [t for t in self.trades if t["order_id"] == oid]
                return 200, [dict(h) for h in self.histories[oid]]
            match = re.fullmatch(r"/orders/(\w+)(?:/(\d+))?", path)
            if match and method in ("POST", "PUT", "DELETE"):
                return self._order_write(method, match.group(1), match.group(2), form)
        raise LookupError(path)

    def _order_write(self, method: str, variety: str, order_id: str | None,
                     form: dict[str, str]) -> tuple[int, Any]:
        if method == "POST" and order_id is None:
            return self._place(variety, form)
        if order_id is None or order_id not in self.orders:
            return self.unknown_order()
        order = self.orders[order_id]
        now = self.clock.now()
        if order["status"] in TERMINAL:
            return 400, _error(f"Order is already {order['status'].lower()}.", "InputException")
        if method == "DELETE":
            self._set_status(order_id, "CANCELLED", None, now)
        elif "quantity" in form:
            order["quantity"] = int(form["quantity"])
            order["modified"] = True
            self._set_status(order_id, "OPEN", None, now)
        return 200, {"order_id": order_id}

    def _place(self, variety: str, form: dict[str, str]) -> tuple[int, Any]:
        """``POST /orders/{variety}``: an AMO is accepted only outside the session and waits for the
        open; an MIS order between the square-off time and the close is rejected."""
        try:
            quantity = int(form["quantity"])
            side = form["transaction_type"]
            symbol = form["tradingsymbol"]
        except (KeyError, ValueError):
            return 400, _error("Missing or invalid order parameters.", "InputException")
        exchange, product, now = form.get("exchange", "NSE"), form.get("product", "CNC"), self.clock.now()
        if variety == "amo" and self.days.is_open(now, exchange):
            return 400, _error(AMO_IN_SESSION, "InputException")
        oid = self._add(symbol, side, quantity, AMO_STATUS if variety == "amo" else "PUT ORDER REQ RECEIVED",
                        form.get("tag") or None, exchange, product, float(form.get("price") or 0), None,
                        "amo" if variety == "amo" else "regular", now)
        day = self.order_days[oid]
        if product == "MIS" and self.days.square_off_time(day, exchange) <= now < self.days.session_close(day,
                                                                                                          exchange):
            self._set_status(oid, "REJECTED", MIS_BLOCKED_MESSAGE, now)
        return 200, {"order_id": oid}


def _position_row(key: InstrumentKey, book: _Book, leg: Position | None, adjustment: int) -> dict[str, Any]:
    """One ``/portfolio/positions`` entry: ``leg`` is the position carried overnight (in ``net`` only)."""
    overnight_qty = leg.quantity if leg else 0
    buy_qty = book.buy_quantity + (leg.buy_qty if leg else 0)
    buy_value = book.buy_value + (float(leg.buy_value) if leg else 0.0)
    sell_qty = book.sell_quantity + (leg.sell_qty if leg else 0)
    sell_value = book.sell_value + (float(leg.sell_value) if leg else 0.0)
    quantity = overnight_qty + book.buy_quantity - book.sell_quantity + adjustment
    side_qty, side_value = (buy_qty, buy_value) if quantity >= 0 else (sell_qty, sell_value)
    return {
        "tradingsymbol": key[1], "exchange": key[0], "instrument_token": _token(key[1]), "product": key[2],
        "quantity": quantity, "overnight_quantity": overnight_qty, "multiplier": 1,
        "average_price": side_value / side_qty if side_qty else 0, "close_price": 0, "last_price": 0,
        "value": sell_value - buy_value, "pnl": 0, "m2m": 0, "unrealised": 0, "realised": 0,
        "buy_quantity": buy_qty, "buy_price": buy_value / buy_qty if buy_qty else 0, "buy_value": buy_value,
        "buy_m2m": buy_value, "sell_quantity": sell_qty, "sell_price": sell_value / sell_qty if sell_qty else 0,
        "sell_value": sell_value, "sell_m2m": sell_value,
        "day_buy_quantity": book.buy_quantity,
        "day_buy_price": book.buy_value / book.buy_quantity if book.buy_quantity else 0,
        "day_buy_value": book.buy_value, "day_sell_quantity": book.sell_quantity,
        "day_sell_price": book.sell_value / book.sell_quantity if book.sell_quantity else 0,
        "day_sell_value": book.sell_value}


def _holding_row(holding: Holding, authorised_date: str) -> dict[str, Any]:
    """One ``/portfolio/holdings`` entry, with the fields of Kite's official mock (no market data:
    the last price is the average price)."""
    average = float(holding.average_price)
    return {
        "tradingsymbol": holding.symbol, "exchange": holding.exchange, "instrument_token": _token(holding.symbol),
        "isin": f"INE{hashlib.sha256(holding.symbol.encode()).hexdigest()[:9].upper()}", "product": "CNC",
        "price": 0, "quantity": holding.quantity, "used_quantity": 0, "t1_quantity": holding.t1_quantity,
        "realised_quantity": holding.realised_quantity, "authorised_quantity": 0,
        "authorised_date": authorised_date, "authorisation": {}, "opening_quantity": holding.quantity,
        "short_quantity": 0, "collateral_quantity": 0, "collateral_type": "", "discrepancy": False,
        "average_price": average, "last_price": average, "close_price": average, "pnl": 0,
        "day_change": 0, "day_change_percentage": 0,
        "mtf": {"quantity": 0, "used_quantity": 0, "average_price": 0, "value": 0, "initial_margin": 0}}


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
            "login_time": kite_time(sim.clock.now()), "enctoken": ""}})

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

