"""Exact conversion of model records to JSON-safe dicts and back.

Decimals travel as strings (never floats), datetimes as ISO 8601 with their offset, dates as
YYYY-MM-DD, enums as their values. The converters are derived once per dataclass from its type hints.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Hashable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")
_Convert = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _optional(convert: _Convert) -> _Convert:
    def wrapped(value: Any) -> Any:
        return None if value is None else convert(value)
    return wrapped


def _converters(hint: Any) -> tuple[_Convert, _Convert]:
    """(encode, decode) for one field type."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        encode, decode = _converters(inner[0]) if len(inner) == 1 else (_identity, _identity)
        return _optional(encode), _optional(decode)
    if hint is Decimal:
        return str, Decimal
    if hint is datetime:
        return datetime.isoformat, datetime.fromisoformat
    if hint is date:
        return date.isoformat, date.fromisoformat
    if isinstance(hint, type) and issubclass(hint, Enum):
        return (lambda e: e.value), hint
    if origin is tuple:
        return list, tuple
    return _identity, _identity


@cache
def _cached_plan(cls: Hashable) -> tuple[tuple[tuple[str, _Convert, _Convert], ...], tuple[tuple[str, Any], ...]]:
    assert isinstance(cls, type)
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    sparse = tuple((f.name, f.default) for f in fields if f.metadata.get("sparse"))
    return tuple((f.name, *_converters(hints[f.name])) for f in fields), sparse


def _plan(cls: type) -> tuple[tuple[str, _Convert, _Convert], ...]:
    """Each field's (name, encode, decode), derived once per class."""
    return _cached_plan(cls)[0]


def _sparse(cls: type) -> tuple[tuple[str, Any], ...]:
    """The (name, default) of each field marked sparse (``hostspec.model.SPARSE``)."""
    return _cached_plan(cls)[1]


def to_dict(record: Any) -> dict[str, Any]:
    """A model record as a JSON-safe dict; a sparse field is left out while it holds its default
    (``from_dict`` restores the default)."""
    cls = type(record)
    data = {name: encode(getattr(record, name)) for name, encode, _ in _plan(cls)}
    for name, default in _sparse(cls):
        if getattr(record, name) == default:
            del data[name]
    return data


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """A model record from a dict made by ``to_dict``; keys the class does not know are ignored."""
    return cls(**{name: decode(data[name]) for name, _, decode in _plan(cls) if name in data})
