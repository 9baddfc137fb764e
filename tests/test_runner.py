"""The reconciler runner: its thread, its guards, publishing, dry-run and the outbox."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from decimal import Decimal

from hostspec.broker import BrokerError, FailureKind
from hostspec.model import ChangeSet, Event, Mode, OrderStatus, Position, utcnow
from recon_plugin import signals
from recon_plugin.plan import Settings
from recon_plugin.runner import Reconciler
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import ScriptedBroker, broker, order, write

S = OrderStatus


def make(store, book=(), mode=Mode.PAPER, interval=0.05, dry_run=False, **kwargs):
    b = ScriptedBroker(book)
    emitted: list[Event] = []
    settings = Settings(mode=mode, missing_grace_seconds=0, interval_seconds=interval, dry_run=dry_run)
    r = Reconciler(b, store, settings, emit=emitted.append, **kwargs)
    return r, b, emitted


def test_applies_and_publishes_after_the_write(store):
    store.record_order(order("A", status=S.PLACED))
    r, _b, emitted = make(store, [broker(S.FILLED, 10, "100")])
    seen_on_disk = []

    def receiver(sender, event, **extra):
        seen_on_disk.append(TinyDBStore(store.path, read_only=True).load().orders["A"].status)

    with signals.order_filled.connected_to(receiver, sender=r):
        report = r.run_cycle()
    assert report.error is None and report.writes == 1
    assert [e.kind for e in emitted] == ["order-filled"]
    assert seen_on_disk == [S.FILLED]  # announced only once durable
    assert r.stats.fills_applied == 1
    second = r.run_cycle()
    assert second.writes == 0 and not emitted[1:]  # in sync: no write, nothing announced


def test_a_raising_receiver_and_a_raising_sink_do_not_stop_anything(store, caplog):
    store.record_order(order("A", status=S.PLACED))
    store.record_order(order("B", status=S.PLACED, broker_order_id="B-B"))
    r, _b, _ = make(store, [broker(S.FILLED, 10, "100"), broker(S.FILLED, 5, "10", broker_order_id="B-B")])
    good: list[str] = []
    sink_calls: list[str] = []

    def bad(sender, **extra):
        raise RuntimeError("receiver bug")

    def fine(sender, event, **extra):
        good.append(event.order_id)

    def bad_sink(event):
        sink_calls.append(event.order_id)
        raise RuntimeError("sink bug")

    r.emit = bad_sink
    with signals.order_filled.connected_to(bad, sender=r), signals.order_filled.connected_to(fine, sender=r):
        report = r.run_cycle()
    assert report.error is None
    assert sorted(good) == ["A", "B"]
    assert "receiver bug" in caplog.text and "sink bug" in caplog.text
    assert sorted(sink_calls) == ["A", "B"]
    assert r.stats.failures["sink:order-filled"] == 2
    assert store.pending_events() and r.publisher.watermark() == 2  # both delivered; marked with the next write


def test_a_broker_failing_for_many_cycles_changes_nothing_and_recovers(store, caplog):
    store.record_order(order("A", status=S.PLACED))
    r, b, emitted = make(store, [broker(S.FILLED, 10, "100")])
    b.failure = BrokerError("connection reset", FailureKind.TRANSIENT)
    writes = store.writes
    caplog.set_level(logging.WARNING, "recon")
    for _ in range(30):
        assert r.run_cycle().error
    assert store.writes == writes
    assert store.load().orders["A"].status is S.PLACED and store.load().orders["A"].missing_count == 0
    assert r.stats.cycles_failed == 30 and r.stats.consecutive_failures == 30
    assert len([rec for rec in caplog.records if "fetch failed" in rec.message]) == 1  # not 30
    assert [e.kind for e in emitted] == ["reconciliation-error"]
    b.failure = None
    report = r.run_cycle()
    assert report.error is None and store.load().orders["A"].status is S.FILLED
    assert r.stats.consecutive_failures == 0


def test_a_failed_fetch_is_never_an_empty_book(store):
    store.record_order(order("A", status=S.PLACED))
    r, b, _ = make(store, [])
    b.failure = BrokerError("timeout")
    r.run_cycle()
    assert store.load().orders["A"].missing_count == 0
    b.failure = None
    r.run_cycle()  # an empty book, really said by the broker, is a miss
    assert store.load().orders["A"].missing_count == 1


def test_a_crashing_broker_plugin_is_contained(store, caplog):
    r, b, _ = make(store)
    b.failure = KeyError("data")
    report = r.run_cycle()
    assert "KeyError" in report.error
    assert r.stats.failures["fetch:KeyError"] == 1


def test_expired_session_slows_polling_and_is_announced_once(store):
    r, b, emitted = make(store, interval=2.0)
    b.failure = BrokerError("Incorrect api_key or access_token", FailureKind.AUTH)
    for _ in range(5):
        r.run_cycle()
    assert r.next_delay >= 30
    assert [e.kind for e in emitted].count("broker-session-expired") == 1
    b.failure = None
    r.run_cycle()
    assert r.next_delay == 2.0


def test_rate_limit_backs_off_with_jitter(store):
    r, b, _ = make(store, interval=2.0)
    b.failure = BrokerError("Too many requests", FailureKind.RATE_LIMIT)
    delays = []
    for _ in range(4):
        r.run_cycle()
        delays.append(r.next_delay)
    assert delays[0] >= 2.0 * 2 * 0.8 and delays[-1] > delays[0]
    assert max(delays) <= 60 * 1.2


def test_position_fetch_failure_skips_positions_but_not_orders(store):
    store.record_order(order("A", status=S.PLACED))
    store.apply(ChangeSet(positions=[Position("NSE", "INFY", "CNC", 7)]))
    r, b, _ = make(store, [broker(S.PLACED)], mode=Mode.LIVE)

    def failing_positions():
        raise BrokerError("positions down")

    b.fetch_positions = failing_positions
    report = r.run_cycle()
    assert report.error is None
    assert store.load().positions[("NSE", "INFY", "CNC")].quantity == 7  # not flattened
    assert r.stats.failures["positions:transient"] == 1


def test_dry_run_writes_nothing_and_announces_nothing(store):
    store.record_order(order("A", status=S.PLACED))
    before = store.path.read_bytes()
    r, _b, emitted = make(store, [broker(S.FILLED, 10, "100")], dry_run=True)
    heard = []
    with signals.order_filled.connected_to(lambda sender, **kw: heard.append(kw), sender=r):
        report = r.run_cycle()
    assert report.dry_run and not report.plan.is_empty()
    assert [d.rule for d in report.decisions] == ["fill"]
    assert store.path.read_bytes() == before
    assert not emitted and not heard


def test_events_left_unsent_by_a_crash_are_delivered_on_restart_in_order(store):
    events = [Event(f"e{i}", "order-updated", utcnow(), {"summary": str(i)}) for i in range(3)]
    store.apply(ChangeSet(events=events))  # written, then the process died before publishing
    r, _b, emitted = make(store)
    assert r.publisher.publish_pending() == 3
    assert [e.event_id for e in emitted] == ["e0", "e1", "e2"]
    r.flush()
    assert store.pending_events() == []


def test_concurrent_change_by_the_host_is_replanned_not_overwritten(store):
    store.record_order(order("A", status=S.SUBMITTED))
    r, _b, _ = make(store, [broker(S.PLACED)])
    original_load = store.load
    loads = []

    def racing_load():
        state = original_load()
        loads.append(1)
        if len(loads) == 2:  # the plan's read: the host's order flow writes before our write
            current = store.get_order("A")
            store.record_order(replace(current, price=Decimal("101.5")))
        return state

    store.load = racing_load
    report = r.run_cycle()
    assert report.error is None and r.stats.conflicts == 1
    final = store.get_order("A")
    assert final.status is S.PLACED and final.price == Decimal("101.5")  # both changes kept


def test_thread_runs_cycles_and_stops_promptly(store):
    r, _b, _ = make(store, interval=0.02)
    cycles = threading.Semaphore(0)
    with signals.cycle_finished.connected_to(lambda sender, **kw: cycles.release(), sender=r):
        r.start()
        for _ in range(5):
            assert cycles.acquire(timeout=5)
        started = time.monotonic()
        assert r.stop(timeout=5)
    assert time.monotonic() - started < 2
    assert not r._thread.is_alive()


def test_stop_abandons_a_slow_broker_call_and_writes_nothing(store):
    store.record_order(order("A", status=S.PLACED))
    r, b, _ = make(store, [broker(S.FILLED, 10, "100")], interval=0.02)
    b.delay = 5.0
    writes = store.writes
    r.start()
    time.sleep(0.3)  # the first fetch is now waiting on the slow broker
    started = time.monotonic()
    assert r.stop(timeout=3)
    assert time.monotonic() - started < 2
    assert store.writes == writes


def test_the_reconciler_only_reads_the_broker(store):
    store.record_order(order("A", status=S.PLACED))
    r, b, _ = make(store, [broker(S.CANCELLED, 2, "100"), broker(S.PLACED, broker_order_id="X9")], mode=Mode.LIVE)
    for _ in range(3):
        r.run_cycle()
    assert {call.split(":")[0] for call in b.calls} <= {"orders", "positions", "history"}


def test_disabled_reconciliation_starts_nothing(tmp_path):
    from hostspec.app import App
    from recon_plugin.plugin import reconciler_for

    config = write(tmp_path / "c.yaml", f"""
        store: {{path: {tmp_path / 'state.json'}}}
        reconciliation: {{enabled: false}}
        plugins: {{disabled: [demo]}}
    """)
    app = App()
    host = app.open_host(config)
    try:
        before = {t.name for t in threading.enumerate()}
        app.start(host)
        assert reconciler_for(host) is None
        assert not {t.name for t in threading.enumerate()} - before
    finally:
        app.stop(host)
