"""The paper broker: a simulated exchange for PAPER mode, kept on disk so it survives restarts.

The account file holds only the exchange's inputs: the seed, the start and tick length of the
simulated clock, every order placed (with the script of its future drawn from the seed when it was
placed, and its trading date) and every cancel request. The book at any instant is a pure function
of those, the clock and the market calendar, so:

- a restarted host finds its working orders still working, filling on their schedule (fills due
  while it was down have happened, as they would at a real broker);
- another process (``tradehost recon check``) reading the file sees exactly the same book;
- the same seed and the same order flow give the same run, whatever the polling pattern;
- the file changes only when an order is placed or cancelled, through an atomic write, and the exchange
  answers from the new account only once it is written (a failed write places or cancels nothing).

It lives through trading days as the Kite simulator does (``recon_plugin.calendars.days`` and
``recon_plugin.brokers.overnight``): the book holds the current trading day's orders (and AMOs for
the next session); at the square-off time intraday (MIS) orders stop and open MIS positions are
closed by orders of the broker's own (ids ``SQ-<date>-<exchange>-<symbol>``, no tag); at the close
every unfinished order is cancelled ("exchange mass cancel"); when the next trading day's book
begins, the ended day's orders leave the book (``order_history`` answers ``[]`` for them), its CNC
positions move into the holdings (``fetch_holdings``: T1, then delivered) and its NRML positions
carry overnight. With ``market_hours`` an order placed outside the session waits for the next open;
without (the default), the simulated market trades around the clock, so a demo works at any hour.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hostspec.broker import BrokerError, FailureKind, PushSink
from hostspec.calendar import Clock, SystemClock
from hostspec.model import BrokerOrder, Holding, InstrumentKey, OrderStatus, Position, Side, positions_from_fills
from recon_plugin.atomicfile import WriterLock, sweep_temp_files
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
from recon_plugin.brokers.paper.account import load_account, new_account, save_account
from recon_plugin.brokers.paper.push import BookPusher
from recon_plugin.brokers.paper.simulation import draw_script, market_price, replay_order
from recon_plugin.calendars.days import SessionCalendar, TradingDays
from recon_plugin.calendars.india import IndiaCalendar

_Overnight = tuple[dict[InstrumentKey, Position], dict[tuple[str, str], Holding]]


class PaperExchange:
    """The simulated exchange behind the paper broker (the ``Broker`` and ``HoldingsBroker`` protocols)."""

    name = "paper"

    def __init__(self, path: Path, seed: int = 7, tick_seconds: float = 1.0, reject_rate: float = 0.1,
                 cancel_rate: float = 0.1, read_only: bool = False, clock: Clock | None = None,
                 calendar: SessionCalendar | None = None, market_hours: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self.reject_rate = reject_rate
        self.cancel_rate = cancel_rate
        self.clock: Clock = clock or SystemClock()
        self.days = TradingDays(calendar or IndiaCalendar.default())
        self.market_hours = market_hours
        self._lock = threading.RLock()
        self._dates: dict[str, date] = {}  # each order's trading date, derived once
        self._ends: dict[tuple[date, str, bool], tuple[int, str]] = {}
        self._overnight: tuple[Any, _Overnight] | None = None  # for the book dates it was computed at
        self._writer_lock = None if read_only else WriterLock(path)
        if not read_only:
            sweep_temp_files(path)
        self._account = self._load() or self._new_account(seed, tick_seconds)
        self._pusher: BookPusher | None = None

    # -- the account file -------------------------------------------------------------------------

    def _load(self) -> dict[str, Any] | None:
        return load_account(self.path)

    def _new_account(self, seed: int, tick_seconds: float) -> dict[str, Any]:
        account = new_account(seed, tick_seconds, self.clock.now())
        if not self.read_only:
            self._save(account)
        return account

    def _save(self, account: dict[str, Any]) -> None:
        save_account(self.path, account)

    def _commit(self, orders: dict[str, dict[str, Any]], **fields: Any) -> None:
        """Place or change ``orders`` (and set ``fields``): the account with them is written first, and
        only once it is on disk does this exchange answer from it. A write that fails (a full disk, a
        file size limit, a read-only directory) is a ``BrokerError`` and changes nothing: an order the
        file does not hold was never placed, here or for any other reader, and its id is not used."""
        account = {**self._account, **fields, "orders": {**self._account["orders"], **orders}}
        try:
            self._save(account)
        except OSError as exc:
            raise BrokerError(f"paper account {self.path} could not be written ({exc.strerror or exc}); "
                              "nothing was placed or changed", FailureKind.TRANSIENT) from None
        self._account = account

    # -- the clock --------------------------------------------------------------------------------

    def tick_at(self, when: datetime) -> int:
        started = datetime.fromisoformat(self._account["started_at"])
        return max(0, int((when - started).total_seconds() / self._account["tick_seconds"]))

    def time_of(self, tick: int) -> datetime:
        started = datetime.fromisoformat(self._account["started_at"])
        return started + timedelta(seconds=tick * self._account["tick_seconds"])

    def _first_tick_from(self, when: datetime) -> int:
        """The first tick at or after ``when``: an order's day ends there."""
        started = datetime.fromisoformat(self._account["started_at"])
        seconds: float = self._account["tick_seconds"]
        return max(0, math.ceil((when - started).total_seconds() / seconds))

    # -- Broker protocol --------------------------------------------------------------------------

    def place_order(self, *, tag: str | None, exchange: str, symbol: str, product: str, side: Side,
                    quantity: int, price: Decimal | None = None) -> str:
        if quantity <= 0:
            raise BrokerError(f"quantity must be positive, got {quantity}", FailureKind.REJECTED)
        with self._lock:
            self._writable()
            account = self._account
            seq = account["next_seq"]
            now = self.clock.now()
            day = self.days.trading_date(now, exchange)
            # with market hours, an order placed outside the session starts at its session's open
            start = max(now, self.days.session_open(day, exchange)) if self.market_hours else now
            rng = random.Random(f"{account['seed']}:order:{seq}")
            script = draw_script(rng, self.tick_at(start), quantity, self.reject_rate, self.cancel_rate)
            broker_id = f"P{seq:08d}"
            self._commit({broker_id: {
                "seq": seq, "tag": tag, "exchange": exchange, "symbol": symbol, "product": product,
                "side": side.value, "quantity": quantity, "price": str(price) if price is not None else None,
                "placed_tick": self.tick_at(now), "trading_date": day.isoformat(),
                "script": [[s.tick, s.action, s.quantity] for s in script], "cancel_tick": None}},
                next_seq=seq + 1)
            return broker_id

    def cancel_order(self, broker_order_id: str) -> None:
        with self._lock:
            self._writable()
            now = self.clock.now()
            order = self._account["orders"].get(broker_order_id)
            if order is None or not self._in_book(broker_order_id, order, now):
                raise BrokerError(f"no paper order {broker_order_id} in today's book", FailureKind.REJECTED)
            state = self._state(broker_order_id, order, self.tick_at(now))
            if state.status.is_terminal:
                raise BrokerError(f"paper order {broker_order_id} is already {state.status}", FailureKind.REJECTED)
            if order["cancel_tick"] is None:
                self._commit({broker_order_id: {**order, "cancel_tick": self.tick_at(now) + 1}})

    def fetch_orders(self) -> list[BrokerOrder]:
        return self.book_at(self.clock.now())

    def book_at(self, when: datetime) -> list[BrokerOrder]:
        """The order book as it is at ``when``, given the orders placed so far: the orders of the
        trading day showing then (and the next session's AMOs), with the broker's square-off orders."""
        with self._lock:
            tick = self.tick_at(when)
            book = [self._state(bid, o, tick) for bid, o in self._account["orders"].items()
                    if self._in_book(bid, o, when)]
            return book + self._square_offs(book, tick)

    def fetch_positions(self) -> list[Position]:
        return self.positions_at(self.clock.now())

    def positions_at(self, when: datetime) -> list[Position]:
        """Net positions at ``when``: those carried overnight into the day, with the book's fills."""
        with self._lock:
            carried, _ = self._rolled(when)
            return positions_from_fills(self.book_at(when), carried)

    def fetch_holdings(self) -> list[Holding]:
        return self.holdings_at(self.clock.now())

    def holdings_at(self, when: datetime) -> list[Holding]:
        """Delivery holdings at ``when``: the CNC buys of ended days (T1 the next day, then delivered)."""
        with self._lock:
            _, holdings = self._rolled(when)
            return [holdings[key] for key in sorted(holdings)]

    def order_history(self, broker_order_id: str) -> list[BrokerOrder]:
        """The order's state; ``[]`` for an id not in today's book (an ended day's, or unknown)."""
        with self._lock:
            now = self.clock.now()
            order = self._account["orders"].get(broker_order_id)
            if order is not None:
                in_book = self._in_book(broker_order_id, order, now)
                return [self._state(broker_order_id, order, self.tick_at(now))] if in_book else []
            return [bo for bo in self.book_at(now) if bo.broker_order_id == broker_order_id]

    # -- PushingBroker: the simulated exchange announces each change ------------------------------

    def start_push(self, loop: asyncio.AbstractEventLoop, sink: PushSink) -> None:
        """Push each order change (``recon_plugin.brokers.paper.push``), looked for just after each tick."""
        self._pusher = BookPusher(self.fetch_orders, self._until_next_tick)
        self._pusher.start(sink)

    def _until_next_tick(self) -> float:
        """Seconds from now to just after the next tick (2 ms: the book changes on the tick), at most 1 s
        (a clock that jumps, as a test's does, is noticed within a second)."""
        now = self.clock.now()
        return min(max((self.time_of(self.tick_at(now) + 1) - now).total_seconds() + 0.002, 0.002), 1.0)

    def stop_push(self) -> None:
        if self._pusher is not None:
            self._pusher.stop()
            self._pusher = None

    def close(self) -> None:
        if self._writer_lock is not None:
            self._writer_lock.release()
            self._writer_lock = None

    def _writable(self) -> None:
        if self.read_only:
            raise BrokerError("the paper account is open read-only", FailureKind.REJECTED)

    # -- the simulation ---------------------------------------------------------------------------

    def trading_date(self, broker_order_id: str) -> date:
        """The trading date of a paper order (``KeyError`` for an id never placed)."""
        with self._lock:
            return self._day(broker_order_id, self._account["orders"][broker_order_id])

    def _day(self, broker_id: str, order: dict[str, Any]) -> date:
        """The order's trading date: recorded at placement (derived from it for older accounts)."""
        day = self._dates.get(broker_id)
        if day is None:
            text = order.get("trading_date")
            day = date.fromisoformat(text) if text else self.days.trading_date(
                self.time_of(order["placed_tick"]), order["exchange"])
            self._dates[broker_id] = day
        return day

    def _in_book(self, broker_id: str, order: dict[str, Any], when: datetime) -> bool:
        return self.days.in_book(self._day(broker_id, order), when, order["exchange"])

    def _end(self, day: date, exchange: str, intraday: bool) -> tuple[int, str]:
        """The tick an order of ``day`` stops at, with the message it is cancelled with if unfinished:
        the square-off for an intraday order, else the close."""
        key = (day, exchange, intraday)
        if key not in self._ends:
            self._ends[key] = ((self._first_tick_from(self.days.square_off_time(day, exchange)),
                                SQUARE_OFF_CANCEL_MESSAGE) if intraday else
                               (self._first_tick_from(self.days.session_close(day, exchange)), EXCHANGE_MASS_CANCEL))
        return self._ends[key]

    def _state(self, broker_id: str, order: dict[str, Any], now_tick: int) -> BrokerOrder:
        """An order's state at ``now_tick``, replayed from its script, any cancel request and its day."""
        day, exchange, intraday = self._day(broker_id, order), order["exchange"], order["product"] == "MIS"
        refused = None
        if intraday:
            placed = self.time_of(order["placed_tick"])
            if self.days.square_off_time(day, exchange) <= placed < self.days.session_close(day, exchange):
                refused = MIS_BLOCKED_MESSAGE
        return replay_order(self._account["seed"], broker_id, order, now_tick, self.time_of,
                            self._end(day, exchange, intraday), refused)

    def _square_offs(self, book: list[BrokerOrder], tick: int) -> list[BrokerOrder]:
        """The broker's own orders closing each day's open MIS positions at its square-off time
        (derived, like everything else, from the orders of that day)."""
        intraday: dict[tuple[str, date], list[BrokerOrder]] = defaultdict(list)
        for bo in book:
            if bo.product == "MIS" and bo.broker_order_id in self._dates:
                intraday[(bo.exchange, self._dates[bo.broker_order_id])].append(bo)
        exits = []
        for (exchange, day), orders in sorted(intraday.items()):
            at_tick, _ = self._end(day, exchange, True)
            if tick < at_tick:
                continue
            for p in sorted(positions_from_fills(orders), key=lambda p: p.symbol):
                if p.quantity == 0:
                    continue
                price = market_price(self._account["seed"], p.symbol, at_tick)
                exits.append(BrokerOrder(
                    broker_order_id=f"SQ-{day.isoformat()}-{exchange}-{p.symbol}", exchange=exchange,
                    symbol=p.symbol, product="MIS", side=Side.SELL if p.quantity > 0 else Side.BUY,
                    quantity=abs(p.quantity), status=OrderStatus.FILLED, raw_status=OrderStatus.FILLED.value,
                    filled_qty=abs(p.quantity), avg_price=price, tag=None, placed_at=self.time_of(at_tick),
                    updated_at=self.time_of(at_tick), message=SQUARE_OFF_MESSAGE))
        return exits

    def _rolled(self, when: datetime) -> _Overnight:
        """The positions carried into the day showing at ``when`` and the holdings then, rolled day by
        day from the ended days' orders (their square-off orders need not be: MIS never carries).
        Kept for as long as the book dates and the orders are the same."""
        orders = self._account["orders"]
        exchanges = sorted({o["exchange"] for o in orders.values()})
        book_dates = tuple(self.days.book_date(when, e) for e in exchanges)
        key = (book_dates, len(orders))
        if self._overnight is not None and self._overnight[0] == key:
            return self._overnight[1]
        tick = self.tick_at(when)
        ended: dict[tuple[date, str], list[BrokerOrder]] = defaultdict(list)
        for bid, o in orders.items():
            if not self._in_book(bid, o, when):
                ended[(self._day(bid, o), o["exchange"])].append(self._state(bid, o, tick))
        carried: dict[InstrumentKey, Position] = {}
        holdings: dict[tuple[str, str], Holding] = {}
        last: dict[str, date] = {}
        for (day, exchange), states in sorted(ended.items()):
            legs = {k: p for k, p in carried.items() if k[0] == exchange}
            positions = {p.key: p for p in positions_from_fills(states, legs)}
            for k, p in positions.items():
                carried.pop(k, None)
                if overnight(k[2]) is Overnight.CARRY and (leg := carry(p)) is not None:
                    carried[k] = leg
            self._roll_holdings(holdings, exchange, {k[1]: p for k, p in positions.items()
                                                     if overnight(k[2]) is Overnight.HOLDINGS})
            last[exchange] = day
        for exchange, day in last.items():  # a day begun since the last traded one delivers the T1
            if self.days.next_day(day, exchange) < self.days.book_date(when, exchange):
                self._roll_holdings(holdings, exchange, {})
        self._overnight = (key, (carried, holdings))
        return carried, holdings

    @staticmethod
    def _roll_holdings(holdings: dict[tuple[str, str], Holding], exchange: str, days: dict[str, Position]) -> None:
        for symbol in days.keys() | {s for e, s in holdings if e == exchange}:
            holding = roll_holding(holdings.pop((exchange, symbol), None), days.get(symbol), exchange, symbol)
            if holding is not None:
                holdings[(exchange, symbol)] = holding
