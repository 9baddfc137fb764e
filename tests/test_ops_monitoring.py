"""Watching the reconciler from outside: Prometheus metrics scraped over HTTP, /healthz and /readyz."""

from __future__ import annotations

import logging

import pytest

from hostspec.app import App
from hostspec.errors import ResourceError
from recon_plugin.brokers.kite.broker import KiteBroker
from recon_plugin.ops.monitor import Monitor
from recon_plugin.ops.settings import MonitoringSettings
from recon_plugin.plugin import monitor_for
from recon_plugin.runner import Reconciler
from recon_plugin.settings import Settings
from recon_plugin.stores.tinydb_store import TinyDBStore
from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY
from tests.helpers import ScriptedBroker, eventually, free_port, http_get, scrape, write

ANY_PORT = "127.0.0.1:0"


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_paper_host_metrics_move_between_two_scrapes(tmp_path):
    config = write(tmp_path / "paper.yaml", f"""
        mode: paper
        broker: {{name: paper, paper: {{seed: 7, tick_seconds: 0.2}}}}
        store: {{path: {tmp_path / 'var' / 'state.json'}}}
        reconciliation: {{interval_seconds: 0.3, missing_grace_seconds: 1}}
        demo: {{enabled: true, orders: 6, interval_seconds: 0.3}}
        monitoring: {{enabled: true, address: "{ANY_PORT}"}}
    """)
    app = App()
    host = app.open_host(config)
    try:
        app.start(host)
        monitor = monitor_for(host)
        assert monitor is not None and monitor.server is not None
        url = monitor.server.url
        first = scrape(url)
        assert eventually(lambda: value(scrape(url), "recon_fills_applied_total") > value(
            first, "recon_fills_applied_total"))
        second = scrape(url)
        assert http_get(url + "/healthz") == (200, "ok\n")
        assert http_get(url + "/readyz") == (200, "ok\n")
    finally:
        app.stop(host)
    assert value(second, "recon_cycles_total", outcome="ok") > value(first, "recon_cycles_total", outcome="ok")
    assert value(second, "recon_cycle_duration_seconds_count") > value(first, "recon_cycle_duration_seconds_count")
    assert value(second, "recon_cycle_duration_seconds_sum") > value(first, "recon_cycle_duration_seconds_sum")
    assert value(second, "recon_store_write_duration_seconds_count") > 0
    assert value(second, "recon_events_published_total") > value(first, "recon_events_published_total")
    assert sum(v for (name, _), v in second.items() if name == "recon_orders") >= 1
    assert value(second, "recon_healthy") == 1 and value(second, "recon_ready") == 1
    assert value(second, "recon_last_good_snapshot_age_seconds") >= 0
    # bounded labels: steps, kinds, rules, severities, statuses; never an order id
    labels = {v for (_, pairs) in second for _, v in pairs}
    assert not [v for v in labels if v.startswith(("D-", "P0", "ext-"))]
    assert {"rule", "severity"} <= {k for (name, pairs) in second if name == "recon_discrepancies_total"
                                    for k, _ in pairs}


def test_healthz_is_503_while_the_broker_refuses_the_token_and_200_after(tmp_path, kite_sim):
    store = TinyDBStore(tmp_path / "state.json")
    broker = KiteBroker(SIM_API_KEY, SIM_ACCESS_TOKEN, kite_sim.url, 1.0)
    reconciler = Reconciler(broker, store, Settings(interval_seconds=0.5))
    monitor = Monitor(reconciler, MonitoringSettings(enabled=True, address=ANY_PORT))
    try:
        assert monitor.server is not None
        url = monitor.server.url
        assert http_get(url + "/readyz")[0] == 503  # before the startup reconciliation
        kite_sim.add_order("SBIN", "BUY", 10)
        assert reconciler.run_cycle().error is None
        assert http_get(url + "/healthz") == (200, "ok\n")
        assert http_get(url + "/readyz") == (200, "ok\n")

        kite_sim.inject("token", times=1000)
        assert reconciler.run_cycle().error
        status, reason = http_get(url + "/healthz")
        assert status == 503 and "token" in reason and "log in again" in reason
        assert value(scrape(url), "recon_snapshot_failures_total", step="fetch", kind="auth") == 1
        assert value(scrape(url), "recon_healthy") == 0

        kite_sim.clear_faults()
        assert reconciler.run_cycle().error is None
        assert http_get(url + "/healthz") == (200, "ok\n")
    finally:
        monitor.close()
        store.close()
        broker.close()


def test_healthz_is_503_when_the_last_good_snapshot_is_older_than_a_few_intervals(tmp_path):
    now = [100.0]
    store = TinyDBStore(tmp_path / "state.json")
    broker = ScriptedBroker()
    reconciler = Reconciler(broker, store, Settings(interval_seconds=1))
    monitor = Monitor(reconciler, MonitoringSettings(stale_intervals=3))
    monitor.health.monotonic = lambda: now[0]
    try:
        reconciler.run_cycle()
        reconciler.last_good_at = now[0]
        broker.failure = ConnectionError("connection refused")
        reconciler.run_cycle()
        assert monitor.health.status().healthy  # one failed cycle is not an outage
        now[0] += 3.5
        status = monitor.health.status()
        assert not status.healthy and status.reason == "broker unreachable (ConnectionError); last good snapshot 4s ago"
    finally:
        monitor.close()
        store.close()


def test_metrics_use_a_registry_per_reconciler_not_the_global_one(tmp_path):
    from prometheus_client import REGISTRY

    stores = [TinyDBStore(tmp_path / f"{i}.json") for i in (1, 2)]
    monitors = [Monitor(Reconciler(ScriptedBroker(), s, Settings()), MonitoringSettings(enabled=True,
                                                                                       address=ANY_PORT))
                for s in stores]
    try:
        monitors[0].metrics.reconciler.run_cycle()
        assert [value(scrape(m.server.url), "recon_cycles_total", outcome="ok") for m in monitors] == [1, 0]
        assert REGISTRY.get_sample_value("recon_cycles_total", {"outcome": "ok"}) is None
    finally:
        for m in monitors:
            m.close()
        for s in stores:
            s.close()


def test_a_port_in_use_is_a_resource_error(tmp_path):
    port = free_port()
    store = TinyDBStore(tmp_path / "state.json")
    first = Monitor(Reconciler(ScriptedBroker(), store, Settings()), MonitoringSettings(
        enabled=True, address=f"127.0.0.1:{port}"))
    try:
        with pytest.raises(ResourceError, match="address in use"):
            Monitor(Reconciler(ScriptedBroker(), store, Settings()), MonitoringSettings(
                enabled=True, address=f"127.0.0.1:{port}"))
    finally:
        first.close()
        store.close()


def test_a_quiet_book_logs_a_heartbeat(tmp_path, caplog):
    store = TinyDBStore(tmp_path / "state.json")
    reconciler = Reconciler(ScriptedBroker(), store, Settings())
    monitor = Monitor(reconciler, MonitoringSettings(heartbeat_seconds=60))
    now = [0.0]
    assert monitor.heartbeat is not None
    monitor.heartbeat.monotonic = lambda: now[0]
    monitor.heartbeat._last = 0.0
    caplog.set_level(logging.INFO, "recon.heartbeat")
    try:
        for _ in range(3):
            now[0] += 30
            reconciler.run_cycle()
    finally:
        monitor.close()
        store.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "recon.heartbeat"]
    assert len(lines) == 1 and lines[0].startswith("heartbeat: 2 cycles in the last 60s (0 decisions)")
