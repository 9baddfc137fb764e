"""Zerodha's official mock responses (``tests/data/kite-mocks``, from ``zerodha/kiteconnect-mocks``)
through the Kite broker's parser: every row is read, and nothing the model holds is dropped."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from hostspec.model import BrokerOrder
from recon_plugin.brokers.kite.statuses import (
    PROTECTED,
    STATUS_MAP,
    holding_from_kite,
    order_from_kite,
    parse_time,
    position_from_kite,
    to_decimal,
    trade_from_kite,
)
from tests.helpers import ROOT

MOCKS = ROOT / "tests" / "data" / "kite-mocks"
ORDER_FILES = ("orders.json", "order_info.json")


def rows(name: str) -> list[dict[str, Any]]:
    data = json.loads((MOCKS / name).read_text())["data"]
    return data["net"] + data["day"] if name == "positions.json" else data


def _price(value: Any) -> Decimal | None:
    return to_decimal(value) or None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


# Each Kite order field the model holds: the BrokerOrder attribute it lands in, and how.
ORDER_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "order_id": ("broker_order_id", str), "exchange": ("exchange", str), "tradingsymbol": ("symbol", str),
    "product": ("product", str), "transaction_type": ("side", str), "quantity": ("quantity", int),
    "status": ("raw_status", str), "filled_quantity": ("filled_qty", lambda v: int(v or 0)),
    "average_price": ("avg_price", to_decimal), "tag": ("tag", lambda v: v or None),
    "order_timestamp": ("placed_at", parse_time), "status_message": ("message", lambda v: v),
    "order_type": ("order_type", lambda v: v), "price": ("price", _price), "trigger_price": ("trigger_price", _price),
    "variety": ("variety", lambda v: v), "validity": ("validity", lambda v: v),
    "validity_ttl": ("validity_ttl", _int_or_none), "tags": ("tags", lambda v: tuple(v or ())),
    "exchange_order_id": ("exchange_order_id", lambda v: str(v) if v else None),
    "pending_quantity": ("pending_qty", _int_or_none), "cancelled_quantity": ("cancelled_qty", _int_or_none),
    "guid": ("guid", lambda v: v),
}
# Read together into one attribute (the later update time), or into the parent link.
COMBINED = {"exchange_update_timestamp", "exchange_timestamp", "parent_order_id"}


def test_the_corpus_is_vendored_with_its_licence():
    readme = (MOCKS / "README.md").read_text()  # where they come from, the commit, and their licence status
    assert "zerodha/kiteconnect-mocks" in readme and "licen" in readme.lower()
    for name in (*ORDER_FILES, "positions.json", "holdings.json"):
        assert rows(name), name


def as_placed(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as the order was placed: a protected MARKET order, which Kite lists as a LIMIT order
    tagged ``mktp``, is a MARKET order whose listed type and price the parser keeps in ``extra``."""
    if PROTECTED in (row.get("tags") or ()) and row.get("order_type") == "LIMIT":
        return {**row, "order_type": "MARKET", "price": 0, "listed_order_type": "LIMIT",
                "protection_price": row["price"]}
    return row


def dropped(parse: Callable[[dict[str, Any]], BrokerOrder], row: dict[str, Any]) -> list[str]:
    """The fields of ``row`` that ``parse`` did not carry into the model (nor into ``extra``)."""
    bo = parse(row)
    row = as_placed(row)
    lost = []
    for key, value in row.items():
        if key in ORDER_FIELDS:
            attribute, convert = ORDER_FIELDS[key]
            got = getattr(bo, attribute)
            if (got.value if attribute == "side" else got) != convert(value):
                lost.append(key)
        elif key not in COMBINED and bo.extra.get(key, object()) != value:
            lost.append(key)
    return lost


@pytest.mark.parametrize("name", ORDER_FILES)
def test_every_order_row_is_read_and_no_field_is_dropped(name):
    for row in rows(name):
        assert dropped(order_from_kite, row) == [], (name, row["order_id"])
        bo = order_from_kite(row)
        assert bo.status is STATUS_MAP.get(row["status"], bo.status)
        assert bo.updated_at == parse_time(row.get("exchange_update_timestamp") or row.get("exchange_timestamp"))


def test_a_parser_that_drops_a_field_fails_the_corpus_test():
    def forgetful(row: dict[str, Any]) -> BrokerOrder:
        return replace(order_from_kite(row), price=None, extra={})

    row = next(r for r in rows("orders.json") if r.get("price"))
    assert "price" in dropped(forgetful, row) and "instrument_token" in dropped(forgetful, row)


def test_the_parent_links_in_the_corpus_are_read():
    parents = {o.broker_order_id: o.parent_order_id for o in map(order_from_kite, rows("orders.json"))}
    assert parents["1953367517686685697"] == "1953367517640548352"  # an autoslice child: tag null, tags name it
    protected = next(o for o in map(order_from_kite, rows("orders.json")) if o.broker_order_id == "1953341975595868160")
    assert protected.tags == ("mktp", "mktp:2.00") and protected.order_type == "MARKET"  # as placed
    assert protected.extra["listed_order_type"] == "LIMIT" and protected.price is None
    iceberg = next(o for o in map(order_from_kite, rows("orders.json")) if o.variety == "iceberg")
    assert iceberg.extra["meta"]["iceberg"]["legs"] == 5


def test_every_position_and_holding_row_is_read_exactly():
    for row in rows("positions.json"):
        p = position_from_kite(row)
        assert (p.exchange, p.symbol, p.product, p.quantity) == (
            row["exchange"], row["tradingsymbol"], row["product"], row["quantity"])
        assert p.buy_qty == row["buy_quantity"] and p.sell_qty == row["sell_quantity"]
    for row in rows("holdings.json"):
        h = holding_from_kite(row)
        assert (h.symbol, h.quantity, h.t1_quantity) == (row["tradingsymbol"], row["quantity"], row["t1_quantity"])
        assert h.average_price == to_decimal(row["average_price"])


def test_every_trade_row_is_read_exactly():
    for name in ("trades.json", "order_trades.json"):
        for row in rows(name):
            t = trade_from_kite(row)
            assert (t.trade_id, t.broker_order_id, t.symbol, t.quantity) == (
                row["trade_id"], row["order_id"], row["tradingsymbol"], row["quantity"])
            assert t.price == to_decimal(row["average_price"]) and t.side.value == row["transaction_type"]
            assert t.filled_at == parse_time(row["fill_timestamp"])
