"""The product as a user runs it: ``tradehost`` commands in a fresh directory, on the paper broker."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from hostspec.model import OrderStatus, Side, utcnow
from recon_plugin.brokers.paper import PaperExchange
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import ROOT, order, tradehost, write

S = OrderStatus


def local_config(tmp_path: Path, tick: float = 0.05, extra: str = "") -> Path:
    return write(tmp_path / "paper.yaml", f"""
        mode: paper
        broker:
          name: paper
          paper: {{seed: 5, tick_seconds: {tick}, reject_rate: 0.1, cancel_rate: 0.2}}
        store:
          path: {tmp_path / 'state.json'}
        reconciliation:
          interval_seconds: 0.5
          missing_grace_seconds: 1
        plugins:
          disabled: [demo]
        {extra}
    """)


def place_like_a_host(tmp_path: Path, count: int, tick: float) -> list[str]:
    """Place orders on the paper account and record them locally, as a host's order flow would."""
    exchange = PaperExchange(tmp_path / "paper-account.json", seed=5, tick_seconds=tick)
    store = TinyDBStore(tmp_path / "state.json")
    rng = random.Random(2)
    ids = []
    for i in range(count):
        side, symbol, qty = rng.choice((Side.BUY, Side.SELL)), rng.choice(("INFY", "TCS")), rng.randint(1, 30)
        bid = exchange.place_order(tag=f"H{i}", exchange="NSE", symbol=symbol, product="CNC", side=side, quantity=qty)
        now = utcnow()  # placed now: an order dated another day would be that day's, and expire with it
        store.record_order(order(f"H{i}", status=S.SUBMITTED, broker_order_id=bid, side=side, symbol=symbol,
                                 quantity=qty, created_at=now, updated_at=now))
        ids.append(bid)
    exchange.close()
    store.close()
    return ids


def test_the_readme_paper_run_finds_and_resolves_every_kind_of_discrepancy(tmp_path):
    config = ROOT / "configs" / "paper.yaml"
    result = tradehost("run", "--config", str(config), "--duration", "30", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for needle in ("order-updated", "[ack]", "[partial-fill]", "[fill]", "order-cancelled", "order-rejected",
                   "order-external", "submit-confirmed", "not in the broker's book (miss 1/3)", "LOST",
                   "summary:"):
        assert needle in out, f"{needle!r} missing from the run's output"
    assert "Traceback" not in result.stderr

    status = tradehost("recon", "status", "--config", str(config), "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    exchange = PaperExchange(tmp_path / "var" / "paper" / "paper-account.json", read_only=True)
    last_cycle = datetime.fromisoformat(state["stats"]["last_cycle_at"])
    broker_positions = {(p.exchange, p.symbol, p.product): p.quantity for p in exchange.positions_at(last_cycle)}
    local_positions = {(p["exchange"], p["symbol"], p["product"]): p["quantity"] for p in state["positions"]}
    assert local_positions == broker_positions
    assert state["stats"]["fills_applied"] > 5
    text = tradehost("recon", "status", "--config", str(config), cwd=tmp_path).stdout
    assert "positions (" in text and "statistics" in text
    report = tradehost("recon", "report", "--config", str(config), "--since", "1h", cwd=tmp_path)
    assert report.returncode == 0 and "lost" in report.stdout and report.stdout.startswith("journal ")


def test_recon_check_reports_without_changing_anything_then_agrees(tmp_path):
    config = local_config(tmp_path)
    place_like_a_host(tmp_path, 6, tick=0.05)
    time.sleep(1.5)  # the exchange moves on: acknowledgements, fills
    files = {p: p.read_bytes() for p in (tmp_path / "state.json", tmp_path / "paper-account.json")}
    result = tradehost("recon", "check", "--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "(dry run: nothing was changed)" in result.stdout and "[fill]" in result.stdout
    as_json = tradehost("recon", "check", "--config", str(config), "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["in_sync"] is False
    assert {p: p.read_bytes() for p in files} == files  # nothing written, by either command

    run = tradehost("run", "--config", str(config), "--duration", "2")
    assert run.returncode == 0, run.stderr
    agreed = tradehost("recon", "check", "--config", str(config))
    assert agreed.returncode == 0, agreed.stdout
    assert "agree" in agreed.stdout


def test_recon_check_exits_2_when_it_cannot_tell(tmp_path):
    config = local_config(tmp_path)
    (tmp_path / "paper-account.json").write_text("{torn")
    result = tradehost("recon", "check", "--config", str(config))
    assert result.returncode == 2
    assert "could not complete a cycle" in result.stdout


def test_paper_host_killed_with_working_orders_resumes_without_losing_any(tmp_path):
    config = local_config(tmp_path, tick=0.4)
    broker_ids = place_like_a_host(tmp_path, 10, tick=0.4)
    host = subprocess.Popen([sys.executable, "-m", "hostspec.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    host.send_signal(signal.SIGKILL)
    host.communicate()
    before = TinyDBStore(tmp_path / "state.json", read_only=True).load()
    working = [o for o in before.orders.values() if not o.status.is_terminal]
    assert working, "the test needs orders still working at the kill"

    restarted = tradehost("run", "--config", str(config), "--duration", "9")
    assert restarted.returncode == 0, restarted.stderr
    store = TinyDBStore(tmp_path / "state.json", read_only=True)
    after = store.load()
    assert all(o.status.is_terminal for o in after.orders.values())
    assert any(after.ledger.get(o.order_id) and after.ledger[o.order_id].filled_qty >
               (before.ledger[o.order_id].filled_qty if o.order_id in before.ledger else 0) for o in working)
    assert not [e for e in store.journal() if e.rule in ("missing", "lost")]
    exchange = PaperExchange(tmp_path / "paper-account.json", read_only=True)
    assert [bo.broker_order_id for bo in exchange.fetch_orders()] == broker_ids
    broker_positions = {p.key: p for p in exchange.fetch_positions()}
    assert {k: p for k, p in after.positions.items()} == broker_positions  # positions = sum of fills


def test_paper_reset_needs_confirmation_and_keeps_backups(tmp_path):
    config = local_config(tmp_path)
    place_like_a_host(tmp_path, 2, tick=0.05)
    refused = subprocess.run([sys.executable, "-m", "hostspec.cli", "paper", "reset", "--config", str(config)],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    done = tradehost("paper", "reset", "--config", str(config), "--yes")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "paper-account.json").read_text())["orders"] == {}
    assert (tmp_path / "paper-account.json.bak").exists() and (tmp_path / "state.json.bak").exists()
    assert not (tmp_path / "state.json").exists()


def test_sigterm_stops_the_host_cleanly_with_a_summary(tmp_path):
    config = local_config(tmp_path)
    place_like_a_host(tmp_path, 3, tick=0.05)
    host = subprocess.Popen([sys.executable, "-m", "hostspec.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    host.send_signal(signal.SIGTERM)
    out, err = host.communicate(timeout=15)
    assert host.returncode == 0, err
    assert "received SIGTERM; stopping" in err and "reconciler stopped" in err
    assert "summary:" in out and "order-filled" in out
    assert TinyDBStore(tmp_path / "state.json", read_only=True).load().checkpoint["stats"]["cycles"] >= 3
