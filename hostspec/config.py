"""Configuration: YAML read with ``yaml.safe_load``, validated against the schemas the host and its
plugins declare (``hostspec_config_schema``), with defaults filled in.

Every problem is a ``ConfigError`` naming the file and the dotted key, which the command line turns
into one line and exit status 2.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import yaml

from hostspec.model import Mode


class ConfigError(Exception):
    """A configuration problem, named by file and dotted key."""

    def __init__(self, file: str | Path, key: str, message: str) -> None:
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")
        self.file = str(file)
        self.key = key


@dataclass(frozen=True)
class Option:
    """One configuration key: its type, default and limits."""

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
        accepted = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if not accepted and float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value, accepted = float(value), True
        if not accepted:
            raise ConfigError(file, key, f"expected {_type_names(kinds)}, got {type(value).__name__} {value!r}")
        if self.choices and value not in self.choices:
            raise ConfigError(file, key, f"must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(file, key, f"must be at least {self.minimum}, got {value!r}")
        if self.items is not None:
            for i, item in enumerate(value):
                if not isinstance(item, self.items):
                    raise ConfigError(file, f"{key}[{i}]", f"expected {self.items.__name__}, got {item!r}")
        return value


Schema = dict[str, Union[Option, "Schema"]]


def _type_names(kinds: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "integer", float: "number", str: "text", list: "list", dict: "mapping"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


_DISABLED = Option(list, [], "entry-point names not to load", items=str)

CORE_SCHEMA: Schema = {
    "mode": Option(str, "paper", "paper or live", choices=tuple(m.value for m in Mode)),
    "broker": {"name": Option(str, "paper", "the broker plugin to use, by its registered name")},
    "store": {
        "name": Option(str, "tinydb", "the state-store plugin to use, by its registered name"),
        "path": Option(str, "var/recon-state.json", "where the store keeps its data (relative to the working "
                                                    "directory)"),
    },
    "plugins": {"disabled": _DISABLED},
}


class Config:
    """The validated configuration: nested dicts with every default filled in."""

    def __init__(self, data: dict[str, Any], path: Path) -> None:
        self.data = data
        self.path = path

    @property
    def mode(self) -> Mode:
        return Mode(self.data["mode"])

    def section(self, dotted: str) -> dict[str, Any]:
        """A section by dotted path (``"broker.paper"``); an empty dict when absent."""
        node: Any = self.data
        for part in dotted.split("."):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        return node if isinstance(node, dict) else {}

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The raw mapping in a YAML file, or a ConfigError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, "", f"YAML error: {where}{problem}") from None
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
    return list(_DISABLED.check(plugins.get("disabled") or [], path, "plugins.disabled"))


def merge_schemas(contributions: list[tuple[str, dict[str, Schema]]]) -> Schema:
    """The core schema plus every plugin's sections; two plugins claiming one section is an error."""
    schema: Schema = copy.deepcopy(CORE_SCHEMA)
    owners: dict[str, str] = {}
    for plugin, sections in contributions:
        for dotted, section in sections.items():
            if dotted in owners:
                raise ValueError(f"config section {dotted!r} is declared by both {owners[dotted]} and {plugin}")
            owners[dotted] = plugin
            node = schema
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})  # type: ignore[assignment]
            node[leaf] = section
    return schema


def validate(raw: Mapping[str, Any], schema: Schema, path: str | Path,
             lenient_sections: bool = False) -> dict[str, Any]:
    """Check ``raw`` against ``schema`` and fill in defaults.

    ``lenient_sections``: an unknown top-level section is dropped instead of refused (used when some
    plugins are disabled, since a disabled plugin's section is legitimately unread).
    """
    return _validate(raw, schema, path, "", lenient_sections)


def _validate(raw: Any, schema: Schema, path: str | Path, prefix: str, lenient: bool) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(path, prefix, f"must be a mapping, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        spec = schema.get(key) if isinstance(key, str) else None
        if spec is None:
            if lenient and not prefix:
                continue
            known = ", ".join(sorted(schema)) or "none"
            raise ConfigError(path, dotted, f"unknown key (known here: {known})")
        out[key] = (_validate(value, spec, path, dotted, False) if isinstance(spec, dict)
                    else spec.check(value, path, dotted))
    for key, spec in schema.items():
        if key not in out:
            out[key] = _validate({}, spec, path, key, False) if isinstance(spec, dict) else copy.copy(spec.default)
    return out
