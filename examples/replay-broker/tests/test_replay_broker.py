"""The replay broker passes the conformance kit and runs in the host through its entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from replay_broker import ReplayBroker

from hostspec import BrokerError
from hostspec.testing import BrokerConformance

SAMPLE = Path(__file__).resolve().parent.parent / "sessions" / "sample.jsonl"


class TestReplayBroker(BrokerConformance):
    unknown_order_id = "nope"

    def make_broker(self):
        frames = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
        return ReplayBroker(frames, start_at=1.5, clock=lambda: 0.0)  # frozen in the frame at 1 s

    def make_failing_broker(self):
        frames = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
        return ReplayBroker(frames, start_at=2.5, clock=lambda: 0.0)  # frozen in the outage


def test_frames_follow_the_clock():
    now = [0.0]
    broker = ReplayBroker([json.loads(line) for line in SAMPLE.read_text().splitlines()], clock=lambda: now[0])
    assert [o.status.value for o in broker.fetch_orders()] == ["SUBMITTED"]
    now[0] = 2.1
    with pytest.raises(BrokerError, match="gateway timeout"):
        broker.fetch_orders()
    now[0] = 3.0
    assert [(o.broker_order_id, o.filled_qty) for o in broker.fetch_orders()] == [("R1", 10), ("R2", 2)]


def test_the_host_runs_it_by_name_through_the_installed_entry_point(tmp_path):
    plugins = subprocess.run([sys.executable, "-m", "hostspec.cli", "plugins"], capture_output=True, text=True)
    assert "replay     hostspec-replay-broker 0.1.0" in plugins.stdout
    config = tmp_path / "replay.yaml"
    config.write_text(textwrap.dedent(f"""
        mode: live
        broker:
          name: replay
          replay: {{path: {SAMPLE}, speed: 2.0}}
        store: {{path: {tmp_path / 'state.json'}}}
        reconciliation: {{interval_seconds: 0.25}}
        plugins: {{disabled: [demo]}}
    """))
    run = subprocess.run([sys.executable, "-m", "hostspec.cli", "run", "--config", str(config), "--duration", "4"],
                         capture_output=True, text=True, env={**os.environ}, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "order-external" in run.stdout and "order-filled" in run.stdout and "order-cancelled" in run.stdout
    assert "replayed failure" in run.stdout  # the outage frame surfaced as a reconciliation-error event
    status = subprocess.run([sys.executable, "-m", "hostspec.cli", "recon", "status", "--config", str(config),
                             "--json"], capture_output=True, text=True)
    positions = {p["symbol"]: p["quantity"] for p in json.loads(status.stdout)["positions"]}
    assert positions == {"INFY": 10, "TCS": -2}
