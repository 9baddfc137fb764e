"""A broker that replays a recorded session: an example of a third-party ``hostspec`` broker plugin.

A recording is a JSON Lines file; each line is one frame of what the broker said at ``at`` seconds
into the session::

    {"at": 0, "orders": [{"broker_order_id": "R1", "exchange": "NSE", "symbol": "INFY", "product": "CNC",
                          "side": "BUY", "quantity": 10, "status": "PLACED", "filled_qty": 0, "avg_price": "0",
                          "tag": "H1"}]}
    {"at": 4, "orders": [...], "positions": [...]}
    {"at": 6, "fail": "transient", "message": "gateway timeout"}

The broker answers with the latest frame at or before the elapsed time (scaled by ``speed``), so a
host reconciling against it lives through the session again: useful for reproducing an incident.
A ``fail`` frame makes every call raise ``BrokerError`` of that kind, the way a real outage would.
Select it with ``broker.name: replay`` once this package is installed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from hostspec import (
    BrokerError,
    BrokerOrder,
    ConfigError,
    FailureKind,
    Host,
    OrderStatus,
    Position,
    Side,
    hookimpl,
    setting,
)
from hostspec.model import positions_from_fills


@dataclass(frozen=True)
class ReplaySettings:
    """The ``broker.replay`` section: each option declared once, with its type, default and help."""

    path: str = setting("sessions/sample.jsonl", "the recorded session (JSON Lines)")
    speed: float = setting(1.0, "replay speed: 2.0 plays twice as fast", minimum=0.001)
    start_at: float = setting(0.0, "seconds into the recording to start from", minimum=0)


class ReplayBroker:
    name = "replay"

    def __init__(self, frames: list[dict[str, Any]], speed: float = 1.0, start_at: float = 0.0,
                 clock=time.monotonic) -> None:
        if not frames:
            raise ValueError("a recording needs at least one frame")
        self.frames = sorted(frames, key=lambda f: f["at"])
        self.speed = speed
        self.clock = clock
        self.started = clock() - start_at / speed
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path, speed: float = 1.0, start_at: float = 0.0) -> ReplayBroker:
        frames = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return cls(frames, speed, start_at)

    def _frame(self) -> dict[str, Any]:
        elapsed = (self.clock() - self.started) * self.speed
        current = self.frames[0]
        for frame in self.frames:
            if frame["at"] <= elapsed:
                current = frame
        if "fail" in current:
            raise BrokerError(f"replayed failure: {current.get('message', current['fail'])}",
                              FailureKind(current["fail"]))
        return current

    def fetch_orders(self) -> list[BrokerOrder]:
        with self._lock:
            return [_order(row) for row in self._frame()["orders"]]

    def fetch_positions(self) -> list[Position]:
        with self._lock:
            frame = self._frame()
        if "positions" in frame:
            return [_position(row) for row in frame["positions"]]
        return positions_from_fills(map(_order, frame["orders"]))

    def order_history(self, broker_order_id: str) -> list[BrokerOrder]:
        with self._lock:
            self._frame()
            elapsed = (self.clock() - self.started) * self.speed
            return [_order(row) for frame in self.frames if frame["at"] <= elapsed and "orders" in frame
                    for row in frame["orders"] if row["broker_order_id"] == broker_order_id]

    def place_order(self, **kwargs: Any) -> str:
        raise BrokerError("a replayed session takes no new orders", FailureKind.REJECTED)

    def cancel_order(self, broker_order_id: str) -> None:
        raise BrokerError("a replayed session takes no cancels", FailureKind.REJECTED)

    def close(self) -> None:
        pass


def _order(row: dict[str, Any]) -> BrokerOrder:
    status = row["status"]
    return BrokerOrder(
        broker_order_id=str(row["broker_order_id"]), exchange=row["exchange"], symbol=row["symbol"],
        product=row["product"], side=Side(row["side"]), quantity=int(row["quantity"]),
        status=OrderStatus.__members__.get(status, OrderStatus.UNKNOWN), raw_status=row.get("raw_status", status),
        filled_qty=int(row.get("filled_qty", 0)), avg_price=Decimal(str(row.get("avg_price", "0"))),
        tag=row.get("tag"), message=row.get("message"))


def _position(row: dict[str, Any]) -> Position:
    return Position(row["exchange"], row["symbol"], row["product"], int(row["quantity"]),
                    int(row.get("buy_qty", 0)), Decimal(str(row.get("buy_value", "0"))),
                    int(row.get("sell_qty", 0)), Decimal(str(row.get("sell_value", "0"))))


def open_replay(host: Host) -> ReplayBroker:
    settings = host.config.get(ReplaySettings)
    path = Path(settings.path)
    if not path.is_file():
        raise ConfigError(host.config.path, "broker.replay.path", f"no recording at {path}")
    return ReplayBroker.from_file(path, settings.speed, settings.start_at)


@hookimpl
def hostspec_config_schema():
    return {"broker.replay": ReplaySettings}


@hookimpl
def hostspec_register_brokers(register):
    register("replay", open_replay)
