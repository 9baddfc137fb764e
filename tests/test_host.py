"""The reference host: configuration errors, plugin loading and blocking, broker and store selection."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hostspec import hookimpl
from hostspec.app import App
from hostspec.cli import main
from tests.helpers import ROOT, modules_a_host_imports, tradehost, write


def make_distribution(site: Path, name: str, module_source: str, ep_name: str | None = None) -> Path:
    """A throw-away installed distribution: a module plus a dist-info with a hostspec entry point."""
    module = name.replace("-", "_")
    write(site / f"{module}.py", module_source)
    info = site / f"{module}-1.0.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    write(info / "entry_points.txt", f"[hostspec]\n{ep_name or module} = {module}\n")
    return site


GOOD_PLUGIN = """
    from hostspec import hookimpl

    @hookimpl
    def hostspec_handle_event(event):
        pass
"""


@pytest.fixture
def config(tmp_path):
    def make(text: str) -> Path:
        return write(tmp_path / "c.yaml", text.replace("STORE", str(tmp_path / "state.json")))
    return make


# -- configuration errors: exit 2, one line naming the file and the key --------------------------

@pytest.mark.parametrize(("text", "key"), [
    ("mode: paper\nbogus: 1\n", "bogus"),
    ("mode: paper\nreconciliation:\n  intervall_seconds: 2\n", "reconciliation.intervall_seconds"),
    ("mode: sideways\n", "mode"),
    ("mode: paper\nreconciliation:\n  interval_seconds: fast\n", "reconciliation.interval_seconds"),
    ("mode: paper\nreconciliation:\n  enabled: 1\n", "reconciliation.enabled"),
    ("mode: paper\nbroker:\n  name: nosuch\n", "broker.name"),
    ("mode: paper\nstore:\n  name: nosuch\n", "store.name"),
    ("mode: paper\nbroker:\n  kite:\n    timeout_seconds: -1\n", "broker.kite.timeout_seconds"),
    ("mode: paper\nplugins:\n  disabled: demo\n", "plugins.disabled"),
    ("- just\n- a list\n", ""),
])
def test_config_errors_exit_2_naming_file_and_key(config, capsys, text, key):
    path = config(text + "store:\n  path: STORE\n" if "store:" not in text and not text.startswith("-") else text)
    assert main(["recon", "status", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert str(path) in err
    assert f": {key}:" in err if key else "top level" in err


def test_missing_file_and_yaml_syntax_errors(tmp_path, capsys):
    assert main(["recon", "status", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: file not found" in capsys.readouterr().err
    bad = write(tmp_path / "bad.yaml", "mode: [paper\n")
    assert main(["recon", "status", "--config", str(bad)]) == 2
    assert "YAML error: line" in capsys.readouterr().err


def test_yaml_is_loaded_safely(tmp_path, capsys):
    evil = write(tmp_path / "evil.yaml", "mode: !!python/object/apply:os.system ['echo pwned']\n")
    assert main(["recon", "status", "--config", str(evil)]) == 2
    assert "YAML error" in capsys.readouterr().err


def test_unknown_broker_lists_the_installed_ones(config, capsys):
    path = config("broker:\n  name: nosuch\nstore:\n  path: STORE\n")
    assert main(["recon", "status", "--config", str(path)]) == 2
    assert "installed: kite, kite-sim, paper" in capsys.readouterr().err


def test_two_brokers_with_one_name_are_refused(config, capsys):
    class Impostor:
        @hookimpl
        def hostspec_register_brokers(self, register):
            register("paper", lambda host: None)

    path = config("store:\n  path: STORE\n")
    assert main(["recon", "status", "--config", str(path)], app=App(extra_plugins=[("impostor", Impostor())])) == 2
    err = capsys.readouterr().err
    assert "'paper' is registered by both" in err and "impostor" in err


# -- plugin loading --------------------------------------------------------------------------------

def test_builtin_plugins_load_through_the_installed_entry_points():
    result = tradehost("plugins")
    assert result.returncode == 0, result.stderr
    for name in ("recon", "paper", "kite", "kite-sim", "tinydb", "demo"):
        assert f"{name:<10} recon-plugin" in result.stdout


def test_a_third_party_distribution_is_loaded_and_a_broken_one_skipped(tmp_path):
    site = make_distribution(tmp_path / "site", "throwaway-sink", GOOD_PLUGIN)
    make_distribution(site, "broken-plugin", "raise ImportError('missing dependency xyz')")
    make_distribution(site, "wrong-hook", """
        from hostspec import hookimpl

        @hookimpl
        def hostspec_no_such_hook():
            pass
    """)
    env = {"PYTHONPATH": str(site)}
    result = tradehost("plugins", env=env)
    assert result.returncode == 0, result.stderr
    assert "throwaway_sink throwaway-sink 1.0" in result.stdout
    assert "hostspec_handle_event" in result.stdout
    assert "broken_plugin broken-plugin: NOT LOADED: ImportError: missing dependency xyz" in result.stdout
    assert "wrong_hook" in result.stdout and "unknown hook 'hostspec_no_such_hook'" in result.stdout
    assert "broken_plugin" in result.stderr  # reported by name in the log too


def test_plugins_are_blocked_by_environment_and_by_config(tmp_path, config):
    result = tradehost("plugins", env={"TRADEHOST_DISABLE_PLUGINS": "demo,kite"})
    assert "demo       recon-plugin" not in result.stdout and "kite       recon-plugin" not in result.stdout
    assert "demo       disabled" in result.stdout
    path = config("broker:\n  name: kite\nstore:\n  path: STORE\nplugins:\n  disabled: [kite]\n")
    result = tradehost("recon", "status", "--config", str(path))
    assert result.returncode == 2 and "unknown broker 'kite' (installed: kite-sim, paper" in result.stderr


def test_section_of_a_disabled_plugin_is_tolerated(config):
    path = config("store:\n  path: STORE\ndemo:\n  enabled: true\nplugins:\n  disabled: [demo]\n")
    result = tradehost("recon", "status", "--config", str(path))
    assert result.returncode == 0, result.stderr


def test_help_explains_commands():
    result = tradehost("--help")
    assert result.returncode == 0
    for word in ("run", "plugins", "recon", "paper", "Exit status"):
        assert word in result.stdout
    assert "dry-run" in tradehost("recon", "--help").stdout


def test_every_sink_receives_every_event_even_when_one_raises(config):
    received: dict[str, list[str]] = {"first": [], "second": []}

    class Sink:
        def __init__(self, name: str, fail: bool) -> None:
            self.name, self.fail = name, fail

        @hookimpl
        def hostspec_handle_event(self, event):
            received[self.name].append(event.event_id)
            if self.fail:
                raise RuntimeError("sink bug")

    from hostspec.model import Event, utcnow

    app = App(extra_plugins=[("first", Sink("first", True)), ("second", Sink("second", False))])
    host = app.open_host(config("store:\n  path: STORE\n"))
    try:
        for i in range(3):
            host.emit(Event(f"e{i}", "order-updated", utcnow()))
    finally:
        host.close()
    assert received == {"first": ["e0", "e1", "e2"], "second": ["e0", "e1", "e2"]}
    assert host.sink_failures["first"] == 3


# -- what a host imports -----------------------------------------------------------------------------

TEST_ONLY = ("pytest", "_pytest", "hypothesis", "hostspec.testing", "recon_plugin.testing.pytest_plugin")


def test_paper_mode_never_loads_kiteconnect_or_twisted(config):
    path = config("store:\n  path: STORE\nplugins:\n  disabled: [demo]\n")
    assert modules_a_host_imports(path, ("kiteconnect", "twisted")) == []


def test_the_live_demo_never_loads_pytest_or_the_test_kit(tmp_path):
    """The README's live demo (configs/live-sim.yaml, the kite-sim broker and the demo flow) runs on
    ``pip install -e .`` alone: nothing it imports needs the test extra."""
    loaded = modules_a_host_imports(ROOT / "configs" / "live-sim.yaml", (
        *TEST_ONLY, "kiteconnect", "recon_plugin.testing.kite_simulator", "recon_plugin.testing.demo"),
        run_seconds=2, cwd=tmp_path)
    assert loaded == ["kiteconnect", "recon_plugin.testing.demo", "recon_plugin.testing.kite_simulator"]
    assert (tmp_path / "var" / "live-sim" / "recon-state.json").exists()  # it ran where the config says


def test_the_product_never_imports_its_test_tooling():
    """Outside ``recon_plugin.testing``, no module imports it (a real broker can never start a fake),
    and only the two test kits import pytest: ``hostspec.testing`` (for plugin authors' tests) and
    ``recon_plugin.testing.pytest_plugin`` (loaded by pytest itself)."""
    kits = {ROOT / "hostspec" / "testing.py", ROOT / "recon_plugin" / "testing" / "pytest_plugin.py"}
    found = []
    for path in sorted([*(ROOT / "hostspec").rglob("*.py"), *(ROOT / "recon_plugin").rglob("*.py")]):
        tooling = ROOT / "recon_plugin" / "testing" in path.parents
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if (name.startswith("recon_plugin.testing") and not tooling) or (
                        top in ("pytest", "_pytest", "hypothesis") and path not in kits):
                    found.append(f"{path.relative_to(ROOT)} imports {name}")
    assert found == []
