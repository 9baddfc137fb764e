"""Kite's wire format, as the simulator writes it: names and messages, timestamps, error envelopes,
and the records of ``/portfolio/positions`` and ``/portfolio/holdings`` (pure functions)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hostspec.model import Holding, InstrumentKey, Position

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
TRIGGER_PENDING = "TRIGGER PENDING"
USER_ID = "AB1234"
APP_ID = 12617  # the app id a GTT-triggered order's ``meta`` names (the official mock's)
SQUARE_OFF_PLACED_BY = "RMS-SQUAREOFF"  # a broker's id, not the user's (Zerodha's real value is unconfirmed)
UNKNOWN_ORDER = "Couldn't find that `order_id`."
AMO_IN_SESSION = "AMOs are accepted only outside the market session (simulated)"
TOO_MANY_REQUESTS = "Too many requests"
RMS_MARGIN = "Insufficient funds. Required margin is 95417.84 but available margin is 74251.80."


@dataclass
class Fault:
    name: str
    remaining: int
    path: str | None  # only requests whose path starts with this


def kite_time(at: datetime) -> str:
    """``at`` as Kite writes a timestamp: IST wall time, no zone."""
    return at.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


def token(symbol: str) -> int:
    return int(hashlib.sha256(symbol.encode()).hexdigest()[:6], 16)


def decimal_of(value: float) -> Decimal:
    """A float as the Decimal of its shortest text: what a JSON reader of it gets."""
    return Decimal(repr(value))


def error(message: str, error_type: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "data": None, "error_type": error_type}


@dataclass
class Book:
    """One instrument's activity in today's trades, in Kite's float figures."""

    buy_quantity: int = 0
    buy_value: float = 0.0
    sell_quantity: int = 0
    sell_value: float = 0.0


def position_row(key: InstrumentKey, book: Book, leg: Position | None, adjustment: int) -> dict[str, Any]:
    """One ``/portfolio/positions`` entry: ``leg`` is the position carried overnight (in ``net`` only)."""
    overnight_qty = leg.quantity if leg else 0
    buy_qty = book.buy_quantity + (leg.buy_qty if leg else 0)
    buy_value = book.buy_value + (float(leg.buy_value) if leg else 0.0)
    sell_qty = book.sell_quantity + (leg.sell_qty if leg else 0)
    sell_value = book.sell_value + (float(leg.sell_value) if leg else 0.0)
    quantity = overnight_qty + book.buy_quantity - book.sell_quantity + adjustment
    side_qty, side_value = (buy_qty, buy_value) if quantity >= 0 else (sell_qty, sell_value)
    return {
        "tradingsymbol": key[1], "exchange": key[0], "instrument_token": token(key[1]), "product": key[2],
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


def holding_row(holding: Holding, authorised_date: str) -> dict[str, Any]:
    """One ``/portfolio/holdings`` entry, with the fields of Kite's official mock (no market data:
    the last price is the average price)."""
    average = float(holding.average_price)
    return {
        "tradingsymbol": holding.symbol, "exchange": holding.exchange, "instrument_token": token(holding.symbol),
        "isin": f"INE{hashlib.sha256(holding.symbol.encode()).hexdigest()[:9].upper()}", "product": "CNC",
        "price": 0, "quantity": holding.quantity, "used_quantity": 0, "t1_quantity": holding.t1_quantity,
        "realised_quantity": holding.realised_quantity, "authorised_quantity": 0,
        "authorised_date": authorised_date, "authorisation": {}, "opening_quantity": holding.quantity,
        "short_quantity": 0, "collateral_quantity": 0, "collateral_type": "", "discrepancy": False,
        "average_price": average, "last_price": average, "close_price": average, "pnl": 0,
        "day_change": 0, "day_change_percentage": 0,
        "mtf": {"quantity": 0, "used_quantity": 0, "average_price": 0, "value": 0, "initial_margin": 0}}


def margins(cash: float) -> dict[str, Any]:
    """``GET /user/margins``: both segments, in the shape of Kite's official mock (nothing utilised
    but what the test set)."""
    def segment(net: float) -> dict[str, Any]:
        return {"enabled": True, "net": net,
                "available": {"adhoc_margin": 0, "cash": net, "opening_balance": net, "live_balance": net,
                              "collateral": 0, "intraday_payin": 0},
                "utilised": {key: 0 for key in ("debits", "exposure", "m2m_realised", "m2m_unrealised",
                                                "option_premium", "payout", "span", "holding_sales", "turnover",
                                                "liquid_collateral", "stock_collateral", "delivery")}}
    return {"equity": segment(cash), "commodity": segment(cash)}


def profile() -> dict[str, Any]:
    """``GET /user/profile``, in the shape of Kite's official mock."""
    return {"user_id": USER_ID, "user_type": "individual", "email": "sim@example.com",
            "user_name": "Simulated User", "user_shortname": "Simulated", "broker": "ZERODHA",
            "exchanges": ["BFO", "MCX", "NSE", "CDS", "BSE", "BCD", "MF", "NFO"],
            "products": ["CNC", "NRML", "MIS", "BO", "CO"], "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
            "avatar_url": None, "meta": {"demat_consent": "physical"}}


UPDATE_STATUSES = {"MODIFIED"}
"""Statuses a push reports as ``UPDATE`` (a modification landed); an OPEN order with some of its
quantity filled is ``UPDATE`` too (a partial fill)."""


def push_payload(order: dict[str, Any], checksum: str = "") -> dict[str, Any]:
    """An order as Kite pushes it (a WebSocket ``order`` message's ``data``, a postback's body): the
    order's fields, ``UPDATE`` for a partial fill or a modification, ``unfilled_quantity``,
    ``user_id``, ``app_id`` and ``checksum`` (blank on the WebSocket)."""
    status = order["status"]
    partial = status == "OPEN" and 0 < order["filled_quantity"] < order["quantity"]
    return {**order, "status": "UPDATE" if partial or status in UPDATE_STATUSES else status,
            "unfilled_quantity": order["pending_quantity"], "user_id": USER_ID, "app_id": APP_ID,
            "checksum": checksum}


def postback_checksum(order_id: str, order_timestamp: str, api_secret: str) -> str:
    """Kite's postback checksum: SHA-256 hex of ``order_id + order_timestamp + api_secret``."""
    return hashlib.sha256(f"{order_id}{order_timestamp}{api_secret}".encode()).hexdigest()
