"""The webhook event sink: chosen events posted to a real local HTTP server, which may be down."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from hostspec.app import App
from hostspec.errors import ConfigError
from hostspec.model import Event, OrderStatus, Side
from recon_plugin.events import BrokerSessionExpired, OrderFilled, ReconciliationDiscrepancy
from recon_plugin.ops.webhook import WebhookFormat, WebhookSettings, WebhookSink, body, wanted
from recon_plugin.rules import Rule
from tests.helpers import T0, RecordingServer, eventually, free_port, write


def discrepancy(rule: Rule, order_id: str = "D-0003") -> Event:
    payload = ReconciliationDiscrepancy(order_id=order_id, symbol="SBIN", rule=rule, action="PENDING -> LOST",
                                        local={}, broker={"listed": False}, summary=f"{order_id} SBIN {rule}")
    return Event.of(payload, f"e-{order_id}-{rule}", T0)


def filled() -> Event:
    payload = OrderFilled(order_id="D-0001", symbol="SBIN", broker_order_id="B1", side=Side.BUY, quantity=10,
                          status=OrderStatus.FILLED, previous_status=OrderStatus.PLACED, filled_qty=10,
                          rule=Rule.FILL, fill_id="F1", fill_qty=10, fill_price=Decimal(100),
                          fill_value=Decimal(1000), summary="D-0001 filled")
    return Event.of(payload, "e-fill", T0)


def test_the_sink_survives_its_server_being_down_and_delivers_in_order_when_it_returns(caplog):
    port = free_port()
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook", WebhookSettings(enabled=True, retry_max_seconds=0.3))
    caplog.set_level(logging.WARNING, "recon.webhook")
    try:
        expired = Event.of(BrokerSessionExpired(message="TokenException", summary="log in again"), "e-token", T0)
        for event in (discrepancy(Rule.LOST), filled(), discrepancy(Rule.MISSING, "D-0004"), expired):
            sink.offer(event)  # never blocks, server down or not
        assert eventually(lambda: "retrying" in caplog.text, timeout=10)
        assert sink.backlog == 2 and sink.delivered == 0
        with RecordingServer(port) as server:
            assert eventually(lambda: len(server.bodies) == 2, timeout=20)
            assert sink.drain(5)
    finally:
        sink.close()
    assert [(b["kind"], b["event_id"], b["data"].get("rule")) for b in server.bodies] == [
        ("reconciliation-discrepancy", "e-D-0003-lost", "lost"), ("broker-session-expired", "e-token", None)]
    assert server.bodies[0]["summary"] == "D-0003 SBIN lost"


def test_the_chosen_events_and_the_three_formats():
    chosen = WebhookSettings().events
    assert [wanted(e, chosen) for e in (discrepancy(Rule.LOST), discrepancy(Rule.MISSING), filled())] == [
        True, False, False]
    assert wanted(filled(), ("order-filled",))
    event = discrepancy(Rule.LOST)
    assert body(event, WebhookSettings(format=WebhookFormat.SLACK)) == {
        "text": "reconciliation-discrepancy: D-0003 SBIN lost"}
    assert body(event, WebhookSettings(format=WebhookFormat.TELEGRAM, chat_id="-1001")) == {
        "chat_id": "-1001", "text": "reconciliation-discrepancy: D-0003 SBIN lost"}


def test_a_paper_host_posts_its_fills_through_the_plugin(tmp_path, monkeypatch):
    with RecordingServer() as server:
        monkeypatch.setenv("RECON_WEBHOOK_URL", server.url)
        config = write(tmp_path / "paper.yaml", f"""
            broker: {{name: paper, paper: {{tick_seconds: 0.2}}}}
            store: {{path: {tmp_path / 'state.json'}}}
            reconciliation: {{interval_seconds: 0.3}}
            demo: {{enabled: true, orders: 4, interval_seconds: 0.3}}
            webhook: {{enabled: true, format: slack, events: [order-filled]}}
        """)
        app = App()
        host = app.open_host(config)
        try:
            app.start(host)
            assert eventually(lambda: len(server.bodies) >= 2)
        finally:
            app.stop(host)
    assert all(set(b) == {"text"} and b["text"].startswith("order-filled: D-") for b in server.bodies)


def test_a_webhook_without_its_url_or_chat_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("RECON_WEBHOOK_URL", raising=False)
    config = write(tmp_path / "c.yaml", f"""
        store: {{path: {tmp_path / 'state.json'}}}
        plugins: {{disabled: [demo]}}
        webhook: {{enabled: true, format: telegram}}
    """)
    with pytest.raises(ConfigError, match=r"webhook\.chat_id: format: telegram needs the chat"):
        App().open_host(config)
