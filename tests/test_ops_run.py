"""``tradehost run`` as an operator's tools see it: JSON logs, exit statuses that mean something, one
line for every expected failure, and the product without the metrics extra."""

from __future__ import annotations

import json
import logging
import re
import socket
import sys
import textwrap

import yaml

from hostspec.model import Event, OrderStatus
from recon_plugin.ops.monitor import Monitor
from recon_plugin.ops.settings import MonitoringSettings
from recon_plugin.runner import Reconciler
from recon_plugin.settings import Settings
from recon_plugin.stores.tinydb_store import TinyDBStore
from recon_plugin.testing.kite_simulator import SIM_API_KEY
from tests.helpers import ROOT, ScriptedBroker, broker, eventually, free_port, order, tradehost, write


def live_sim_config(tmp_path, **sections):
    """configs/live-sim.yaml with its state under ``tmp_path`` and credentials read from PLANTED_*."""
    config = yaml.safe_load((ROOT / "configs" / "live-sim.yaml").read_text())
    config["store"]["path"] = str(tmp_path / "var" / "state.json")
    config["broker"]["kite-sim"].update(api_key_env="PLANTED_KEY", access_token_env="PLANTED_TOKEN")
    config["reconciliation"].update(interval_seconds=0.5, missing_grace_seconds=1)
    config["demo"].update(interval_seconds=0.5)
    config.update(sections)
    path = tmp_path / "live-sim.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_json_log_of_a_live_sim_run_parses_line_by_line_with_ids_and_rules_and_no_secret(tmp_path):
    api_key, token = "PLANTEDkey5120", "PLANTEDtoken3391"
    config = live_sim_config(tmp_path, logging={"format": "json"})
    result = tradehost("run", "--config", str(config), "--duration", "10",
                       env={"PLANTED_KEY": api_key, "PLANTED_TOKEN": token})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # every line, or this raises
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert {line["event"] for line in lines if "event" in line} >= {"order-filled", "order-external"}
    assert any(line.get("order_id", "").startswith("D-") for line in lines)
    assert {line["rule"] for line in lines if "rule" in line} >= {"ack", "fill"}
    produced = result.stdout + result.stderr
    assert api_key not in produced and token not in produced


def test_in_text_mode_a_discrepancy_is_one_readable_line(tmp_path, caplog):
    store = TinyDBStore(tmp_path / "state.json")
    try:
        store.record_order(order("A", status=OrderStatus.SUBMITTED))
        caplog.set_level(logging.INFO, "recon")
        Reconciler(ScriptedBroker([broker(OrderStatus.REJECTED)]), store, Settings()).run_cycle()
    finally:
        store.close()
    [line] = [r.getMessage() for r in caplog.records if "[reject]" in r.getMessage()]
    assert line == "A INFY [reject] SUBMITTED -> REJECTED: no reason given" and "{" not in line and "\n" not in line


def test_run_against_a_broker_answering_only_token_exception_exits_3(tmp_path, kite_sim):
    config = write(tmp_path / "live.yaml", f"""
        mode: live
        broker:
          name: kite
          kite: {{api_key_env: MY_KEY, access_token_env: MY_TOKEN, root: "{kite_sim.url}", timeout_seconds: 1}}
        store: {{path: {tmp_path / 'state.json'}}}
        reconciliation: {{interval_seconds: 0.5}}
    """)
    result = tradehost("run", "--config", str(config), "--duration", "2",
                       env={"MY_KEY": SIM_API_KEY, "MY_TOKEN": "expired_token_42"})
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines()[-1] == ("tradehost: ended unhealthy: reconciliation: broker session expired "
                                              "(token refused): log in again")
    assert "Traceback" not in result.stderr


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line or line.startswith("tradehost:")]


def test_expected_failures_are_one_line_and_a_documented_status(tmp_path):
    (tmp_path / "adir").mkdir()
    as_dir = write(tmp_path / "dir.yaml", f"""
        store: {{path: {tmp_path / 'adir'}}}
        plugins: {{disabled: [demo]}}
    """)
    result = tradehost("run", "--config", str(as_dir), "--duration", "1")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [line] = error_lines(result.stderr)
    assert line.startswith("tradehost: run failed: StoreError: ") and "is a directory" in line

    held = write(tmp_path / "held.yaml", f"""
        store: {{path: {tmp_path / 'state.json'}}}
        plugins: {{disabled: [demo]}}
    """)
    store = TinyDBStore(tmp_path / "state.json")
    try:
        result = tradehost("run", "--config", str(held), "--duration", "1")
    finally:
        store.close()
    assert result.returncode == 4 and "Traceback" not in result.stderr, result.stderr
    assert len(error_lines(result.stderr)) == 1 and "in use by another writer" in result.stderr

    port = free_port()
    busy = write(tmp_path / "busy.yaml", f"""
        store: {{path: {tmp_path / 'other.json'}}}
        plugins: {{disabled: [demo]}}
        monitoring: {{enabled: true, address: "127.0.0.1:{port}"}}
    """)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        result = tradehost("run", "--config", str(busy), "--duration", "1")
    assert result.returncode == 4 and "Traceback" not in result.stderr, result.stderr
    [line] = error_lines(result.stderr)
    assert f"monitoring.address 127.0.0.1:{port}: cannot listen: address in use" in line


def test_the_product_runs_without_prometheus_client_and_says_how_to_install_it(tmp_path):
    plain = write(tmp_path / "plain.yaml", f"""
        store: {{path: {tmp_path / 'a.json'}}}
        plugins: {{disabled: [demo]}}
    """)
    metrics = write(tmp_path / "metrics.yaml", f"""
        store: {{path: {tmp_path / 'b.json'}}}
        plugins: {{disabled: [demo]}}
        monitoring: {{enabled: true}}
    """)
    code = textwrap.dedent(f"""
        import sys
        sys.modules["prometheus_client"] = None  # as if not installed: importing it raises ImportError
        from hostspec.cli import main
        statuses = [main(["run", "--config", path, "--duration", "0.5"]) for path in ({str(plain)!r}, {str(metrics)!r})]
        print(statuses, "prometheus_client" in sys.modules and sys.modules["prometheus_client"] is not None)
    """)
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.stdout.splitlines()[-1] == "[0, 2] False", result.stderr
    assert (f"tradehost: configuration error: {metrics}: monitoring.enabled: metrics need the prometheus-client "
            "package: pip install 'recon-plugin[metrics]'") in result.stderr


def test_a_reconciler_thread_that_dies_is_unhealthy_and_announced(tmp_path):
    store = TinyDBStore(tmp_path / "state.json")
    events: list[Event] = []
    reconciler = Reconciler(ScriptedBroker(), store, Settings(interval_seconds=0.05), emit=events.append)
    monitor = Monitor(reconciler, MonitoringSettings())

    async def a_bug(_executor: object) -> None:  # a bug outside the guarded steps of a cycle
        raise RuntimeError("bug in the loop")

    reconciler._cycle = a_bug  # type: ignore[method-assign]
    try:
        reconciler.start()
        assert eventually(lambda: reconciler.thread_dead, timeout=10)
        status = monitor.health.status()
    finally:
        reconciler.stop()
        monitor.close()
        store.close()
    assert (status.healthy, status.reason) == (False, "reconciler thread stopped: RuntimeError: bug in the loop")
    assert [(e.kind, e.data["reason"]) for e in events] == [("reconciler-stopped", "RuntimeError: bug in the loop")]


def test_in_text_mode_each_discrepancy_of_a_paper_run_is_one_line(tmp_path):
    config = yaml.safe_load((ROOT / "configs" / "paper.yaml").read_text())
    config["store"]["path"] = str(tmp_path / "state.json")
    config["broker"]["paper"]["tick_seconds"] = 0.2
    config["reconciliation"].update(interval_seconds=0.3, missing_grace_seconds=1)
    config["demo"].update(interval_seconds=0.3)
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(config))
    result = tradehost("run", "--config", str(path), "--duration", "8")
    assert result.returncode == 0, result.stderr
    discrepancies = [line for line in result.stdout.splitlines() if "reconciliation-discrepancy" in line]
    assert any(" LOST" in line for line in discrepancies) and any("rejected" in line for line in discrepancies)
    said_again = [line for line in result.stderr.splitlines() if re.search(r"\[(lost|missing|reject)\]", line)]
    assert said_again == [] and "{'" not in result.stderr


def test_a_json_line_never_carries_a_registered_secret_even_in_its_fields():
    from hostspec.logformat import JsonFormatter
    from hostspec.secrets import register_secret

    register_secret("CANARYjson7781")
    record = logging.LogRecord("recon", logging.ERROR, __file__, 1, "refused: %s", ("CANARYjson7781",), None)
    record.order_id, record.rule, record.local = "D-0001", "lost", {"token": "CANARYjson7781"}
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["logger"], line["order_id"], line["rule"]) == ("ERROR", "recon", "D-0001", "lost")
    assert "CANARYjson7781" not in json.dumps(line) and line["message"] == "refused: ***"
