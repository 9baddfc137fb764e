"""Settings declared once: the schema the file is checked against and the typed object a plugin
reads both come from one dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pytest

from hostspec.config import Config, ConfigError, Option, merge_schemas, schema_of, setting, validate
from hostspec.model import Mode
from recon_plugin.brokers.paper import PaperSettings
from recon_plugin.settings import ExternalOrders, Settings, settings_for


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Example:
    flag: bool = setting(True, "a switch")
    count: int = setting(3, "how many", minimum=1)
    ratio: float | None = setting(None, "a share", minimum=0)
    colour: Colour = setting(Colour.RED, "a choice")
    names: tuple[str, ...] = setting(("a",), "some names")
    derived: str = dataclasses.field(default="not from the file")


def load(text: dict[str, object], *sections: tuple[str, type]) -> Config:
    schema, declared = merge_schemas([("test", dict(sections))])
    return Config(validate(text, schema, Path("c.yaml")), Path("c.yaml"), declared)


def test_one_declaration_gives_the_schema_with_types_defaults_limits_and_help() -> None:
    schema = schema_of(Example)
    assert schema["count"] == Option(int, 3, "how many", minimum=1)
    assert schema["ratio"] == Option(float, None, "a share", minimum=0, nullable=True)
    assert schema["colour"] == Option(str, "red", "a choice", choices=("red", "blue"))
    assert schema["names"] == Option(list, ["a"], "some names", items=str)
    assert "derived" not in schema  # a field without setting() is not read from the file


def test_the_same_declaration_gives_a_typed_frozen_settings_object() -> None:
    config = load({"example": {"count": 5, "colour": "blue", "names": ["x", "y"], "ratio": 1}},
                  ("example", Example))
    example = config.get(Example)
    assert example == Example(flag=True, count=5, ratio=1.0, colour=Colour.BLUE, names=("x", "y"))
    assert example.colour is Colour.BLUE and isinstance(example.ratio, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.count = 6  # type: ignore[misc]
    assert config.get(Example) is example  # built once


@pytest.mark.parametrize(("section", "message"), [
    ({"colour": "green"}, "example.colour: must be one of red, blue"),
    ({"count": 0}, "example.count: must be at least 1"),
    ({"names": ["a", 1]}, r"example.names\[1\]: expected str"),
    ({"flag": "yes"}, "example.flag: expected true/false"),
    ({"derived": "x"}, "example.derived: unknown key"),
])
def test_bad_values_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load({"example": section}, ("example", Example))


def test_a_type_a_setting_cannot_have_is_refused_when_declared() -> None:
    @dataclass(frozen=True)
    class Bad:
        when: dict[str, int] = setting(None, "no")

    with pytest.raises(TypeError, match="cannot be of type"):
        schema_of(Bad)


def test_an_undeclared_settings_class_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no configuration section is declared with Example"):
        load({}).get(Example)


def test_the_reconcilers_settings_come_from_its_section_with_the_hosts_mode() -> None:
    config = load({"mode": "live", "reconciliation": {"external_orders": "report", "interval_seconds": 1}},
                  ("reconciliation", Settings), ("broker.paper", PaperSettings))
    settings = settings_for(config)
    assert settings.mode is Mode.LIVE and settings.external_orders is ExternalOrders.REPORT
    assert settings.interval == 1.0
    assert settings_for(load({"mode": "live"}, ("reconciliation", Settings))).interval == 2.0
    assert settings_for(load({}, ("reconciliation", Settings))).interval == 5.0
    assert config.get(PaperSettings).seed == 7 and config.broker.name == "paper"
