"""Damaged configuration files, generated: whatever a file holds, ``tradehost run`` and ``tradehost
recon check`` exit 2 with one line naming the file and the key (or, for damage below the level of
keys, the line), never a traceback and never a running host.

A generated file is a valid configuration (the shape of the shipped ones, with a disabled plugin)
damaged by one to three mutations, each of which makes it invalid on its own: a wrong type or an
out-of-range number for a declared key (NaN and infinities, odd scalars: dates, bytes, sets,
integers too long for a float), an unknown or misspelt key, a section that is not a mapping, a
section written twice, deep nesting, characters YAML refuses, bytes that are not UTF-8. What is
invalid is decided here, from the declared schema and the documented rules, not by asking the code
under test.

The command-line test is bounded (it starts two processes per example); the in-process tests of
``read_yaml``, ``validate`` and ``App.open_host`` run many more examples.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostspec.app import App
from hostspec.config import Config, ConfigError, Option, Schema, merge_schemas, read_yaml, shown, validate
from hostspec.errors import one_line
from hostspec.manager import PluginManager
from tests.helpers import tradehost

DISABLED = "demo"
SCHEMA, DECLARED = merge_schemas(PluginManager([DISABLED]).config_sections())
TOLERATED = {DISABLED: DISABLED}  # the disabled plugin's section (the demo declares the top-level "demo")
STATE = "STATE_FILE"  # the store's path, replaced by a real one in the test's directory


def _walk(schema: Schema, prefix: str = "") -> tuple[list[tuple[str, Option]], list[str]]:
    leaves: list[tuple[str, Option]] = []
    sections: list[str] = []
    for key, spec in schema.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(spec, dict):
            sections.append(dotted)
            more_leaves, more_sections = _walk(spec, dotted)
            leaves += more_leaves
            sections += more_sections
        else:
            leaves.append((dotted, spec))
    return leaves, sections


LEAVES, SECTIONS = _walk(SCHEMA)


def known_here(section: str) -> set[str]:
    node: Any = SCHEMA
    for part in section.split(".") if section else ():
        node = node[part]
    return set(node) | ({DISABLED} if not section else set())


def base() -> dict[Any, Any]:
    """A valid configuration, as configs/dev.yaml is one: a plugin disabled, which made every unknown
    top-level section tolerated before."""
    return {"mode": "paper", "broker": {"name": "paper", "paper": {"seed": 7, "tick_seconds": 0.5}},
            "store": {"name": "tinydb", "path": STATE}, "reconciliation": {"enabled": True, "dry_run": False},
            "plugins": {"disabled": [DISABLED]}}


# -- what is invalid, by the documented rules ---------------------------------------------------------

def invalid_for(option: Option, value: Any) -> bool:
    """Whether ``value`` is refused for ``option`` by the rules the host documents: the declared type
    (an integer is a number; a bool is not), a finite number, the minimum, the choices, text items."""
    kinds = option.kind if isinstance(option.kind, tuple) else (option.kind,)
    if value is None:
        return not option.nullable
    if isinstance(value, bool):
        return bool not in kinds
    if float in kinds and isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return True
        return not math.isfinite(number) or (option.minimum is not None and number < option.minimum)
    if int in kinds and isinstance(value, int):
        return option.minimum is not None and value < option.minimum
    if str in kinds and isinstance(value, str):
        return bool(option.choices) and value not in option.choices
    if list in kinds and isinstance(value, list):
        return any(not isinstance(item, str) for item in value)
    return True


# No NEL (U+0085) in generated text: PyYAML's own dump with allow_unicode writes it raw in a
# single-quoted scalar and its load folds it to a space, so the key read back is not the key generated
# (a round trip of the generator, not a config the host reads wrongly).
short_text = st.text(st.characters(exclude_characters="\x85"), max_size=12)
binaryish = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x85"),
                    min_size=1, max_size=24)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.integers(10 ** 308, 10 ** 330),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0]),
    short_text, binaryish, st.binary(max_size=12), st.dates(), st.datetimes(),
    st.sampled_from(["yes", "no", "on", "off", "~", "null", ".nan", "0x1F", "1e3", "2026-02-30", "paper", "live"]))
values = st.recursive(scalars | st.frozensets(st.integers(0, 9), max_size=3).map(set),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short_text, inner, max_size=3),
                      max_leaves=6)
hashable_keys = st.one_of(st.integers(-5, 10 ** 30), st.booleans(), st.none(), st.dates(), short_text, binaryish,
                          st.floats(allow_nan=False))


def misspelt(word: str) -> st.SearchStrategy[str]:
    """``word`` with one letter dropped, doubled, swapped with the next, or changed in case."""
    def change(i: int, how: int) -> str:
        i %= len(word)
        return [word[:i] + word[i + 1:], word[:i] + word[i] + word[i:], word[:i] + word[i + 1:i + 2] + word[i]
                + word[i + 2:], word[:i] + word[i].swapcase() + word[i + 1:]][how]
    return st.builds(change, st.integers(0, 40), st.integers(0, 3))


def named(section: str, key: Any) -> str:
    """The dotted name a message gives an unknown ``key`` in ``section``."""
    name = (key if len(key) <= 80 else f"{key[:77]}...") if isinstance(key, str) else shown(key)
    return one_line(f"{section}.{name}" if section else name)


def mapping_at(config: dict[Any, Any], dotted: str) -> dict[Any, Any]:
    """The section ``dotted`` of ``config``, made a mapping (again, if a mutation had replaced it)."""
    node = config
    for part in dotted.split(".") if dotted else ():
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    return node


def put(config: dict[Any, Any], dotted: str, value: Any) -> None:
    section, _, leaf = dotted.rpartition(".")
    mapping_at(config, section)[leaf] = value


Edit = Callable[[str], str]
Mutation = Callable[[dict[Any, Any], list[str]], Edit | None]
"""Changes the configuration, adds to the list what the error may name, and may return an edit of
the YAML text made from it (for what a mapping cannot hold: a key twice, a refused character)."""


@st.composite
def mutation(draw: st.DrawFn) -> Mutation:
    kind = draw(st.sampled_from(["value", "value", "unknown", "unknown", "section", "twice", "deep", "character"]))
    if kind == "value":
        dotted, option = draw(st.sampled_from(LEAVES))
        value = draw(values.filter(lambda v: invalid_for(option, v)))

        def wrong_value(config: dict[Any, Any], expected: list[str]) -> None:
            put(config, dotted, value)
            expected.append(dotted)
        return wrong_value
    if kind == "unknown":
        section = draw(st.sampled_from(["", "", *SECTIONS]))
        known = known_here(section)
        key = draw(st.one_of(st.sampled_from(sorted(known)).flatmap(misspelt), hashable_keys)
                   .filter(lambda k: k not in known))
        value = draw(values)

        def unknown_key(config: dict[Any, Any], expected: list[str]) -> None:
            mapping_at(config, section)[key] = value
            expected.append(named(section, key))
        return unknown_key
    if kind == "section":
        section = draw(st.sampled_from(SECTIONS))
        value = draw(values.filter(lambda v: v is not None and not isinstance(v, dict)))

        def not_a_mapping(config: dict[Any, Any], expected: list[str]) -> None:
            put(config, section, value)
            expected.append(section)
        return not_a_mapping
    if kind == "twice":
        key = draw(st.sampled_from(["mode", "store", "reconciliation", "plugins", "broker", ""]))

        def written_twice(config: dict[Any, Any], expected: list[str]) -> Edit:
            if not key:  # inside a section
                expected += ["zz-section.dry_run: written twice", "zz-section: written twice"]  # (if drawn twice)
                return lambda text: text + "zz-section: {dry_run: true, interval: 2, dry_run: false}\n"
            config.setdefault(key, {})
            expected.append(f"{key}: written twice")
            return lambda text: text + f"{key}: {{}}\n"
        return written_twice
    if kind == "deep":
        dotted, _option = draw(st.sampled_from(LEAVES))
        depth = draw(st.integers(2, 3000))
        nested = draw(st.sampled_from(["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth]))

        def deep(config: dict[Any, Any], expected: list[str]) -> Edit:
            token = f"DEEP{len(expected)}{depth}X"
            put(config, dotted, token)
            expected += [dotted, "nested too deeply"]
            return lambda text: text.replace(token, nested)
        return deep
    char = draw(st.sampled_from([chr(c) for c in (*range(0, 9), 11, 12, *range(14, 32), 127)]))
    share = draw(st.floats(0, 1))

    def refused_character(config: dict[Any, Any], expected: list[str]) -> Edit:
        expected.append("YAML error: line")
        return lambda text: text[:int(share * len(text))] + char + text[int(share * len(text)):]
    return refused_character


@st.composite
def damaged_configs(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """The bytes of a damaged configuration file, and what its error may name (any one of them)."""
    config, expected = base(), []
    edits = [edit for change in draw(st.lists(mutation(), min_size=1, max_size=3))
             if (edit := change(config, expected)) is not None]
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=draw(st.booleans()))
    for edit in edits:
        text = edit(text)
    data = text.encode("utf-8")
    if draw(st.integers(0, 9)) == 0:  # bytes that are not UTF-8, anywhere
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\x80", b"\xc3(", b"\xed\xa0\x80"])) + data[at:]
        expected.append("not UTF-8 text: line")
    return data, expected


def assert_one_line_naming(message: str, path: Path, expected: list[str]) -> None:
    lines = message.strip().splitlines()
    assert len(lines) == 1, message
    assert lines[0].startswith(f"tradehost: configuration error: {path}: ") or lines[0].startswith(f"{path}: "), message
    assert any(e in lines[0] for e in expected), (expected, message)


# -- through the real command line -------------------------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(damaged_configs())
def test_a_damaged_config_ends_with_exit_2_and_one_line_never_a_traceback_or_a_host(case: tuple[bytes, list[str]]):
    data, expected = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(data.replace(STATE.encode(), b"state.json"))
        for command in (("run", "--duration", "1"), ("recon", "check")):
            result = tradehost(*command, "--config", str(path), cwd=Path(tmp), timeout=60)
            assert result.returncode == 2, (command, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr
            assert result.stdout == ""  # no host started: it prints its mode and broker first
            assert_one_line_naming(result.stderr, path, expected)
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["c.yaml"]  # no store, no var/


# -- in process, many more ---------------------------------------------------------------------------

APP = App()


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(damaged_configs())
def test_a_damaged_config_never_opens_a_host(workdir: Path, case: tuple[bytes, list[str]]):
    data, expected = case
    path = workdir / "c.yaml"
    path.write_bytes(data.replace(STATE.encode(), str(workdir / "state.json").encode()))
    with pytest.raises(ConfigError) as caught:
        APP.open_host(path).close()
    assert_one_line_naming(str(caught.value), path, expected)
    assert not (workdir / "state.json").exists()


yamlish = st.lists(st.one_of(
    st.sampled_from(["\n", "  ", "- ", ": ", "mode", "reconciliation", "dry_run", "[", "]", "{", "}", ", ", "&a ", "*a",
                     "<<: ", "? ", "!!", "!!python/object:os.system ", "!!binary ", "!!set ", "!!timestamp ",
                     "!!int ", "!!float ", "|", ">", "'", '"', "\\", "#", "---\n", "...\n", "%YAML 1.1\n",
                     ".nan", "-.inf", "0x" + "f" * 500, "9" * 5000, "2026-02-30", "2026-13-01 25:61:61", "~"]),
    st.text(max_size=6)), max_size=40).map("".join)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.one_of(yamlish.map(str.encode), st.binary(max_size=200)))
def test_read_yaml_returns_a_mapping_or_raises_a_one_line_config_error(workdir: Path, data: bytes):
    path = workdir / "r.yaml"
    path.write_bytes(data)
    try:
        raw = read_yaml(path)
    except ConfigError as exc:
        assert_one_line_naming(str(exc), path, [""])
    else:
        assert isinstance(raw, dict)


config_keys = st.one_of(st.sampled_from(sorted({part for dotted, _ in LEAVES for part in dotted.split(".")})),
                        hashable_keys)
raw_configs = st.recursive(values, lambda inner: st.dictionaries(config_keys, inner, max_size=5), max_leaves=12)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from([*SCHEMA, DISABLED]) | hashable_keys, raw_configs, max_size=6))
def test_validate_returns_defaults_filled_or_raises_a_one_line_config_error(raw: dict[Any, Any]):
    path = Path("c.yaml")
    try:
        config = Config(validate(raw, SCHEMA, path, TOLERATED), path, DECLARED)
    except ConfigError as exc:
        assert_one_line_naming(str(exc), path, [""])
    else:
        assert set(config.data) == set(SCHEMA)
