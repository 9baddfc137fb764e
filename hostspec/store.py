"""What a state-store plugin provides: the ``StateStore`` protocol and its errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
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
        """A consistent view of orders, positions, ledger and checkpoint, and the index of archived
        orders (``LocalState.archived``). Archived orders are not in it: see ``archive_before``."""
        ...

    def get_order(self, order_id: str) -> Order | None:
        ...

    def record_order(self, order: Order) -> Order:
        """Insert or update one order for the host's own order flow (not the reconciler).

        ``order.version`` must be the version read (0 for a new order); raises ``ConflictError`` if
        the stored order has moved on. Returns the order as stored, with its new version. The id of an
        archived order is refused (``StoreError``): it is settled history and cannot be recorded again.
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
        """Journal entries at or after ``since``, oldest first, archived days' entries included."""
        ...

    # -- the rollover's: past trading days out of the hot state ---------------------------------------
    #
    # Called by the reconciler's rollover when the trading date moves on, never by a cycle: a cycle's
    # write then costs what today holds, not what every past day held.

    def archive_before(self, day: date, zone: tzinfo = UTC) -> int:
        """The rollover's. Move every terminal order (FILLED, CANCELLED, REJECTED, EXPIRED) whose
        ``trading_date`` is before ``day``, with its ledger entry, out of the hot state into the per-day
        archive, and with them the journal entries of those days. Returns how many orders moved.

        - Orders that are not terminal, or whose ``trading_date`` is None, never move.
        - A journal entry belongs to its order's trading date; an entry naming no order with a known
          trading date belongs to the date of its ``at`` in ``zone`` (pass the exchange's time zone).
        - Exactly once, whatever the instant the process is killed: the archive is written durably
          before the hot state drops the orders, and until it has, the hot copy is the one that counts
          (``load``, ``load_day``). Calling again completes an interrupted move; it merges by order id,
          so nothing is ever held twice, and with nothing left to move it writes nothing and returns 0.
        - Afterwards ``load()`` and ``get_order()`` no longer return a moved order; ``load().archived``
          maps its broker id to its local id, so that a broker order of an archived order is never
          adopted or filled again; ``apply`` refuses a change set that writes an archived order or its
          ledger entry (``ConflictError`` when the change was based on a read from before the move,
          ``StoreError`` for a new order reusing an archived id).
        """
        ...

    def archived_days(self) -> list[date]:
        """The trading dates the archive holds, oldest first."""
        ...

    def load_day(self, day: date) -> LocalState | None:
        """One archived trading day: its orders and their ledger entries (no positions, checkpoint or
        index: those are today's). None when nothing of ``day`` was archived."""
        ...

    def journal_day(self, day: date) -> list[JournalEntry]:
        """The archived journal entries of ``day``, oldest first; empty when it has none."""
        ...

    def close(self) -> None:
        """Flush and release the file. Called once, at host shutdown."""
        ...
