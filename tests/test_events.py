"""Typed event payloads: the registry, the wire form, and what a type checker makes of a listener."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest

from hostspec import events
from hostspec.broker import BrokerError, FailureKind
from hostspec.events import Payload, PayloadError
from hostspec.model import ChangeSet, Event, Mode, OrderStatus, Position, Side, stable_id, utcnow
from recon_plugin import signals
from recon_plugin.engine import plan_cycle
from recon_plugin.events import (
    PAYLOADS,
    BrokerSessionExpired,
    CycleFinished,
    DemoFlow,
    OrderFilled,
    ReconciliationDiscrepancy,
    ReconciliationError,
)
from recon_plugin.plan import Settings, Snapshot
from recon_plugin.rules import Rule
from recon_plugin.runner import Reconciler
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import ScriptedBroker, advance, at, broker, order, state

S = OrderStatus


@dataclass(frozen=True, kw_only=True)
class Ping(Payload):
    kind: ClassVar[str] = "test-ping"
    order_id: str | None
    price: Decimal
    status: OrderStatus
    note: str | None = None


def test_defining_a_kind_registers_it():
    assert events.kinds()["test-ping"] is Ping
    assert events.payload_class("test-ping") is Ping
    assert events.payload_class("nobody-declared-this") is Payload


def test_a_kind_has_one_class():
    with pytest.raises(ValueError, match="test-ping"):
        @dataclass(frozen=True, kw_only=True)
        class Pong(Payload):
            kind: ClassVar[str] = "test-ping"
    assert events.kinds()["test-ping"] is Ping


def test_the_wire_form_is_json_safe_with_the_summary_last():
    ping = Ping(order_id="A", price=Decimal("101.50"), status=OrderStatus.FILLED, summary="A pinged")
    data = ping.to_data()
    assert data == {"order_id": "A", "price": "101.50", "status": "FILLED", "note": None, "summary": "A pinged"}
    assert list(data)[-1] == "summary"
    assert type(data["status"]) is str
    assert Ping.from_data(data) == ping


def test_an_event_is_built_from_a_payload_and_read_back_typed():
    ping = Ping(order_id="A", price=Decimal(1), status=OrderStatus.PLACED, summary="s")
    event = Event.of(ping, "id-1", utcnow())
    assert (event.kind, event.order_id, event.symbol, event.data) == ("test-ping", "A", None, ping.to_data())
    assert event.payload == ping
    assert event.payload_as(Ping).price == Decimal(1)
    assert event.summary == "s"
    with pytest.raises(ValueError, match="no event kind"):
        Event.of(Payload(summary="s"), "id-2", utcnow())


def test_an_unregistered_kind_has_a_bare_payload():
    event = Event("e", "nobody-declared-this", utcnow(), {"summary": "hello", "n": 1})
    assert event.payload == Payload(summary="hello")
    assert Event("e", "nobody-declared-this", utcnow()).payload == Payload(summary="")
    with pytest.raises(PayloadError):
        event.payload_as(Ping)


def test_data_that_does_not_fit_its_kind_is_a_payload_error():
    event = Event("e", "test-ping", utcnow(), {"summary": "no price"})
    with pytest.raises(PayloadError, match="Ping"):
        _ = event.payload
    assert event.summary == "no price"  # what a sink needs is still readable
    with pytest.raises(PayloadError):
        _ = Event("e", "test-ping", utcnow(), {"summary": "s", "order_id": None, "price": "x",
                                               "status": "FILLED"}).payload
    extra = {**Ping(order_id=None, price=Decimal(2), status=OrderStatus.LOST, summary="s").to_data(), "new": 1}
    assert Event("e", "test-ping", utcnow(), extra).payload_as(Ping).price == 2  # unknown keys are ignored


# -- the reconciler's kinds ------------------------------------------------------------------------

def test_every_signal_has_a_payload_class_and_every_class_a_signal():
    assert {cls.kind for cls in PAYLOADS} - {"demo-flow"} == set(signals.BY_KIND)  # demo-flow goes to sinks only
    assert all(events.payload_class(cls.kind) is cls for cls in PAYLOADS)


def plans_announcing_every_state_kind():
    key = ("NSE", "SBIN", "CNC")  # no order on it: its drift is adopted on the second cycle
    local = state(order("A", status=S.PLACED), order("C", status=S.PLACED, broker_order_id="B-C"),
                  order("R", status=S.SUBMITTED, broker_order_id="B-R"),
                  order("M", status=S.PLACED, broker_order_id="B-M", symbol="TCS"),
                  order("T", status=S.PENDING, broker_order_id=None), positions={key: Position(*key, 5)})
    books = [[broker(S.PLACED, 4, "100.25"), broker(S.CANCELLED, broker_order_id="B-C"),
              broker(S.REJECTED, broker_order_id="B-R", message="margin"),
              broker(S.PLACED, broker_order_id="X", tag="T"), broker(S.FILLED, 2, "7", broker_order_id="E1")]]
    books.append([*books[0][:3], broker(S.UNKNOWN, broker_order_id="X", tag="T", raw="ODD"), books[0][4]])
    plans = []
    for i, book in enumerate(books):
        p = plan_cycle(local, Snapshot(book, at(60 + 2 * i), [Position(*key, 9)]), Settings(mode=Mode.LIVE))
        plans.append(p)
        local = advance(local, p.changes)
    return plans


def test_every_event_the_plan_announces_reads_back_as_its_payload_class():
    announced = [e for p in plans_announcing_every_state_kind() for e in p.changes.events]
    assert {e.kind for e in announced} == {"order-updated", "order-filled", "order-cancelled", "order-rejected",
                                           "order-external", "position-synced", "reconciliation-discrepancy"}
    for event in announced:
        payload = event.payload
        assert type(payload) is events.payload_class(event.kind)
        assert list(payload.to_data().items()) == list(event.data.items())  # the wire form, key order included
        assert (event.order_id, event.symbol) == (event.data["order_id"], event.data["symbol"])
    fill = next(e for e in announced if e.kind == "order-filled").payload_as(OrderFilled)
    assert (fill.fill_qty, fill.fill_price, fill.side, fill.rule) == (4, Decimal("100.25"), Side.BUY, Rule.PARTIAL_FILL)


def test_event_and_journal_ids_are_the_ones_computed_before_payloads_were_typed():
    fill = plan_cycle(state(order(status=S.PLACED)), Snapshot([broker(S.FILLED, 10, "100.5")], at(60)), Settings())
    assert [e.event_id for e in fill.changes.events] == ["a51c817a1d2fa15986c93007"]
    assert [j.entry_id for j in fill.changes.journal] == ["440852c5af51b8e6621d0cc7"]
    assert fill.changes.events[0].data["fill_price"] == "100.5"
    reject = plan_cycle(state(order(status=S.PLACED)), Snapshot([broker(S.REJECTED, message="margin")], at(60)),
                        Settings())
    assert [e.event_id for e in reject.changes.events] == ["a7ea4ec114949670039e7257", "8a339f6b0c5e893049289403"]
    assert [j.entry_id for j in reject.changes.journal] == ["69e8d7e1ae86766c4cfe63ce"]


@pytest.fixture
def store(tmp_path):
    s = TinyDBStore(tmp_path / "state.json")
    yield s
    s.close()


def test_signals_pass_the_typed_payload_beside_todays_keyword_arguments(store):
    store.record_order(order("A", status=S.PLACED))
    r = Reconciler(ScriptedBroker([broker(S.FILLED, 10, "100")]), store, Settings(), 1.0)
    heard: list[dict[str, object]] = []
    with signals.order_filled.connected_to(lambda sender, **kw: heard.append(kw), sender=r), \
            signals.cycle_finished.connected_to(lambda sender, **kw: heard.append(kw), sender=r):
        r.run_cycle()
    filled, finished = heard
    event = filled.pop("event")
    assert isinstance(event, Event) and filled.pop("payload") == event.payload
    assert filled == event.data and filled["fill_price"] == "100"
    payload = finished.pop("payload")
    assert isinstance(payload, CycleFinished) and payload.fills == 1 and payload.to_data() == finished


def test_reconciler_errors_and_an_expired_session_are_typed(store):
    r = Reconciler(ScriptedBroker(), store, Settings(), 1.0)
    heard: list[Payload] = []
    r.broker.failure = BrokerError("token expired", FailureKind.AUTH)
    with signals.reconciliation_error.connected_to(lambda sender, payload, **kw: heard.append(payload), sender=r), \
            signals.broker_session_expired.connected_to(lambda sender, payload, **kw: heard.append(payload),
                                                        sender=r):
        r.run_cycle()
    error, expired = heard
    assert isinstance(error, ReconciliationError) and (error.step, error.error_kind) == ("fetch", "auth")
    assert isinstance(expired, BrokerSessionExpired) and expired.message == "token expired"


def test_the_demo_flows_events_are_typed_without_changing_the_demo():
    event = Event(stable_id("demo", "x"), "demo-flow", utcnow(), {"summary": "D-0001 INFY BUY 5 sent as 1"})
    assert event.payload == DemoFlow(summary="D-0001 INFY BUY 5 sent as 1")


def test_a_stored_event_that_does_not_fit_its_kind_is_still_delivered(store, caplog):
    store.apply(ChangeSet(events=[Event("old", "reconciliation-discrepancy", utcnow(), {"summary": "from before"})]))
    r = Reconciler(ScriptedBroker(), store, Settings(), 1.0)
    heard: list[object] = []
    with signals.reconciliation_discrepancy.connected_to(lambda sender, payload, **kw: heard.append(payload),
                                                         sender=r), caplog.at_level(logging.WARNING):
        assert r.publisher.publish_pending() == 1
    assert heard == [Payload(summary="from before")]
    assert "does not fit its payload class" in caplog.text
    assert not isinstance(heard[0], ReconciliationDiscrepancy)


# -- what a type checker makes of a listener -----------------------------------------------------

LISTENER = """
from hostspec.model import Event
from recon_plugin.events import OrderFilled


def on_fill(sender: object, payload: OrderFilled, **extra: object) -> None:
    {body}


def sink(event: Event) -> None:
    if event.kind == OrderFilled.kind:
        print(event.payload_as(OrderFilled).fill_value * 2)
"""


def test_a_listener_reading_a_field_its_kind_does_not_have_fails_the_type_check(tmp_path, monkeypatch):
    from mypy import api

    good, bad = tmp_path / "good_listener.py", tmp_path / "bad_listener.py"
    good.write_text(LISTENER.format(body="print(payload.symbol, payload.fill_price * payload.fill_qty)"))
    bad.write_text(LISTENER.format(body="print(payload.symbol, payload.commission)"))
    monkeypatch.setenv("MYPYPATH", str(Path(__file__).resolve().parent.parent))
    out, err, status = api.run(["--strict", "--follow-imports=silent", "--no-error-summary",
                                "--cache-dir", str(tmp_path / "cache"), str(good), str(bad)])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 1, out + err
    assert errors[0].startswith(str(bad)) and '"OrderFilled" has no attribute "commission"' in errors[0]
