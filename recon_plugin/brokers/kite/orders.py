"""Order entry as Kite accepts it: one request checked here, field by field, before it is sent.

What Kite would refuse is refused locally, as a ``BrokerError`` of kind ``REJECTED`` naming the field:
an order that Kite would refuse is never half-sent, and the caller learns which field is wrong
without a round trip. The rules (Kite Connect v3, 2026):

- ``variety``: regular, amo, co, iceberg or auction; ``order_type``: MARKET, LIMIT, SL or SL-M
  (LIMIT when a price is given, else MARKET; SL/SL-M when a trigger price is given);
- a LIMIT or SL order has a price, a MARKET or SL-M order none; an SL, SL-M or cover order has a
  trigger price, the others none;
- ``validity``: DAY, IOC or TTL; TTL with ``validity_ttl`` minutes (1 to 375, a session's length),
  the others without;
- since 1 April 2026 Kite refuses a MARKET (or SL-M) order placed through the API without
  ``market_protection``: -1 (Kite's automatic protection) or a percentage above 0, at most 100. The
  default, ``DEFAULT_MARKET_PROTECTION``, is -1: the exchange's own guidelines, never unprotected;
- an iceberg order has 2 to 10 legs (``iceberg_legs``) of ``iceberg_quantity`` each, covering the
  quantity; no other variety has legs;
- ``tag``: the local order id, sent as its Kite tag (``kite.tags.order_tag``).

Prices travel as the exact decimal text (never a float's).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hostspec.broker import BrokerError, FailureKind
from hostspec.model import Side
from recon_plugin.brokers.kite.tags import order_tag

VARIETIES = ("regular", "amo", "co", "iceberg", "auction")
ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
VALIDITIES = ("DAY", "IOC", "TTL")
PRODUCTS = ("CNC", "NRML", "MIS", "MTF")
EXCHANGES = ("NSE", "BSE", "NFO", "BFO", "CDS", "BCD", "MCX", "NCO")
MAX_TTL_MINUTES = 375  # 09:15 to 15:30: a TTL cannot outlive the session
ICEBERG_LEGS = (2, 10)
DEFAULT_MARKET_PROTECTION = Decimal(-1)
"""Kite's automatic market protection (the exchange's guidelines for the instrument)."""


class OrderRefused(BrokerError):
    """An order refused before it was sent, as Kite would refuse it: ``field`` names what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"place_order refused before sending: {field}: {problem}", FailureKind.REJECTED)
        self.field = field


def market_protection_problem(value: Decimal | None) -> str | None:
    """Why ``value`` is not a market protection Kite accepts (None when it is)."""
    if value is None or not value.is_finite() or not (value == -1 or 0 < value <= 100):
        return (f"must be -1 (Kite's automatic protection) or a percentage above 0 and at most 100, not {value}; "
                "Kite refuses MARKET orders without market protection")
    return None


def _order_type(price: Decimal | None, trigger_price: Decimal | None) -> str:
    if trigger_price is not None:
        return "SL" if price is not None else "SL-M"
    return "LIMIT" if price is not None else "MARKET"


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise OrderRefused(name, f"{value!r} is not one of {', '.join(allowed)}")


def _check_quantity(quantity: object) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise OrderRefused("quantity", f"must be a positive whole number, not {quantity!r}")


def _check_amount(name: str, value: object) -> None:
    """A price: an exact, finite, non-zero ``Decimal`` (a negative one is legal: spreads, some futures)."""
    if value is not None and (not isinstance(value, Decimal) or not value.is_finite() or value == 0):
        raise OrderRefused(name, f"must be a finite, non-zero Decimal, not {value!r}")


def _check_price(name: str, value: Decimal | None, wanted: bool, order_type: str) -> None:
    if wanted and value is None:
        raise OrderRefused(name, f"a {order_type} order needs one")
    if not wanted and value is not None:
        raise OrderRefused(name, f"a {order_type} order takes none")
    _check_amount(name, value)


def order_request(*, tag: str | None, exchange: str, symbol: str, product: str, side: Side, quantity: int,
                  price: Decimal | None, order_type: str | None, trigger_price: Decimal | None, variety: str,
                  validity: str, validity_ttl: int | None, market_protection: Decimal | None,
                  iceberg_legs: int | None, iceberg_quantity: int | None) -> dict[str, Any]:
    """The keyword arguments of ``KiteConnect.place_order`` for one order, or ``OrderRefused``."""
    order_type = order_type or _order_type(price, trigger_price)
    for name, value, allowed in (("variety", variety, VARIETIES), ("order_type", order_type, ORDER_TYPES),
                                 ("validity", validity, VALIDITIES), ("product", product, PRODUCTS),
                                 ("exchange", exchange, EXCHANGES)):
        _check_choice(name, value, allowed)
    if not symbol:
        raise OrderRefused("symbol", "is empty")
    if not isinstance(side, Side):
        raise OrderRefused("side", f"must be a Side, not {side!r}")
    _check_quantity(quantity)
    _check_price("price", price, order_type in ("LIMIT", "SL"), order_type)
    _check_price("trigger_price", trigger_price, order_type in ("SL", "SL-M") or variety == "co",
                 f"{order_type} {variety}" if variety == "co" else order_type)
    if validity == "TTL" and (not isinstance(validity_ttl, int) or not 1 <= validity_ttl <= MAX_TTL_MINUTES):
        raise OrderRefused("validity_ttl", f"a TTL order needs 1 to {MAX_TTL_MINUTES} minutes, not {validity_ttl!r}")
    if validity != "TTL" and validity_ttl is not None:
        raise OrderRefused("validity_ttl", f"only a TTL order has one (validity is {validity})")
    if variety == "iceberg":
        if not tag:
            raise OrderRefused("tag", "an iceberg order needs one: its legs are tied to the order by their shared tag")
        low, high = ICEBERG_LEGS
        if not isinstance(iceberg_legs, int) or not low <= iceberg_legs <= high:
            raise OrderRefused("iceberg_legs", f"an iceberg order has {low} to {high} legs, not {iceberg_legs!r}")
        if not isinstance(iceberg_quantity, int) or iceberg_quantity <= 0 or iceberg_legs * iceberg_quantity < quantity:
            raise OrderRefused("iceberg_quantity", f"{iceberg_legs} legs of {iceberg_quantity!r} do not cover "
                                                   f"{quantity}")
    elif iceberg_legs is not None or iceberg_quantity is not None:
        raise OrderRefused("iceberg_legs", f"only an iceberg order has legs (variety is {variety})")
    protected = order_type in ("MARKET", "SL-M")
    if protected and (problem := market_protection_problem(market_protection)):
        raise OrderRefused("market_protection", problem)
    request: dict[str, Any] = {
        "variety": variety, "exchange": exchange, "tradingsymbol": symbol, "transaction_type": side.value,
        "quantity": quantity, "product": product, "order_type": order_type, "validity": validity,
        "price": str(price) if price is not None else None,
        "trigger_price": str(trigger_price) if trigger_price is not None else None,
        "validity_ttl": validity_ttl, "iceberg_legs": iceberg_legs, "iceberg_quantity": iceberg_quantity,
        "market_protection": str(market_protection) if protected and market_protection is not None else None,
        "tag": order_tag(tag) if tag else None}
    return request


def modify_request(*, variety: str, quantity: int | None, price: Decimal | None, trigger_price: Decimal | None,
                   order_type: str | None, validity: str | None) -> dict[str, Any]:
    """The keyword arguments of ``KiteConnect.modify_order`` (but the order id), or ``OrderRefused``:
    the same field rules as a placement, for the fields given; at least one must be."""
    _check_choice("variety", variety, VARIETIES)
    if order_type is not None:
        _check_choice("order_type", order_type, ORDER_TYPES)
    if validity is not None:
        _check_choice("validity", validity, ("DAY", "IOC"))  # TTL is given at placement only
    if quantity is not None:
        _check_quantity(quantity)
    _check_amount("price", price)
    _check_amount("trigger_price", trigger_price)
    if (quantity, price, trigger_price, order_type, validity) == (None,) * 5:
        raise OrderRefused("quantity", "nothing to modify: give a quantity, price, trigger price, type or validity")
    return {"variety": variety, "quantity": quantity, "price": str(price) if price is not None else None,
            "trigger_price": str(trigger_price) if trigger_price is not None else None,
            "order_type": order_type, "validity": validity}
