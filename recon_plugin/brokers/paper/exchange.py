"""The paper broker: a simulated exchange for PAPER mode, kept on disk so it survives restarts.

The account file holds only the exchange's inputs: the seed, the wall-clock start and tick length
of the simulated clock, every order placed (with the script of its future drawn from the seed when it
was placed) and every cancel request. The book at any instant is a pure function of those and the
clock, so:

- a restarted host finds its working orders still working, filling on their schedule (fills due
  while it was down have happened, as they would at a real broker);
- another process (``tradehost recon check``) reading the file sees exactly the same book;
- the same seed and the same order flow give the same run, whatever the polling pattern;
- the file changes only when an order is placed or cancelled, through an atomic write.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hostspec.broker import BrokerError, FailureKind
from hostspec.model import BrokerOrder, Position, Side, positions_from_fills, utcnow
from recon_plugin.atomicfile import WriterLock, sweep_temp_files
from recon_plugin.brokers.paper.account import load_account, new_account, save_account
from recon_plugin.brokers.paper.simulation import draw_script, replay_order


class PaperExchange:
    """The simulated exchange behind the paper broker (the ``Broker`` protocol)."""

    name = "paper"

    def __init__(self, path: Path, seed: int = 7, tick_seconds: float = 1.0, reject_rate: float = 0.1,
                 cancel_rate: float = 0.1, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self.reject_rate = reject_rate
        self.cancel_rate = cancel_rate
        self._lock = threading.RLock()
        self._writer_lock = None if read_only else WriterLock(path)
        if not read_only:
            sweep_temp_files(path)
        self._account = self._load() or self._new_account(seed, tick_seconds)

    # -- the account file -------------------------------------------------------------------------

    def _load(self) -> dict[str, Any] | None:
        return load_account(self.path)

    def _new_account(self, seed: int, tick_seconds: float) -> dict[str, Any]:
        account = new_account(seed, tick_seconds)
        if not self.read_only:
            self._save(account)
        return account

    def _save(self, account: dict[str, Any]) -> None:
        save_account(self.path, account)

    # -- the clock --------------------------------------------------------------------------------

    def tick_at(self, when: datetime) -> int:
        started = datetime.fromisoformat(self._account["started_at"])
        return max(0, int((when - started).total_seconds() / self._account["tick_seconds"]))

    def time_of(self, tick: int) -> datetime:
        started = datetime.fromisoformat(self._account["started_at"])
        return started + timedelta(seconds=tick * self._account["tick_seconds"])

    # -- Broker protocol --------------------------------------------------------------------------

    def place_order(self, *, tag: str | None, exchange: str, symbol: str, product: str, side: Side,
                    quantity: int, price: Decimal | None = None) -> str:
        if quantity <= 0:
            raise BrokerError(f"quantity must be positive, got {quantity}", FailureKind.REJECTED)
        with self._lock:
            self._writable()
            account = self._account
            seq = account["next_seq"]
            tick = self.tick_at(utcnow())
            rng = random.Random(f"{account['seed']}:order:{seq}")
            script = draw_script(rng, tick, quantity, self.reject_rate, self.cancel_rate)
            broker_id = f"P{seq:08d}"
            account["orders"][broker_id] = {
                "seq": seq, "tag": tag, "exchange": exchange, "symbol": symbol, "product": product,
                "side": side.value, "quantity": quantity, "price": str(price) if price is not None else None,
                "placed_tick": tick, "script": [[s.tick, s.action, s.quantity] for s in script],
                "cancel_tick": None}
            account["next_seq"] = seq + 1
            self._save(account)
            return broker_id

    def cancel_order(self, broker_order_id: str) -> None:
        with self._lock:
            self._writable()
            order = self._account["orders"].get(broker_order_id)
            if order is None:
                raise BrokerError(f"no paper order {broker_order_id}", FailureKind.REJECTED)
            state = self._state(broker_order_id, order, self.tick_at(utcnow()))
            if state.status.is_terminal:
                raise BrokerError(f"paper order {broker_order_id} is already {state.status}", FailureKind.REJECTED)
            if order["cancel_tick"] is None:
                order["cancel_tick"] = self.tick_at(utcnow()) + 1
                self._save(self._account)

    def fetch_orders(self) -> list[BrokerOrder]:
        return self.book_at(utcnow())

    def book_at(self, when: datetime) -> list[BrokerOrder]:
        """The order book as it was (or will be) at ``when``, given the orders placed so far."""
        with self._lock:
            tick = self.tick_at(when)
            return [self._state(bid, o, tick) for bid, o in self._account["orders"].items()]

    def fetch_positions(self) -> list[Position]:
        return self.positions_at(utcnow())

    def positions_at(self, when: datetime) -> list[Position]:
        """Net positions from every fill up to ``when``."""
        return positions_from_fills(self.book_at(when))

    def order_history(self, broker_order_id: str) -> list[BrokerOrder]:
        with self._lock:
            order = self._account["orders"].get(broker_order_id)
            return [self._state(broker_order_id, order, self.tick_at(utcnow()))] if order else []

    def close(self) -> None:
        if self._writer_lock is not None:
            self._writer_lock.release()
            self._writer_lock = None

    def _writable(self) -> None:
        if self.read_only:
            raise BrokerError("the paper account is open read-only", FailureKind.REJECTED)

    # -- the simulation ---------------------------------------------------------------------------

    def _state(self, broker_id: str, order: dict[str, Any], now_tick: int) -> BrokerOrder:
        """An order's state at ``now_tick``, replayed from its script and any cancel request."""
        return replay_order(self._account["seed"], broker_id, order, now_tick, self.time_of)
