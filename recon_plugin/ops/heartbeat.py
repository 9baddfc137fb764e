"""The heartbeat: one log line at ``monitoring.heartbeat_seconds``, so that a quiet book is told apart
from a reconciler that stopped polling (which writes nothing)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from recon_plugin import signals
from recon_plugin.events import CycleFinished
from recon_plugin.ops.health import Health
from recon_plugin.runner import Reconciler

log = logging.getLogger("recon.heartbeat")


class Heartbeat:
    """Listens to ``cycle-finished`` of one reconciler; logs when ``every`` seconds passed since its last line."""

    def __init__(self, reconciler: Reconciler, health: Health, every: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.reconciler = reconciler
        self.health = health
        self.every = every
        self.monotonic = monotonic
        self._last = monotonic()
        self._cycles = reconciler.stats.cycles
        self._decisions = 0
        signals.cycle_finished.connect(self._cycle_finished, sender=reconciler, weak=False)

    def close(self) -> None:
        signals.cycle_finished.disconnect(self._cycle_finished, sender=self.reconciler)

    def _cycle_finished(self, sender: Any, payload: CycleFinished, **_: Any) -> None:
        self._decisions += payload.decisions
        now = self.monotonic()
        if now - self._last < self.every:
            return
        stats = self.reconciler.stats
        status = self.health.status()
        log.info("heartbeat: %d cycles in the last %.0fs (%d decisions), %d failed in all; %s",
                 stats.cycles - self._cycles, now - self._last, self._decisions, stats.cycles_failed,
                 "healthy" if status.healthy else f"UNHEALTHY: {status.reason}")
        self._last, self._cycles, self._decisions = now, stats.cycles, 0
