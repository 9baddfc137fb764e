"""A Kite Connect simulator: a local HTTP server that the real ``kiteconnect`` client talks to.

It serves the routes the Kite broker uses (``/orders``, ``/orders/{id}``, ``/orders/{id}/trades``,
``/trades``, ``/portfolio/positions``, ``/portfolio/holdings``, order placement, modification and
cancellation, ``/user/profile``, ``/user/margins``, ``/gtt/triggers``, ``/session/token``) with Kite's
envelopes, headers and status codes, on 127.0.0.1 only (``server``). Its order book evolves by the
order's own type and variety, by the test's hand (``fill``, ``set_status``, ``cancel`` ...) or by
itself (``auto=True``), with consistent trades, positions and holdings. Every fault of the client's
failure matrix can be injected on demand (``inject``): see ``FAULTS``. Every change to an order is
pushed (``push``: a WebSocket at ``ws_url`` with Kite's order messages, heartbeats and faults of its
own) and, when ``postbacks.url`` is set, posted as Kite's postbacks (``postbacks``).

**Orders as Kite takes them.** Placement reads what the ``kiteconnect`` 5.2.2 client sends and
refuses what Kite refuses (``entry``: unprotected MARKET and SL-M orders, bad tags, missing prices
...); ``refuse_placements()`` makes the next placements fail as RMS refuses them (HTTP 400
MarginException). New orders have 19-digit ids. Each order walks through Kite's interim statuses on
its own (``walks``: placement, modify, cancel; one status per read of the order by default, see
``pace``): SL and SL-M orders wait in TRIGGER PENDING until ``trigger(order_id)`` or a last price
that crosses the trigger (``set_last_price``); IOC orders cancel their unfilled remainder when they
reach the exchange; TTL orders are cancelled ``validity_ttl`` minutes after placement, on the
simulator's clock. A protected MARKET order is a LIMIT order tagged ``mktp``. Varieties:

- ``autoslice=true`` above the symbol's freeze quantity (``set_freeze_quantity``) places children of
  at most that quantity, each with ``tag: null`` and ``tags: ["autoslice", "autoslice:<parent>"]``;
  the response is Kite's v2 autoslice answer ``{"order_id": <parent>, "children": [{"order_id"}|
  {"error"}]}`` (the parent id is not itself an order in the book);
- ``iceberg``: one leg at a time, each an order with ``meta.iceberg`` (leg, legs, leg_quantity,
  total_quantity, remaining_quantity); the next leg is placed when a leg completes; legs share the tag;
- ``co`` (cover order): the entry leg, and a stoploss leg (SL-M, the other side, the order's
  ``trigger_price``) whose ``parent_order_id`` is the entry leg's id, waiting in TRIGGER PENDING;
- GTT triggers (``gtt``): fired by ``fire_gtt`` or a last price that crosses them.

A protected order's record echoes the ``market_protection`` sent (the official mock's converted
record shows 0; its ``tags`` say the same). For the reconciler's harder cases: ``bust(order_id)``
removes an order's last trade (its filled quantity goes down), ``history_newest_first = True`` serves
``GET /orders/{id}`` newest state first.

**Rate limits** (``limits``): 10 requests per second per endpoint, 10 orders per second and 200 per
minute, answered 429 "Too many requests"; on by default, ``rate_limits = False`` turns them off.
Every request is recorded (``limits.log``; ``peak_per_second()``).

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

import logging
import random
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from http.server import ThreadingHTTPServer
from typing import Any

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
from recon_plugin.testing.kite_sim import gtt, walks
from recon_plugin.testing.kite_sim.entry import (
    NO_MARKET_PROTECTION,
    Entry,
    Refusal,
    iceberg_legs,
    protected_price,
    protection_tags,
    read_entry,
    slices,
)
from recon_plugin.testing.kite_sim.limits import RateLimits
from recon_plugin.testing.kite_sim.postbacks import PostbackPoster
from recon_plugin.testing.kite_sim.push import PushServer
from recon_plugin.testing.kite_sim.server import Handler
from recon_plugin.testing.kite_sim.walks import CANCEL_PENDING, MODIFY_VALIDATION, Pace, Walk
from recon_plugin.testing.kite_sim.wire import (
    AMO_IN_SESSION,
    AMO_STATUS,
    FAULTS,
    PENDING_STEPS,
    RMS_MARGIN,
    SQUARE_OFF_PLACED_BY,
    TERMINAL,
    TRIGGER_PENDING,
    UNKNOWN_ORDER,
    USER_ID,
    Book,
    Fault,
    decimal_of,
    error,
    holding_row,
    kite_time,
    margins,
    position_row,
    profile,
    token,
)

log = logging.getLogger("recon_plugin.testing.kite_simulator")
ID_BASE = 1953341975595868160  # 19-digit order ids, as Kite's since 2025 (the official mock's)
ID_STEP = 46137344  # the spacing of the ids of an autoslice order's children in the official mock
GTT_ID_BASE = 100000
MAX_MODIFICATIONS = 25
TOO_MANY_MODIFICATIONS = "Maximum allowed order modifications exceeded."
IN_FLIGHT = {MODIFY_VALIDATION, "MODIFY PENDING", "MODIFIED", "NOT MODIFIED", CANCEL_PENDING}


@dataclass
class _Iceberg:
    """An iceberg order's legs still to place."""

    entry: Entry
    legs: list[int]
    placed: int  # how many legs are placed


class KiteSimulator:
    """The simulated Kite account and its HTTP server (see the module's docstring)."""

    def __init__(self, api_key: str = "sim_api_key", access_token: str = "sim_access_token",
                 api_secret: str = "sim_api_secret", seed: int = 1, auto: bool = False,
                 tick_seconds: float = 0.5, slow_seconds: float = 3.0, clock: Clock | None = None,
                 calendar: SessionCalendar | None = None, unknown_order_status: int = 500,
                 day_start: clock_time = DAY_START, rate_limits: bool = True,
                 require_market_protection: bool = True, pace: Pace = "read") -> None:
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
        self.require_market_protection = require_market_protection  # refuse unprotected MARKET and SL-M orders
        self.pace: Pace = pace  # when an order takes its next interim status: see ``walks``
        self.limits = RateLimits(rate_limits)
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
        self.modifications: dict[str, int] = {}  # how often each order was modified (Kite allows 25)
        self.walks: dict[str, Walk] = {}  # the orders walking through interim statuses
        self.expiries: dict[str, datetime] = {}  # TTL orders: when they are cancelled
        self.icebergs: dict[str, _Iceberg] = {}  # by the id of an iceberg's current leg
        self.freeze_quantities: dict[str, int] = {}  # by symbol: autoslice's limit
        self.last_prices: dict[str, Decimal] = {}  # by symbol, set by the test (``set_last_price``)
        self.gtts: dict[int, dict[str, Any]] = {}
        self.cash = 1_000_000.0  # what ``/user/margins`` reports available
        self.history_newest_first = False  # ``GET /orders/{id}`` newest state first (Kite documents oldest first)
        self.refusals: list[Refusal] = []  # the next placements' RMS refusals (``refuse_placements``)
        self.lock = threading.RLock()
        self._next_id = ID_BASE
        self._next_trade = 10000000
        self._next_gtt = GTT_ID_BASE
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._exchanges: set[str] = set()  # the exchanges the account has traded on: whose days matter
        self._rolled_to = self.clock.now()
        self._upcoming: DayEvent | None = None
        self._upcoming_known = False
        self.ticks = 0
        self.push = PushServer(self)  # the WebSocket of order updates (``ws_url``), its faults
        self.postbacks = PostbackPoster(self)  # posts to ``postbacks.url`` when one is set

    @property
    def rate_limits(self) -> bool:
        """Whether the simulator's own rate limits answer 429 (on by default)."""
        return self.limits.enabled

    @rate_limits.setter
    def rate_limits(self, on: bool) -> None:
        self.limits.enabled = on

    def peak_per_second(self, since: float = 0.0) -> dict[str, int]:
        """Per endpoint, the most requests received within any one second (``limits``)."""
        return self.limits.peak_per_second(since)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, port: int = 0, ws_port: int = 0) -> str:
        """Serve on 127.0.0.1:``port``, and the WebSocket on ``ws_port`` (0: any free port); returns the
        root URL for the client (``ws_url``: the WebSocket's)."""
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        server.sim = self  # type: ignore[attr-defined]
        self._server = server
        self._threads.append(threading.Thread(target=server.serve_forever, name="kite-sim", daemon=True))
        if self.auto:
            self._threads.append(threading.Thread(target=self._tick_forever, name="kite-sim-clock", daemon=True))
        for t in self._threads:
            t.start()
        self.push.start(ws_port)
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def ws_url(self) -> str:
        """The WebSocket root of order updates (``push``), for the broker's ``ws_root``."""
        return self.push.url

    def stop(self) -> None:
        self._stop.set()
        self.push.stop()
        self.postbacks.stop()
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
            self._due(now)
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
                self._set_status(oid, self._working_status(oid), None, event.at)
                if self.orders[oid]["validity"] == "TTL":  # its minutes count from the open
                    self.expiries[oid] = event.at + timedelta(minutes=self.orders[oid]["validity_ttl"])
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
            book = books.get(key, Book())
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
            self._forget(oid)
        # the ended day's positions: what carried into it, its fills, its adjustments
        positions = {k: p for k, p in self.overnight.items() if k[0] == exchange}
        for t in trades:
            key = (t["exchange"], t["tradingsymbol"], t["product"])
            positions[key] = (positions.get(key) or Position(*key)).with_fill(
                Side(t["transaction_type"]), t["quantity"], decimal_of(t["average_price"]) * t["quantity"])
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
                  price: float = 0.0, order_id: str | None = None, variety: str = "regular",
                  **fields: Any) -> str:
        """An order in the book, as if placed from any app (the API or Kite's own terminal), now.
        ``status`` defaults to OPEN (``AMO REQ RECEIVED`` for ``variety="amo"``); it does not walk.
        ``fields`` sets any other field of the record (``order_type``, ``trigger_price``, ``meta`` ...)."""
        with self.lock:
            self.roll()
            status = status or (AMO_STATUS if variety == "amo" else "OPEN")
            return self._add(symbol, side, quantity, status, tag, exchange, product, price, order_id, variety,
                             self.clock.now(), **fields)

    def _add(self, symbol: str, side: str, quantity: int, status: str, tag: str | None, exchange: str,
             product: str, price: float, order_id: str | None, variety: str, at: datetime,
             placed_by: str = USER_ID, **fields: Any) -> str:
        oid = order_id or self._new_id()
        self._trading_on(exchange)
        self.orders[oid] = {
            "account_id": USER_ID, "placed_by": placed_by, "order_id": oid, "exchange_order_id": None,
            "parent_order_id": None, "status": status, "status_message": None, "status_message_raw": None,
            "order_timestamp": kite_time(at), "exchange_update_timestamp": None, "exchange_timestamp": None,
            "variety": variety, "modified": False, "exchange": exchange, "tradingsymbol": symbol,
            "instrument_token": token(symbol),
            "order_type": "LIMIT" if price else "MARKET", "transaction_type": side, "validity": "DAY",
            "validity_ttl": 0, "product": product, "quantity": quantity, "disclosed_quantity": 0,
            "price": price, "trigger_price": 0, "average_price": 0, "filled_quantity": 0,
            "pending_quantity": quantity, "cancelled_quantity": 0, "market_protection": 0, "meta": {},
            "tag": tag, "tags": [tag] if tag else [], "guid": f"sim{oid[-6:]}", **fields}
        self.histories[oid] = []
        self.order_days[oid] = self.days.trading_date(at, exchange)
        self._record(oid)
        return oid

    def set_status(self, order_id: str, status: str, message: str | None = None) -> None:
        """Set an order's status now (it stops walking: the hand decides)."""
        with self.lock:
            self.roll()
            self.walks.pop(order_id, None)
            self._set_status(order_id, status, message, self.clock.now())

    def _set_status(self, order_id: str, status: str, message: str | None, at: datetime) -> None:
        order = self.orders[order_id]
        order["status"] = status
        order["status_message"] = message
        if status not in (*PENDING_STEPS[:3], AMO_STATUS):
            order["exchange_order_id"] = order["exchange_order_id"] or f"11{order_id[-14:]}"
        if status in ("CANCELLED", "REJECTED"):
            order["cancelled_quantity"] = order["quantity"] - order["filled_quantity"]
            self.walks.pop(order_id, None)
            self.expiries.pop(order_id, None)
        self._touch(order_id, at)

    def fill(self, order_id: str, quantity: int, price: float) -> None:
        """A trade on the order now; OPEN while partial, COMPLETE when whole (it stops walking). An IOC
        order's unfilled remainder is then cancelled at once."""
        with self.lock:
            self.roll()
            self.walks.pop(order_id, None)
            now = self.clock.now()
            self._fill(order_id, quantity, price, now)
            order = self.orders[order_id]
            if order["validity"] == "IOC" and order["status"] not in TERMINAL:
                self._set_status(order_id, "CANCELLED", None, now)

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
        complete = filled >= order["quantity"]
        self._set_status(order_id, "COMPLETE" if complete else "OPEN", order["status_message"], at)
        if complete:
            self.expiries.pop(order_id, None)
            self._next_iceberg_leg(order_id, at)

    def bust(self, order_id: str) -> dict[str, Any]:
        """The exchange busts the order's last trade: it leaves the trades, the order's filled quantity
        goes down (a COMPLETE order is OPEN again) and its average price is recomputed. Returns the
        trade."""
        with self.lock:
            self.roll()
            trade = [t for t in self.trades if t["order_id"] == order_id][-1]
            self.trades.remove(trade)
            order, now = self.orders[order_id], self.clock.now()
            rest = [t for t in self.trades if t["order_id"] == order_id]
            order["filled_quantity"] = sum(t["quantity"] for t in rest)
            order["average_price"] = (sum(t["quantity"] * t["average_price"] for t in rest)
                                      / order["filled_quantity"]) if rest else 0
            order["pending_quantity"] = order["quantity"] - order["filled_quantity"]
            status = "OPEN" if order["status"] == "COMPLETE" else order["status"]
            self._set_status(order_id, status, order["status_message"], now)
            return trade

    def cancel(self, order_id: str) -> None:
        self.set_status(order_id, "CANCELLED")

    def reject(self, order_id: str, message: str = "Insufficient funds (simulated)") -> None:
        self.set_status(order_id, "REJECTED", message)

    def trigger(self, order_id: str) -> None:
        """An SL or SL-M order's trigger price is reached: TRIGGER PENDING becomes OPEN (an order still
        walking there finishes its walk first)."""
        with self.lock:
            self.roll()
            now = self.clock.now()
            self._settle(order_id, now)
            if self.orders[order_id]["status"] == TRIGGER_PENDING:
                self._set_status(order_id, "OPEN", None, now)

    def set_last_price(self, symbol: str, price: float | Decimal) -> list[str]:
        """The instrument's last traded price moves to ``price``: SL and SL-M orders in TRIGGER PENDING
        whose trigger it crosses start working (a BUY when the price rises to its trigger, a SELL when
        it falls to it), and GTT triggers it crosses fire. Market protection prices from it. Returns
        the ids of the orders it triggered or placed."""
        with self.lock:
            self.roll()
            now, last = self.clock.now(), Decimal(str(price))
            self.last_prices[symbol] = last
            moved = []
            for oid, order in list(self.orders.items()):
                if order["tradingsymbol"] != symbol or order["status"] != TRIGGER_PENDING:
                    continue
                trigger = Decimal(str(order["trigger_price"]))
                if (last >= trigger) if order["transaction_type"] == "BUY" else (last <= trigger):
                    self._set_status(oid, "OPEN", None, now)
                    moved.append(oid)
            for trigger_id, record in list(self.gtts.items()):
                if record["condition"]["tradingsymbol"] == symbol:
                    leg = gtt.crossed(record, float(last))
                    if leg is not None:
                        moved.append(self._fire(trigger_id, leg, now))
            return moved

    def set_freeze_quantity(self, symbol: str, quantity: int | None) -> None:
        """The exchange's freeze quantity for ``symbol``: autoslice splits larger orders (None: no limit)."""
        with self.lock:
            if quantity is None:
                self.freeze_quantities.pop(symbol, None)
            else:
                self.freeze_quantities[symbol] = quantity

    def refuse_placements(self, times: int = 1, message: str = RMS_MARGIN, error_type: str = "MarginException",
                          status: int = 400) -> None:
        """The next ``times`` placements (each autoslice child counts) are refused by RMS as an HTTP
        error (by default 400 MarginException "Insufficient funds ..."); nothing enters the book."""
        with self.lock:
            self.refusals += [Refusal(message, error_type, status)] * times

    def fire_gtt(self, trigger_id: int, leg: int = 0) -> str:
        """The GTT trigger fires by its leg ``leg``: its order is placed (``meta`` names the trigger)
        and the trigger is ``triggered``; returns the order's id."""
        with self.lock:
            self.roll()
            if self.gtts[trigger_id]["status"] != "active":
                raise ValueError(f"GTT {trigger_id} is {self.gtts[trigger_id]['status']}")
            return self._fire(trigger_id, leg, self.clock.now())

    def step(self, order_id: str | None = None) -> None:
        """One step of the walk of ``order_id`` (or of every walking order)."""
        self._walk_now(order_id, self._step)

    def settle(self, order_id: str | None = None) -> None:
        """Finish the walk of ``order_id`` (or of every walking order) now."""
        self._walk_now(order_id, self._settle)

    def _walk_now(self, order_id: str | None, move: Callable[[str, datetime], None]) -> None:
        with self.lock:
            self.roll()
            now = self.clock.now()
            for oid in [order_id] if order_id else list(self.walks):
                move(oid, now)

    def hide(self, order_id: str, hidden: bool = True) -> None:
        """Leave an order out of ``GET /orders`` while its history still answers (a lagging book)."""
        with self.lock:
            self.roll()
            (self.hidden.add if hidden else self.hidden.discard)(order_id)

    def remove(self, order_id: str) -> None:
        """Drop an order from the book and its history, as if the broker never had it."""
        with self.lock:
            self.roll()
            self._forget(order_id)
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
                book, adjustment = books.get(key, Book()), self.adjustments.get(key, 0)
                net.append(position_row(key, book, self.overnight.get(key), adjustment))
                if key in books or key in self.adjustments:
                    day.append(position_row(key, book, None, adjustment))
            return {"net": net, "day": day}

    def holdings_rows(self) -> list[dict[str, Any]]:
        """``GET /portfolio/holdings``, in the shape of Kite's official mock."""
        with self.lock:
            self.roll()
            stamp = kite_time(self.clock.now())[:10] + " 00:00:00"
            return [holding_row(h, stamp) for _, h in sorted(self.holdings.items())]

    # -- orders through the API ----------------------------------------------------------------------

    def _place(self, variety: str, form: dict[str, str]) -> tuple[int, Any]:
        """``POST /orders/{variety}``: checked as Kite checks it (``entry``); an AMO is accepted only
        outside the session and waits for the open; an MIS order between the square-off time and the
        close is rejected."""
        try:
            entry = read_entry(variety, form, self.require_market_protection)
        except Refusal as refused:
            return refused.status, error(refused.message, refused.error_type)
        now = self.clock.now()
        if variety == "amo" and self.days.is_open(now, entry.exchange):
            return 400, error(AMO_IN_SESSION, "InputException")
        if entry.autoslice:
            return 200, self._place_autoslice(entry, now)
        if self.refusals:
            refusal = self.refusals.pop(0)
            return refusal.status, error(refusal.message, refusal.error_type)
        if variety == "iceberg":
            legs = iceberg_legs(entry.quantity, entry.iceberg_legs, entry.iceberg_quantity)
            oid = self._open(entry, legs[0], now, meta=_iceberg_meta(entry, legs, 0))
            self.icebergs[oid] = _Iceberg(entry, legs, 1)
            return 200, {"order_id": oid}
        oid = self._open(entry, entry.quantity, now)
        if variety == "co":
            stoploss = self._add(entry.symbol, "SELL" if entry.side == "BUY" else "BUY", entry.quantity,
                                 PENDING_STEPS[0], entry.tag, entry.exchange, entry.product, 0.0, None, "co", now,
                                 order_type="SL-M", trigger_price=float(entry.trigger_price), parent_order_id=oid)
            self.walks[stoploss] = Walk(walks.placement("SL-M", "DAY"), now)
        return 200, {"order_id": oid}

    def _place_autoslice(self, entry: Entry, now: datetime) -> dict[str, Any]:
        """Kite's v2 autoslice answer: the parent id and, per child, its order id or its error."""
        parent = self._new_id()
        children: list[dict[str, Any]] = []
        for quantity in slices(entry.quantity, self.freeze_quantities.get(entry.symbol)):
            if self.refusals:
                refusal = self.refusals.pop(0)
                children.append({"error": {"code": refusal.status, "error_type": refusal.error_type,
                                           "message": refusal.message, "data": None}})
                continue
            oid = self._open(replace(entry, tag=None), quantity, now, tags=["autoslice", f"autoslice:{parent}"])
            children.append({"order_id": oid})
        return {"order_id": parent, "children": children}

    def _open(self, entry: Entry, quantity: int, now: datetime, tags: list[str] | None = None,
              meta: dict[str, Any] | None = None) -> str:
        """An order of ``entry`` for ``quantity`` enters the book and starts its walk."""
        order_type, price = entry.order_type, entry.price
        tags = list(tags or ([entry.tag] if entry.tag else []))
        if entry.protected:
            order_type = "LIMIT"
            price = protected_price(entry.side, self.last_price(entry.symbol), entry.protection_pct)
            tags += protection_tags(entry.protection_pct)
        amo = entry.variety == "amo"
        oid = self._add(entry.symbol, entry.side, quantity, AMO_STATUS if amo else PENDING_STEPS[0], entry.tag,
                        entry.exchange, entry.product, float(price), None, entry.variety, now,
                        order_type=order_type, trigger_price=float(entry.trigger_price), validity=entry.validity,
                        validity_ttl=entry.validity_ttl, disclosed_quantity=entry.disclosed_quantity,
                        market_protection=float(entry.market_protection), tags=tags, meta=meta or {},
                        **({"auction_number": entry.auction_number} if entry.auction_number else {}))
        day = self.order_days[oid]
        if entry.product == "MIS" and self.days.square_off_time(day, entry.exchange) <= now < \
                self.days.session_close(day, entry.exchange):
            self._set_status(oid, "REJECTED", MIS_BLOCKED_MESSAGE, now)
            return oid
        if not amo:
            self.walks[oid] = Walk(walks.placement(order_type, entry.validity), now)
        if entry.validity == "TTL" and not amo:
            self.expiries[oid] = now + timedelta(minutes=entry.validity_ttl)
        return oid

    def _next_iceberg_leg(self, order_id: str, at: datetime) -> None:
        """An iceberg leg completed: the next one is placed."""
        iceberg = self.icebergs.pop(order_id, None)
        if iceberg is None or iceberg.placed >= len(iceberg.legs):
            return
        oid = self._open(iceberg.entry, iceberg.legs[iceberg.placed], at,
                         meta=_iceberg_meta(iceberg.entry, iceberg.legs, iceberg.placed))
        self.icebergs[oid] = replace(iceberg, placed=iceberg.placed + 1)

    def _modify(self, order_id: str, form: dict[str, str]) -> tuple[int, Any]:
        """``PUT /orders/{variety}/{id}``: MODIFY VALIDATION PENDING at once, then the walk."""
        order, now = self.orders[order_id], self.clock.now()
        if order["status"] in IN_FLIGHT:
            return 400, error("The order is being modified or cancelled; try again.", "InputException")
        if self.modifications.get(order_id, 0) >= MAX_MODIFICATIONS:
            return 400, error(TOO_MANY_MODIFICATIONS, "InputException")
        self.modifications[order_id] = self.modifications.get(order_id, 0) + 1
        fields = {k: form[k] for k in ("quantity", "price", "trigger_price", "order_type", "validity",
                                       "disclosed_quantity") if form.get(k)}
        if fields.get("order_type") in ("MARKET", "SL-M") and self.require_market_protection and \
                form.get("market_protection") in (None, "", "0"):
            return 400, error(NO_MARKET_PROTECTION, "InputException")
        try:
            quantity = int(fields.get("quantity", order["quantity"]))
        except ValueError:
            return 400, error("Invalid `quantity`.", "InputException")
        if order["status"] == AMO_STATUS:
            self._apply_modification(order_id, fields)
            order["order_timestamp"] = kite_time(now)
            self._touch(order_id, now)
            return 200, {"order_id": order_id}
        walk = self.walks.get(order_id)
        back_to = walk.steps[-1].status if walk else order["status"]
        if back_to not in ("OPEN", TRIGGER_PENDING) or fields.get("order_type") in ("LIMIT", "MARKET"):
            back_to = "OPEN"
        order["order_timestamp"] = kite_time(now)
        self._set_status(order_id, MODIFY_VALIDATION, None, now)
        self.walks[order_id] = Walk(walks.modification(back_to, quantity > order["filled_quantity"]), now, fields)
        return 200, {"order_id": order_id}

    def _apply_modification(self, order_id: str, fields: dict[str, str]) -> None:
        order = self.orders[order_id]
        for name, value in fields.items():
            order[name] = value if name in ("order_type", "validity") else (
                int(value) if name in ("quantity", "disclosed_quantity") else float(value))
        order["pending_quantity"] = max(order["quantity"] - order["filled_quantity"], 0)
        order["modified"] = True

    def _cancel(self, order_id: str) -> tuple[int, Any]:
        """``DELETE /orders/{variety}/{id}``: CANCEL PENDING at once, then CANCELLED."""
        order, now = self.orders[order_id], self.clock.now()
        if order["status"] == CANCEL_PENDING:
            return 400, error("The order is being cancelled.", "InputException")
        self._set_status(order_id, CANCEL_PENDING, None, now)
        self.walks[order_id] = Walk(walks.cancellation(), now)
        return 200, {"order_id": order_id}

    def _order_write(self, method: str, variety: str, order_id: str | None,
                     form: dict[str, str]) -> tuple[int, Any]:
        if method == "POST" and order_id is None:
            return self._place(variety, form)
        if order_id is None or order_id not in self.orders:
            return self.unknown_order()
        order = self.orders[order_id]
        if order["status"] in TERMINAL:
            return 400, error(f"Order is already {order['status'].lower()}.", "InputException")
        if method == "DELETE":
            return self._cancel(order_id)
        if method == "PUT":
            return self._modify(order_id, form)
        raise LookupError(order_id)

    # -- GTT -----------------------------------------------------------------------------------------

    def _gtt_route(self, method: str, trigger_id: int | None, form: dict[str, str]) -> tuple[int, Any]:
        now = kite_time(self.clock.now())
        if trigger_id is None:
            if method == "GET":
                return 200, [dict(t) for t in self.gtts.values()]
            if method != "POST":
                raise LookupError(method)
            try:
                kind, condition, orders = gtt.read_trigger(form)
            except Refusal as refusal:
                return refusal.status, error(refusal.message, refusal.error_type)
            self._next_gtt += 1
            expires = kite_time(self.clock.now() + timedelta(days=365))
            self.gtts[self._next_gtt] = gtt.trigger_record(self._next_gtt, kind, condition, orders, now, expires)
            return 200, {"trigger_id": self._next_gtt}
        record = self.gtts.get(trigger_id)
        if record is None:
            return 400, error("Invalid `trigger_id`.", "InputException")
        if method == "GET":
            return 200, dict(record)
        if record["status"] != "active":
            return 400, error(f"The trigger is {record['status']}.", "InputException")
        if method == "DELETE":
            record["status"], record["updated_at"] = "deleted", now
        elif method == "PUT":
            try:
                kind, condition, orders = gtt.read_trigger(form)
            except Refusal as refusal:
                return refusal.status, error(refusal.message, refusal.error_type)
            record.update(type=kind, condition=condition, orders=orders, updated_at=now)
        else:
            raise LookupError(method)
        return 200, {"trigger_id": trigger_id}

    def _fire(self, trigger_id: int, leg: int, now: datetime) -> str:
        record = self.gtts[trigger_id]
        o = gtt.order_of(record, leg)
        oid = self._add(o.symbol, o.side, o.quantity, PENDING_STEPS[0], None, o.exchange, o.product, o.price, None,
                        "regular", now, order_type=o.order_type, meta=gtt.order_meta(trigger_id))
        self.walks[oid] = Walk(walks.placement(o.order_type, "DAY"), now)
        gtt.fired(record, leg, oid, kite_time(now))
        return oid

    # -- walks and expiries --------------------------------------------------------------------------

    def _due(self, now: datetime) -> None:
        """What the clock brings by ``now``: TTL orders past their time are cancelled; walks paced by
        time take their due steps."""
        for oid, deadline in list(self.expiries.items()):
            if deadline <= now and oid in self.orders and self.orders[oid]["status"] not in TERMINAL:
                self._set_status(oid, "CANCELLED", None, deadline)
        if isinstance(self.pace, timedelta):
            for oid, walk in list(self.walks.items()):
                for _ in range(walks.due_steps(self.pace, walk.since, now)):
                    self._step(oid, walk.since + self.pace)

    def _step(self, order_id: str, at: datetime) -> None:
        walk = self.walks.get(order_id)
        if walk is None or order_id not in self.orders:
            self.walks.pop(order_id, None)
            return
        step = walk.steps.pop(0)
        walk.since = at
        if not walk.steps:
            del self.walks[order_id]
        if step.effect == "modify":
            self._apply_modification(order_id, walk.modification)
            self.orders[order_id]["exchange_timestamp"] = kite_time(at)
        self._set_status(order_id, step.status, None, at)
        if step.effect == "ioc" and self.orders[order_id]["status"] not in TERMINAL:
            self._set_status(order_id, "CANCELLED", None, at)

    def _settle(self, order_id: str, at: datetime) -> None:
        while order_id in self.walks:
            self._step(order_id, at)

    def _working_status(self, order_id: str) -> str:
        return TRIGGER_PENDING if self.orders[order_id]["order_type"] in ("SL", "SL-M") else "OPEN"

    def _read(self, order_ids: Iterable[str]) -> None:
        """The orders were read: at the ``read`` pace, each takes one step."""
        if self.pace == "read":
            now = self.clock.now()
            for oid in [o for o in order_ids if o in self.walks]:
                self._step(oid, now)

    def _forget(self, order_id: str) -> None:
        self.orders.pop(order_id, None)
        self.histories.pop(order_id, None)
        self.order_days.pop(order_id, None)
        self.walks.pop(order_id, None)
        self.expiries.pop(order_id, None)
        self.icebergs.pop(order_id, None)
        self.modifications.pop(order_id, None)
        self.hidden.discard(order_id)

    # -- the automatic market (auto=True) --------------------------------------------------------

    def _tick_forever(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            self.tick()

    def tick(self) -> None:
        """One step of the automatic market: walking orders take a step (RMS rejects some in
        VALIDATION PENDING), working orders fill in parts, some are cancelled. AMOs wait for their
        session's open, SL orders for their trigger."""
        with self.lock:
            self.roll()
            self.ticks += 1
            now = self.clock.now()
            for oid, order in list(self.orders.items()):
                status = order["status"]
                if oid in self.walks:
                    if status == "VALIDATION PENDING" and self.rng.random() < 0.08:
                        self._set_status(oid, "REJECTED", "RMS: margin exceeds (simulated)", now)
                    else:
                        self._step(oid, now)
                elif status in TERMINAL or status in (AMO_STATUS, TRIGGER_PENDING) or status in IN_FLIGHT:
                    continue
                elif status in PENDING_STEPS[:3]:
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
        base = 100 + token(symbol) % 3000
        return round(base + self.rng.randint(-40, 40) * 0.05, 2)

    def last_price(self, symbol: str) -> Decimal:
        """The instrument's last price: set by the test, else its last trade's, else a fixed figure of
        its own."""
        if symbol in self.last_prices:
            return self.last_prices[symbol]
        prices = [t["average_price"] for t in self.trades if t["tradingsymbol"] == symbol]
        return decimal_of(prices[-1]) if prices else Decimal(100 + token(symbol) % 3000)

    # -- internals ---------------------------------------------------------------------------------

    def _new_id(self) -> str:
        self._next_id += ID_STEP
        return str(self._next_id)

    def _touch(self, order_id: str, at: datetime) -> None:
        order = self.orders[order_id]
        order["exchange_update_timestamp"] = kite_time(at)
        if order["exchange_order_id"]:
            order["exchange_timestamp"] = order["exchange_timestamp"] or kite_time(at)
        self._record(order_id)

    def _record(self, order_id: str) -> None:
        """The order changed: its history grows, and the push channels are told."""
        history = self.histories[order_id]
        previous = history[-1] if history else None
        history.append(dict(self.orders[order_id]))
        for listener in (self.push, self.postbacks):
            listener.order_changed(dict(self.orders[order_id]), previous)

    @staticmethod
    def _books(trades: Iterable[dict[str, Any]]) -> dict[InstrumentKey, Book]:
        books: dict[InstrumentKey, Book] = {}
        for t in trades:
            book = books.setdefault((t["exchange"], t["tradingsymbol"], t["product"]), Book())
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
            return 400, error(UNKNOWN_ORDER, "InputException")
        return 500, error(UNKNOWN_ORDER, "OrderException")

    def route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        """(HTTP status, data) for an authorised request; raises LookupError for 404."""
        with self.lock:
            self.roll()
            if method == "GET" and path == "/orders":
                listed = [oid for oid in self.orders if oid not in self.hidden]
                rows = [dict(self.orders[oid]) for oid in listed]
                self._read(listed)
                return 200, rows
            if method == "GET" and path == "/trades":
                return 200, list(self.trades)
            if method == "GET" and path == "/portfolio/positions":
                return 200, self.positions()
            if method == "GET" and path == "/portfolio/holdings":
                return 200, self.holdings_rows()
            if method == "GET" and path == "/user/profile":
                return 200, profile()
            if method == "GET" and path in ("/user/margins", "/user/margins/equity", "/user/margins/commodity"):
                data = margins(self.cash)
                return 200, data if path == "/user/margins" else data[path.rsplit("/", 1)[1]]
            match = re.fullmatch(r"/gtt/triggers(?:/(\d+))?", path)
            if match:
                return self._gtt_route(method, int(match.group(1)) if match.group(1) else None, form)
            match = re.fullmatch(r"/orders/(\d+)(/trades)?", path)
            if method == "GET" and match:
                oid = match.group(1)
                if oid not in self.orders:
                    return self.unknown_order()
                if match.group(2):
                    return 200, [t for t in self.trades if t["order_id"] == oid]
                history = [dict(h) for h in self.histories[oid]]
                if self.history_newest_first:
                    history.reverse()
                self._read([oid])
                return 200, history
            match = re.fullmatch(r"/orders/(\w+)(?:/(\d+))?", path)
            if match and method in ("POST", "PUT", "DELETE"):
                return self._order_write(method, match.group(1), match.group(2), form)
        raise LookupError(path)


def _iceberg_meta(entry: Entry, legs: list[int], index: int) -> dict[str, Any]:
    return {"iceberg": {"leg": index + 1, "legs": len(legs), "leg_quantity": entry.iceberg_quantity,
                        "total_quantity": entry.quantity, "remaining_quantity": sum(legs[index + 1:])}}
