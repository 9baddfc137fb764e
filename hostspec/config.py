"""Configuration: YAML read as ``yaml.safe_load`` reads it (no Python tags), validated against the
sections the host and its plugins declare (``hostspec_config_schema``), with defaults filled in.

A section is declared once, as a frozen dataclass whose fields are ``setting(default, help, ...)``:
the schema the file is validated against and the typed settings object a plugin reads
(``config.get(MySettings)``) both come from that one declaration::

    @dataclass(frozen=True)
    class PaperSettings:
        seed: int = setting(7, "seed of the simulated market")
        tick_seconds: float = setting(1.0, "length of one step of the simulated clock", minimum=0.01)

Every problem is a ``ConfigError`` naming the file and the dotted key, which the command line turns
into one line and exit status 2. The reading is strict, because whatever a file holds that the host
silently dropped or silently kept would run the host on settings nobody wrote:

- a key written twice in one mapping is refused (YAML would keep the last and lose the first);
- an unknown key is refused, with the nearest known key as a suggestion; the only sections that
  are not checked are those of plugins that are not loaded (``validate``'s ``tolerated``);
- a number must be finite (``.nan`` and ``.inf`` pass every minimum);
- a settings class may add rules across its fields: a method ``check(self)`` raising
  ``SettingError(field, message)``, run when the file is loaded (``Config``).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import difflib
import math
import reprlib
import types
import typing
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, Union

import yaml

from hostspec.errors import ConfigError, SettingError
from hostspec.model import Mode

__all__ = ["Config", "ConfigError", "Option", "Schema", "Section", "SettingError", "schema_of", "setting"]

T = TypeVar("T")


@dataclass(frozen=True)
class Option:
    """One configuration key: its type, default and limits (derived from a ``setting`` field)."""

    kind: type | tuple[type, ...]
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    items: type | None = None  # for lists: the type of each item
    nullable: bool = False

    def check(self, value: Any, file: str | Path, key: str) -> Any:
        if value is None and self.nullable:
            return None
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        written = value
        accepted = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not accepted and float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value, accepted = _as_float(value), True
        if not accepted:
            raise ConfigError(file, key, f"expected {_type_names(kinds)}, got {type(value).__name__} {shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            # NaN compares false with every minimum, and an infinite interval never ends: refused here
            # once rather than by each plugin that reads a number
            raise ConfigError(file, key, f"must be a finite number, got {shown(written)}")
        if self.choices and value not in self.choices:
            raise ConfigError(file, key, f"must be one of {', '.join(map(str, self.choices))}, got {shown(value)}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(file, key, f"must be at least {self.minimum}, got {shown(value)}")
        if self.items is not None:
            for i, item in enumerate(value):
                if not isinstance(item, self.items):
                    raise ConfigError(file, f"{key}[{i}]", f"expected {self.items.__name__}, got {shown(item)}")
        return value


def _as_float(value: int) -> float:
    """An integer where a number is expected: as a float, infinite when too large for one."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlevel = 3


def shown(value: Any) -> str:
    """A value from the file as a message quotes it: its ``repr``, cut short in length and depth (a
    file may hold a megabyte of text, a thousand nested lists, or an integer too long for decimal)."""
    try:
        return _SHOWN.repr(value)
    except ValueError:  # an int beyond Python's limit on decimal digits
        return f"an integer of {value.bit_length()} bits" if isinstance(value, int) else f"a {type(value).__name__}"


def did_you_mean(name: str, candidates: typing.Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the candidate nearest to a misspelt ``name`` (difflib), or ``""``."""
    match = difflib.get_close_matches(name, sorted(set(candidates)), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


Schema = dict[str, Union[Option, "Schema"]]
Section = type | Schema
"""What a plugin declares for one section: a settings dataclass (preferred) or a raw ``Schema``."""


def _type_names(kinds: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "integer", float: "number", str: "text", list: "list", dict: "mapping"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


# -- settings declared once -----------------------------------------------------------------------

_OPTION = "hostspec.option"


@dataclass(frozen=True)
class _Limits:
    help: str
    minimum: float | None


def setting(default: Any, help: str, *, minimum: float | None = None) -> Any:
    """A field of a settings dataclass: its default, its help text and, for numbers, its minimum.

    The field's type annotation gives the rest: ``bool``, ``int``, ``float``, ``str``, an ``Enum``
    (its values are the choices), ``tuple[str, ...]`` (a YAML list), each optionally ``| None``. A
    ``float`` is always finite.

    A rule across fields (a combination of values that cannot work) is a method of the class,
    ``def check(self) -> None``, raising ``SettingError(field_name, message)``; the host runs it once,
    when the file is loaded, and reports it as a ``ConfigError`` naming ``<section>.<field_name>``.
    It is not a ``__post_init__``, so code (and tests) may still build any instance directly.
    """
    return dataclasses.field(default=default, metadata={_OPTION: _Limits(help, minimum)})


def _option_for(hint: Any, default: Any, limits: _Limits, where: str) -> tuple[Option, Callable[[Any], Any]]:
    """The ``Option`` a field's type declares, and the function that turns a checked value into the
    field's type (an enum member, a tuple)."""
    nullable = False
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable, hint = len(args) < len(typing.get_args(hint)), args[0]
    raw_default = (default.value if isinstance(default, Enum)
                   else list(default) if isinstance(default, tuple) else default)

    def option(kind: type, choices: tuple[Any, ...] = (), items: type | None = None) -> Option:
        return Option(kind, raw_default, limits.help, choices=choices, minimum=limits.minimum, items=items,
                      nullable=nullable)

    if isinstance(hint, type) and issubclass(hint, Enum):
        enum = hint
        return option(str, choices=tuple(m.value for m in enum)), lambda v: None if v is None else enum(v)
    if typing.get_origin(hint) is tuple:
        return option(list, items=typing.get_args(hint)[0]), lambda v: None if v is None else tuple(v)
    if hint in (bool, int, float, str):
        return option(hint), lambda v: v
    raise TypeError(f"{where}: a setting cannot be of type {hint!r}")


@cache
def _declaration(cls: Hashable) -> tuple[Schema, dict[str, Callable[[Any], Any]]]:
    if not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a settings dataclass")
    hints = typing.get_type_hints(cls)
    schema: Schema = {}
    converters: dict[str, Callable[[Any], Any]] = {}
    for f in dataclasses.fields(cls):
        limits = f.metadata.get(_OPTION)
        if limits is not None:
            schema[f.name], converters[f.name] = _option_for(hints[f.name], f.default, limits,
                                                             f"{cls.__qualname__}.{f.name}")
    return schema, converters


def schema_of(cls: type) -> Schema:
    """The schema a settings dataclass declares (its ``setting`` fields)."""
    return _declaration(cls)[0]


def settings_from(cls: type[T], section: Mapping[str, Any], **derived: Any) -> T:
    """An instance of the settings dataclass ``cls`` from a validated section; ``derived`` fills the
    fields that are not read from the file (``mode``, say)."""
    converters = _declaration(typing.cast(type, cls))[1]
    return cls(**{name: convert(section[name]) for name, convert in converters.items() if name in section},
               **derived)


# -- the host's own sections ----------------------------------------------------------------------

@dataclass(frozen=True)
class BrokerChoice:
    """``broker``: which broker plugin to use."""

    name: str = setting("paper", "the broker plugin to use, by its registered name")


@dataclass(frozen=True)
class StoreChoice:
    """``store``: which state-store plugin to use, and where it keeps its data."""

    name: str = setting("tinydb", "the state-store plugin to use, by its registered name")
    path: str = setting("var/recon-state.json", "where the store keeps its data (relative to the working "
                                                "directory)")

    def check(self) -> None:
        """A path no file can have is refused here, not by the store's first write."""
        if not self.path.strip():
            raise SettingError("path", "must name a file, got an empty path")
        if "\0" in self.path:
            raise SettingError("path", "must not contain a NUL character")


@dataclass(frozen=True)
class PluginSettings:
    """``plugins``: which installed plugins not to load."""

    disabled: tuple[str, ...] = setting((), "entry-point names not to load")


class LogFormat(Enum):
    TEXT = "text"  # one readable line per record
    JSON = "json"  # one JSON object per line, for a log collector


@dataclass(frozen=True)
class LoggingSettings:
    """``logging``: how ``tradehost run`` writes its log (stderr)."""

    format: LogFormat = setting(LogFormat.TEXT, "text (one readable line per record) or json (one object per line)")


CORE_SECTIONS: dict[str, Section] = {"broker": BrokerChoice, "store": StoreChoice, "plugins": PluginSettings,
                                     "logging": LoggingSettings}
_MODE = Option(str, Mode.PAPER.value, "paper or live", choices=tuple(m.value for m in Mode))


class Config:
    """The validated configuration: nested dicts with every default filled in, and typed settings
    objects for every section declared as a settings dataclass (``get``).

    Every declared section's settings object is built here, so that its ``check()`` (the rules across
    its fields) refuses the file when it is loaded, before any plugin starts, rather than when a
    plugin first reads the section."""

    def __init__(self, data: dict[str, Any], path: Path, declared: Mapping[type, str] | None = None) -> None:
        self.data = data
        self.path = path
        self._declared = {BrokerChoice: "broker", StoreChoice: "store", PluginSettings: "plugins",
                          LoggingSettings: "logging", **(declared or {})}
        self._built: dict[type, Any] = {}
        for cls in self._declared:
            self.get(cls)

    @property
    def mode(self) -> Mode:
        return Mode(self.data["mode"])

    @property
    def broker(self) -> BrokerChoice:
        return self.get(BrokerChoice)

    @property
    def store(self) -> StoreChoice:
        return self.get(StoreChoice)

    def get(self, cls: type[T]) -> T:
        """The settings of the section declared with ``cls``, typed and frozen."""
        if cls not in self._built:
            if cls not in self._declared:
                raise KeyError(f"no configuration section is declared with {cls.__qualname__}")
            dotted = self._declared[cls]
            settings = settings_from(cls, self.section(dotted))
            check = getattr(settings, "check", None)
            if callable(check):
                try:
                    check()
                except SettingError as exc:
                    raise ConfigError(self.path, f"{dotted}.{exc.field}", exc.message) from None
            self._built[cls] = settings
        return typing.cast(T, self._built[cls])

    def section(self, dotted: str) -> dict[str, Any]:
        """A section by dotted path (``"broker.paper"``) as plain data; an empty dict when absent."""
        node: Any = self.data
        for part in dotted.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader (standard tags only, no Python objects) whose values fail only as
    YAML errors with a line. The plain loader's constructors raise whatever Python raises on a value
    they cannot make: ``ValueError`` for a date that does not exist (``2026-02-30``) or an integer
    longer than Python reads, ``KeyError`` for ``!!bool maybe``, ``AttributeError`` for an empty
    ``!!timestamp``; each would end the command with a traceback."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:
            problem = f"unreadable {node.tag.rpartition(':')[2] or 'value'}: {type(exc).__name__}: {exc}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


_MERGE = "tag:yaml.org,2002:merge"


def _refuse_duplicate_keys(root: yaml.Node, path: Path) -> None:
    """A key written twice in one mapping, anywhere in the document, as a ``ConfigError`` naming its
    dotted path and both lines. YAML keeps the last value silently: a section written twice loses
    the first block (its ``dry_run: true``, say). Keys are compared as written (tag and text); merge
    keys (``<<``) are not duplicates, since overriding a merged value is what they are for. Walked
    without recursion, each node once (aliases may share or nest nodes)."""
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    visited: set[int] = set()
    while stack:
        node, where = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        children: list[tuple[yaml.Node, str]] = []
        if isinstance(node, yaml.MappingNode):
            lines: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    children += [(key_node, where), (value_node, where)]
                    continue
                dotted = f"{where}.{_key_text(key_node.value)}" if where else _key_text(key_node.value)
                line = key_node.start_mark.line + 1
                if key_node.tag != _MERGE and (key_node.tag, key_node.value) in lines:
                    first = lines[(key_node.tag, key_node.value)]
                    raise ConfigError(path, dotted, f"written twice, at lines {first} and {line} (YAML would keep "
                                                    "only the second); keep one")
                lines[(key_node.tag, key_node.value)] = line
                children.append((value_node, dotted))
        elif isinstance(node, yaml.SequenceNode):
            children = [(item, f"{where}[{i}]") for i, item in enumerate(node.value)]
        stack.extend(reversed(children))  # depth first, in the order of the file


def _load(text: str, path: Path) -> Any:
    """``yaml.safe_load(text)``, refusing a key written twice (``_refuse_duplicate_keys``)."""
    loader = _Loader(text)  # reads (and checks) the whole text already
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(node, path)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a YAML file, or a ConfigError naming the file (and the key, for a key
    written twice): never any other exception, whatever the file holds."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(path, "", f"not UTF-8 text: line {line}, byte {exc.start + 1}") from None
    try:
        raw = _load(text, path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}: "
        elif isinstance(exc, yaml.reader.ReaderError):  # a character YAML refuses anywhere in the text
            where = f"line {text.count(chr(10), 0, exc.position) + 1}: "
        else:
            where = ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, "", f"YAML error: {where}{problem}") from None
    except RecursionError:  # the YAML composer recurses once per level of nesting
        raise ConfigError(path, "", "nested too deeply") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(path, "", f"the top level must be a mapping, got {type(raw).__name__}")
    return raw


def disabled_plugins(raw: Mapping[str, Any], path: str | Path) -> list[str]:
    """``plugins.disabled``, checked on its own: it decides which plugins (and schemas) load."""
    plugins = raw.get("plugins") or {}
    if not isinstance(plugins, dict):
        raise ConfigError(path, "plugins", "must be a mapping")
    option = schema_of(PluginSettings)["disabled"]
    assert isinstance(option, Option)
    return list(option.check(plugins.get("disabled") or [], path, "plugins.disabled"))


def merge_schemas(contributions: list[tuple[str, Mapping[str, Section]]]) -> tuple[Schema, dict[type, str]]:
    """The host's sections plus every plugin's, as one schema, and which settings class declared
    which section; two plugins claiming one section is an error."""
    schema: Schema = {"mode": _MODE}
    declared: dict[type, str] = {}
    owners: dict[str, str] = {}
    for plugin, sections in [("the host", CORE_SECTIONS), *contributions]:
        for dotted, section in sections.items():
            if dotted in owners:
                raise ValueError(f"config section {dotted!r} is declared by both {owners[dotted]} and {plugin}")
            owners[dotted] = plugin
            if isinstance(section, type):
                declared[section] = dotted
                section = schema_of(section)
            node = schema
            *parents, leaf = dotted.split(".")
            for part in parents:
                child = node.setdefault(part, {})
                assert isinstance(child, dict), f"{dotted}: {part} is a key, not a section"
                node = child
            node[leaf] = copy.deepcopy(section)
    return schema, declared


def validate(raw: Mapping[str, Any], schema: Schema, path: str | Path,
             tolerated: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check ``raw`` against ``schema`` and fill in defaults.

    An unknown key is refused, with the nearest known key as a suggestion. ``tolerated``: the
    sections (dotted paths) of plugins that are not loaded, each with its plugin's name: nothing
    reads such a section, so it is dropped unchecked (see ``sections_in_source``). Nothing else is.
    """
    return _validate(raw, schema, path, "", tolerated or {})


def _validate(raw: Any, schema: Schema, path: str | Path, prefix: str, tolerated: Mapping[str, str]) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(path, prefix, f"must be a mapping, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        spec = schema.get(key) if isinstance(key, str) else None
        dotted = f"{prefix}.{_key_text(key)}" if prefix else _key_text(key)
        if spec is None:
            if isinstance(key, str) and dotted in tolerated:
                continue
            if isinstance(key, str) and any(t.startswith(f"{dotted}.") for t in tolerated):
                _validate(value, {}, path, dotted, tolerated)  # holds a tolerated section, and nothing else
                continue
            nearby = [t[len(prefix) + 1:] if prefix else t for t in tolerated
                      if not prefix or t.startswith(f"{prefix}.")]
            known = ", ".join(sorted(schema)) or "none"
            suggestion = did_you_mean(_key_text(key), [*schema, *(t.split(".")[0] for t in nearby)])
            raise ConfigError(path, dotted, f"unknown key{suggestion} (known here: {known})")
        out[key] = (_validate(value, spec, path, dotted, tolerated) if isinstance(spec, dict)
                    else spec.check(value, path, dotted))
    for key, spec in schema.items():
        if key not in out:
            out[key] = _validate({}, spec, path, key, {}) if isinstance(spec, dict) else copy.copy(spec.default)
    return out


def _key_text(key: Any) -> str:
    """A key as a message names it: a text key as written (cut short when very long), anything else
    (a number, a date, a list used as a key) as ``shown`` quotes it."""
    if not isinstance(key, str):
        return shown(key)
    return key if len(key) <= 80 else f"{key[:77]}..."


def sections_in_source(source: str) -> list[str] | None:
    """The sections a plugin declares, read from its source without running any of it: the text keys
    of the dict literals its ``hostspec_config_schema`` returns (``return {"broker.x": XSettings}``).

    None when the source does not say: no such function in it (the hooks live elsewhere), or a return
    value that is not such a literal. This is how the host knows which sections belong to a plugin
    that is not loaded (disabled, or failing to import): importing it to ask would run the very code
    the user switched off, with whatever its imports do (threads, network, a test framework).
    """
    sections: list[str] | None = None
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "hostspec_config_schema":
            sections = sections or []
            for ret in ast.walk(node):
                if not isinstance(ret, ast.Return) or ret.value is None or (
                        isinstance(ret.value, ast.Constant) and ret.value.value is None):
                    continue
                if not isinstance(ret.value, ast.Dict):
                    return None
                keys = [k.value for k in ret.value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
                if len(keys) != len(ret.value.keys):
                    return None
                sections += keys
    return sections
