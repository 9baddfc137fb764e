"""The strict configuration rules (issue #18): nothing in the file is silently dropped or silently
kept. Each case ends with exit status 2 and one line naming the file and the key.

- a typo is refused even when some plugin is disabled: only the sections of plugins that are not
  loaded are left unread, and those are known without importing the plugin;
- a number is finite;
- a key written twice in one mapping is refused, with both lines;
- settings that make the missing-order ladder impossible are refused (a settings class's ``check``);
- a secret written where its environment variable's name belongs is refused without being quoted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from hostspec.cli import main
from hostspec.config import (
    Config,
    ConfigError,
    SettingError,
    merge_schemas,
    read_yaml,
    sections_in_source,
    setting,
    validate,
)
from recon_plugin.brokers.kite.broker import secret_from_env
from recon_plugin.settings import Settings
from tests.helpers import modules_a_host_imports, tradehost, write
from tests.test_host import make_distribution


def _write(tmp_path: Path, text: str) -> Path:
    """``text`` as ``tmp_path/c.yaml`` (not dedented: the tests write YAML line by line), with ``STORE``
    standing for a state file in ``tmp_path``."""
    path = tmp_path / "c.yaml"
    path.write_text(text.replace("STORE", str(tmp_path / "state.json")))
    return path


@pytest.fixture
def config(tmp_path):
    return lambda text: _write(tmp_path, text)


def refused(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """``tradehost recon status`` on ``path``: exit 2 and one line naming the file; returns the line."""
    assert main(["recon", "status", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"tradehost: configuration error: {path}: ")
    return err


def accepted(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["recon", "status", "--config", str(path)])
    assert status == 0, capsys.readouterr().err


# -- row 1: a typo is never silently dropped ----------------------------------------------------------

@pytest.mark.parametrize(("text", "key", "suggestion"), [
    ("mdoe: live\n", "mdoe", "mode"),
    ("reconcilation:\n  dry_run: true\n", "reconcilation", "reconciliation"),
    ("broker:\n  paper:\n    tick_second: 2\n", "broker.paper.tick_second", "tick_seconds"),
    ("dmeo:\n  enabled: true\n", "dmeo", "demo"),  # a disabled plugin's section, misspelt
])
def test_a_typo_beside_a_disabled_plugin_is_refused_with_a_suggestion(config, capsys, text, key, suggestion):
    """As in configs/live.yaml and dev.yaml: ``plugins.disabled: [demo]`` used to make every unknown
    top-level section tolerated, so the host ran on defaults (writing, in paper mode)."""
    err = refused(config(f"store:\n  path: STORE\nplugins:\n  disabled: [demo]\n{text}"), capsys)
    assert f": {key}: unknown key; did you mean {suggestion!r}?" in err


def test_a_typo_beside_a_plugin_disabled_by_the_environment_is_refused(config, capsys, monkeypatch):
    monkeypatch.setenv("TRADEHOST_DISABLE_PLUGINS", "demo")
    err = refused(config("store:\n  path: STORE\nmdoe: live\n"), capsys)
    assert ": mdoe: unknown key; did you mean 'mode'?" in err


@pytest.mark.parametrize(("disabled", "section"), [
    ("demo", "demo:\n  enabled: true\n  orders: 3\n"),
    ("recon", "reconciliation:\n  dry_run: true\n"),  # a section not named after its plugin
    ("kite", "broker:\n  kite:\n    root: https://example.invalid\n"),  # a nested section
])
def test_the_sections_a_disabled_plugin_declares_are_left_unread(config, capsys, disabled, section):
    accepted(config(f"store:\n  path: STORE\nplugins:\n  disabled: [{disabled}]\n{section}"), capsys)


def test_beside_a_disabled_plugins_nested_section_a_typo_is_still_refused(config, capsys):
    err = refused(config("store:\n  path: STORE\nplugins:\n  disabled: [kite]\nbroker:\n  kite: {}\n  nmae: paper\n"),
                  capsys)
    assert ": broker.nmae: unknown key; did you mean 'name'?" in err


def test_a_plugin_that_fails_to_load_keeps_its_declared_sections_and_nothing_else(tmp_path):
    site = make_distribution(tmp_path / "site", "widget-plugin", """
        import no_such_dependency_xyz
        from hostspec import hookimpl

        @hookimpl
        def hostspec_config_schema():
            return {"widgets": WidgetSettings, "broker.widget": WidgetBrokerSettings}
    """)
    env = {"PYTHONPATH": str(site)}
    good = _write(tmp_path, "store:\n  path: STORE\nwidgets:\n  size: 3\nbroker:\n  widget:\n    url: x\n")
    result = tradehost("recon", "status", "--config", str(good), env=env)
    assert result.returncode == 0, result.stderr
    bad = _write(tmp_path, "store:\n  path: STORE\nwidgest:\n  size: 3\n")
    result = tradehost("recon", "status", "--config", str(bad), env=env)
    assert result.returncode == 2
    assert "widgest: unknown key; did you mean 'widgets'?" in result.stderr


def test_a_disabled_plugin_is_not_imported_to_learn_its_sections(config, monkeypatch):
    """Its section is known from its source: a plugin switched off by the environment is never
    imported, not even to ask for its schema (its imports could start anything)."""
    monkeypatch.setenv("TRADEHOST_DISABLE_PLUGINS", "demo")
    path = config("store:\n  path: STORE\ndemo:\n  enabled: true\n")
    assert modules_a_host_imports(path, ("recon_plugin.testing.demo",)) == []


def test_a_misspelt_name_in_plugins_disabled_is_refused(config, capsys):
    """A typo there would leave running the very plugin it meant to switch off."""
    err = refused(config("store:\n  path: STORE\nplugins:\n  disabled: [dmeo]\n"), capsys)
    assert ": plugins.disabled[0]: no plugin is named 'dmeo'; did you mean 'demo'?" in err


def test_the_sections_a_plugin_declares_are_read_from_its_source() -> None:
    assert sections_in_source("@hookimpl\ndef hostspec_config_schema():\n    return {'a': A, 'broker.b': B}\n") \
        == ["a", "broker.b"]
    assert sections_in_source("class P:\n    def hostspec_config_schema(self):\n"
                              "        if x:\n            return None\n        return {'c': C}\n") == ["c"]
    assert sections_in_source("def hostspec_config_schema():\n    return SECTIONS\n") is None  # cannot tell
    assert sections_in_source("def hostspec_config_schema():\n    return {NAME: S}\n") is None
    assert sections_in_source("from .impl import hostspec_config_schema\n") is None
    assert sections_in_source("def hostspec_startup():\n    pass\n") is None


# -- row 2: finite numbers ------------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value"), [
    ("reconciliation.interval_seconds", ".nan"),
    ("reconciliation.interval_seconds", ".inf"),
    ("reconciliation.missing_grace_seconds", "-.inf"),
    ("reconciliation.missing_grace_seconds", ".NaN"),
    ("broker.paper.tick_seconds", ".nan"),
    ("broker.paper.tick_seconds", "1" + "0" * 400),  # an integer no float can hold
    ("broker.kite.timeout_seconds", ".Inf"),
])
def test_a_number_must_be_finite(config, capsys, key, value):
    """NaN passes every minimum (a NaN interval busy-looped the paper broker) and an infinite one
    never runs a second cycle."""
    section, *parents, leaf = key.split(".")
    nested = "".join(f"{'  ' * (i + 1)}{p}:\n" for i, p in enumerate(parents))
    text = f"store:\n  path: STORE\n{section}:\n{nested}{'  ' * (len(parents) + 1)}{leaf}: {value}\n"
    err = refused(config(text), capsys)
    assert f": {key}: must be a finite number" in err


# -- row 3: duplicate keys --------------------------------------------------------------------------------

def test_a_section_written_twice_is_refused_with_both_lines(config, capsys):
    """YAML keeps the last block: the first block's ``dry_run: true`` was lost without a word."""
    text = ("store:\n  path: STORE\nreconciliation:\n  dry_run: true\nmode: paper\n"
            "reconciliation:\n  interval_seconds: 2\n")
    err = refused(config(text), capsys)
    assert ": reconciliation: written twice, at lines 3 and 6" in err


def test_a_key_written_twice_in_a_section_is_refused_with_its_dotted_name(config, capsys):
    err = refused(config("store:\n  path: STORE\nbroker:\n  paper:\n    seed: 1\n    tick_seconds: 1\n    seed: 2\n"),
                  capsys)
    assert ": broker.paper.seed: written twice, at lines 5 and 7" in err


def test_merge_keys_and_aliases_still_load(tmp_path):
    """Overriding a merged value is what ``<<`` is for, not a duplicate; safe_load's tags stay refused."""
    path = write(tmp_path / "c.yaml", """
        timing: &timing {interval_seconds: 3, missing_retries: 4}
        reconciliation:
          <<: *timing
          missing_retries: 5
    """)
    raw = read_yaml(path)
    assert raw["reconciliation"] == {"interval_seconds": 3, "missing_retries": 5}
    write(path, "mode: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="YAML error"):
        read_yaml(path)


# -- row 4: settings that make the missing-order ladder impossible -----------------------------------------

def test_no_targeted_query_makes_the_missing_order_ladder_impossible_and_is_refused(config, capsys):
    """An acknowledged order the book stops listing is found or marked LOST only by a targeted query:
    with none allowed it was counted "miss 60/3" for ever, one write and one event a cycle."""
    err = refused(config("store:\n  path: STORE\nreconciliation:\n  max_queries_per_cycle: 0\n"), capsys)
    assert ": reconciliation.max_queries_per_cycle: 0 would leave an order missing" in err
    accepted(config("store:\n  path: STORE\nreconciliation:\n  enabled: false\n  max_queries_per_cycle: 0\n"),
             capsys)  # no reconciler, no ladder


def test_a_settings_class_checks_its_fields_together_when_the_file_is_loaded() -> None:
    @dataclass(frozen=True)
    class Window:
        low: int = setting(1, "low end")
        high: int = setting(5, "high end")

        def check(self) -> None:
            if self.high < self.low:
                raise SettingError("high", f"must be at least low ({self.low})")

    schema, declared = merge_schemas([("test", {"window": Window})])
    ok = Config(validate({"window": {"low": 2}}, schema, Path("c.yaml")), Path("c.yaml"), declared)
    assert ok.get(Window) == Window(low=2, high=5)
    with pytest.raises(ConfigError, match=r"^c.yaml: window.high: must be at least low \(7\)$"):
        Config(validate({"window": {"low": 7}}, schema, Path("c.yaml")), Path("c.yaml"), declared)
    assert Window(low=7, high=1).high == 1  # built directly, by code or a test, it is not checked
    assert Settings(max_queries_per_cycle=0).max_queries_per_cycle == 0


def test_an_unusable_store_path_is_refused_by_its_key(config, capsys):
    """Both used to end in a traceback from the store (a directory, an embedded NUL byte)."""
    assert ": store.path: must name a file" in refused(config('store:\n  path: ""\n'), capsys)
    assert ": store.path: must not contain a NUL" in refused(config('store:\n  path: "a\\0b"\n'), capsys)


# -- row 5: a secret where its variable's name belongs ----------------------------------------------------

SECRET = "r4nd0mk1t3ap1k3y"  # what a Kite API key looks like: lower-case letters and digits


@pytest.mark.parametrize("key", ["api_key_env", "access_token_env", "api_secret_env"])
def test_a_secret_in_place_of_its_variables_name_is_refused_without_being_quoted(tmp_path, key):
    path = _write(tmp_path, f"store:\n  path: STORE\nmode: live\nbroker:\n  name: kite\n  kite:\n    {key}: {SECRET}\n")
    for command in (("recon", "check"), ("run", "--duration", "1"), ("kite", "login")):
        result = tradehost(*command, "--config", str(path), env={"KITE_API_KEY": "k", "KITE_ACCESS_TOKEN": "t"})
        assert result.returncode == 2, (command, result.stderr)
        assert f"broker.kite.{key}: is not an environment variable name" in result.stderr
        assert SECRET not in result.stderr + result.stdout


def test_secret_from_env_never_quotes_what_is_not_a_variable_name(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KITE_KEY", "the-key")
    assert secret_from_env("MY_KITE_KEY", "broker.kite.api_key_env", tmp_path / "c.yaml") == "the-key"
    with pytest.raises(ConfigError) as caught:
        secret_from_env(SECRET, "broker.kite.api_key_env", tmp_path / "c.yaml")
    assert "broker.kite.api_key_env: is not an environment variable name" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("key", ["mode\x85", "\x85", "a\u2028b", "tab\tkey", "\x00"])
def test_a_key_with_a_line_break_or_control_character_is_named_visibly_in_one_line(config, capsys, key):
    """U+0085 (NEL) and U+2028 are line breaks to Python: the message stays one line and shows the
    key, escaped (``hostspec.errors.one_line``)."""
    path = config(f"store:\n  path: STORE\n{json.dumps(key)}: 1\n")
    line = refused(path, capsys)
    assert key.encode("unicode_escape").decode("ascii") in line and "unknown key" in line
