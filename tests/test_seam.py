"""What a broker plugin hands back is checked at the seam (#18): a bad record is named and blamed on
the plugin, set aside, and the well-formed records beside it reconcile."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostspec.model import OrderStatus, Position
from recon_plugin.plan import Settings
from recon_plugin.runner import Reconciler
from recon_plugin.seam import OrderChecker, check_positions
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import ScriptedBroker, broker, order

S = OrderStatus
KEY = ("NSE", "INFY", "CNC")
GOOD = broker(S.FILLED, 10, "100")

BAD_FIELDS: list[tuple[str, Any]] = [
    ("quantity", "10"), ("quantity", None), ("quantity", True), ("filled_qty", 2.5), ("filled_qty", -1),
    ("avg_price", 100.5), ("avg_price", Decimal("NaN")), ("status", "OPEN"), ("side", "BUY"),
    ("symbol", ""), ("symbol", None), ("placed_at", "2026-01-02 09:15:00"), ("price", 101.5),
]


@pytest.mark.parametrize(("name", "value"), BAD_FIELDS)
def test_a_malformed_field_is_named_and_blamed_on_the_plugin(name, value):
    checked = OrderChecker("third-party").check("fetch_orders", [GOOD, replace(GOOD, broker_order_id="B-X",
                                                                               **{name: value})])
    assert checked.orders == [GOOD]
    assert list(checked.unreadable) == ["B-X"]
    assert checked.unreadable["B-X"].startswith("broker plugin 'third-party': fetch_orders record 1: " + name)


def test_records_that_are_not_orders_and_answers_that_are_not_lists():
    checked = OrderChecker("p").check("fetch_orders", [None, {"order_id": "1"}, GOOD, 3])
    assert checked.orders == [GOOD] and len(checked.unidentified) == 3 and "a NoneType, not a BrokerOrder" in \
        checked.unidentified[0]
    for answer in (None, {"orders": []}, "[]"):
        with pytest.raises(Exception, match="not a list"):
            OrderChecker("p").check("fetch_orders", answer)
    with pytest.raises(Exception, match="positions record 0: quantity"):
        check_positions("p", [Position(*KEY, quantity="5")])


garbage = st.one_of(
    st.none(), st.integers(), st.text(max_size=5), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(BAD_FIELDS).map(lambda bad: replace(broker(S.FILLED, 5, "99", broker_order_id="B-G"),
                                                        **{bad[0]: bad[1]})),
    st.sampled_from(BAD_FIELDS).map(lambda bad: replace(broker(S.PLACED, broker_order_id="B-A"), **{bad[0]: bad[1]})),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(garbage, max_size=4), st.randoms(use_true_random=False))
def test_garbage_beside_well_formed_records_never_stops_the_loop(tmp_path_factory, junk, rng):
    """A plugin's garbage, mixed into a book: the loop goes on, the well-formed orders reconcile exactly,
    and no order is counted missing because of it."""
    store = TinyDBStore(tmp_path_factory.mktemp("seam") / "state.json")
    store.record_order(order("A", status=S.PLACED))
    store.record_order(order("C", status=S.PLACED, broker_order_id="B-C"))
    book = [GOOD, broker(S.FILLED, 3, "50", broker_order_id="B-C"), *junk]
    rng.shuffle(book)
    reconciler = Reconciler(ScriptedBroker(book), store, Settings(missing_grace_seconds=0))
    for _ in range(4):
        reconciler.run_cycle()
    local = store.load()
    malformed_a = any(getattr(j, "broker_order_id", None) == "B-A" for j in junk)
    assert local.orders["C"].status is S.FILLED and local.ledger["C"].filled_qty == 3
    if not malformed_a:  # the good record of A stands unless the plugin also handed back a bad one for it
        assert local.orders["A"].status is S.FILLED
    assert local.positions[KEY].quantity == sum(e.filled_qty for e in local.ledger.values())  # each fill once
    assert all(o.missing_count == 0 and o.status is not S.LOST for o in local.orders.values())
    store.close()
