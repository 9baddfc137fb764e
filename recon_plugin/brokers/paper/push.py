"""The paper broker's push channel: its simulated exchange announces each order change as it happens.

The paper book is a pure function of time (``PaperExchange.book_at``), so nothing "happens" until
someone looks. ``BookPusher`` looks on a daemon thread just after each simulated tick (when the book can change) and
pushes every order whose state changed since its last look, through the same ``PushSink`` a real broker's
channel uses: a fill reaches the reconciler within a fraction of a tick instead of at the next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from decimal import Decimal

from hostspec.broker import PushSink
from hostspec.model import BrokerOrder, OrderStatus

log = logging.getLogger(__name__)
_State = tuple[OrderStatus, str, int, Decimal]


class BookPusher:
    """Reads ``read_book`` on a daemon thread, waiting ``wait()`` seconds between reads (the paper
    exchange: until just after its next tick), and pushes each order whose state (status, filled
    quantity, average) changed since the last read. The first read only learns
    the book (the reconciler polls in full on ``connected``). A failed read is a disconnect; the next
    good one a reconnect."""

    def __init__(self, read_book: Callable[[], list[BrokerOrder]], wait: Callable[[], float]) -> None:
        self._read_book = read_book
        self._wait = wait
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, _State] = {}

    def start(self, sink: PushSink) -> None:
        self._thread = threading.Thread(target=self._run, args=(sink,), name="paper-push", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _run(self, sink: PushSink) -> None:
        up = False
        while not self._stop.is_set():
            try:
                book = self._read_book()
            except Exception as exc:  # the account file unreadable for a moment: the channel is down
                if up:
                    sink.disconnected(f"the paper book could not be read: {type(exc).__name__}: {exc}")
                up = False
            else:
                changed = self._changes(book)
                if not up:
                    sink.connected()  # a full poll follows: what changed meanwhile needs no push
                    up = True
                else:
                    for bo in changed:
                        sink.order(bo)
            self._stop.wait(self._wait())

    def _changes(self, book: list[BrokerOrder]) -> list[BrokerOrder]:
        changed = []
        for bo in book:
            state = (bo.status, bo.raw_status, bo.filled_qty, bo.avg_price)
            if self._seen.get(bo.broker_order_id) != state:
                self._seen[bo.broker_order_id] = state
                changed.append(bo)
        return changed
