"""The paper broker: deterministic, persistent, readable from another process."""

from __future__ import annotations

import json
import random

import pytest

from hostspec.broker import BrokerError
from hostspec.errors import ResourceBusyError
from hostspec.model import OrderStatus, Side
from recon_plugin.brokers.paper import PaperExchange, draw_script, market_price


def place(exchange, n=5, tag_prefix="T"):
    return [exchange.place_order(tag=f"{tag_prefix}{i}", exchange="NSE", symbol="INFY", product="CNC",
                                 side=Side.BUY, quantity=10) for i in range(n)]


def test_same_seed_same_order_flow_gives_the_same_account(tmp_path):
    a = PaperExchange(tmp_path / "a.json", seed=42)
    b = PaperExchange(tmp_path / "b.json", seed=42)
    place(a)
    place(b)
    scripts = [[o["script"] for o in json.loads(p.read_text())["orders"].values()]
               for p in (tmp_path / "a.json", tmp_path / "b.json")]
    assert scripts[0] == scripts[1]
    assert market_price(42, "INFY", 17) == market_price(42, "INFY", 17)


def test_scripts_fill_exactly_the_quantity_or_cancel_or_reject():
    rng = random.Random(0)
    for _ in range(500):
        quantity = rng.randint(1, 100)
        script = draw_script(rng, 0, quantity, 0.1, 0.2)
        actions = [s.action for s in script]
        filled = sum(s.quantity for s in script if s.action == "fill")
        assert actions[0] in ("ack", "reject")
        assert [s.tick for s in script] == sorted(s.tick for s in script)
        if "cancel" in actions:
            assert 0 < filled < quantity
        elif "reject" not in actions:
            assert filled == quantity


def test_the_account_survives_reopening_and_orders_keep_working(tmp_path):
    path = tmp_path / "paper.json"
    first = PaperExchange(path, seed=1, tick_seconds=0.01)
    ids = place(first)
    first.close()
    reopened = PaperExchange(path, seed=999)  # an existing account keeps its own seed and clock
    assert json.loads(path.read_text())["seed"] == 1
    assert [bo.broker_order_id for bo in reopened.fetch_orders()] == ids
    assert reopened.place_order(tag="X", exchange="NSE", symbol="TCS", product="CNC", side=Side.SELL,
                                quantity=1) == "P00000006"


def test_a_read_only_process_sees_the_same_book_and_cannot_change_it(tmp_path):
    path = tmp_path / "paper.json"
    writer = PaperExchange(path, tick_seconds=0.01)
    place(writer)
    reader = PaperExchange(path, read_only=True)
    assert reader.fetch_orders() == writer.fetch_orders()
    with pytest.raises(BrokerError, match="read-only"):
        reader.place_order(tag=None, exchange="NSE", symbol="X", product="CNC", side=Side.BUY, quantity=1)
    with pytest.raises(ResourceBusyError, match="in use by another writer"):
        PaperExchange(path)  # one writer per account


def test_cancel_request_cancels_a_working_order_keeping_its_fills(tmp_path):
    exchange = PaperExchange(tmp_path / "paper.json", seed=3)
    scripted = {"tag": "T", "exchange": "NSE", "symbol": "INFY", "product": "CNC", "side": "BUY", "quantity": 10,
                "placed_tick": 0, "script": [[1, "ack", 0], [3, "fill", 4], [8, "fill", 6]], "cancel_tick": None}
    assert exchange._state("P1", scripted, 0).status is OrderStatus.SUBMITTED
    assert exchange._state("P1", scripted, 2).status is OrderStatus.PLACED
    partial = exchange._state("P1", scripted, 4)
    assert (partial.status, partial.filled_qty) == (OrderStatus.PARTIAL, 4)
    assert partial.avg_price == market_price(3, "INFY", 3)
    assert exchange._state("P1", scripted, 9).status is OrderStatus.FILLED
    cancelled = exchange._state("P1", {**scripted, "cancel_tick": 5}, 9)
    assert (cancelled.status, cancelled.filled_qty) == (OrderStatus.CANCELLED, 4)


def test_cancelling_a_terminal_or_unknown_order_is_refused(tmp_path):
    exchange = PaperExchange(tmp_path / "paper.json")
    with pytest.raises(BrokerError, match="no paper order"):
        exchange.cancel_order("P99")
    assert exchange.order_history("P99") == []


def test_an_order_whose_account_write_fails_was_never_placed(tmp_path, monkeypatch):
    """Found by the soak: a place or cancel whose account write failed (a file size limit, a full disk, a
    read-only directory) used to stay in memory, so the running host listed it, the reconciler applied its
    fills, and a restart found an account that never held it, whose next order reused its id."""
    import recon_plugin.brokers.paper.exchange as module

    exchange = PaperExchange(tmp_path / "paper.json", seed=3, tick_seconds=0.01)
    [working] = place(exchange, 1)
    saved = module.save_account

    def disk_full(path, account):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(module, "save_account", disk_full)
    with pytest.raises(BrokerError, match=r"could not be written .*No space left on device.*nothing was placed"):
        place(exchange, 1, tag_prefix="F")
    with pytest.raises(BrokerError, match="nothing was placed or changed"):
        exchange.cancel_order(working)
    assert [o.broker_order_id for o in exchange.fetch_orders()] == [working]  # the failed one is not listed
    assert exchange._account["orders"][working]["cancel_tick"] is None
    monkeypatch.setattr(module, "save_account", saved)
    [placed] = place(exchange, 1, tag_prefix="G")
    exchange.close()
    assert placed == "P00000002"  # the failed place used no id
    reopened = PaperExchange(tmp_path / "paper.json", read_only=True)
    assert [(o.broker_order_id, o.tag) for o in reopened.fetch_orders()] == [(working, "T0"), (placed, "G0")]
    assert reopened.fetch_orders() == exchange.fetch_orders()  # the running exchange and the file agree
