"""Typed event payloads: the registry, the wire form, and what a type checker makes of a listener."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

import pytest

from hostspec import events
from hostspec.events import Payload, PayloadError
from hostspec.model import Event, OrderStatus, utcnow


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
