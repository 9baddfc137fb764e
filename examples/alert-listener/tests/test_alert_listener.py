"""The alert listener, loaded through its entry point into a paper host with the demo order flow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from alert_listener import SymbolHold

from hostspec import events
from hostspec.model import Event, utcnow


def test_alerts_and_holds_follow_the_reconciler(tmp_path):
    config = tmp_path / "paper.yaml"
    alerts = tmp_path / "alerts.jsonl"
    config.write_text(textwrap.dedent(f"""
        mode: paper
        broker:
          name: paper
          paper: {{tick_seconds: 0.2, seed: 7}}
        store: {{path: {tmp_path / 'state.json'}}}
        reconciliation: {{interval_seconds: 0.5, missing_grace_seconds: 1}}
        demo: {{enabled: true, orders: 4, interval_seconds: 0.3}}
        alerts: {{path: {alerts}, announce: true}}
    """))
    run = subprocess.run([sys.executable, "-m", "hostspec.cli", "run", "--config", str(config), "--duration", "6"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in alerts.read_text().splitlines()]
    lost = [a for a in lines if a["kind"] == "reconciliation-discrepancy" and "LOST" in a["summary"]]
    assert [a["order_id"] for a in lost] == ["D-0003"]  # the submit that never reached the broker
    holds = [a for a in lines if a["kind"] == "symbol-hold"]
    assert holds and lost[0]["symbol"] in holds[-1]["held"]  # LOST stays unresolved: its symbol stays held
    assert len({a["id"] for a in lines if "id" in a}) == len([a for a in lines if "id" in a])  # no duplicates
    assert "symbol-hold" in run.stdout  # announced to the host's sinks too (alerts.announce: true)


def test_holds_stay_off_the_console_unless_asked_for_and_say_once_where_they_go(tmp_path):
    config = tmp_path / "paper.yaml"
    config.write_text(textwrap.dedent(f"""
        mode: paper
        broker: {{name: paper, paper: {{tick_seconds: 0.2, seed: 7}}}}
        store: {{path: {tmp_path / 'state.json'}}}
        reconciliation: {{interval_seconds: 0.5, missing_grace_seconds: 1}}
        demo: {{enabled: true, orders: 4, interval_seconds: 0.3}}
        alerts: {{path: {tmp_path / 'alerts.jsonl'}}}
    """))
    run = subprocess.run([sys.executable, "-m", "hostspec.cli", "run", "--config", str(config), "--duration", "5"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "symbol-hold" not in run.stdout
    assert run.stderr.count("alert-listener (plugin 'alerts', from examples/alert-listener)") == 1
    written = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert any(a["kind"] == "symbol-hold" for a in written)  # still kept, in the file


def test_symbol_hold_is_a_kind_of_its_own_that_every_sink_can_read_typed():
    assert events.payload_class("symbol-hold") is SymbolHold
    event = Event.of(SymbolHold(held=["INFY"], summary="hold INFY"), "id", utcnow())
    assert event.data == {"held": ["INFY"], "summary": "hold INFY"}
    assert event.payload_as(SymbolHold).held == ["INFY"]


def test_an_alert_delivered_again_after_a_crash_is_not_written_twice(tmp_path):
    """The host crashed after writing an alert and before marking its event sent (and mid-way through
    the next line): the restarted host delivers the event again, and the file keeps one alert for it."""
    from hostspec.model import ChangeSet
    from recon_plugin.events import ReconciliationError
    from recon_plugin.stores.tinydb_store import TinyDBStore

    state, alerts, config = tmp_path / "state.json", tmp_path / "alerts.jsonl", tmp_path / "paper.yaml"
    event = Event.of(ReconciliationError(summary="fetch failed", step="fetch", error_kind="timeout", message="slow",
                                         consecutive=1),
                     "E-before-the-crash", utcnow())
    store = TinyDBStore(state)
    store.apply(ChangeSet(events=[event]))  # in the outbox, never marked sent
    store.close()
    alerts.write_text(json.dumps({"at": event.at.isoformat(), "kind": event.kind, "id": event.event_id,
                                  "symbol": None, "order_id": None, "summary": "fetch failed"}) + "\n"
                      + '{"at": "2026-11-25T09:15:00+00:00", "kind": "reconc')  # torn by the crash
    config.write_text(textwrap.dedent(f"""
        mode: paper
        broker: {{name: paper}}
        store: {{path: {state}}}
        alerts: {{path: {alerts}}}
        plugins: {{disabled: [demo]}}
    """))
    run = subprocess.run([sys.executable, "-m", "hostspec.cli", "run", "--config", str(config), "--duration", "2"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "reconciliation-error" in run.stdout  # it was delivered again, to the console
    lines = [json.loads(line) for line in alerts.read_text().splitlines()]  # every line whole
    assert [a["id"] for a in lines if a.get("id") == "E-before-the-crash"] == ["E-before-the-crash"]
