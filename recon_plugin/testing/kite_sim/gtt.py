"""GTT triggers (``/gtt/triggers``) in Kite's shape: create, list, get, modify, delete, and the
record of a trigger that fired (pure data; the simulator places the order).

A trigger fires by the test's hand (``KiteSimulator.fire_gtt(trigger_id, leg)``) or when the
instrument's last price crosses a trigger value (``KiteSimulator.set_last_price``): a single trigger
when the price reaches its value from the side of the price it was created at; a two-leg (OCO)
trigger's leg 0 when the price falls to the lower value, leg 1 when it rises to the upper one. The
order it places is a ``regular`` order whose ``meta`` names it, ``{"app_id": ..., "gtt": <id>}``
(the official mock writes that ``meta`` as a JSON string in the trigger's ``result``), with no tag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from recon_plugin.testing.kite_sim.entry import Refusal
from recon_plugin.testing.kite_sim.wire import APP_ID, USER_ID, token

GTT_TYPES = ("single", "two-leg")


@dataclass(frozen=True)
class GttOrder:
    exchange: str
    symbol: str
    side: str
    quantity: int
    order_type: str
    product: str
    price: float


def read_trigger(form: dict[str, str]) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """(type, condition, orders) of a create or modify form, checked; raises ``Refusal``."""
    kind = form.get("type", "")
    if kind not in GTT_TYPES:
        raise Refusal("Invalid `type`.")
    try:
        condition = json.loads(form["condition"])
        orders = json.loads(form["orders"])
        values = [float(v) for v in condition["trigger_values"]]
        last_price = float(condition["last_price"])
        exchange, symbol = str(condition["exchange"]), str(condition["tradingsymbol"])
        rows = [{"exchange": exchange, "tradingsymbol": symbol, "product": str(o["product"]),
                 "order_type": str(o["order_type"]), "transaction_type": str(o["transaction_type"]),
                 "quantity": int(o["quantity"]), "price": float(o["price"]), "result": None} for o in orders]
    except (KeyError, TypeError, ValueError):
        raise Refusal("Invalid `condition` or `orders`.") from None
    if len(values) != (1 if kind == "single" else 2) or len(rows) != len(values):
        raise Refusal("Invalid `trigger_values` for the trigger type.")
    return kind, {"exchange": exchange, "last_price": last_price, "tradingsymbol": symbol,
                  "trigger_values": values, "instrument_token": token(symbol)}, rows


def trigger_record(trigger_id: int, kind: str, condition: dict[str, Any], orders: list[dict[str, Any]],
                   created: str, expires: str) -> dict[str, Any]:
    return {"id": trigger_id, "user_id": USER_ID, "parent_trigger": None, "type": kind, "created_at": created,
            "updated_at": created, "expires_at": expires, "status": "active", "condition": condition,
            "orders": orders, "meta": {}}


def order_of(trigger: dict[str, Any], leg: int) -> GttOrder:
    row = trigger["orders"][leg]
    return GttOrder(row["exchange"], row["tradingsymbol"], row["transaction_type"], row["quantity"],
                    row["order_type"], row["product"], row["price"])


def order_meta(trigger_id: int) -> dict[str, Any]:
    """The ``meta`` of the order a trigger placed."""
    return {"app_id": APP_ID, "gtt": trigger_id}


def fired(trigger: dict[str, Any], leg: int, order_id: str, at: str) -> None:
    """Mark ``trigger`` triggered by ``leg``, which placed ``order_id``."""
    row = trigger["orders"][leg]
    row["result"] = {
        "account_id": USER_ID, "exchange": row["exchange"], "tradingsymbol": row["tradingsymbol"],
        "validity": "DAY", "product": row["product"], "order_type": row["order_type"],
        "transaction_type": row["transaction_type"], "quantity": row["quantity"], "price": row["price"],
        "meta": json.dumps(order_meta(trigger["id"]), separators=(",", ":")), "timestamp": at,
        "triggered_at": trigger["condition"]["trigger_values"][leg],
        "order_result": {"status": "success", "order_id": order_id, "rejection_reason": ""}}
    trigger["status"], trigger["updated_at"] = "triggered", at


def crossed(trigger: dict[str, Any], last_price: float) -> int | None:
    """The leg a move of the last price to ``last_price`` fires, if any."""
    if trigger["status"] != "active":
        return None
    values, start = trigger["condition"]["trigger_values"], trigger["condition"]["last_price"]
    if trigger["type"] == "single":
        value = values[0]
        hit = last_price >= value if start < value else last_price <= value
        return 0 if hit else None
    if last_price <= min(values):
        return 0
    if last_price >= max(values):
        return 1
    return None
