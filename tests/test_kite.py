"""The Kite broker through the real ``kiteconnect`` client, over loopback, against the simulator."""

from __future__ import annotations

import logging
import os
import time
from decimal import Decimal

import pytest

from hostspec.broker import BrokerError, FailureKind
from hostspec.model import Mode, OrderStatus
from recon_plugin.brokers.kite.broker import KiteBroker, RateLimiter
from recon_plugin.brokers.kite.statuses import STATUS_MAP, order_from_kite
from recon_plugin.plan import Settings
from recon_plugin.runner import Reconciler
from recon_plugin.testing.kite_simulator import FAULTS, SIM_ACCESS_TOKEN, SIM_API_KEY
from tests.helpers import ROOT, order, tradehost, write

S = OrderStatus


@pytest.fixture
def kite(kite_sim):
    broker = KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, kite_sim.url, timeout=1.0)
    yield broker
    broker.close()


def reconciler(kite, store, mode=Mode.LIVE):
    events = []
    r = Reconciler(kite, store, Settings(mode=mode, missing_grace_seconds=0, interval_seconds=0.05,
                                         position_settle_seconds=0),  # cycles here are milliseconds apart
                   emit=events.append)
    return r, events


# -- reading the book ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", sorted(STATUS_MAP))
def test_every_kite_status_maps_as_declared(kite_sim, kite, raw):
    oid = kite_sim.add_order(status=raw)
    (bo,) = kite.fetch_orders()
    assert (bo.broker_order_id, bo.raw_status, bo.status) == (oid, raw, STATUS_MAP[raw])


def test_unknown_status_is_unknown_and_reported_never_terminal(kite_sim, kite, store):
    oid = kite_sim.add_order(status="OPEN", tag="A")
    store.record_order(order("A", status=S.PLACED, broker_order_id=oid))
    kite_sim.set_status(oid, "SOMETHING NEW")
    r, events = reconciler(kite, store)
    r.run_cycle()
    assert store.get_order("A").status is S.PLACED
    assert [e.data["rule"] for e in events if e.kind == "reconciliation-discrepancy"] == ["unknown-status"]


def test_fast_path_equals_the_public_orders_call(kite_sim, kite, kite_client):
    for status in ("OPEN", "COMPLETE", "CANCELLED", "TRIGGER PENDING"):
        oid = kite_sim.add_order(status=status, tag="t1", price=101.5)
        kite_sim.fill(oid, 3, 100.05) if status != "TRIGGER PENDING" else None
    public = [order_from_kite(row) for row in kite_client.orders()]  # dateutil-parsed, naive datetimes
    assert kite.fetch_orders() == public
    assert all(bo.placed_at.utcoffset().total_seconds() == 19800 for bo in public)  # Asia/Kolkata
    assert all(isinstance(bo.broker_order_id, str) for bo in public)


def test_the_book_parser_reuses_only_unchanged_rows(kite_sim, kite_client):
    from recon_plugin.brokers.kite.statuses import OrderParser

    ids = [kite_sim.add_order(status="OPEN", tag=f"t{i}") for i in range(3)]
    parser = OrderParser()
    first = parser.parse(kite_client._get("orders"))
    kite_sim.fill(ids[1], 2, 100.5)
    rows = kite_client._get("orders")
    second = parser.parse(rows)
    assert second == [order_from_kite(row) for row in rows]  # same result as parsing afresh
    assert second[0] is first[0] and second[2] is first[2]  # unchanged rows: the same records
    assert second[1] is not first[1] and second[1].filled_qty == 2


def test_the_collector_pause_is_undone(kite):
    import gc

    from recon_plugin.brokers.kite.broker import gc_paused

    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError
    assert gc.isenabled()


def test_prices_are_exact_decimals_of_what_kite_sent(kite_sim, kite):
    oid = kite_sim.add_order(quantity=3)
    kite_sim.fill(oid, 1, 1899.5)
    kite_sim.fill(oid, 2, 1899.0)
    (bo,) = kite.fetch_orders()
    assert bo.avg_price == Decimal(repr((1899.5 + 2 * 1899.0) / 3))
    assert bo.status is S.FILLED and bo.filled_qty == 3


# -- reconciliation through the real client --------------------------------------------------------

def test_partial_fills_then_cancel_through_the_client(kite_sim, kite, store):
    oid = kite_sim.add_order(status="OPEN PENDING", tag="A", quantity=10)
    store.record_order(order("A", status=S.SUBMITTED, broker_order_id=oid))
    r, events = reconciler(kite, store)
    steps = [lambda: kite_sim.set_status(oid, "OPEN"), lambda: kite_sim.fill(oid, 4, 100.0),
             lambda: kite_sim.fill(oid, 2, 101.0), lambda: kite_sim.cancel(oid)]
    for step in steps:
        step()
        assert r.run_cycle().error is None
    final = store.load()
    assert final.orders["A"].status is S.CANCELLED and final.orders["A"].filled_qty == 6
    assert final.positions[("NSE", "INFY", "CNC")].quantity == 6
    # the trades' exact value (4 @ 100 + 2 @ 101), not Kite's float average (602/6 -> 100.33333333333333)
    assert final.positions[("NSE", "INFY", "CNC")].buy_value == Decimal(602)
    assert [e.kind for e in events] == ["order-updated", "order-filled", "order-filled", "order-cancelled"]


def test_external_orders_are_adopted(kite_sim, kite, store):
    oid = kite_sim.add_order(symbol="TCS", side="SELL", quantity=5)
    kite_sim.fill(oid, 5, 3500.0)
    r, events = reconciler(kite, store)
    r.run_cycle()
    assert store.load().orders[f"ext-{oid}"].status is S.FILLED
    assert store.load().positions[("NSE", "TCS", "CNC")].quantity == -5
    assert [e.kind for e in events] == ["order-external", "order-filled"]


def test_position_drift_is_found_and_synced(kite_sim, kite, store):
    oid = kite_sim.add_order(quantity=10, tag="A")
    store.record_order(order("A", status=S.PLACED, broker_order_id=oid))
    kite_sim.fill(oid, 10, 100.0)
    r, events = reconciler(kite, store)
    r.run_cycle()
    kite_sim.adjust_position("NSE", "INFY", "CNC", -4)  # e.g. a conversion out of CNC
    r.run_cycle()
    assert store.load().positions[("NSE", "INFY", "CNC")].quantity == 10  # watched, not yet adopted
    r.run_cycle()
    assert store.load().positions[("NSE", "INFY", "CNC")].quantity == 6
    synced = [e for e in events if e.kind == "position-synced"]
    assert synced and synced[0].data["differences"] == [{"key": "NSE:INFY:CNC", "local": 10, "broker": 6,
                                                          "delta": -4}]


def test_position_sync_is_skipped_in_paper_mode(kite_sim, kite, store):
    kite_sim.adjust_position("NSE", "INFY", "CNC", 4)
    r, _ = reconciler(kite, store, mode=Mode.PAPER)
    for _ in range(3):
        r.run_cycle()
    assert not store.load().positions
    assert ("GET", "/portfolio/positions") not in kite_sim.requests


def test_missing_order_ladder_with_targeted_query(kite_sim, kite, store):
    found = kite_sim.add_order(tag="A")
    gone = kite_sim.add_order(tag="B")
    store.record_order(order("A", status=S.PLACED, broker_order_id=found))
    store.record_order(order("B", status=S.PLACED, broker_order_id=gone))
    kite_sim.hide(found)  # the book lags; the order's history knows it
    kite_sim.cancel(found)  # (no fill: a fill would show in the trades, which need no query)
    kite_sim.remove(gone)  # the broker does not know it at all
    r, _ = reconciler(kite, store)
    for _ in range(3):
        r.run_cycle()
    state = store.load()
    assert state.orders["A"].status is S.CANCELLED
    assert state.orders["B"].status is S.LOST
    assert ("GET", f"/orders/{found}") in kite_sim.requests and ("GET", f"/orders/{gone}") in kite_sim.requests
    assert sum(1 for req in kite_sim.requests if req[1].startswith("/orders/")) == 2  # one query each


# -- faults ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", sorted(set(FAULTS) - {"zero-timestamp"}))
def test_every_fault_leaves_local_state_alone_and_the_loop_recovers(kite_sim, kite, store, fault):
    oid = kite_sim.add_order(tag="A")
    store.record_order(order("A", status=S.PLACED, broker_order_id=oid))
    kite_sim.fill(oid, 10, 100.0)
    r, _events = reconciler(kite, store)
    writes = store.writes
    kite_sim.inject(fault, times=3, path="/orders")
    for _ in range(3):
        report = r.run_cycle()
        assert report.error, fault
    assert store.writes == writes and store.get_order("A").status is S.PLACED
    assert store.get_order("A").missing_count == 0  # a failure is never an empty book
    assert r.stats.cycles_failed == 3
    report = r.run_cycle()
    assert report.error is None and store.get_order("A").status is S.FILLED


def test_fault_kinds_are_classified(kite_sim, kite):
    expected = {"429": FailureKind.RATE_LIMIT, "token": FailureKind.AUTH, "5xx": FailureKind.TRANSIENT,
                "html": FailureKind.TRANSIENT, "slow": FailureKind.TRANSIENT, "drop": FailureKind.TRANSIENT,
                "malformed-json": FailureKind.TRANSIENT, "no-content-type": FailureKind.UNREADABLE,
                "data-null": FailureKind.UNREADABLE, "no-error-type": FailureKind.UNREADABLE}
    for fault, kind in expected.items():
        kite_sim.inject(fault)
        with pytest.raises(BrokerError) as caught:
            kite.fetch_orders()
        assert caught.value.kind is kind, fault


def test_a_zero_year_timestamp_does_not_break_the_book(kite_sim, kite, kite_client):
    kite_sim.add_order()
    kite_sim.inject("zero-timestamp", times=2)
    with pytest.raises(ValueError):
        kite_client.orders()  # the stock call fails whole (kiteconnect issue #235)
    (bo,) = kite.fetch_orders()
    assert bo.placed_at is None and bo.status is S.PLACED


def test_expired_session_slows_down_and_resumes_with_a_new_token(kite_sim, store, monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(SIM_ACCESS_TOKEN)
    kite = KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, kite_sim.url, 1.0, access_token_file=token_file)
    r, events = reconciler(kite, store)
    kite_sim.access_token = "renewed_token_9f3k"  # the old session is gone (logged out elsewhere)
    r.run_cycle()
    r.run_cycle()
    assert r.next_delay >= 30
    assert [e.kind for e in events].count("broker-session-expired") == 1
    token_file.write_text("renewed_token_9f3k\n")  # tradehost kite login --token-file
    assert r.run_cycle().error is None
    assert r.next_delay == 0.05


def test_rate_limit_is_kept_by_construction():
    now = [0.0]
    stamps = []
    limiter = RateLimiter(8, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(40):
        limiter.acquire()
        stamps.append(now[0])
    assert all(sum(1 for t in stamps if start <= t < start + 1.0) <= 8 for start in stamps)
    assert stamps[-1] >= 4.0


def test_queries_and_fetches_stay_under_ten_per_second(kite_sim, kite):
    for _ in range(12):
        kite_sim.add_order()
    start = time.monotonic()
    for _ in range(20):
        kite.fetch_orders()
    assert time.monotonic() - start >= 2.0  # 20 requests at no more than 8 per second


# -- secrets ---------------------------------------------------------------------------------------

def test_missing_credentials_name_the_variable_not_the_value(tmp_path):
    config = write(tmp_path / "live.yaml", f"""
        mode: live
        broker:
          name: kite
          kite: {{api_key_env: MY_KITE_KEY, access_token_env: MY_KITE_TOKEN}}
        store: {{path: {tmp_path / 's.json'}}}
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MY_KITE")}
    result = tradehost("run", "--config", str(config), "--duration", "1", env={**env, "MY_KITE_TOKEN": "tok_SECRET_1"})
    assert result.returncode == 2
    assert "environment variable MY_KITE_KEY is not set" in result.stderr
    assert "tok_SECRET_1" not in result.stderr + result.stdout


def test_no_secret_appears_in_any_output_file_event_or_journal(tmp_path, kite_sim, caplog):
    """Plant recognisable credentials, run the live demo with faults (token errors, garbage bodies)
    and debug logging, then search everything produced."""
    api_key, token = "PLANTEDkey4821", "PLANTEDtoken7730"
    config = write(tmp_path / "live.yaml", f"""
        mode: live
        broker:
          name: kite-sim
          kite-sim: {{api_key_env: PLANTED_KEY, access_token_env: PLANTED_TOKEN, timeout_seconds: 1}}
        store: {{path: {tmp_path / 'var' / 'state.json'}}}
        reconciliation: {{interval_seconds: 0.5, missing_grace_seconds: 1}}
        demo: {{enabled: true, orders: 6, interval_seconds: 0.5}}
    """)
    result = tradehost("-v", "run", "--config", str(config), "--duration", "8",
                       env={"PLANTED_KEY": api_key, "PLANTED_TOKEN": token})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "order-filled" in result.stdout
    produced = result.stdout + result.stderr + "".join(
        p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p.name != "live.yaml")
    report = tradehost("recon", "report", "--config", str(config), "--json")
    produced += report.stdout + report.stderr
    assert api_key not in produced and token not in produced

    # in-process too: every error message and log line of the broker, with the token refused
    caplog.set_level(logging.DEBUG)
    broker = KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, kite_sim.url, 1.0)
    assert SIM_API_KEY not in repr(broker) and SIM_ACCESS_TOKEN not in repr(broker)
    messages = []
    for fault in sorted(FAULTS):
        kite_sim.inject(fault)
        try:
            broker.fetch_orders()
        except BrokerError as exc:
            messages.append(str(exc))
    assert SIM_ACCESS_TOKEN not in " ".join(messages) + caplog.text


# -- the simulator broker (kite-sim) and the real one -----------------------------------------------

def test_the_real_kite_broker_has_no_switch_to_a_simulator(tmp_path):
    config = write(tmp_path / "live.yaml", f"""
        mode: live
        broker:
          name: kite
          kite: {{simulate: true}}
        store: {{path: {tmp_path / 's.json'}}}
    """)
    result = tradehost("recon", "status", "--config", str(config))
    assert result.returncode == 2
    assert ": broker.kite.simulate: unknown key" in result.stderr


def test_the_simulator_broker_is_a_real_kite_broker_over_loopback_stopped_on_close(tmp_path):
    from hostspec.app import App

    config = write(tmp_path / "sim.yaml", f"""
        mode: live
        broker: {{name: kite-sim, kite-sim: {{timeout_seconds: 1}}}}
        store: {{path: {tmp_path / 's.json'}}}
        plugins: {{disabled: [demo]}}
    """)
    host = App().open_host(config)
    try:
        broker = host.broker
        assert isinstance(broker, KiteBroker)
        assert repr(broker).startswith("KiteBroker(root='http://127.0.0.1:")
        assert broker.fetch_orders() == [] and broker.fetch_positions() == []
    finally:
        host.stop_requested.set()
        host.close()
    with pytest.raises(BrokerError) as caught:
        broker.fetch_orders()  # the simulator stopped with the broker
    assert caught.value.kind is FailureKind.TRANSIENT


def test_the_demo_flow_never_trades_at_the_real_kite_broker(kite_sim, tmp_path, monkeypatch, caplog):
    from hostspec.app import App

    config = write(tmp_path / "live.yaml", f"""
        mode: live
        broker:
          name: kite
          kite: {{root: "{kite_sim.url}", timeout_seconds: 1}}
        store: {{path: {tmp_path / 's.json'}}}
        reconciliation: {{enabled: false}}
        demo: {{enabled: true, orders: 3, interval_seconds: 0.01}}
    """)
    monkeypatch.setenv("KITE_API_KEY", SIM_API_KEY)
    monkeypatch.setenv("KITE_ACCESS_TOKEN", SIM_ACCESS_TOKEN)
    app = App()
    host = app.open_host(config)
    try:
        app.start(host)
        time.sleep(0.3)
    finally:
        app.stop(host)
    assert "demo order flow runs against the paper or kite-sim brokers only" in caplog.text
    assert not [r for r in kite_sim.requests if r[0] == "POST"]


# -- commands ----------------------------------------------------------------------------------------

def test_login_helper_prints_the_url_then_exchanges_the_request_token(kite_sim, tmp_path):
    config = write(tmp_path / "live.yaml", f"""
        mode: live
        broker:
          name: kite
          kite: {{root: "{kite_sim.url}"}}
        store: {{path: {tmp_path / 's.json'}}}
    """)
    env = {"KITE_API_KEY": SIM_API_KEY, "KITE_API_SECRET": kite_sim.api_secret}
    url = tradehost("kite", "login", "--config", str(config), env=env)
    assert url.returncode == 0, url.stderr
    assert f"api_key={SIM_API_KEY}" in url.stdout and "--request-token" in url.stdout
    done = tradehost("kite", "login", "--config", str(config), "--request-token", "rt123", env=env)
    assert done.returncode == 0, done.stderr
    assert f"export KITE_ACCESS_TOKEN={SIM_ACCESS_TOKEN}" in done.stdout
    token_file = tmp_path / "token"
    to_file = tradehost("kite", "login", "--config", str(config), "--request-token", "rt123",
                        "--token-file", str(token_file), env=env)
    assert to_file.returncode == 0 and token_file.read_text() == SIM_ACCESS_TOKEN
    assert SIM_ACCESS_TOKEN not in to_file.stdout + to_file.stderr
    assert oct(token_file.stat().st_mode)[-3:] == "600"
    wrong = tradehost("kite", "login", "--config", str(config), "--request-token", "rt123",
                      env={**env, "KITE_API_SECRET": "not-the-secret"})
    assert wrong.returncode == 1 and "TokenException" in wrong.stderr
    assert "not-the-secret" not in wrong.stderr


def test_the_simulator_command_serves_the_real_client(tmp_path):
    import socket
    import subprocess
    import sys

    from kiteconnect import KiteConnect

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "hostspec.cli", "kite-sim", "--port", str(port), "--duration",
                             "20"], stdout=subprocess.PIPE, text=True)
    try:
        assert f"http://127.0.0.1:{port}" in proc.stdout.readline()
        client = KiteConnect(api_key="sim_api_key", access_token="sim_access_token", root=f"http://127.0.0.1:{port}")
        oid = client.place_order(variety="regular", exchange="NSE", tradingsymbol="INFY", transaction_type="BUY",
                                 quantity=3, product="CNC", order_type="MARKET", tag="cli",
                                 market_protection=-1)
        assert [o["order_id"] for o in client.orders()] == [oid]
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_readme_live_demo_runs_to_a_clean_exit(tmp_path):
    result = tradehost("run", "--config", str(ROOT / "configs" / "live-sim.yaml"), "--duration", "30",
                       cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "live mode, broker kite-sim" in result.stdout
    for needle in ("order-filled", "order-external", "position-synced", "summary:"):
        assert needle in result.stdout, needle
    assert "Traceback" not in result.stderr
