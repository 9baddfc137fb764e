"""What a state-store plugin provides: the ``StateStore`` protocol and its errors."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from hostspec.errors import HostError
from hostspec.model import ChangeSet, Event, JournalEntry, LocalState, Order


class StoreError(HostError):
    """The store could not read or write. Nothing was changed by the call that raised it."""


class ConflictError(StoreError):
    """An order changed since the caller read it; the whole change set was refused.

    Read again and re-plan: another writer (the host's order flow) got there first.
    """


@runtime_checkable
class StateStore(Protocol):
    """The single local source of truth for orders, positions, the fill ledger, checkpoints, the
    reconciliation journal and the event outbox.

    Thread rules: the host's order flow and the reconciler call it from different threads, so every
    method must be safe to call concurrently. Durability rules: when ``apply`` or ``record_order``
    returns, the change is on disk and survives a kill of the process at any instant.
    """

    name: str

    @property
    def generation(self) -> int:
        """A number that changes whenever the stored state changes (cheap to read): callers may
        cache ``load()`` results while it stays the same."""
        ...

    def load(self) -> LocalState:
        """A consistent view of orders, positions, ledger and checkpoint."""
        ...

    def get_order(self, order_id: str) -> Order | None:
        ...

    def record_order(self, order: Order) -> Order:
        """Insert or update one order for the host's own order flow (not the reconciler).

        ``order.version`` must be the version read (0 for a new order); raises ``ConflictError`` if
        the stored order has moved on. Returns the order as stored, with its new version.
        """
        ...

    def apply(self, changes: ChangeSet) -> int:
        """Apply every change together in one atomic, durable write; returns the number of writes
        made (1, or 0 when ``changes`` is empty). Raises ``ConflictError`` (nothing written) when an
        order's version does not match."""
        ...

    def pending_events(self) -> list[Event]:
        """Outbox events not yet marked sent, in ``seq`` order."""
        ...

    def journal(self, since: datetime | None = None) -> list[JournalEntry]:
        """Journal entries at or after ``since``, oldest first."""
        ...

    def close(self) -> None:
        """Flush and release the file. Called once, at host shutdown."""
        ...
