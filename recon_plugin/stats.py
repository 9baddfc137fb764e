"""What the reconciler counts, and a log that does not repeat itself at full volume."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass
class Stats:
    cycles: int = 0
    cycles_failed: int = 0
    consecutive_failures: int = 0
    fills_applied: int = 0
    events_published: int = 0
    store_writes: int = 0
    conflicts: int = 0
    pushes: int = 0  # order updates pushed by the broker (each applied through a partial snapshot)
    discrepancies: Counter[str] = field(default_factory=Counter)  # decisions by rule (recon_plugin.rules.Rule values)
    failures: Counter[str] = field(default_factory=Counter)  # by "step:kind"
    last_cycle_at: str | None = None
    last_cycle_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["discrepancies"] = dict(self.discrepancies)
        data["failures"] = dict(self.failures)
        return data

    def since(self, earlier: Stats) -> Stats:
        """What was counted after ``earlier`` (the counters at the start of a run): this run's figures."""
        now, then = self.to_dict(), earlier.to_dict()
        counts = {k: v - then[k] for k, v in now.items() if isinstance(v, int) and k != "consecutive_failures"}
        return replace(self, **counts, discrepancies=self.discrepancies - earlier.discrepancies,
                       failures=self.failures - earlier.failures)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stats:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        stats = cls(**known)
        stats.discrepancies = Counter(data.get("discrepancies", {}))
        stats.failures = Counter(data.get("failures", {}))
        stats.consecutive_failures = 0
        return stats


class QuietLog:
    """Logs the first occurrence of a failure in full, then only every ``every_seconds`` with a count,
    so an outage of hours is a handful of lines, not one per cycle."""

    def __init__(self, logger: logging.Logger, every_seconds: float = 60.0) -> None:
        self.logger = logger
        self.every = every_seconds
        self._last: dict[str, tuple[float, int]] = {}

    def failure(self, key: str, message: str, *args: Any, exc_info: bool = False) -> bool:
        """Log (or count) one failure; returns True when it was logged in full."""
        now = time.monotonic()
        last, suppressed = self._last.get(key, (0.0, 0))
        if key in self._last and now - last < self.every:
            self._last[key] = (last, suppressed + 1)
            return False
        suffix = f" (and {suppressed} more times since last logged)" if suppressed else ""
        self.logger.warning(message + suffix, *args, exc_info=exc_info)
        self._last[key] = (now, 0)
        return True

    def recovered(self, prefix: str, message: str, *args: Any) -> None:
        """Forget failures whose key starts with ``prefix``; log ``message`` if there were any."""
        keys = [k for k in self._last if k.startswith(prefix)]
        for key in keys:
            del self._last[key]
        if keys:
            self.logger.info(message, *args)
