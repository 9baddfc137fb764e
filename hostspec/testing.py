"""The conformance kit: checks that a broker plugin honours the ``hostspec.broker.Broker`` contract.

Subclass ``BrokerConformance`` in your plugin's tests (the class name must start with ``Test`` for
pytest to collect it) and provide three things::

    from hostspec.testing import BrokerConformance

    class TestMyBroker(BrokerConformance):
        def make_broker(self):
            '''A broker whose account holds at least one order and one position.'''
            return MyBroker(...)

        def make_failing_broker(self):
            '''A broker whose backend cannot answer (down, refusing, garbage).'''
            return MyBroker(url="http://127.0.0.1:9")

        secrets = ("the-api-key-used-above", "the-token-used-above")

Optional: ``status_map`` (your declarative map of raw status -> canonical status) and
``documented_statuses`` (every raw status your broker documents): the kit then checks the map covers
them all. ``unknown_order_id``: an id your broker certainly does not know (default "0").

Each check is one test method; each fails with a message saying which rule was broken.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from hostspec.broker import Broker, BrokerError
from hostspec.model import BrokerOrder, OrderStatus, Position


class BrokerConformance:
    """The checks; subclass it and provide ``make_broker`` and ``make_failing_broker``."""

    secrets: Iterable[str] = ()
    status_map: Mapping[str, OrderStatus] | None = None
    documented_statuses: Iterable[str] = ()
    unknown_order_id: str = "0"

    @pytest.fixture(autouse=True)
    def _conformance_tmp_path(self, tmp_path: Any) -> None:
        """``self.tmp_path``: a fresh directory per check, for brokers that keep files."""
        self.tmp_path = tmp_path

    def make_broker(self) -> Broker:
        raise NotImplementedError("provide make_broker(): a broker with at least one order and one position")

    def make_failing_broker(self) -> Broker:
        raise NotImplementedError("provide make_failing_broker(): a broker whose backend cannot answer")

    # -- helpers ---------------------------------------------------------------------------------------

    def _orders(self, broker: Broker | None = None) -> list[BrokerOrder]:
        own = broker is None
        broker = broker or self.make_broker()
        try:
            orders = broker.fetch_orders()
        finally:
            if own:
                broker.close()
        assert isinstance(orders, list), f"fetch_orders must return a list, got {type(orders).__name__}"
        assert orders, "make_broker() must give a broker whose account holds at least one order"
        return orders

    # -- the checks ------------------------------------------------------------------------------------

    def test_orders_are_typed_right(self) -> None:
        for bo in self._orders():
            where = f"order {getattr(bo, 'broker_order_id', bo)!r}"
            assert isinstance(bo, BrokerOrder), f"{where}: fetch_orders must return BrokerOrder records"
            assert isinstance(bo.broker_order_id, str) and bo.broker_order_id, f"{where}: the id must be a string"
            for name in ("quantity", "filled_qty"):
                value = getattr(bo, name)
                assert type(value) is int, f"{where}: {name} must be an int, got {type(value).__name__}"
                assert value >= 0, f"{where}: {name} must not be negative"
            assert isinstance(bo.avg_price, Decimal), f"{where}: avg_price must be a Decimal (never a float)"
            assert isinstance(bo.status, OrderStatus), f"{where}: status must be an OrderStatus"
            assert isinstance(bo.raw_status, str), f"{where}: raw_status must keep the broker's own string"
            for name in ("placed_at", "updated_at"):
                when = getattr(bo, name)
                assert when is None or (isinstance(when, datetime) and when.tzinfo is not None), \
                    f"{where}: {name} must be timezone-aware (or None)"
            assert all(isinstance(part, str) and part for part in bo.key), \
                f"{where}: exchange, symbol and product must be non-empty strings"

    def test_order_ids_are_stable(self) -> None:
        """The same order has the same id in every fetch, from one connection and from a new one."""
        broker = self.make_broker()
        try:
            book = self._orders(broker)
            first = {bo.broker_order_id: bo.key for bo in book}
            again = {bo.broker_order_id: bo.key for bo in self._orders(broker)}
        finally:
            broker.close()
        assert len(first) == len(book), "two orders in one book share an id"
        for later in (again, {bo.broker_order_id: bo.key for bo in self._orders()}):
            for order_id, key in first.items():
                assert later.get(order_id) == key, f"order {order_id!r} changed id or instrument between fetches"

    def test_positions_are_keyed_and_typed_right(self) -> None:
        broker = self.make_broker()
        try:
            positions = broker.fetch_positions()
        finally:
            broker.close()
        assert isinstance(positions, list), "fetch_positions must return a list"
        keys = [p.key for p in positions]
        assert len(keys) == len(set(keys)), "fetch_positions must return one position per (exchange, symbol, product)"
        for p in positions:
            assert isinstance(p, Position), "fetch_positions must return Position records"
            assert all(isinstance(part, str) and part for part in p.key), f"position {p.key}: empty key part"
            for name in ("quantity", "buy_qty", "sell_qty"):
                assert type(getattr(p, name)) is int, f"position {p.key}: {name} must be an int"
            for name in ("buy_value", "sell_value"):
                assert isinstance(getattr(p, name), Decimal), f"position {p.key}: {name} must be a Decimal"

    def test_a_failed_fetch_raises_instead_of_returning_nothing(self) -> None:
        broker = self.make_failing_broker()
        try:
            for call in ("fetch_orders", "fetch_positions"):
                try:
                    result: Any = getattr(broker, call)()
                except BrokerError:
                    continue
                raise AssertionError(f"{call} on a broker that cannot answer returned {result!r}: it must raise "
                                     "BrokerError, never return an empty (or any) answer")
        finally:
            broker.close()

    def test_history_of_an_unknown_order_is_empty(self) -> None:
        broker = self.make_broker()
        try:
            history = broker.order_history(self.unknown_order_id)
        finally:
            broker.close()
        assert list(history) == [], "order_history of an id the broker does not know must be empty"

    def test_no_secret_in_repr_or_errors(self) -> None:
        secrets = [s for s in self.secrets if s]
        texts = [repr(self.make_broker())]
        failing = self.make_failing_broker()
        texts.append(repr(failing))
        for call in (failing.fetch_orders, failing.fetch_positions, lambda: failing.order_history("1")):
            try:
                call()
            except Exception as exc:
                texts.append(f"{exc!s} {exc!r}")
        failing.close()
        for secret in secrets:
            for text in texts:
                assert secret not in text, "a secret appears in a repr or an error message"

    def test_status_map_is_complete_and_canonical(self) -> None:
        if self.status_map is None:
            return
        for raw, status in self.status_map.items():
            assert isinstance(status, OrderStatus) and status is not OrderStatus.UNKNOWN, \
                f"status {raw!r} must map to a canonical status"
            assert status is not OrderStatus.LOST, f"status {raw!r}: LOST is the engine's to decide"
        missing = [raw for raw in self.documented_statuses if raw not in self.status_map]
        assert not missing, f"documented statuses missing from the map: {missing}"
