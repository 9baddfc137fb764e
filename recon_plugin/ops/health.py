"""Is the reconciler healthy? Read from the reconciler's own record of its cycles (the last good
snapshot, the last failure, its thread), never from a cycle of its own: ``/healthz``, ``/readyz``,
the heartbeat, the metrics and ``tradehost run``'s exit status all ask here."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from recon_plugin.runner import Reconciler


@dataclass(frozen=True)
class HealthStatus:
    healthy: bool
    ready: bool
    reason: str  # "ok", or why not, as one line
    snapshot_age_seconds: float | None  # since the last good snapshot (None: none yet)


def failure_reason(step: str, kind: str) -> str:
    """A failed cycle's step and kind as an operator reads it."""
    if step == "fetch" and kind == "auth":
        return "broker session expired (token refused): log in again"
    if step == "fetch":
        return f"broker unreachable ({kind})"
    if step == "store":
        return f"store failing ({kind})"
    return f"{step} failing ({kind})"


class Health:
    """Healthy while the last good snapshot is younger than ``stale_intervals`` waits between polls
    (the interval, a back-off's, or the push channel's slower pace), and at once unhealthy when the
    broker refuses the session (that never heals by waiting) or the reconciliation thread died. Ready
    once a good snapshot was taken (the startup reconciliation, or the first cycle after it that
    succeeded)."""

    def __init__(self, reconciler: Reconciler, stale_intervals: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.reconciler = reconciler
        self.stale_intervals = stale_intervals
        self.monotonic = monotonic
        self.started_at = monotonic()

    @property
    def stale_after(self) -> float:
        """``stale_intervals`` of the wait between polls now: the interval, a back-off's, or the slower
        pace while a push channel carries the news."""
        return self.stale_intervals * max(self.reconciler.interval, self.reconciler.poll_delay())

    def status(self) -> HealthStatus:
        r = self.reconciler
        now = self.monotonic()
        age = None if r.last_good_at is None else max(0.0, now - r.last_good_at)
        ready = r.last_good_at is not None
        if r.thread_dead:
            return HealthStatus(False, False, f"reconciler thread stopped: {r.died or 'ended'}", age)
        if r.last_failure == ("fetch", "auth"):
            return HealthStatus(False, ready, failure_reason(*r.last_failure), age)
        quiet_for = age if age is not None else now - self.started_at
        if quiet_for > self.stale_after:
            why = failure_reason(*r.last_failure) if r.last_failure else "no cycle finished"
            last = f"last good snapshot {age:.0f}s ago" if age is not None else "no good snapshot yet"
            return HealthStatus(False, ready, f"{why}; {last}", age)
        return HealthStatus(True, ready, "ok", age)
