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

import argparse
import json
import logging
import random
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hostspec import hookimpl
from hostspec.broker import BrokerError, FailureKind
from hostspec.commands import Command, HostOpener
from hostspec.config import Config, Section, setting
from hostspec.errors import ConfigError, ResourceBusyError
from hostspec.hookspecs import BrokerFactory
from hostspec.host import Host
from hostspec.model import BrokerOrder, OrderStatus, Position, Side, positions_from_fills, stable_id, utcnow
from recon_plugin.atomicfile import WriterLock, atomic_write, sweep_temp_files

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
PRICE_STEP = Decimal("0.05")

@dataclass(frozen=True)
class PaperSettings:
    """The ``broker.paper`` section."""

    path: str | None = setting(None, "the paper account file (default: paper-account.json beside the store's file)")
    seed: int = setting(7, "seed of a new account's simulated market and order outcomes")
    tick_seconds: float = setting(1.0, "length of one step of the simulated clock", minimum=0.01)
    reject_rate: float = setting(0.1, "share of new orders the exchange rejects", minimum=0)
    cancel_rate: float = setting(0.1, "share of new orders the exchange cancels after a partial fill", minimum=0)


@dataclass(frozen=True)
class Step:
    """One scripted event of an order's future: at ``tick``, ``action`` (ack, fill, cancel, reject)."""

    tick: int
    action: str
    quantity: int = 0


def market_price(seed: int, symbol: str, tick: int) -> Decimal:
    """The simulated market's price of ``symbol`` at ``tick``: a pure function, rounded to the
    price step (0.05)."""
    base = 100 + int(stable_id(seed, symbol), 16) % 3000
    wobble = random.Random(f"{seed}:{symbol}:{tick}").randint(-40, 40)
    return (Decimal(base) + PRICE_STEP * wobble).quantize(PRICE_STEP)


def draw_script(rng: random.Random, placed_tick: int, quantity: int, reject_rate: float,
                cancel_rate: float) -> list[Step]:
    """An order's future, drawn once at placement: acknowledged after 1-3 ticks, then rejected,
    or filled in 1-3 parts (possibly cancelled after the first part)."""
    tick = placed_tick + rng.randint(1, 3)
    if rng.random() < reject_rate:
        return [Step(tick, "reject")]
    script = [Step(tick, "ack")]
    cancel = quantity > 1 and rng.random() < cancel_rate
    parts = 2 if cancel else min(quantity, rng.randint(1, 3))
    cuts = sorted(rng.sample(range(1, quantity), parts - 1)) if parts > 1 else []
    sizes = [b - a for a, b in zip([0, *cuts], [*cuts, quantity], strict=True)]
    for size in sizes[:1] if cancel else sizes:
        tick += rng.randint(1, 4)
        script.append(Step(tick, "fill", size))
    if cancel:
        script.append(Step(tick + rng.randint(1, 3), "cancel"))
    return script


def new_account(seed: int, tick_seconds: float) -> dict[str, Any]:
    """A fresh account: no orders, the simulated clock starting now."""
    return {"format": FORMAT_VERSION, "seed": seed, "tick_seconds": tick_seconds,
            "started_at": utcnow().isoformat(), "next_seq": 1, "orders": {}}


def save_account(path: Path, account: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(account, indent=1).encode())


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
        try:
            account = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise BrokerError(f"paper account {self.path} is not readable JSON: {exc}",
                              FailureKind.UNREADABLE) from None
        if not isinstance(account, dict) or account.get("format") != FORMAT_VERSION:
            found = account.get("format") if isinstance(account, dict) else type(account).__name__
            raise BrokerError(f"paper account {self.path} has format {found}; expected {FORMAT_VERSION}",
                              FailureKind.UNREADABLE)
        return account

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
        seed = self._account["seed"]
        status, filled, value, message, updated = OrderStatus.SUBMITTED, 0, Decimal(0), None, order["placed_tick"]
        cancel_tick = order["cancel_tick"]
        for tick, action, quantity in order["script"]:
            if tick > now_tick or status.is_terminal:
                break
            if cancel_tick is not None and cancel_tick <= tick and status is not OrderStatus.SUBMITTED:
                break
            updated = tick
            if action == "ack":
                status = OrderStatus.PLACED
            elif action == "reject":
                status, message = OrderStatus.REJECTED, "RMS: margin exceeds (simulated)"
            elif action == "fill":
                price = market_price(seed, order["symbol"], tick)
                filled, value = filled + quantity, value + price * quantity
                status = OrderStatus.FILLED if filled >= order["quantity"] else OrderStatus.PARTIAL
            elif action == "cancel":
                status, message = OrderStatus.CANCELLED, "cancelled by the exchange (simulated)"
        if (cancel_tick is not None and cancel_tick <= now_tick and not status.is_terminal
                and status is not OrderStatus.SUBMITTED):
            status, message, updated = OrderStatus.CANCELLED, "cancelled on request", cancel_tick
        return BrokerOrder(
            broker_order_id=broker_id, exchange=order["exchange"], symbol=order["symbol"],
            product=order["product"], side=Side(order["side"]), quantity=order["quantity"], status=status,
            raw_status=status.value, filled_qty=filled, avg_price=value / filled if filled else Decimal(0),
            tag=order["tag"], placed_at=self.time_of(order["placed_tick"]), updated_at=self.time_of(updated),
            message=message)


def account_path(config: Config) -> Path:
    configured = config.get(PaperSettings).path
    return Path(configured) if configured else Path(config.store.path).with_name("paper-account.json")


def open_paper(host: Host) -> PaperExchange:
    """The paper broker of ``host``'s configuration (``ResourceBusyError`` while another host writes it)."""
    settings = host.config.get(PaperSettings)
    return PaperExchange(account_path(host.config), seed=settings.seed, tick_seconds=settings.tick_seconds,
                         reject_rate=settings.reject_rate, cancel_rate=settings.cancel_rate,
                         read_only=host.read_only)


@hookimpl
def hostspec_config_schema() -> Mapping[str, Section]:
    return {"broker.paper": PaperSettings}


@hookimpl
def hostspec_register_brokers(register: Callable[[str, BrokerFactory], None]) -> None:
    register("paper", open_paper)


def _setup_reset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _reset(args: argparse.Namespace, app: HostOpener) -> int:
    with app.open_host(args.config, read_only=True, with_broker=False) as host:
        config = host.config
    if config.broker.name != "paper":
        raise ConfigError(args.config, "broker.name", "paper reset needs broker.name: paper")
    account, store = account_path(config), Path(config.store.path)
    settings = config.get(PaperSettings)
    if not args.yes:
        if not sys.stdin.isatty():
            print("paper reset: refusing without --yes (no terminal to confirm on)", file=sys.stderr)
            return 2
        answer = input(f"Start a fresh paper account at {account} and empty {store}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("paper reset: nothing changed")
            return 1
    locks = []
    try:
        for path in (account, store):
            locks.append(WriterLock(path))
    except ResourceBusyError as exc:
        print(f"paper reset: {exc}; stop the host first. Nothing changed.", file=sys.stderr)
        return 1
    finally:
        if len(locks) < 2:
            for lock in locks:
                lock.release()
    try:
        for path in (account, store):
            if path.exists():
                path.replace(path.with_name(path.name + ".bak"))
        save_account(account, new_account(settings.seed, settings.tick_seconds))
    finally:
        for lock in locks:
            lock.release()
    print(f"paper reset: fresh paper account at {account}; local state {store} emptied "
          "(previous files kept with a .bak suffix)")
    return 0


PAPER_COMMAND = Command("paper", "manage the paper trading account", subcommands=(
    Command("reset", "start a fresh paper account and local state (old files kept as .bak)", _setup_reset, _reset,
            uses_config=True,
            description="Start a fresh paper account: no orders, a new simulated clock, and an empty state store "
                        "(its orders belong to the old account). The previous files are renamed to <file>.bak. "
                        "Refuses while a host is running on them."),
))


@hookimpl
def hostspec_register_commands(register: Callable[[Command], None]) -> None:
    register(PAPER_COMMAND)
