"""The operator's hand (``recon resolve``) and the command line's conventions: ``--version``, ``plugins
--json``, ``config check``, and what the demo's second run says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hostspec.app import App
from hostspec.markers import hookimpl
from hostspec.model import Event, OrderStatus
from recon_plugin.engine import match_book, orders_to_query
from recon_plugin.settings import settings_for
from tests.helpers import demo_config, paper_config, tradehost, write


@pytest.fixture(scope="module")
def demo_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the demo's book after a run: two LOST orders on SBIN (D-0003, D-0011)."""
    directory = tmp_path_factory.mktemp("book")
    run = tradehost("run", "--config", str(demo_config(directory, "alerts: {announce: true}")), "--duration", "18",
                    cwd=directory, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "D-0011 SBIN LOST" in run.stdout
    return directory


@pytest.fixture
def book(demo_book: Path, tmp_path: Path) -> Path:
    """A copy of the demo's book for one test to change; returns its config."""
    shutil.copytree(demo_book, tmp_path / "book")
    return demo_config(tmp_path / "book", "alerts: {announce: true}")


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def hostspec_handle_event(self, event: Event) -> None:
        self.events.append(event)


def held_after_startup(config: Path) -> tuple[bool, list[Event], set[str]]:
    """Start the host in process (its startup cycle runs at once), stop it: whether SBIN was held, the
    events delivered, and which orders a cycle checks again (missing from the book, or due a query)."""
    alert_listener = pytest.importorskip("alert_listener")
    sink = Collect()
    app = App(extra_plugins=[("collect", sink)])
    host = app.open_host(config)
    try:
        app.start(host)
        held = alert_listener.is_held(host, "SBIN")
        assert host.store is not None
        state = host.store.load()
        checked = {o.order_id for o in orders_to_query(state, [], settings_for(host.config), host.clock.now(),
                                                       lambda _id: True, host.calendar)}
        checked |= {o.order_id for o in match_book(state, []).missing}
    finally:
        app.stop(host)
    return held, sink.events, checked


def test_resolving_a_lost_order_by_hand_writes_the_journal_announces_it_and_frees_its_symbol(book):
    held, _events, queried = held_after_startup(book)
    assert held and {"D-0003", "D-0011"} <= queried  # LOST: held, and asked for again

    env = {"TRADEHOST_USER": "asha"}
    first = tradehost("recon", "resolve", "D-0003", "--as", "cancelled", "--reason", "desk: never reached NSE",
                      "--config", str(book), cwd=book.parent, env=env)
    assert first.returncode == 0, first.stderr
    assert "D-0003 [operator-resolved] LOST -> CANCELLED by asha: desk: never reached NSE" in first.stdout
    second = tradehost("recon", "resolve", "D-0011", "--as", "expired", "--reason", "ended with the day",
                       "--config", str(book), cwd=book.parent, env=env)
    assert second.returncode == 0, second.stderr

    journal = json.loads(tradehost("recon", "report", "--config", str(book), "--rule", "operator-resolved",
                                   "--json", cwd=book.parent).stdout)
    assert [(e["order_id"], e["local"]["by"], e["local"]["reason"]) for e in journal] == [
        ("D-0003", "asha", "desk: never reached NSE"), ("D-0011", "asha", "ended with the day")]
    status = tradehost("recon", "status", "--config", str(book), cwd=book.parent).stdout
    assert status.startswith("book: in sync;")
    assert "resolved by hand (2):" in status and "LOST -> CANCELLED by asha: desk: never reached NSE" in status

    held, events, queried = held_after_startup(book)
    resolved = [e for e in events if e.data.get("rule") == "operator-resolved"]
    assert [(e.kind, e.order_id) for e in resolved] == [("order-cancelled", "D-0003"), ("order-expired", "D-0011")]
    assert not held  # the symbol is free
    assert not {"D-0003", "D-0011"} & queried  # and no longer asked for


def test_a_resolution_the_broker_contradicts_is_refused_and_changes_nothing(book):
    state = book.parent / "var" / "recon-state.json"
    before = state.read_bytes()
    refused = tradehost("recon", "resolve", "D-0001", "--as", "cancelled", "--reason", "x", "--config", str(book),
                        cwd=book.parent)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "recon resolve: refused, nothing was changed: the broker lists D-0001 as FILLED")
    no_price = tradehost("recon", "resolve", "D-0003", "--as", "filled", "--reason", "x", "--config", str(book),
                         cwd=book.parent)
    assert no_price.returncode == 2 and "--as filled needs --price" in no_price.stderr
    nothing = tradehost("recon", "resolve", "D-0002", "--dismiss", "--reason", "x", "--config", str(book),
                        cwd=book.parent)
    assert nothing.returncode == 2 and "D-0002 has no alarm to dismiss" in nothing.stderr
    assert state.read_bytes() == before


def test_dismissing_an_alarm_keeps_the_order_and_takes_it_out_of_needs_attention(book):
    dismissed = tradehost("recon", "resolve", "D-0011", "--dismiss", "--reason", "known: desk is on it",
                          "--config", str(book), cwd=book.parent, env={"TRADEHOST_USER": "ravi"})
    assert dismissed.returncode == 0, dismissed.stderr
    status = json.loads(tradehost("recon", "status", "--config", str(book), "--json", cwd=book.parent).stdout)
    assert [a["order_id"] for a in status["needs_attention"]] == ["D-0003"]
    assert {o["order_id"]: o["status"] for o in status["orders"]}["D-0011"] == OrderStatus.LOST
    assert [(e["rule"], e["local"]["by"]) for e in status["resolved_by_hand"]] == [("operator-dismissed", "ravi")]


# -- conventions --------------------------------------------------------------------------------------------

def test_version():
    result = tradehost("--version")
    assert result.returncode == 0 and result.stdout.startswith("tradehost 0.1.0 (recon-plugin; Python 3.")


def test_plugins_json_lists_the_names_each_plugin_registers_and_what_a_config_enables(tmp_path):
    config = write(tmp_path / "c.yaml", f"""
        mode: paper
        store: {{path: {tmp_path / 'state.json'}}}
        plugins: {{disabled: [demo, kite]}}
    """)
    result = tradehost("plugins", "--json", "--config", str(config))
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["plugins"]}
    assert rows["paper"]["brokers"] == ["paper"] and rows["paper"]["selected"] == ["paper"]
    assert rows["tinydb"]["stores"] == ["tinydb"] and rows["tinydb"]["selected"] == ["tinydb"]
    assert rows["kite"]["brokers"] == ["kite"] and rows["kite"]["enabled"] is False
    assert rows["demo"]["enabled"] is False and rows["recon"]["enabled"] is True
    assert rows["kite-sim"]["brokers"] == ["kite-sim"] and rows["kite-sim"]["selected"] == []
    plain = json.loads(tradehost("plugins", "--json").stdout)
    assert plain["config"] is None and "enabled" not in plain["plugins"][0]
    text = tradehost("plugins", "--config", str(config)).stdout
    assert f"DISABLED by {config}" in text and "brokers: paper" in text


def test_config_check_shows_effective_values_with_secrets_masked_and_exits_2_when_invalid(tmp_path):
    config = write(tmp_path / "c.yaml", f"""
        mode: live
        broker:
          name: kite
          kite: {{access_token_file: {tmp_path / 'token'}}}
        store: {{path: {tmp_path / 'state.json'}}}
    """)
    canary = "tok-CANARY-5f2a"
    result = tradehost("config", "check", "--config", str(config), env={"KITE_ACCESS_TOKEN": canary})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{config}: valid; plugins: ")
    assert "  broker.kite.access_token_env = KITE_ACCESS_TOKEN (set in the environment)" in lines
    assert "  reconciliation.missing_retries = 3" in lines  # a default, shown
    assert canary not in result.stdout + result.stderr
    as_json = json.loads(tradehost("config", "check", "--config", str(config), "--json").stdout)
    assert as_json["valid"] is True and as_json["values"]["store.name"] == "tinydb"
    bad = write(tmp_path / "bad.yaml", "mdoe: paper\n")
    refused = tradehost("config", "check", "--config", str(bad))
    assert refused.returncode == 2 and "did you mean 'mode'" in refused.stderr


def test_the_demos_second_run_says_that_paper_reset_is_what_is_wanted(demo_book, tmp_path):
    shutil.copytree(demo_book, tmp_path / "again")
    config = demo_config(tmp_path / "again")
    second = tradehost("run", "--config", str(config), "--duration", "2", cwd=tmp_path / "again")
    assert second.returncode == 0, second.stderr
    assert f"'tradehost paper reset --config {config}' starts a fresh account" in second.stderr
    assert "demo-flow" in second.stdout and "tradehost paper reset" in second.stdout
    assert "is at version" not in second.stdout + second.stderr
    assert "demo order 1 failed" not in second.stderr


def test_a_store_with_nothing_to_resolve_names_the_order(tmp_path):
    config = paper_config(tmp_path, tmp_path / "state.json")
    result = tradehost("recon", "resolve", "NOPE", "--as", "cancelled", "--reason", "x", "--config", str(config))
    assert result.returncode == 2 and "no order 'NOPE' in today's state" in result.stderr
