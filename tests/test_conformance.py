"""The conformance kit: the built-in brokers pass it, and each check catches a broker that breaks it."""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal

import pytest

from hostspec.broker import BrokerError
from hostspec.model import OrderStatus, Position, Side
from hostspec.testing import BrokerConformance
from recon_plugin.brokers.kite.broker import KiteBroker
from recon_plugin.brokers.kite.statuses import STATUS_MAP
from recon_plugin.brokers.paper import PaperExchange
from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY
from tests.helpers import broker as broker_order

KITE_DOCUMENTED = ("PUT ORDER REQ RECEIVED", "AMO REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING", "OPEN",
                   "TRIGGER PENDING", "MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED", "NOT MODIFIED",
                   "CANCEL PENDING", "COMPLETE", "CANCELLED", "REJECTED")


class TestPaperBroker(BrokerConformance):
    unknown_order_id = "P99999999"

    def make_broker(self):
        path = self.tmp_path / "paper.json"
        fresh = not path.exists()
        exchange = PaperExchange(path, tick_seconds=0.001, reject_rate=0, cancel_rate=0)
        if fresh:
            exchange.place_order(tag="T1", exchange="NSE", symbol="INFY", product="CNC", side=Side.BUY, quantity=5)
            time.sleep(0.05)  # its scripted fills are due
        return exchange

    def make_failing_broker(self):
        pytest.skip("the paper broker answers from its own file; it has no backend that can fail a fetch")


class TestKiteBroker(BrokerConformance):
    secrets = (SIM_API_KEY, SIM_ACCESS_TOKEN)
    status_map = STATUS_MAP
    documented_statuses = KITE_DOCUMENTED
    unknown_order_id = "999999999999999"

    @pytest.fixture(autouse=True)
    def _sim(self, kite_sim):
        self.sim = kite_sim
        oid = kite_sim.add_order(quantity=4)
        kite_sim.fill(oid, 4, 101.25)

    def make_broker(self):
        return KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, self.sim.url, timeout=1.0)

    def make_failing_broker(self):
        return KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, "http://127.0.0.1:9", timeout=0.5)  # nothing listens


# -- a well-behaved in-memory broker, and one broken variant per rule -------------------------------

class GoodBroker:
    name = "good"
    secret = "tok_SECRET_abc"

    def __init__(self, failing: bool = False) -> None:
        self.failing = failing
        self.calls = 0

    def fetch_orders(self):
        if self.failing:
            raise BrokerError("backend down")
        self.calls += 1
        return [broker_order(OrderStatus.PARTIAL, 2, "100.5", broker_order_id="X1")]

    def fetch_positions(self):
        if self.failing:
            raise BrokerError("backend down")
        return [Position("NSE", "INFY", "CNC", 2, 2, Decimal("201"))]

    def order_history(self, broker_order_id):
        if self.failing:
            raise BrokerError("backend down")
        return []

    def close(self):
        pass

    def __repr__(self):
        return "GoodBroker()"


class FloatPrices(GoodBroker):
    def fetch_orders(self):
        return [replace(o, avg_price=100.5) for o in super().fetch_orders()]


class NaiveTimes(GoodBroker):
    def fetch_orders(self):
        from datetime import datetime

        return [replace(o, placed_at=datetime(2026, 1, 2, 9, 15)) for o in super().fetch_orders()]


class EmptyOnFailure(GoodBroker):
    def fetch_orders(self):
        return [] if self.failing else super().fetch_orders()


class UnstableIds(GoodBroker):
    def fetch_orders(self):
        return [replace(o, broker_order_id=f"X{self.calls}") for o in super().fetch_orders()]


class DuplicatePositions(GoodBroker):
    def fetch_positions(self):
        return super().fetch_positions() * 2


class LeakyRepr(GoodBroker):
    def __repr__(self):
        return f"LeakyRepr(token={self.secret})"


class LeakyErrors(GoodBroker):
    def fetch_orders(self):
        raise BrokerError(f"401 for token {self.secret}")


class HistoryInventsOrders(GoodBroker):
    def order_history(self, broker_order_id):
        return [broker_order(OrderStatus.PLACED, broker_order_id=broker_order_id)]


def kit_for(broker_class, **attributes):
    class Kit(BrokerConformance):
        secrets = (GoodBroker.secret,)

        def make_broker(self):
            return broker_class()

        def make_failing_broker(self):
            return broker_class(failing=True)

    kit = Kit()
    for name, value in attributes.items():
        setattr(kit, name, value)
    return kit


CHECKS = [name for name in dir(BrokerConformance) if name.startswith("test_")]


@pytest.mark.parametrize("check", CHECKS)
def test_a_well_behaved_broker_passes_every_check(check):
    getattr(kit_for(GoodBroker), check)()


@pytest.mark.parametrize(("broker_class", "check", "message"), [
    (FloatPrices, "test_orders_are_typed_right", "Decimal"),
    (NaiveTimes, "test_orders_are_typed_right", "timezone-aware"),
    (UnstableIds, "test_order_ids_are_stable", "changed id"),
    (DuplicatePositions, "test_positions_are_keyed_and_typed_right", "one position per"),
    (EmptyOnFailure, "test_a_failed_fetch_raises_instead_of_returning_nothing", "must raise BrokerError"),
    (HistoryInventsOrders, "test_history_of_an_unknown_order_is_empty", "must be empty"),
    (LeakyRepr, "test_no_secret_in_repr_or_errors", "secret"),
    (LeakyErrors, "test_no_secret_in_repr_or_errors", "secret"),
])
def test_each_check_catches_a_broker_that_breaks_it(broker_class, check, message):
    with pytest.raises(AssertionError, match=message):
        getattr(kit_for(broker_class), check)()


def test_an_incomplete_status_map_is_caught():
    kit = kit_for(GoodBroker, status_map={"OPEN": OrderStatus.PLACED}, documented_statuses=["OPEN", "COMPLETE"])
    with pytest.raises(AssertionError, match="missing from the map: \\['COMPLETE'\\]"):
        kit.test_status_map_is_complete_and_canonical()
    kit = kit_for(GoodBroker, status_map={"ODD": OrderStatus.UNKNOWN})
    with pytest.raises(AssertionError, match="canonical"):
        kit.test_status_map_is_complete_and_canonical()
