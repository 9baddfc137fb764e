"""Kite's push channels through the real transport: the Kite broker's WebSocket client
(``recon_plugin.brokers.kite.push``) and postback receiver (``.postback``) against the simulator's
WebSocket and postbacks, over loopback, delivering to a stub sink (lists)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from hostspec.broker import Broker, PushingBroker
from hostspec.calendar import ManualClock
from hostspec.errors import ConfigError
from hostspec.model import BrokerOrder, OrderStatus, Side
from recon_plugin.brokers.kite.broker import KiteBroker, PushingKiteBroker
from recon_plugin.brokers.kite.postback import PostbackReceiver, expected_checksum, verify
from recon_plugin.brokers.kite.push import Backoff, KitePush, read_frame, scrub
from recon_plugin.testing.kite_sim.wire import postback_checksum
from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY, SQUARE_OFF_PLACED_BY, KiteSimulator
from tests.helpers import THU, ist, write

FAST = Backoff(first=0.05, longest=0.2)
PUSH_THREADS = ("kite-postbacks",)


class Sink:
    """A stub ``PushSink``: what it was told, in order."""

    def __init__(self) -> None:
        self.orders: list[BrokerOrder] = []
        self.calls: list[tuple[str, str]] = []  # ("connected" | "disconnected", reason)
        self._lock = threading.Lock()

    def order(self, update: BrokerOrder) -> None:
        with self._lock:
            self.orders.append(update)

    def connected(self) -> None:
        with self._lock:
            self.calls.append(("connected", ""))

    def disconnected(self, reason: str) -> None:
        with self._lock:
            self.calls.append(("disconnected", reason))

    def count(self, what: str) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c[0] == what)

    def states(self, order_id: str) -> list[tuple[str, int]]:
        with self._lock:
            return [(o.raw_status, o.filled_qty) for o in self.orders if o.broker_order_id == order_id]


def wait_until(condition: Callable[[], Any], seconds: float = 10.0) -> bool:
    """Whether ``condition`` came true within ``seconds`` (a liveness bound, not a timing claim)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A running event loop on a thread of its own: it stands for the reconciler's."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-reconciler-loop", daemon=True)
    thread.start()
    yield loop

    async def finish() -> None:  # what a test left running ends as asyncio.run would end it
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await loop.shutdown_asyncgens()

    asyncio.run_coroutine_threadsafe(finish(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def pushing(sim: KiteSimulator, silence: float = 8.0, **options: Any) -> PushingKiteBroker:
    broker = PushingKiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, sim.url, 2.0, ws_root=sim.ws_url,
                               silence_seconds=silence, **options)
    assert broker.push is not None
    broker.push.backoff = FAST
    return broker


@pytest.fixture
def kite(kite_sim: KiteSimulator, loop: asyncio.AbstractEventLoop) -> Iterator[PushingKiteBroker]:
    broker = pushing(kite_sim)
    yield broker
    broker.stop_push()
    broker.close()


@pytest.fixture
def sink(kite: PushingKiteBroker, loop: asyncio.AbstractEventLoop) -> Sink:
    """A sink the ``kite`` broker pushes to, connected."""
    sink = Sink()
    kite.start_push(loop, sink)
    assert wait_until(lambda: sink.count("connected") == 1)
    return sink


# -- the broker is a pushing broker ------------------------------------------------------------------

def test_the_kite_broker_pushes_when_configured_and_only_then(kite_sim, tmp_path, monkeypatch):
    from hostspec.app import App

    assert isinstance(pushing(kite_sim), PushingBroker)
    assert not isinstance(KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, kite_sim.url, 1.0), PushingBroker)
    monkeypatch.setenv("KITE_API_KEY", SIM_API_KEY)
    monkeypatch.setenv("KITE_ACCESS_TOKEN", SIM_ACCESS_TOKEN)

    def broker(kite_section: str) -> Broker:
        config = write(tmp_path / "live.yaml", f"""
            mode: live
            broker: {{name: kite, kite: {kite_section}}}
            store: {{path: {tmp_path / 's.json'}}}
            reconciliation: {{enabled: false}}
        """)
        host = App().open_host(config)
        host.close()
        return host.broker

    configured = broker(f'{{root: "{kite_sim.url}", ws_root: "{kite_sim.ws_url}"}}')
    assert isinstance(configured, PushingKiteBroker) and isinstance(configured, PushingBroker)
    assert not isinstance(broker(f'{{root: "{kite_sim.url}", ws_root: "{kite_sim.ws_url}", push: false}}'),
                          PushingBroker)
    # the simulator's credentials are never sent to Kite's own WebSocket: another root, no push
    assert not isinstance(broker(f'{{root: "{kite_sim.url}"}}'), PushingBroker)


# -- order updates through the WebSocket ---------------------------------------------------------------

def test_updates_arrive_for_orders_placed_through_the_api(kite_sim, kite, sink):
    oid = kite.place_order(tag="o1", exchange="NSE", symbol="INFY", product="CNC", side=Side.BUY, quantity=10,
                           price=Decimal("1500.5"))
    kite_sim.settle(oid)
    kite_sim.fill(oid, 4, 1500.5)
    kite_sim.fill(oid, 6, 1500.0)
    assert wait_until(lambda: ("COMPLETE", 10) in sink.states(oid))
    assert sink.states(oid) == [("PUT ORDER REQ RECEIVED", 0), ("VALIDATION PENDING", 0), ("OPEN PENDING", 0),
                                ("OPEN", 0), ("UPDATE", 4), ("COMPLETE", 10)]
    partial, done = [o for o in sink.orders if o.raw_status in ("UPDATE", "COMPLETE")]
    assert (partial.status, partial.avg_price, partial.tag) == (OrderStatus.PLACED, Decimal("1500.5"), "o1")
    assert (done.status, done.filled_qty, done.avg_price) == (OrderStatus.FILLED, 10, Decimal("1500.2"))
    assert partial.extra["unfilled_quantity"] == 6 and partial.extra["user_id"] and "checksum" in partial.extra
    assert kite.push is not None and kite.push.counts["orders"] == 6


@pytest.mark.parametrize("kite_clock", [ManualClock(ist(THU, 15, 0))])
def test_updates_arrive_for_orders_the_broker_makes_itself(kite_sim, kite, sink):
    """The broker's own square-off: an order no app placed, pushed all the same."""
    oid = kite.place_order(tag="mis1", exchange="NSE", symbol="SBIN", product="MIS", side=Side.BUY, quantity=5,
                           price=Decimal(800))
    kite_sim.fill(oid, 5, 800.0)
    kite_sim.advance_to(ist(THU, 15, 26))
    assert wait_until(lambda: any(o.side is Side.SELL for o in sink.orders))
    exit_order = next(o for o in sink.orders if o.side is Side.SELL and o.raw_status == "COMPLETE")
    assert (exit_order.symbol, exit_order.quantity, exit_order.filled_qty, exit_order.tag) == ("SBIN", 5, 5, None)
    assert exit_order.extra["placed_by"] == SQUARE_OFF_PLACED_BY


def test_a_modification_is_pushed(kite_sim, kite, sink):
    oid = kite_sim.add_order(quantity=5, price=100.0)
    kite.modify_order(oid, price=Decimal("101.5"))
    kite_sim.settle(oid)
    assert wait_until(lambda: len(sink.states(oid)) == 5)
    assert sink.states(oid) == [("OPEN", 0), ("MODIFY VALIDATION PENDING", 0), ("MODIFY PENDING", 0),
                                ("UPDATE", 0), ("OPEN", 0)]
    assert [o.price for o in sink.orders if o.broker_order_id == oid][-2:] == [Decimal("101.5")] * 2


def test_a_cancel_and_a_rejection_are_pushed(kite_sim, kite, sink):
    working, refused = kite_sim.add_order(quantity=5), kite_sim.add_order(symbol="TCS", quantity=3)
    kite_sim.fill(working, 2, 100.0)
    kite.cancel_order(working)
    kite_sim.settle(working)
    kite_sim.reject(refused)
    assert wait_until(lambda: ("CANCELLED", 2) in sink.states(working) and sink.states(refused))
    assert sink.states(working)[-2:] == [("CANCEL PENDING", 2), ("CANCELLED", 2)]
    assert sink.states(refused)[-1] == ("REJECTED", 0)


def test_a_disconnect_is_reported_and_the_reconnect_calls_connected_again(kite_sim, kite, sink):
    kite_sim.push.inject("drop")
    assert wait_until(lambda: sink.count("connected") == 2)
    assert [c[0] for c in sink.calls] == ["connected", "disconnected", "connected"]
    assert sink.calls[1][1]  # a reason
    oid = kite_sim.add_order()
    kite_sim.fill(oid, 10, 99.0)
    assert wait_until(lambda: ("COMPLETE", 10) in sink.states(oid))  # the new connection delivers


def test_refused_connections_are_retried_with_one_disconnect_reported(kite_sim, kite, loop):
    kite_sim.push.inject("refuse", times=3)
    sink = Sink()
    kite.start_push(loop, sink)
    assert wait_until(lambda: sink.count("connected") == 1)
    assert [c[0] for c in sink.calls] == ["disconnected", "connected"]
    assert "503" in sink.calls[0][1]
    assert kite.push is not None and kite.push.counts["failed-attempts"] == 3


def test_silence_is_a_disconnect(kite_sim, loop):
    broker = pushing(kite_sim, silence=1.0)
    sink = Sink()
    broker.start_push(loop, sink)
    try:
        assert wait_until(lambda: sink.count("connected") == 1)
        kite_sim.push.inject("silence")  # the socket stays up; no heartbeat, no order
        assert wait_until(lambda: sink.count("disconnected") == 1)
        assert "no frame" in sink.calls[1][1] and "heartbeat" in sink.calls[1][1]
        kite_sim.push.clear_faults()
        assert wait_until(lambda: sink.count("connected") == 2)
    finally:
        broker.stop_push()


def test_heartbeats_alone_keep_the_channel_up(kite_sim, loop):
    broker = pushing(kite_sim, silence=1.0)
    kite_sim.push.heartbeat_seconds = 0.2
    sink = Sink()
    broker.start_push(loop, sink)
    try:
        assert wait_until(lambda: sink.count("connected") == 1)
        assert broker.push is not None
        assert wait_until(lambda: broker.push.counts["frames"] >= 10)  # 2 s of heartbeats, longer than the silence
        assert sink.count("disconnected") == 0
    finally:
        broker.stop_push()


def test_error_message_and_unreadable_frames_reach_nothing(kite_sim, kite, sink, caplog):
    caplog.set_level(logging.INFO)
    kite_sim.push.send_text(json.dumps({"type": "error", "data": "something went wrong"}))
    kite_sim.push.send_text(json.dumps({"type": "message", "data": "hello"}))
    kite_sim.push.send_text("not json")
    kite_sim.push.send_text(json.dumps({"type": "order", "data": {"order_id": "42"}}))  # no status, no fields
    kite_sim.push.send_text(json.dumps({"type": "order", "data": None}))
    oid = kite_sim.add_order()  # after them: when it arrives, they were all read
    assert wait_until(lambda: sink.states(oid))
    assert [o.broker_order_id for o in sink.orders] == [oid]
    assert kite.push is not None and (kite.push.counts["errors"], kite.push.counts["unreadable"]) == (1, 3)
    assert "the server sent an error: something went wrong" in caplog.text
    assert "an unreadable order update (order 42" in caplog.text
    assert sink.count("disconnected") == 0


def test_read_frame_reads_kites_text_frames():
    assert read_frame('{"type": "order", "data": {"order_id": "1"}}') == ("order", {"order_id": "1"})
    assert read_frame(b'{"type": "error", "data": "x"}') == ("error", "x")
    assert read_frame("[1, 2]") == ("unreadable", None)
    assert read_frame('{"data": 1}') == ("unreadable", None)
    assert read_frame("\x00") == ("unreadable", None)


# -- the simulator's faults, as the client sees them ------------------------------------------------------

def test_duplicated_reordered_and_delayed_messages(kite_sim, kite, sink):
    oid = kite_sim.add_order(quantity=9)
    assert wait_until(lambda: sink.states(oid))
    kite_sim.push.inject("duplicate")
    kite_sim.fill(oid, 1, 10.0)
    kite_sim.push.inject("reorder")
    kite_sim.fill(oid, 2, 10.0)
    kite_sim.fill(oid, 3, 10.0)
    kite_sim.push.delay_seconds = 0.2
    kite_sim.push.inject("delay")
    kite_sim.fill(oid, 3, 10.0)
    other = kite_sim.add_order(symbol="TCS")  # sent at once, before the delayed message
    assert wait_until(lambda: len(sink.states(oid)) == 6)
    assert sink.states(oid) == [("OPEN", 0), ("UPDATE", 1), ("UPDATE", 1), ("UPDATE", 6), ("UPDATE", 3),
                                ("COMPLETE", 9)]
    arrivals = [o.broker_order_id for o in sink.orders]
    assert arrivals.index(other) < len(arrivals) - 1 and arrivals[-1] == oid


def test_a_push_before_the_book_and_a_push_older_than_the_last_poll(kite_sim, kite, sink):
    kite_sim.push.inject("before-book")
    early = kite_sim.add_order(symbol="ITC")
    assert wait_until(lambda: sink.states(early))
    assert early not in {o.broker_order_id for o in kite.fetch_orders()}  # pushed, not yet in the book
    kite_sim.hide(early, False)
    assert early in {o.broker_order_id for o in kite.fetch_orders()}

    oid = kite_sim.add_order(quantity=4)
    kite_sim.fill(oid, 4, 50.0)
    polled = {o.broker_order_id: o for o in kite.fetch_orders()}[oid]
    assert polled.status is OrderStatus.FILLED
    kite_sim.push.send_state(oid)  # its state before the fill, after the poll saw it filled
    assert wait_until(lambda: len(sink.states(oid)) == 3)
    assert sink.states(oid) == [("OPEN", 0), ("COMPLETE", 4), ("OPEN", 0)]
    kite_sim.push.inject("stale")  # the next change is pushed as the state before it
    tcs = kite_sim.add_order(symbol="TCS")
    kite_sim.fill(tcs, 10, 10.0)
    assert wait_until(lambda: len(sink.states(tcs)) == 2)
    assert sink.states(tcs) == [("OPEN", 0), ("OPEN", 0)]


# -- stopping ------------------------------------------------------------------------------------------

def test_stop_push_returns_promptly_and_leaves_no_thread_behind(kite_sim, loop):
    broker = pushing(kite_sim)
    receiver_sink = Sink()
    threads = set(threading.enumerate())
    broker.postbacks = PostbackReceiver(("127.0.0.1", 0), kite_sim.api_secret)
    broker.start_push(loop, receiver_sink)
    assert wait_until(lambda: receiver_sink.count("connected") == 1)
    assert [t.name for t in set(threading.enumerate()) - threads if t.name in PUSH_THREADS] == ["kite-postbacks"]
    broker.stop_push()
    assert broker.push is not None and not broker.push.running  # returned when the task ended, not on a timeout
    assert not [t for t in asyncio.all_tasks(loop) if not t.done()]
    assert wait_until(lambda: kite_sim.push.clients == 0)  # the socket is closed
    assert wait_until(lambda: not [t for t in set(threading.enumerate()) - threads if t.is_alive()])
    assert receiver_sink.count("disconnected") == 0  # a stop is not a disconnect


def test_stop_push_while_reconnecting_and_on_a_stopped_loop(kite_sim, loop):
    broker = pushing(kite_sim)
    assert broker.push is not None
    broker.push.backoff = Backoff(first=30, longest=30)  # it will sit in its back-off
    kite_sim.push.inject("refuse")
    sink = Sink()
    broker.start_push(loop, sink)
    assert wait_until(lambda: sink.count("disconnected") == 1)
    broker.stop_push()
    assert not broker.push.running  # the 30 s back-off was cut short: the task ended
    dead = asyncio.new_event_loop()  # a loop that never runs: stop_push does not wait for it
    other = pushing(kite_sim)
    other.start_push(dead, Sink())
    other.stop_push()
    assert other.push is not None and not other.push.running
    dead.close()


def test_stop_push_on_the_loops_own_thread(kite_sim, loop):
    """The reconciler may stop the channel from its loop: stop_push cannot wait there, and need not."""
    broker = pushing(kite_sim)
    sink = Sink()
    broker.start_push(loop, sink)
    assert wait_until(lambda: sink.count("connected") == 1)
    loop.call_soon_threadsafe(broker.stop_push)
    assert broker.push is not None and wait_until(lambda: not broker.push.running)
    assert wait_until(lambda: kite_sim.push.clients == 0)


def test_a_channel_can_be_started_again_in_the_same_process(kite_sim, loop):
    for _ in range(2):
        broker = pushing(kite_sim)
        sink = Sink()
        broker.start_push(loop, sink)
        assert wait_until(lambda sink=sink: sink.count("connected") == 1)
        broker.stop_push()
    broker = pushing(kite_sim)
    broker.start_push(loop, Sink())
    with pytest.raises(RuntimeError, match="already running"):
        broker.start_push(loop, Sink())
    broker.stop_push()


# -- postbacks -----------------------------------------------------------------------------------------

def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def receiver(kite_sim: KiteSimulator) -> Iterator[tuple[PostbackReceiver, Sink]]:
    receiver, sink = PostbackReceiver(("127.0.0.1", 0), kite_sim.api_secret), Sink()
    receiver.start(sink)
    kite_sim.postbacks.url = receiver.url
    yield receiver, sink
    receiver.stop()


def test_the_checksum_is_kites():
    """The reference's test vector (kite-connect.md §7.3), by the receiver's and the simulator's code."""
    vector = "921a4c1420e9e07eaa8152e0964693f0656a0c5ce049f187ac3cc475d622aa36"
    assert expected_checksum("220303000308932", "2022-03-03 09:24:25", "test_api_secret") == vector
    assert postback_checksum("220303000308932", "2022-03-03 09:24:25", "test_api_secret") == vector


def test_a_correct_postback_is_delivered_and_a_wrong_one_refused(kite_sim, receiver, caplog):
    receiver_, sink = receiver
    caplog.set_level(logging.DEBUG)
    good = kite_sim.add_order(quantity=5)
    kite_sim.fill(good, 2, 100.0)  # UPDATE: posted
    kite_sim.postbacks.wrong_checksum()
    bad = kite_sim.add_order(symbol="TCS", quantity=5)
    kite_sim.fill(bad, 5, 100.0)  # COMPLETE, with a wrong checksum: refused
    kite_sim.fill(good, 3, 100.0)  # COMPLETE: posted
    assert wait_until(lambda: len(kite_sim.postbacks.sent) == 3)
    assert kite_sim.postbacks.sent == [(good, 200), (bad, 400), (good, 200)]
    assert [(o.broker_order_id, o.raw_status, o.filled_qty) for o in sink.orders] == [
        (good, "UPDATE", 2), (good, "COMPLETE", 5)]
    assert (receiver_.counts["delivered"], receiver_.counts["refused"]) == (2, 1)
    assert f"Kite postback refused: wrong checksum (order {bad})" in caplog.text
    assert kite_sim.api_secret not in caplog.text


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b'{"order_id": "1", "order_timestamp": "x"}',
                                  b'{"order_id": "1", "order_timestamp": "x", "checksum": null}'])
def test_a_postback_without_a_valid_checksum_is_refused(receiver, body):
    receiver_, sink = receiver
    assert post(receiver_.url, body) == 400
    assert sink.orders == [] and receiver_.counts["refused"] == 1


def test_a_verified_postback_that_is_no_order_is_refused(kite_sim):
    stamp = "2026-11-19 10:00:00"
    body = json.dumps({"order_id": "7", "order_timestamp": stamp,
                       "checksum": postback_checksum("7", stamp, kite_sim.api_secret)}).encode()
    with pytest.raises(Exception, match="unreadable order"):
        verify(body, kite_sim.api_secret)


def test_postbacks_through_the_configured_broker(kite_sim, tmp_path, monkeypatch, loop):
    from hostspec.app import App

    monkeypatch.setenv("KITE_API_KEY", SIM_API_KEY)
    monkeypatch.setenv("KITE_ACCESS_TOKEN", SIM_ACCESS_TOKEN)
    config = write(tmp_path / "live.yaml", f"""
        mode: live
        broker:
          name: kite
          kite: {{root: "{kite_sim.url}", push: false, postback_address: "127.0.0.1:0"}}
        store: {{path: {tmp_path / 's.json'}}}
        reconciliation: {{enabled: false}}
    """)
    monkeypatch.delenv("KITE_API_SECRET", raising=False)
    with pytest.raises(ConfigError, match="KITE_API_SECRET is not set"):
        App().open_host(config)
    monkeypatch.setenv("KITE_API_SECRET", kite_sim.api_secret)
    host = App().open_host(config)
    broker = host.broker
    assert isinstance(broker, PushingKiteBroker) and broker.push is None and broker.postbacks is not None
    sink = Sink()
    broker.start_push(loop, sink)
    try:
        kite_sim.postbacks.url = broker.postbacks.url
        oid = kite_sim.add_order(quantity=2)
        kite_sim.fill(oid, 2, 10.0)
        assert wait_until(lambda: sink.orders)
        assert [(o.broker_order_id, o.status) for o in sink.orders] == [(oid, OrderStatus.FILLED)]
        assert sink.calls == []  # postbacks say nothing of the channel's health
    finally:
        broker.stop_push()
        host.close()


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("ws_root", '"https://ws.kite.trade"', "must be a ws:// or wss:// URL"),
    ("postback_address", '"8765"', "must be host:port"),
    ("postback_address", '"127.0.0.1:99999"', "must be host:port"),
])
def test_push_settings_are_checked_when_the_file_is_read(tmp_path, key, value, problem):
    from hostspec.app import App

    config = write(tmp_path / "live.yaml", f"""
        mode: live
        broker: {{name: kite, kite: {{{key}: {value}}}}}
        store: {{path: {tmp_path / 's.json'}}}
    """)
    with pytest.raises(ConfigError, match=problem):
        App().open_host(config)


# -- secrets -------------------------------------------------------------------------------------------

def test_no_secret_in_any_log_line_or_reason(tmp_path, loop, caplog):
    """Plant recognisable credentials; refuse them at the handshake, drop, silence, send errors and
    wrong postbacks, with every logger at debug (the ``websockets`` library's too); search every log
    line and every reason the sink was given."""
    key, token, secret = "PLANTEDpushkey4821", "PLANTEDpushtoken7730", "PLANTEDpushsecret5512"
    caplog.set_level(logging.DEBUG)
    logging.getLogger("websockets").setLevel(logging.DEBUG)
    sim = KiteSimulator(api_key=key, access_token=token, api_secret=secret)
    sim.start()
    try:
        broker = PushingKiteBroker(key, token, sim.url, 1.0, ws_root=sim.ws_url, silence_seconds=1.0,
                                   postbacks=PostbackReceiver(("127.0.0.1", 0), secret))
        assert broker.push is not None and broker.postbacks is not None
        broker.push.backoff = FAST
        assert key not in repr(broker.push) + repr(broker.postbacks)
        sink = Sink()
        sim.push.inject("refuse")
        broker.start_push(loop, sink)
        assert wait_until(lambda: sink.count("connected") == 1)
        sim.postbacks.url = broker.postbacks.url
        sim.push.send_text(json.dumps({"type": "error", "data": f"bad token {token} for {key}"}))
        oid = sim.add_order()
        sim.postbacks.wrong_checksum()
        sim.fill(oid, 10, 10.0)
        sim.push.inject("drop")
        assert wait_until(lambda: sink.count("connected") == 2)
        sim.push.inject("silence")
        assert wait_until(lambda: sink.count("disconnected") >= 3)
        sim.access_token = "another-token"  # the next handshakes are refused: 403
        sim.push.clear_faults()
        sim.push.inject("drop")
        assert wait_until(lambda: "still down: InvalidStatus: server rejected WebSocket connection: HTTP 403"
                          in caplog.text)
        broker.stop_push()
        assert wait_until(lambda: sim.postbacks.sent)
    finally:
        logging.getLogger("websockets").setLevel(logging.NOTSET)
        sim.stop()
    reasons = " ".join(reason for _, reason in sink.calls)
    assert "503" in reasons and "no frame" in reasons
    produced = caplog.text + reasons + "".join(str(r.exc_info) for r in caplog.records)
    assert "> GET /?api_key=***&access_token=*** HTTP/1.1" in caplog.text  # the library's own debug line
    for planted in (key, token, secret):
        assert planted not in produced


def test_scrub_cuts_credentials_from_urls_even_unregistered():
    assert scrub("wss://ws.kite.trade?api_key=abc&access_token=def failed") == \
        "wss://ws.kite.trade?api_key=***&access_token=*** failed"


def test_kitepush_needs_no_broker(kite_sim, loop):
    """The client stands alone: a root and a credentials function."""
    push = KitePush(kite_sim.ws_url, lambda: (SIM_API_KEY, SIM_ACCESS_TOKEN), backoff=FAST)
    sink = Sink()
    push.start(loop, sink)
    try:
        assert wait_until(lambda: sink.count("connected") == 1)
    finally:
        push.stop()


def test_the_live_demo_broker_pushes(tmp_path):
    from hostspec.app import App

    config = write(tmp_path / "sim.yaml", f"""
        mode: live
        broker: {{name: kite-sim, kite-sim: {{timeout_seconds: 1}}}}
        store: {{path: {tmp_path / 's.json'}}}
        plugins: {{disabled: [demo]}}
        reconciliation: {{enabled: false}}
    """)
    host = App().open_host(config)
    try:
        assert isinstance(host.broker, PushingKiteBroker) and isinstance(host.broker, PushingBroker)
    finally:
        host.stop_requested.set()
        host.close()


def test_the_simulator_command_serves_the_websocket(loop):
    import socket
    import subprocess
    import sys

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    proc = subprocess.Popen([sys.executable, "-m", "hostspec.cli", "kite-sim", "--port", str(ports[0]), "--ws-port",
                             str(ports[1]), "--duration", "20"], stdout=subprocess.PIPE, text=True)
    try:
        assert f"order updates at ws://127.0.0.1:{ports[1]} (ws_root)" in proc.stdout.readline()
        broker = PushingKiteBroker("sim_api_key", "sim_access_token", f"http://127.0.0.1:{ports[0]}", 2.0,
                                   ws_root=f"ws://127.0.0.1:{ports[1]}")
        sink = Sink()
        broker.start_push(loop, sink)
        assert wait_until(lambda: sink.count("connected") == 1)
        oid = broker.place_order(tag="cli", exchange="NSE", symbol="INFY", product="CNC", side=Side.BUY, quantity=3,
                                 price=Decimal(10))
        assert wait_until(lambda: sink.states(oid))
        assert sink.states(oid)[0] == ("PUT ORDER REQ RECEIVED", 0)
        broker.stop_push()
    finally:
        proc.terminate()
        proc.wait(10)


def test_reconnection_backs_off_with_jitter():
    import random

    backoff, rng = Backoff(first=0.5, longest=30.0), random.Random(7)
    delays = [[backoff.delay(attempt, rng) for _ in range(200)] for attempt in range(8)]
    ceilings = [0.5, 1, 2, 4, 8, 16, 30, 30]
    for ceiling, drawn in zip(ceilings, delays, strict=True):
        assert ceiling / 2 <= min(drawn) < max(drawn) <= ceiling  # spread over half to all of the ceiling
    assert backoff.delay(10_000, rng) <= 30.0


def test_a_renewed_token_is_used_at_the_next_connection(kite_sim, loop, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(SIM_ACCESS_TOKEN)
    broker = pushing(kite_sim, access_token_file=token_file)
    sink = Sink()
    broker.start_push(loop, sink)
    try:
        assert wait_until(lambda: sink.count("connected") == 1)
        kite_sim.access_token = "renewedtoken_Q8"  # a new day's login: the old token is refused
        token_file.write_text("renewedtoken_Q8")  # tradehost kite login --token-file
        kite_sim.push.inject("drop")
        assert wait_until(lambda: sink.count("connected") == 2)
    finally:
        broker.stop_push()
