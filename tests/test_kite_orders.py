"""Order entry as Kite accepts it, tags, refusals and "not found" answers: the Kite broker through the
real ``kiteconnect`` client against the simulator, and its rules one by one."""

from __future__ import annotations

import string
from decimal import Decimal

import pytest
from kiteconnect import exceptions as kex

from hostspec.broker import FailureKind, TaggingBroker
from hostspec.cli import main
from hostspec.model import Mode, OrderStatus, Side
from recon_plugin.brokers.kite.broker import ORDERS_PER_MINUTE, KiteBroker, RateLimiter, classify, is_unknown_order
from recon_plugin.brokers.kite.orders import OrderRefused
from recon_plugin.brokers.kite.tags import is_valid_tag, order_tag
from recon_plugin.plan import Settings
from recon_plugin.runner import Reconciler
from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY
from tests.helpers import order

S = OrderStatus
LONG_ID = "strategy-alpha-0000000001"  # 25 characters, with dashes: not a valid Kite tag as it is


@pytest.fixture
def kite(kite_sim):
    broker = KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, kite_sim.url, timeout=1.0)
    yield broker
    broker.close()


def reconciler(kite, store, interval=0.05):
    events = []
    settings = Settings(mode=Mode.LIVE, missing_grace_seconds=0, interval_seconds=interval)
    return Reconciler(kite, store, settings, emit=events.append), events


# -- tags ----------------------------------------------------------------------------------------

def test_local_ids_map_to_valid_distinct_kite_tags():
    assert order_tag("A1") == "A1" and order_tag("x" * 20) == "x" * 20  # valid tags travel unchanged
    ids = [f"D-{i:04d}" for i in range(20_000)] + [LONG_ID, "ünïcode", "a b", "x" * 21]
    tags = [order_tag(i) for i in ids]
    assert all(is_valid_tag(t) and len(t) <= 20 for t in tags)
    assert len(set(tags)) == len(ids)  # no two ids share a tag
    assert tags == [order_tag(i) for i in ids]  # the same in every process: a pure function
    assert not any(is_valid_tag(t) for t in ("", "a-b", "x" * 21, "a_b"))
    assert set(order_tag(LONG_ID)) <= set(string.ascii_letters + string.digits)


def test_a_25_character_local_id_round_trips_through_its_tag(kite_sim, kite, store):
    assert isinstance(kite, TaggingBroker)
    store.record_order(order(LONG_ID, status=S.PENDING, broker_order_id=None, quantity=5))
    broker_id = kite.place_order(tag=LONG_ID, exchange="NSE", symbol="INFY", product="CNC", side=Side.BUY,
                                 quantity=5, price=Decimal("101.5"))  # the response is "lost": not recorded
    (listed,) = kite.fetch_orders()
    assert listed.tag == order_tag(LONG_ID) and is_valid_tag(listed.tag)
    r, _ = reconciler(kite, store)
    r.run_cycle()
    local = store.get_order(LONG_ID)
    assert local.broker_order_id == broker_id and local.status is not S.LOST
    assert not any(o.external for o in store.load().orders.values())  # found by its tag, not adopted


# -- order entry ---------------------------------------------------------------------------------

BASE = {"tag": "A1", "exchange": "NSE", "symbol": "INFY", "product": "CNC", "side": Side.BUY, "quantity": 5}


@pytest.mark.parametrize(("changes", "field"), [
    ({"market_protection": Decimal(0)}, "market_protection"),
    ({"market_protection": Decimal(101)}, "market_protection"),
    ({"order_type": "SL-M", "trigger_price": Decimal("99"), "market_protection": Decimal("-2")}, "market_protection"),
    ({"order_type": "LIMIT"}, "price"),
    ({"order_type": "MARKET", "price": Decimal("100")}, "price"),
    ({"order_type": "SL", "price": Decimal("100")}, "trigger_price"),
    ({"price": Decimal("100"), "trigger_price": Decimal("99"), "order_type": "LIMIT"}, "trigger_price"),
    ({"price": Decimal("NaN")}, "price"),
    ({"validity": "TTL", "price": Decimal("100")}, "validity_ttl"),
    ({"validity": "DAY", "validity_ttl": 5, "price": Decimal("100")}, "validity_ttl"),
    ({"validity": "GTC", "price": Decimal("100")}, "validity"),
    ({"variety": "bracket", "price": Decimal("100")}, "variety"),
    ({"variety": "co", "price": Decimal("100")}, "trigger_price"),
    ({"variety": "iceberg", "price": Decimal("100"), "iceberg_legs": 1, "iceberg_quantity": 5}, "iceberg_legs"),
    ({"variety": "iceberg", "price": Decimal("100"), "iceberg_legs": 2, "iceberg_quantity": 2}, "iceberg_quantity"),
    ({"iceberg_legs": 2, "price": Decimal("100")}, "iceberg_legs"),
    ({"quantity": 0, "price": Decimal("100")}, "quantity"),
    ({"quantity": True, "price": Decimal("100")}, "quantity"),
    ({"product": "BO", "price": Decimal("100")}, "product"),
])
def test_order_entry_refuses_what_kite_would_refuse_naming_the_field_and_sends_nothing(kite, changes, field):
    with pytest.raises(OrderRefused) as refused:
        kite.place_order(**{**BASE, **changes})
    assert refused.value.field == field and field in str(refused.value)
    assert refused.value.kind is FailureKind.REJECTED
    assert kite.requests == 0  # refused here: never sent


def test_an_order_kite_accepts_is_sent_once_with_its_fields(kite_sim, kite):
    broker_id = kite.place_order(**{**BASE, "price": Decimal("101.55"), "validity": "IOC"})
    assert kite.requests == 1
    (listed,) = kite.fetch_orders()
    assert listed.broker_order_id == broker_id and listed.price == Decimal("101.55")


# -- answers -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("exc", "kind"), [
    (kex.InputException("Invalid `price`.", code=400), FailureKind.REJECTED),
    (kex.OrderException("Order rejected by RMS", code=500), FailureKind.REJECTED),
    (kex.PermissionException("Insufficient permission", code=403), FailureKind.REJECTED),
    (kex.GeneralException("Insufficient funds. Required margin is 1000", code=400), FailureKind.REJECTED),
    (kex.GeneralException("boom", code=503), FailureKind.TRANSIENT),
    (kex.NetworkException("Too many requests", code=429), FailureKind.RATE_LIMIT),
    (kex.NetworkException("Request failed (kitetrade-oms)", code=503), FailureKind.TRANSIENT),
    (kex.TokenException("Incorrect `api_key` or `access_token`.", code=403), FailureKind.AUTH),
])
def test_refusals_are_rejected_never_retried_as_transient(exc, kind):
    assert classify("POST /orders/regular", exc).kind is kind


@pytest.mark.parametrize(("exc", "unknown"), [
    (kex.OrderException("Couldn't find that `order_id`.", code=500), True),
    (kex.InputException("Couldn't find that `order_id`.", code=400), True),
    (kex.InputException("Couldn\u2019t find that order_id", code=400), True),
    (kex.InputException("Invalid `order_id`.", code=400), False),  # an unrelated 400 never makes an order gone
    (kex.InputException("Missing or empty field `variety`", code=400), False),
    (kex.NetworkException("Couldn't find that `order_id`.", code=503), False),
])
def test_not_found_is_recognised_by_what_kite_says(exc, unknown):
    assert is_unknown_order(exc) is unknown


@pytest.mark.parametrize("status_code", [400, 500])
def test_both_not_found_answers_lead_to_lost_by_the_ladder_not_endless_queries(kite_sim, kite, store, status_code):
    kite_sim.unknown_order_status = status_code
    gone = kite_sim.add_order(tag="B")
    store.record_order(order("B", status=S.PLACED, broker_order_id=gone))
    kite_sim.remove(gone)
    r, _ = reconciler(kite, store, interval=60.0)  # a LOST order's next query is an interval away at least
    for _ in range(12):
        r.run_cycle()
    assert store.get_order("B").status is S.LOST
    queries = [req for req in kite_sim.requests if req[1] == f"/orders/{gone}"]
    assert len(queries) == 2  # the query that found it gone, one re-check; the next is 2 intervals away


@pytest.mark.parametrize("value", ["0", "101", "-2", ".nan"])
def test_a_config_that_would_send_unprotected_market_orders_is_refused(tmp_path, capsys, value):
    path = tmp_path / "c.yaml"
    path.write_text(f"store:\n  path: {tmp_path / 'state.json'}\nmode: live\nbroker:\n  name: kite\n  kite:\n"
                    f"    market_protection: {value}\n")
    assert main(["recon", "status", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "broker.kite.market_protection" in err and len(err.strip().splitlines()) == 1


# -- rate limits -----------------------------------------------------------------------------------

def virtual_limiter(limit, window):
    now = [0.0]
    return RateLimiter(limit, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s),
                       window=window), now


def test_orders_stay_under_kites_orders_a_minute_by_construction():
    limiter, now = virtual_limiter(ORDERS_PER_MINUTE, 60.0)
    stamps = []
    for _ in range(500):
        limiter.acquire()
        stamps.append(now[0])
    assert ORDERS_PER_MINUTE < 200
    assert all(sum(1 for t in stamps if start <= t < start + 60.0) <= ORDERS_PER_MINUTE for start in stamps)
    assert stamps[-1] >= 120.0


def test_placements_modifications_and_cancels_wait_for_the_orders_limit(kite_sim, kite):
    kite._order_limiter, now = virtual_limiter(2, 60.0)
    first = kite.place_order(**{**BASE, "price": Decimal("100")})
    kite.modify_order(first, price=Decimal("100.5"))
    assert now[0] == 0.0
    kite.cancel_order(first)  # the third order request in a minute waits for the first to leave the window
    assert now[0] == 60.0
    assert [r[0] for r in kite_sim.requests if r[1].startswith("/orders/regular")] == ["POST", "PUT", "DELETE"]


def test_a_modification_is_checked_like_a_placement(kite):
    with pytest.raises(OrderRefused, match="price"):
        kite.modify_order("1", price=Decimal("Infinity"))
    with pytest.raises(OrderRefused, match="nothing to modify"):
        kite.modify_order("1")
    with pytest.raises(OrderRefused, match="validity"):
        kite.modify_order("1", validity="TTL")
    assert kite.requests == 0


# -- the daily re-login (#18) --------------------------------------------------------------------------

def test_the_daily_relogin_with_both_the_variable_and_the_token_file_set(kite_sim, store, monkeypatch, tmp_path):
    """Yesterday's token stays exported; today's lands in the token file. Every request from then on
    carries today's: the file wins, never one source then the other."""
    monkeypatch.setenv("KITE_ACCESS_TOKEN", SIM_ACCESS_TOKEN)
    token_file = tmp_path / "token"
    token_file.write_text(SIM_ACCESS_TOKEN)
    kite = KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, kite_sim.url, 1.0, access_token_env="KITE_ACCESS_TOKEN",
                      access_token_file=token_file)
    r, _ = reconciler(kite, store)
    assert r.run_cycle().error is None
    kite_sim.access_token = "today_token_9f3k"  # the morning: yesterday's session is gone
    assert r.run_cycle().error is not None
    token_file.write_text("today_token_9f3k\n")  # tradehost kite login --token-file
    for _ in range(5):
        assert r.run_cycle().error is None  # every request, every cycle: today's token
    kite.close()


# -- trades (#13) ------------------------------------------------------------------------------------

def test_fills_come_from_kites_trades_at_their_exact_prices(kite_sim, kite, store):
    oid = kite_sim.add_order(quantity=10, tag="A", status="OPEN")
    store.record_order(order("A", status=S.PLACED, broker_order_id=oid))
    kite_sim.fill(oid, 3, 100.05)
    kite_sim.fill(oid, 7, 100.1)  # the book's average: a float VWAP, 100.085
    r, _events = reconciler(kite, store)
    r.run_cycle()
    r.run_cycle()
    state = store.load()
    assert state.ledger["A"].filled_qty == 10 and len(state.ledger["A"].trades) == 2
    exact = Decimal("100.05") * 3 + Decimal("100.1") * 7
    assert state.ledger["A"].filled_value == exact == state.positions[("NSE", "INFY", "CNC")].buy_value
    requests = [path for _, path in kite_sim.requests]
    assert requests.count("/trades") == 1  # read when the filled quantity moved, not every cycle
