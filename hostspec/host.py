"""The running host as plugins see it: the validated configuration, the broker, the store, the stop
flag and ``emit``. It knows nothing of how plugins are found or called (``hostspec.manager``).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from types import TracebackType

from hostspec.broker import Broker
from hostspec.calendar import Clock, MarketCalendar, SystemClock
from hostspec.config import Config
from hostspec.model import Event, Mode
from hostspec.store import StateStore

log = logging.getLogger("tradehost")

EventSinks = Callable[[Event, "Host"], list[str]]
"""Delivers one event to every event sink; returns the names of the sinks that raised."""


class Host:
    """The running host, as plugins receive it in ``hostspec_startup`` and ``hostspec_shutdown``.

    ``config``: the validated configuration. ``read_only``: the caller may change nothing (an
    operator command reading while another host runs). ``stop_requested`` is set when the host
    begins to stop. ``broker`` and ``store`` are the configured plugins' objects (``broker`` is None
    for commands that only read local state). ``clock``: where every part reads the time (a test
    passes a ``ManualClock``). ``calendar``: the market calendar the broker's markets follow (None
    when its plugin brings none). Use it as a context manager: leaving it closes both.
    """

    def __init__(self, config: Config, *, read_only: bool = False, sinks: EventSinks | None = None,
                 clock: Clock | None = None, calendar: MarketCalendar | None = None) -> None:
        self.config = config
        self.read_only = read_only
        self.clock: Clock = clock or SystemClock()
        self.calendar = calendar
        self.stop_requested = threading.Event()
        self.broker: Broker | None = None
        self.store: StateStore | None = None
        self.sink_failures = Counter[str]()
        self.unhealthy: list[str] = []  # why the host ended unhealthy (``report_unhealthy``)
        self._sinks = sinks
        self._failures_lock = threading.Lock()

    @property
    def mode(self) -> Mode:
        return self.config.mode

    def emit(self, event: Event) -> None:
        """Send an event to every event sink (``hostspec_handle_event``); a sink that raises is logged
        and counted, and the rest still receive the event."""
        if self._sinks is None:
            return
        failed = self._sinks(event, self)
        if failed:
            with self._failures_lock:
                self.sink_failures.update(failed)

    def report_unhealthy(self, reason: str) -> None:
        """A plugin says the host ended unhealthy (in ``hostspec_shutdown``: no good snapshot lately, a
        thread that died); ``tradehost run`` then exits with status 3 and prints ``reason``."""
        with self._failures_lock:
            self.unhealthy.append(reason)

    def close(self) -> None:
        """Close the broker and the store (each guarded)."""
        for part in (self.broker, self.store):
            if part is None:
                continue
            try:
                part.close()
            except Exception:
                log.exception("closing %s failed", getattr(part, "name", part))

    def __enter__(self) -> Host:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
