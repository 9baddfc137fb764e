"""Event payloads: one frozen dataclass per event kind, and the registry from kind to class.

An event travels as a ``hostspec.model.Event`` whose ``data`` is a JSON-safe dict: stores persist it,
outboxes replay it, sinks forward it. A payload class gives that dict a type. Producers build the
event from a payload instance (``Event.of``) and consumers read ``event.payload`` (a signal may also
pass it as ``payload=``), so a field that a kind does not have is a type error on both sides.

Declaring a kind is defining a subclass with a ``kind``; defining it registers it::

    @dataclass(frozen=True, kw_only=True)
    class SymbolHold(Payload):
        kind: ClassVar[str] = "symbol-hold"
        held: list[str]  # the symbols on hold

A kind has one class: defining a second class for a kind already registered is an error. Field
types are the ones ``hostspec.codec`` converts: JSON types, ``Decimal`` (a string on the wire),
``datetime`` (ISO 8601), enums (their value), and unions of one of those with ``None``.

This module imports nothing of the host's machinery: a plugin that only speaks events imports it alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Self, TypeVar

from hostspec.codec import from_dict, to_dict

P = TypeVar("P", bound="Payload")

_REGISTRY: dict[str, type[Payload]] = {}


class PayloadError(ValueError):
    """An event's data does not fit the payload class of its kind."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Payload:
    """What every event carries: a one-line ``summary`` for a person.

    It is also the payload of an event whose kind has no registered class: its other fields are
    then only in ``Event.data``.
    """

    kind: ClassVar[str] = ""
    summary: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            register(cls)

    def to_data(self) -> dict[str, Any]:
        """The JSON-safe dict an event carries (``Event.data``): every field, ``summary`` last."""
        data = to_dict(self)
        data["summary"] = data.pop("summary")
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Self:
        """The payload ``data`` (an ``Event.data``) holds. Keys the class does not know are ignored (a
        newer producer may add some); a missing or unreadable field raises ``PayloadError``."""
        try:
            return from_dict(cls, dict(data))
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise PayloadError(f"{cls.__name__}: {exc}") from exc


def register(cls: type[P]) -> type[P]:
    """Make ``cls`` the payload class of ``cls.kind`` (defining a subclass with a ``kind`` does this).

    Defining the same class again (a module reloaded, a dataclass with slots) replaces it; another
    class for a kind already taken is a ``ValueError``.
    """
    if not cls.kind:
        raise ValueError(f"{cls.__qualname__} has no kind")
    existing = _REGISTRY.get(cls.kind)
    if existing is not None and (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"event kind {cls.kind!r} already has a payload class: "
                         f"{existing.__module__}.{existing.__qualname__}")
    _REGISTRY[cls.kind] = cls
    return cls


def kinds() -> Mapping[str, type[Payload]]:
    """Every registered kind and its payload class (read-only). A kind is registered when the module
    declaring it is imported, which the plugin producing it does when it loads."""
    return MappingProxyType(_REGISTRY)


def payload_class(kind: str) -> type[Payload]:
    """The class registered for ``kind``, or ``Payload`` when there is none."""
    return _REGISTRY.get(kind, Payload)


def decode(kind: str, data: Mapping[str, Any]) -> Payload:
    """The payload of an event of ``kind`` with ``data``: the registered class, or a bare ``Payload``
    (the summary only) for a kind without one. Raises ``PayloadError`` when ``data`` does not fit."""
    cls = _REGISTRY.get(kind)
    if cls is None:
        return Payload(summary=str(data.get("summary") or ""))
    return cls.from_data(data)
