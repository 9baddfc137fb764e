"""Step 3 of a cycle: publish what the outbox holds, in order, at least once.

Events reach the outbox in the same atomic write as the state they describe (step 2), so an event is
never announced before its state is durable, and never lost: whatever was written but not yet
marked sent is delivered again after a restart, with the same ``event_id``.

Marking sent costs no write of its own: the in-memory watermark rides along with the next write
that has changes (or the final flush at shutdown). The price is that a crash can repeat the events
published since the last write; consumers drop those by ``event_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hostspec.model import Event
from hostspec.store import StateStore

log = logging.getLogger(__name__)


class Publisher:
    def __init__(self, store: StateStore, deliver: Callable[[Event], None]) -> None:
        self.store = store
        self.deliver = deliver
        self.persisted_upto = store.load().events_sent_upto
        self.sent_upto = self.persisted_upto
        self.published = 0
        self._seen_generation = -1

    def publish_pending(self) -> int:
        """Deliver every outbox event not yet delivered, oldest first; returns how many.

        ``deliver`` guards each receiver and sink itself; if it raises anyway, publishing stops there
        and resumes from that event next time (order is kept).
        """
        if self.store.generation == self._seen_generation:
            return 0
        count = 0
        for event in self.store.pending_events():
            if event.seq <= self.sent_upto:
                continue
            self.deliver(event)
            self.sent_upto = event.seq
            count += 1
        self._seen_generation = self.store.generation
        self.published += count
        return count

    def watermark(self) -> int | None:
        """The sent watermark to persist with the next write, if it moved."""
        return self.sent_upto if self.sent_upto > self.persisted_upto else None

    def persisted(self, upto: int | None) -> None:
        if upto is not None:
            self.persisted_upto = max(self.persisted_upto, upto)
