"""The simulator answers in Kite's shape: for each route it serves and an official mock exists for
(``tests/data/kite-mocks``, from ``zerodha/kiteconnect-mocks``), its response has the mock's keys and
value types, route by route, through the real ``kiteconnect`` client (raw ``data``, before the client
turns timestamps into datetimes).

What "the same" means, checked recursively into objects and lists:

- an object has every key that all the mock's objects at that place have, and no key that none of
  them has (the mocks' rows differ: newer rows carry ``tags``, ``validity_ttl``, ``account_id``);
- a value has a type one of the mock's values at that place has (numbers: int and float alike).

Documented exceptions:

- ``NULLABLE``: a field the simulator may send as null where the mocks have a value, or as a value
  where the mocks only have null (``parent_order_id`` is a string on a cover order's stoploss leg, and
  no mock has a cover order; an order not yet at the exchange has no exchange id or timestamps);
- ``FREE_FORM``: objects whose keys depend on the record (an order's ``meta``: ``{}``, an iceberg's
  legs or the GTT that placed it; a holding's ``authorisation``): compared as objects only;
- an order's history (``order_info.json``, from 2017) may carry the fields of the order book's
  records (``orders.json``): the history's records are the book's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kiteconnect import KiteConnect

from hostspec.calendar import ManualClock
from recon_plugin.testing.kite_simulator import KiteSimulator
from tests.helpers import FRI, THU, ist

MOCKS = Path(__file__).parent / "data" / "kite-mocks"
NULLABLE = {"parent_order_id", "exchange_order_id", "exchange_timestamp", "exchange_update_timestamp",
            "status_message", "status_message_raw", "tag", "guid", "avatar_url", "result", "meta"}
FREE_FORM = {"meta", "authorisation"}


def mock(name: str) -> Any:
    return json.loads((MOCKS / f"{name}.json").read_text())["data"]


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "list", dict: "object"}[type(value)]


def differences(sim: Any, mocks: list[Any], path: str = "data", allowed: set[str] | None = None) -> list[str]:
    """How ``sim`` differs in shape from the values ``mocks`` has at ``path`` (empty: conforms)."""
    leaf = path.rsplit(".", 1)[-1].split("[")[0]
    kinds = {kind(m) for m in mocks}
    if kind(sim) not in kinds:
        if leaf in NULLABLE and "null" in (kind(sim), *kinds):
            return []
        return [f"{path}: {kind(sim)}, where the mock has {sorted(kinds)}"]
    found: list[str] = []
    if isinstance(sim, dict) and leaf not in FREE_FORM:
        objects = [m for m in mocks if isinstance(m, dict)]
        required = set.intersection(*(set(o) for o in objects))
        known = set.union(*(set(o) for o in objects)) | (allowed or set())
        found += [f"{path}: no `{key}`" for key in sorted(required - set(sim))]
        found += [f"{path}: `{key}`, which the mock never has" for key in sorted(set(sim) - known)]
        for key in sorted(set(sim) & known):
            values = [o[key] for o in objects if key in o]
            if values:
                found += differences(sim[key], values, f"{path}.{key}")
    if isinstance(sim, list):
        items = [item for m in mocks if isinstance(m, list) for item in m]
        if items:
            for i, item in enumerate(sim):
                found += differences(item, items, f"{path}[{i}]", allowed)
    return found


@pytest.fixture
def kite_clock() -> ManualClock:
    """Overrides the plugin's fixture: Thursday 2026-11-19 10:00 IST, in session."""
    return ManualClock(ist(THU, 10))


@pytest.fixture
def account(kite_sim: KiteSimulator, kite_client: KiteConnect) -> dict[str, Any]:
    """A day of every kind of order the simulator knows; returns the ids of note."""
    def place(**overrides: Any) -> str:
        params: dict[str, Any] = dict(variety="regular", exchange="NSE", tradingsymbol="INFY",
                                      transaction_type="BUY", quantity=10, product="CNC", order_type="LIMIT",
                                      price=1500.0, tag="recon1")
        params.update(overrides)
        return str(kite_client.place_order(**params))

    filled = place()
    kite_sim.fill(filled, 4, 1499.5)
    kite_sim.fill(filled, 6, 1499.0)
    ids = {"filled": filled, "protected": place(order_type="MARKET", price=None, market_protection=-1, tag=None),
           "sl": place(order_type="SL", price=1480.0, trigger_price=1485.0, transaction_type="SELL"),
           "ttl": place(validity="TTL", validity_ttl=5),
           "iceberg": place(variety="iceberg", quantity=1000, iceberg_legs=5, iceberg_quantity=200),
           "co": place(variety="co", trigger_price=1480.0, product="MIS"),
           "nrml": place(exchange="NFO", tradingsymbol="NIFTY26DECFUT", product="NRML", quantity=75, price=24000.0)}
    kite_sim.fill(ids["nrml"], 75, 24010.0)
    kite_sim.set_freeze_quantity("INFY", 4)
    ids["autoslice"] = kite_client.place_autoslice_order(variety="regular", exchange="NSE", tradingsymbol="INFY",
                                                         transaction_type="BUY", quantity=10, product="CNC",
                                                         order_type="LIMIT", price=1500.0)
    kite_client.modify_order(variety="regular", order_id=ids["ttl"], quantity=12)
    kite_client.cancel_order(variety="regular", order_id=ids["sl"])
    kite_sim.reject(place(), "Insufficient funds")
    gtt = kite_client.place_gtt("two-leg", "INFY", "NSE", [1400.0, 1600.0], 1500.0, [
        {"transaction_type": "SELL", "quantity": 1, "order_type": "LIMIT", "product": "CNC", "price": p}
        for p in (1400.0, 1600.0)])
    ids["gtt"] = gtt["trigger_id"]
    kite_sim.fire_gtt(ids["gtt"], 1)
    for _ in range(3):
        kite_client._get("orders")  # some orders walk on
    return ids


def check(sim: Any, mock_name: str, allowed: set[str] | None = None) -> None:
    assert differences(sim, [mock(mock_name)], allowed=allowed) == []


def test_the_order_book(account, kite_client):
    book = kite_client._get("orders")
    assert len(book) >= 10
    check(book, "orders")


def test_an_orders_history(account, kite_client):
    keys = set.union(*(set(row) for row in mock("orders")))
    for oid in (account["filled"], account["ttl"], account["sl"]):
        check(kite_client._get("order.info", url_args={"order_id": oid}), "order_info", allowed=keys)


def test_trades(account, kite_client):
    check(kite_client._get("trades"), "trades")
    check(kite_client._get("order.trades", url_args={"order_id": account["filled"]}), "order_trades")


def test_positions_and_holdings_the_next_morning(account, kite_sim, kite_client):
    check(kite_client._get("portfolio.positions"), "positions")
    kite_sim.advance_to(ist(FRI, 9, 20))
    positions, holdings = kite_client._get("portfolio.positions"), kite_client._get("portfolio.holdings")
    assert positions["net"] and holdings
    check(positions, "positions")
    check(holdings, "holdings")


def test_margins_and_profile(account, kite_client):
    check(kite_client._get("user.margins"), "margins")
    check(kite_client._get("user.margins.segment", url_args={"segment": "equity"}), "margins_equity")
    check(kite_client._get("user.margins.segment", url_args={"segment": "commodity"}), "margin_commodity")
    check(kite_client._get("user.profile"), "profile")


def test_placement_modify_and_cancel_answers(account, kite_client):
    params = dict(exchange="NSE", tradingsymbol="INFY", transaction_type="BUY", quantity=1, product="CNC",
                  order_type="LIMIT", price=1500.0)
    placed = kite_client._post("order.place", url_args={"variety": "regular"}, params=params)
    check(placed, "order_response")
    args = {"variety": "regular", "order_id": placed["order_id"]}
    check(kite_client._put("order.modify", url_args=args, params={"quantity": 2}), "order_modify")
    kite_client._get("orders"), kite_client._get("orders"), kite_client._get("orders")  # the modify lands
    check(kite_client._delete("order.cancel", url_args=args), "order_cancel")
    check(account["autoslice"], "autoslice_response")


def test_gtt_routes(account, kite_sim, kite_client):
    orders = [{"transaction_type": "BUY", "quantity": 1, "order_type": "LIMIT", "product": "CNC", "price": 702.5}]
    created = kite_client.place_gtt("single", "INFY", "NSE", [702.0], 798.0, orders)
    check(created, "gtt_place_order")
    check(kite_client.modify_gtt(created["trigger_id"], "single", "INFY", "NSE", [701.0], 798.0, orders),
          "gtt_modify_order")
    check(kite_client.get_gtts(), "gtt_get_orders")
    check(kite_client.get_gtt(account["gtt"]), "gtt_get_order")  # triggered: its leg's result filled in
    check(kite_client.get_gtt(created["trigger_id"]), "gtt_get_order")
    check(kite_client.delete_gtt(created["trigger_id"]), "gtt_delete_order")


def test_the_check_catches_a_dropped_field_and_a_wrong_type(account, kite_client):
    book = kite_client._get("orders")
    dropped = [{k: v for k, v in row.items() if k != "pending_quantity"} for row in book]
    assert "data[0]: no `pending_quantity`" in differences(dropped, [mock("orders")])
    retyped = [{**row, "order_id": int(row["order_id"])} for row in book]
    assert "data[0].order_id: number, where the mock has ['string']" in differences(retyped, [mock("orders")])
    assert differences([{**book[0], "surprise": 1}], [mock("orders")]) == ["data[0]: `surprise`, which the mock "
                                                                            "never has"]


def test_every_vendored_mock_is_valid_json_of_a_success_envelope():
    for path in sorted(MOCKS.glob("*.json")):
        body = json.loads(path.read_text())
        assert set(body) >= {"status", "data"} or path.name == "postback.json", path.name


