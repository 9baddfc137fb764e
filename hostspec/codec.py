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
    return _identity, _identity


@cache
def _cached_plan(cls: Hashable) -> tuple[tuple[str, _Convert, _Convert], ...]:
    assert isinstance(cls, type)
    hints = typing.get_type_hints(cls)
    return tuple((f.name, *_converters(hints[f.name])) for f in dataclasses.fields(cls))


def _plan(cls: type) -> tuple[tuple[str, _Convert, _Convert], ...]:
    """Each field's (name, encode, decode), derived once per class."""
    return _cached_plan(cls)


def to_dict(record: Any) -> dict[str, Any]:
    """A model record as a JSON-safe dict."""
    return {name: encode(getattr(record, name)) for name, encode, _ in _plan(type(record))}


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """A model record from a dict made by ``to_dict``; keys the class does not know are ignored."""
    return cls(**{name: decode(data[name]) for name, _, decode in _plan(cls) if name in data})
