"""Order entry as Kite checks it: the parameters of ``POST /orders/{variety}`` (form-encoded, as the
``kiteconnect`` 5.2.2 client sends them) read into an ``Entry``, or refused as Kite refuses them
(HTTP 400 ``InputException``, with Kite's wording where it is known), and the price that market
protection gives a MARKET order (pure functions).

Refused:

- a MARKET or SL-M order without ``market_protection``, or with 0: "Market orders without market
  protection are not allowed via API" (Kite, since 1 April 2026; this check is a switch of the
  simulator, ``require_market_protection``); a value other than -1 or 0 < p <= 100;
- a ``tag`` that is not 1 to 20 letters and digits;
- an unknown ``variety``, ``order_type``, ``validity``; a quantity that is not a positive integer;
- LIMIT or SL without ``price``; SL or SL-M without ``trigger_price``; TTL without ``validity_ttl``
  (minutes, at least 1); an iceberg without ``iceberg_legs`` (2 to 10) and ``iceberg_quantity``
  (legs x leg quantity must cover the quantity); a cover order (``co``) without ``trigger_price``; an
  auction order without ``auction_number``.

**Market protection.** A protected MARKET order is sent to the exchange as a LIMIT order priced
``p`` percent away from the instrument's last price (above for a BUY, rounded down to the paisa;
below for a SELL, rounded up), and appears in the book as ``order_type: LIMIT`` with
``tags: ["mktp", "mktp:<p with 2 decimals>"]``, as Kite shows it. ``-1`` (automatic protection) is
taken as ``AUTO_PROTECTION`` = 2.00 percent, the value of Kite's own example record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

VARIETIES = ("regular", "amo", "co", "iceberg", "auction")
ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
VALIDITIES = ("DAY", "IOC", "TTL")
VALID_TAG = re.compile(r"[A-Za-z0-9]{1,20}")
AUTO_PROTECTION = Decimal("2.00")
PAISA = Decimal("0.01")
NO_MARKET_PROTECTION = "Market orders without market protection are not allowed via API"
BAD_TAG = "Invalid `tag`: it must be 1 to 20 letters or digits."


class Refusal(Exception):
    """Kite's refusal of an order: ``status`` (HTTP), ``error_type`` and the message."""

    def __init__(self, message: str, error_type: str = "InputException", status: int = 400) -> None:
        super().__init__(message)
        self.message, self.error_type, self.status = message, error_type, status


@dataclass(frozen=True)
class Entry:
    """A placement Kite accepted, in Kite's terms."""

    variety: str
    exchange: str
    symbol: str
    side: str
    quantity: int
    product: str
    order_type: str
    price: Decimal
    trigger_price: Decimal
    validity: str
    validity_ttl: int
    disclosed_quantity: int
    market_protection: Decimal  # 0: none
    tag: str | None
    iceberg_legs: int
    iceberg_quantity: int
    auction_number: str | None
    autoslice: bool

    @property
    def protected(self) -> bool:
        return self.order_type == "MARKET" and self.market_protection != 0

    @property
    def protection_pct(self) -> Decimal:
        """The percentage market protection applies: -1 is ``AUTO_PROTECTION``."""
        return AUTO_PROTECTION if self.market_protection == -1 else self.market_protection


def _number(form: dict[str, str], name: str) -> Decimal:
    text = form.get(name)
    if text in (None, ""):
        return Decimal(0)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Refusal(f"Invalid `{name}`.") from None
    if not value.is_finite():
        raise Refusal(f"Invalid `{name}`.")
    return value


def _integer(form: dict[str, str], name: str, minimum: int = 0) -> int:
    value = _number(form, name)
    if value != value.to_integral_value() or value < minimum:
        raise Refusal(f"Invalid `{name}`.")
    return int(value)


def read_entry(variety: str, form: dict[str, str], require_market_protection: bool = True) -> Entry:
    """The placement ``form`` sent to ``POST /orders/{variety}``, checked as Kite checks it; raises
    ``Refusal``."""
    for name in ("tradingsymbol", "transaction_type", "quantity"):
        if not form.get(name):
            raise Refusal(f"Missing `{name}`.")
    if variety not in VARIETIES:
        raise Refusal("Invalid `variety`.")
    order_type = form.get("order_type", "MARKET")
    validity = form.get("validity", "DAY")
    if order_type not in ORDER_TYPES:
        raise Refusal("Invalid `order_type`.")
    if validity not in VALIDITIES:
        raise Refusal("Invalid `validity`.")
    if form["transaction_type"] not in ("BUY", "SELL"):
        raise Refusal("Invalid `transaction_type`.")
    quantity = _integer(form, "quantity", minimum=1)
    price, trigger = _number(form, "price"), _number(form, "trigger_price")
    protection = _number(form, "market_protection")
    tag = form.get("tag") or None
    if tag is not None and VALID_TAG.fullmatch(tag) is None:
        raise Refusal(BAD_TAG)
    if order_type in ("LIMIT", "SL") and price <= 0:
        raise Refusal(f"`price` is required for {order_type} orders.")
    if order_type in ("SL", "SL-M") and trigger <= 0:
        raise Refusal(f"`trigger_price` is required for {order_type} orders.")
    if variety == "co" and trigger <= 0:
        raise Refusal("`trigger_price` (the stoploss) is required for cover orders.")
    if order_type in ("MARKET", "SL-M"):
        if protection == 0 and require_market_protection:
            raise Refusal(NO_MARKET_PROTECTION)
        if protection != 0 and protection != -1 and not 0 < protection <= 100:
            raise Refusal("Invalid `market_protection`: -1 (automatic) or a percentage above 0 up to 100.")
    ttl = _integer(form, "validity_ttl")
    if validity == "TTL" and ttl < 1:
        raise Refusal("`validity_ttl` (minutes) is required for TTL validity.")
    legs, leg_quantity = _integer(form, "iceberg_legs"), _integer(form, "iceberg_quantity")
    if variety == "iceberg" and not (2 <= legs <= 10 and leg_quantity >= 1 and legs * leg_quantity >= quantity):
        raise Refusal("Invalid `iceberg_legs` or `iceberg_quantity`: 2 to 10 legs that cover the quantity.")
    if variety == "auction" and not form.get("auction_number"):
        raise Refusal("`auction_number` is required for auction orders.")
    return Entry(variety=variety, exchange=form.get("exchange", "NSE"), symbol=form["tradingsymbol"],
                 side=form["transaction_type"], quantity=quantity, product=form.get("product", "CNC"),
                 order_type=order_type, price=price, trigger_price=trigger, validity=validity,
                 validity_ttl=ttl if validity == "TTL" else 0,
                 disclosed_quantity=_integer(form, "disclosed_quantity"), market_protection=protection, tag=tag,
                 iceberg_legs=legs if variety == "iceberg" else 0,
                 iceberg_quantity=leg_quantity if variety == "iceberg" else 0,
                 auction_number=form.get("auction_number") or None,
                 autoslice=form.get("autoslice", "").lower() == "true")


def protected_price(side: str, last_price: Decimal, pct: Decimal) -> Decimal:
    """The LIMIT price market protection of ``pct`` percent gives an order at ``last_price``."""
    if side == "BUY":
        return (last_price * (1 + pct / 100)).quantize(PAISA, ROUND_FLOOR)
    return (last_price * (1 - pct / 100)).quantize(PAISA, ROUND_CEILING)


def protection_tags(pct: Decimal) -> list[str]:
    return ["mktp", f"mktp:{pct.quantize(PAISA)}"]


def slices(quantity: int, freeze: int | None) -> list[int]:
    """An autoslice order's children: quantities of at most ``freeze`` (None: no freeze limit)."""
    if freeze is None or quantity <= freeze:
        return [quantity]
    full, rest = divmod(quantity, freeze)
    return [freeze] * full + ([rest] if rest else [])


def iceberg_legs(quantity: int, legs: int, leg_quantity: int) -> list[int]:
    """An iceberg's leg quantities: ``leg_quantity`` each, the last leg taking what is left."""
    out: list[int] = []
    left = quantity
    for leg in range(legs):
        if left <= 0:
            break
        out.append(left if leg == legs - 1 else min(leg_quantity, left))
        left -= out[-1]
    return out
