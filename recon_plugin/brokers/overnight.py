"""What an Indian broker does at the end of a trading day and overnight, as Zerodha does it, for the
simulated brokers (the Kite simulator and the paper exchange) to do the same, with the same words:

- at the square-off time the broker cancels working intraday (MIS) orders and closes MIS positions
  with orders of its own (no tag: the app did not place them); new MIS orders are refused until
  the close;
- at the close the exchange cancels every unfinished order of the day ("exchange mass cancel").

Then, when the next trading day begins:

- CNC (delivery): the day's net buy leaves ``positions`` and enters the holdings the next trading
  day as T1 quantity, delivered (``realised_quantity``) the trading day after (T+1). A day's net
  sell is stock sold out of the holdings.
- MIS (intraday): the broker squares it off before the close; nothing carries.
- every other product (NRML futures and options, MCX): carried as an overnight position at its
  average price, as Kite lists it the next morning (``overnight_quantity``, and the carried
  quantity in ``buy_quantity``/``sell_quantity`` at the average price).

Exact ``Decimal`` arithmetic throughout: a broker's figures are its own, and a simulated broker's
must read back exactly.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from hostspec.model import ZERO, Holding, Position

EXCHANGE_MASS_CANCEL = "exchange mass cancel"
"""Zerodha's reason for an unmatched order the exchange cancelled after the close."""
SQUARE_OFF_MESSAGE = "Auto square-off of an intraday (MIS) position by the broker (simulated)"
SQUARE_OFF_CANCEL_MESSAGE = "Cancelled by the broker's intraday (MIS) square-off (simulated)"
MIS_BLOCKED_MESSAGE = "New MIS orders are blocked after the auto square-off time (simulated)"


class Overnight(StrEnum):
    HOLDINGS = "holdings"  # CNC
    FLAT = "flat"  # MIS
    CARRY = "carry"  # NRML, MCX and anything else


def overnight(product: str) -> Overnight:
    """What happens to a position in ``product`` when its trading day ends."""
    if product == "CNC":
        return Overnight.HOLDINGS
    if product == "MIS":
        return Overnight.FLAT
    return Overnight.CARRY


def _share(value: Decimal, part: int, whole: int) -> Decimal:
    """``value * part / whole``, exact when ``part == whole`` (no division at all then)."""
    return value if part == whole else value * part / whole


def carry(position: Position) -> Position | None:
    """The overnight position ``position`` becomes the next trading day: its net quantity on the
    side that built it, valued at that side's average price (None when it is flat)."""
    quantity = position.quantity
    if quantity == 0:
        return None
    if quantity > 0:
        value = _share(position.buy_value, quantity, position.buy_qty) if position.buy_qty else ZERO
        return Position(position.exchange, position.symbol, position.product, quantity, quantity, value)
    value = _share(position.sell_value, -quantity, position.sell_qty) if position.sell_qty else ZERO
    return Position(position.exchange, position.symbol, position.product, quantity, sell_qty=-quantity,
                    sell_value=value)


def roll_holding(holding: Holding | None, day: Position | None, exchange: str, symbol: str) -> Holding | None:
    """The holding of ``(exchange, symbol)`` when the next trading day begins, given ``day``, the
    CNC position of the day that ended (None: no CNC trading that day).

    Yesterday's T1 quantity is delivered (realised) first; then the day's net buy arrives as T1 at
    its buy average (the holding's average price is the quantity-weighted average of what is held),
    or its net sell leaves the holding, the average price unchanged.
    """
    t1, realised = (holding.t1_quantity, holding.realised_quantity) if holding else (0, 0)
    average = holding.average_price if holding else ZERO
    realised, t1 = realised + t1, 0
    net = day.quantity if day is not None else 0
    if day is not None and net > 0:
        bought = _share(day.buy_value, net, day.buy_qty) if day.buy_qty else ZERO
        average = (average * realised + bought) / (realised + net)
        t1 = net
    elif net < 0:
        realised = max(realised + net, 0)
    if t1 + realised <= 0:
        return None
    return Holding(exchange, symbol, t1 + realised, t1, realised, average)
