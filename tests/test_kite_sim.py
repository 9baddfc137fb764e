"""The Kite simulator behaves as Kite does, driven by each order's type and variety: through the real
``kiteconnect`` client over loopback, on a ManualClock (Thursday 2026-11-19, 10:00 IST, in session)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from kiteconnect import KiteConnect
from kiteconnect import exceptions as kex

from hostspec.calendar import ManualClock
from recon_plugin.brokers.kite.tags import order_tag
from recon_plugin.testing.kite_simulator import (
    BAD_TAG,
    NO_MARKET_PROTECTION,
    RMS_MARGIN,
    KiteSimulator,
)
from tests.helpers import FRI, THU, ist


@pytest.fixture
def kite_clock() -> ManualClock:
    """Overrides the plugin's fixture: ``kite_sim`` runs on this clock."""
    return ManualClock(ist(THU, 10))


def place(client: KiteConnect, **overrides: Any) -> str:
    params: dict[str, Any] = dict(variety="regular", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
                                  quantity=10, product="CNC", order_type="LIMIT", price=1500.0)
    params.update(overrides)
    return str(client.place_order(**params))


def book(client: KiteConnect) -> dict[str, dict[str, Any]]:
    return {o["order_id"]: o for o in client.orders()}


def statuses_read(client: KiteConnect, order_id: str, reads: int) -> list[str]:
    """The status each of ``reads`` successive book reads shows for the order."""
    return [book(client)[order_id]["status"] for _ in range(reads)]


def history(client: KiteConnect, order_id: str) -> list[str]:
    return [h["status"] for h in client.order_history(order_id)]


# -- refusals --------------------------------------------------------------------------------------

@pytest.mark.parametrize("order_type, extra", [
    ("MARKET", {}), ("MARKET", {"market_protection": 0}), ("SL-M", {"trigger_price": 1490.0}),
])
def test_an_unprotected_market_order_is_refused_as_kite_refuses_it(kite_sim, kite_client, order_type, extra):
    with pytest.raises(kex.InputException) as caught:
        place(kite_client, order_type=order_type, price=None, **extra)
    assert (caught.value.code, str(caught.value)) == (400, NO_MARKET_PROTECTION)
    assert kite_client.orders() == []


@pytest.mark.parametrize("tag", ["D-0001", "a" * 21, "tag with space", "ñandú"])
def test_a_tag_that_is_not_1_to_20_letters_and_digits_is_refused(kite_sim, kite_client, tag):
    with pytest.raises(kex.InputException) as caught:
        place(kite_client, tag=tag)
    assert (caught.value.code, str(caught.value)) == (400, BAD_TAG)
    accepted = place(kite_client, tag=order_tag(tag))
    assert book(kite_client)[accepted]["tag"] == order_tag(tag)


@pytest.mark.parametrize("overrides, field", [
    ({"order_type": "LIMIT", "price": None}, "`price`"),
    ({"order_type": "SL", "trigger_price": None}, "`trigger_price`"),
    ({"order_type": "SL-M", "price": None, "market_protection": -1}, "`trigger_price`"),
    ({"validity": "TTL"}, "`validity_ttl`"),
    ({"validity": "GTC"}, "`validity`"),
    ({"order_type": "STOP"}, "`order_type`"),
    ({"variety": "iceberg", "iceberg_legs": 1, "iceberg_quantity": 10}, "`iceberg_legs`"),
    ({"variety": "co"}, "`trigger_price`"),
    ({"variety": "auction"}, "`auction_number`"),
    ({"quantity": 0}, "`quantity`"),
    ({"order_type": "MARKET", "price": None, "market_protection": 101}, "`market_protection`"),
])
def test_an_order_missing_what_its_type_needs_is_refused_naming_the_field(kite_sim, kite_client, overrides, field):
    with pytest.raises(kex.InputException) as caught:
        place(kite_client, **overrides)
    assert caught.value.code == 400 and field in str(caught.value)
    assert kite_client.orders() == []


def test_rms_refuses_a_placement_as_an_http_error_on_demand(kite_sim, kite_client):
    kite_sim.refuse_placements()
    with pytest.raises(kex.GeneralException) as caught:  # MarginException has no class in the client
        place(kite_client)
    assert (caught.value.code, str(caught.value)) == (400, RMS_MARGIN)
    assert kite_client.orders() == []
    assert place(kite_client) in book(kite_client)  # only the next one was refused


# -- market protection -----------------------------------------------------------------------------

def test_a_protected_market_order_is_a_limit_order_tagged_mktp(kite_sim, kite_client):
    kite_sim.set_last_price("INFY", 1500)
    buy = place(kite_client, order_type="MARKET", price=None, market_protection=2, tag="mine")
    sell = place(kite_client, order_type="MARKET", price=None, market_protection=-1, transaction_type="SELL")
    wide = place(kite_client, order_type="MARKET", price=None, market_protection=5.5)
    orders = book(kite_client)
    assert {k: orders[buy][k] for k in ("order_type", "price", "tag", "tags", "market_protection")} == {
        "order_type": "LIMIT", "price": 1530.0, "tag": "mine", "tags": ["mine", "mktp", "mktp:2.00"],
        "market_protection": 2}
    assert (orders[sell]["order_type"], orders[sell]["price"], orders[sell]["tags"]) == (
        "LIMIT", 1470.0, ["mktp", "mktp:2.00"])  # -1, automatic: 2 percent
    assert (orders[wide]["price"], orders[wide]["tags"]) == (1582.5, ["mktp", "mktp:5.50"])


# -- statuses on their own -------------------------------------------------------------------------

def test_an_order_walks_to_open_one_status_per_read(kite_sim, kite_client):
    oid = place(kite_client)
    assert statuses_read(kite_client, oid, 5) == ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING",
                                                  "OPEN", "OPEN"]
    assert history(kite_client, oid) == ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING", "OPEN"]


def test_an_sl_order_waits_in_trigger_pending_until_triggered(kite_sim, kite_client):
    sl = place(kite_client, order_type="SL", price=1480.0, trigger_price=1485.0, transaction_type="SELL")
    assert statuses_read(kite_client, sl, 6)[3:] == ["TRIGGER PENDING"] * 3
    kite_sim.trigger(sl)
    assert book(kite_client)[sl]["status"] == "OPEN"
    slm = place(kite_client, order_type="SL-M", price=None, trigger_price=1510.0, market_protection=-1)
    kite_sim.settle()
    kite_sim.set_last_price("INFY", 1505)
    assert book(kite_client)[slm]["status"] == "TRIGGER PENDING"
    assert kite_sim.set_last_price("INFY", 1510) == [slm]  # a BUY stop: the price rose to its trigger
    assert (book(kite_client)[slm]["status"], book(kite_client)[slm]["order_type"]) == ("OPEN", "SL-M")


def test_a_modify_walks_through_its_statuses_then_back_to_open(kite_sim, kite_client, kite_clock):
    oid = place(kite_client, quantity=10)
    kite_sim.settle()
    placed_at = book(kite_client)[oid]["order_timestamp"]
    kite_clock.advance(timedelta(minutes=3))
    assert kite_client.modify_order(variety="regular", order_id=oid, quantity=12, price=1501.5) == oid
    seen = [(o["status"], o["quantity"]) for o in (book(kite_client)[oid] for _ in range(5))]
    assert seen == [("MODIFY VALIDATION PENDING", 10), ("MODIFY PENDING", 10), ("MODIFIED", 12), ("OPEN", 12),
                    ("OPEN", 12)]
    order = book(kite_client)[oid]
    assert order["order_timestamp"] == placed_at + timedelta(minutes=3) and order["modified"] is True
    assert (order["price"], order["pending_quantity"]) == (1501.5, 12)
    assert history(kite_client, oid)[3:] == ["OPEN", "MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED",
                                             "OPEN"]


def test_a_modify_the_exchange_refuses_walks_through_not_modified(kite_sim, kite_client):
    oid = place(kite_client, quantity=10, order_type="SL", price=1480.0, trigger_price=1485.0)
    kite_sim.settle()
    kite_client.modify_order(variety="regular", order_id=oid, quantity=0)
    assert [book(kite_client)[oid]["status"] for _ in range(4)] == [
        "MODIFY VALIDATION PENDING", "MODIFY PENDING", "NOT MODIFIED", "TRIGGER PENDING"]
    assert book(kite_client)[oid]["quantity"] == 10


def test_a_cancel_walks_through_cancel_pending(kite_sim, kite_client):
    oid = place(kite_client)
    kite_sim.settle()
    kite_sim.fill(oid, 4, 1499.0)
    assert kite_client.cancel_order(variety="regular", order_id=oid) == oid
    assert statuses_read(kite_client, oid, 3) == ["CANCEL PENDING", "CANCELLED", "CANCELLED"]
    order = book(kite_client)[oid]
    assert (order["filled_quantity"], order["cancelled_quantity"]) == (4, 6)
    assert history(kite_client, oid)[-3:] == ["OPEN", "CANCEL PENDING", "CANCELLED"]
    with pytest.raises(kex.InputException):
        kite_client.cancel_order(variety="regular", order_id=oid)


def test_an_ioc_order_cancels_its_unfilled_remainder_at_once(kite_sim, kite_client):
    unfilled = place(kite_client, validity="IOC")
    kite_sim.settle()
    order = book(kite_client)[unfilled]
    assert (order["status"], order["validity"], order["cancelled_quantity"]) == ("CANCELLED", "IOC", 10)
    assert history(kite_client, unfilled)[-2:] == ["OPEN", "CANCELLED"]
    partly = place(kite_client, validity="IOC")
    kite_sim.fill(partly, 3, 1500.0)
    order = book(kite_client)[partly]
    assert (order["status"], order["filled_quantity"], order["cancelled_quantity"]) == ("CANCELLED", 3, 7)


def test_a_ttl_order_is_cancelled_after_its_minutes_on_the_clock(kite_sim, kite_client, kite_clock):
    oid = place(kite_client, validity="TTL", validity_ttl=2)
    kite_sim.settle()
    kite_clock.advance(timedelta(minutes=1, seconds=59))
    assert book(kite_client)[oid]["status"] == "OPEN"
    kite_clock.advance(timedelta(seconds=1))
    order = book(kite_client)[oid]
    assert (order["status"], order["validity"], order["validity_ttl"]) == ("CANCELLED", "TTL", 2)
    assert order["exchange_update_timestamp"] == "2026-11-19 10:02:00"


def test_walks_paced_by_the_clock_take_one_status_per_step(kite_sim, kite_client, kite_clock):
    kite_sim.pace = timedelta(milliseconds=500)
    oid = place(kite_client)
    assert statuses_read(kite_client, oid, 3) == ["PUT ORDER REQ RECEIVED"] * 3  # reads do not move it
    kite_clock.advance(timedelta(seconds=1))
    assert book(kite_client)[oid]["status"] == "OPEN PENDING"
    kite_clock.advance(timedelta(seconds=1))
    assert book(kite_client)[oid]["status"] == "OPEN"


# -- varieties -------------------------------------------------------------------------------------

def test_autoslice_splits_three_times_the_freeze_quantity_into_three_children(kite_sim, kite_client):
    kite_sim.set_freeze_quantity("NIFTY26DEC24000CE", 1800)
    answer = kite_client.place_autoslice_order(variety="regular", exchange="NFO", tradingsymbol="NIFTY26DEC24000CE",
                                               transaction_type="BUY", quantity=5400, product="NRML",
                                               order_type="LIMIT", price=12.5, tag="slicer")
    parent, children = answer["order_id"], [c["order_id"] for c in answer["children"]]
    assert len(children) == 3 and parent not in children and len(parent) == 19
    orders = book(kite_client)
    assert sorted(orders) == sorted(children)
    for child in children:
        assert (orders[child]["quantity"], orders[child]["tag"], orders[child]["tags"]) == (
            1800, None, ["autoslice", f"autoslice:{parent}"])


def test_an_autoslice_child_rms_refuses_is_an_error_in_the_answer(kite_sim, kite_client):
    kite_sim.set_freeze_quantity("INFY", 4)
    kite_sim.refuse_placements()
    answer = kite_client.place_autoslice_order(variety="regular", exchange="NSE", tradingsymbol="INFY",
                                               transaction_type="BUY", quantity=10, product="CNC",
                                               order_type="LIMIT", price=1500.0)
    assert answer["children"][0] == {"error": {"code": 400, "error_type": "MarginException", "message": RMS_MARGIN,
                                               "data": None}}
    assert [len(c["order_id"]) for c in answer["children"][1:]] == [19, 19]
    assert sorted(o["quantity"] for o in kite_client.orders()) == [2, 4]


def test_an_iceberg_order_places_its_legs_one_after_another(kite_sim, kite_client):
    first = place(kite_client, variety="iceberg", quantity=1000, iceberg_legs=5, iceberg_quantity=200,
                  validity="TTL", validity_ttl=30, tag="berg")
    legs = [first]
    for _ in range(4):
        kite_sim.fill(legs[-1], 200, 1500.0)
        (new,) = set(book(kite_client)) - set(legs)
        legs.append(new)
    kite_sim.fill(legs[-1], 200, 1500.0)
    orders = book(kite_client)
    assert len(orders) == 5 and {o["variety"] for o in orders.values()} == {"iceberg"}
    assert [orders[leg]["meta"]["iceberg"] for leg in legs[:2]] == [
        {"leg": 1, "legs": 5, "leg_quantity": 200, "total_quantity": 1000, "remaining_quantity": 800},
        {"leg": 2, "legs": 5, "leg_quantity": 200, "total_quantity": 1000, "remaining_quantity": 600}]
    assert [orders[leg]["tag"] for leg in legs] == ["berg"] * 5
    assert sum(orders[leg]["filled_quantity"] for leg in legs) == 1000
    assert {orders[leg]["status"] for leg in legs} == {"COMPLETE"}


def test_a_cover_order_has_a_stoploss_leg_linked_by_parent_order_id(kite_sim, kite_client):
    entry = place(kite_client, variety="co", order_type="LIMIT", price=1500.0, trigger_price=1480.0, product="MIS")
    kite_sim.settle()
    orders = book(kite_client)
    (stoploss,) = set(orders) - {entry}
    assert orders[entry]["parent_order_id"] is None and orders[stoploss]["parent_order_id"] == entry
    assert {k: orders[stoploss][k] for k in ("variety", "order_type", "transaction_type", "trigger_price",
                                             "status", "quantity")} == {
        "variety": "co", "order_type": "SL-M", "transaction_type": "SELL", "trigger_price": 1480.0,
        "status": "TRIGGER PENDING", "quantity": 10}


def test_a_gtt_fires_an_order_whose_meta_names_it(kite_sim, kite_client):
    created = kite_client.place_gtt(trigger_type="single", tradingsymbol="INFY", exchange="NSE",
                                    trigger_values=[1450.0], last_price=1500.0,
                                    orders=[{"transaction_type": "BUY", "quantity": 5, "order_type": "LIMIT",
                                             "product": "CNC", "price": 1451.0}])
    trigger_id = created["trigger_id"]
    assert [(g["id"], g["status"]) for g in kite_client.get_gtts()] == [(trigger_id, "active")]
    kite_client.modify_gtt(trigger_id, "single", "INFY", "NSE", [1440.0], 1500.0,
                           [{"transaction_type": "BUY", "quantity": 6, "order_type": "LIMIT", "product": "CNC",
                             "price": 1441.0}])
    assert kite_sim.set_last_price("INFY", 1445) == []  # not down to 1440 yet
    (oid,) = kite_sim.set_last_price("INFY", 1440)
    order = book(kite_client)[oid]
    assert (order["meta"]["gtt"], order["tag"], order["quantity"], order["price"]) == (trigger_id, None, 6, 1441.0)
    fired = kite_client.get_gtt(trigger_id)
    assert fired["status"] == "triggered" and fired["orders"][0]["result"]["order_result"]["order_id"] == oid
    with pytest.raises(kex.InputException):
        kite_client.delete_gtt(trigger_id)  # no longer active


def test_a_two_leg_gtt_fires_by_hand_and_a_deleted_one_never(kite_sim, kite_client):
    legs = [{"transaction_type": "SELL", "quantity": 1, "order_type": "LIMIT", "product": "CNC", "price": p}
            for p in (1400.0, 1600.0)]
    oco = kite_client.place_gtt("two-leg", "INFY", "NSE", [1400.0, 1600.0], 1500.0, legs)["trigger_id"]
    gone = kite_client.place_gtt("two-leg", "INFY", "NSE", [1401.0, 1601.0], 1500.0, legs)["trigger_id"]
    assert kite_client.delete_gtt(gone) == {"trigger_id": gone}
    oid = kite_sim.fire_gtt(oco, leg=1)
    assert book(kite_client)[oid]["transaction_type"] == "SELL" and book(kite_client)[oid]["price"] == 1600.0
    assert kite_sim.set_last_price("INFY", 1300) == []
    assert {g["id"]: g["status"] for g in kite_client.get_gtts()} == {oco: "triggered", gone: "deleted"}


def test_margins_answer_in_kites_shape(kite_sim, kite_client):
    kite_sim.cash = 250000.5
    margins = kite_client.margins()
    assert set(margins) == {"equity", "commodity"} and margins["equity"]["available"]["cash"] == 250000.5
    assert kite_client.margins("equity") == margins["equity"]


# -- ids and rate limits ---------------------------------------------------------------------------

def test_new_order_ids_have_19_digits(kite_sim, kite_client):
    ids = [place(kite_client), kite_sim.add_order(), place(kite_client, variety="co", trigger_price=1480.0)]
    ids += list(book(kite_client))
    assert all(isinstance(i, str) and len(i) == 19 and i.isdigit() for i in ids)


class FrozenTime:
    """The rate limits' clock, moved by hand: no test here depends on how fast it runs."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_past_10_requests_a_second_an_endpoint_answers_429(kite_sim, kite_client):
    kite_sim.limits.clock = clock = FrozenTime()
    for _ in range(10):
        kite_client.orders()
    with pytest.raises(kex.NetworkException) as caught:
        kite_client.orders()
    assert (caught.value.code, str(caught.value)) == (429, "Too many requests")
    kite_client.trades()  # another endpoint has its own limit
    oid = kite_sim.add_order()
    for _ in range(10):
        kite_client.order_history(oid)
    with pytest.raises(kex.NetworkException):
        kite_client.order_history(oid)  # every id counts against one endpoint
    clock.now += 1.0
    kite_client.orders()
    # the record counts every request made, the refused ones too
    assert kite_sim.peak_per_second() == {"GET /orders": 11, "GET /trades": 1, "GET /orders/{id}": 11}
    assert kite_sim.limits.refused == [(1000.0, "GET /orders"), (1000.0, "GET /orders/{id}")]
    kite_sim.rate_limits = False
    for _ in range(12):
        kite_client.orders()


def test_placements_are_limited_to_10_a_second_and_200_a_minute(kite_sim, kite_client):
    kite_sim.limits.clock = clock = FrozenTime()
    for _ in range(10):
        place(kite_client)
    with pytest.raises(kex.NetworkException) as caught:
        place(kite_client)
    assert caught.value.code == 429
    clock.now += 0.75
    for _ in range(190):
        clock.now += 0.25
        place(kite_client)
    clock.now += 0.25
    with pytest.raises(kex.NetworkException):
        place(kite_client)  # 200 in the last minute
    clock.now = 1060.5  # the first 10 have left the minute
    place(kite_client)
    assert len(kite_client.orders()) == 201


def test_the_simulator_records_each_request_for_a_benchmark(kite_sim: KiteSimulator, kite_client):
    kite_client.orders()
    kite_client.positions()
    assert [key for _, key in kite_sim.limits.log] == ["GET /orders", "GET /portfolio/positions"]


def test_a_history_can_be_served_newest_first(kite_sim, kite_client):
    oid = place(kite_client)
    kite_sim.settle()
    kite_sim.history_newest_first = True
    assert history(kite_client, oid) == ["OPEN", "OPEN PENDING", "VALIDATION PENDING", "PUT ORDER REQ RECEIVED"]


def test_a_busted_trade_lowers_the_filled_quantity(kite_sim, kite_client):
    oid = place(kite_client)
    kite_sim.fill(oid, 4, 1500.0)
    kite_sim.fill(oid, 6, 1502.0)
    busted = kite_sim.bust(oid)
    order = book(kite_client)[oid]
    assert (busted["quantity"], order["status"], order["filled_quantity"], order["average_price"]) == (
        6, "OPEN", 4, 1500.0)
    assert [t["quantity"] for t in kite_client.order_trades(oid)] == [4]


def test_an_order_is_modified_25_times_at_most(kite_sim, kite_client):
    kite_sim.rate_limits = False  # 51 modifications at once, on purpose
    oid = place(kite_client)
    for quantity in range(11, 36):
        kite_client.modify_order(variety="regular", order_id=oid, quantity=quantity)
        with pytest.raises(kex.InputException):  # one in flight at a time
            kite_client.modify_order(variety="regular", order_id=oid, quantity=quantity)
        kite_sim.settle(oid)
    with pytest.raises(kex.InputException) as caught:
        kite_client.modify_order(variety="regular", order_id=oid, quantity=40)
    assert str(caught.value) == "Maximum allowed order modifications exceeded."
    assert book(kite_client)[oid]["quantity"] == 35


def test_a_modify_to_an_unprotected_market_order_is_refused_and_a_stop_made_limit_works(kite_sim, kite_client):
    oid = place(kite_client, order_type="SL", price=1480.0, trigger_price=1485.0)
    kite_sim.settle()
    with pytest.raises(kex.InputException) as caught:
        kite_client.modify_order(variety="regular", order_id=oid, order_type="MARKET")
    assert str(caught.value) == NO_MARKET_PROTECTION
    kite_client.modify_order(variety="regular", order_id=oid, order_type="LIMIT", price=1490.0)
    kite_sim.settle()
    order = book(kite_client)[oid]
    assert (order["status"], order["order_type"], order["price"]) == ("OPEN", "LIMIT", 1490.0)


def test_an_amo_with_a_ttl_counts_its_minutes_from_the_open(kite_sim, kite_client):
    kite_sim.advance_to(ist(THU, 18))
    amo = place(kite_client, variety="amo", validity="TTL", validity_ttl=5)
    kite_sim.advance_to(ist(FRI, 9, 19, 59))
    assert statuses_read(kite_client, amo, 2) == ["OPEN", "OPEN"]  # working since the open, 09:15
    kite_sim.advance_to(ist(FRI, 9, 20))
    assert book(kite_client)[amo]["status"] == "CANCELLED"
    assert history(kite_client, amo) == ["AMO REQ RECEIVED", "OPEN", "CANCELLED"]
