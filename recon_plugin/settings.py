"""The reconciler's settings (the ``reconciliation`` config section), each declared once: its type,
default, limits and help. The config schema and the typed, frozen object the engine and the runner
read both come from this one class."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from hostspec.config import Config, SettingError, setting
from hostspec.model import Mode


class ExternalOrders(StrEnum):
    """What to do with a broker order that no local order accounts for (placed from another app)."""

    ADOPT = "adopt"  # record it as a local order (``ext-<broker id>``) and reconcile it like ours
    REPORT = "report"  # announce it once as a discrepancy, leave local state alone


DEFAULT_INTERVAL = {Mode.LIVE: 2.0, Mode.PAPER: 5.0}


@dataclass(frozen=True)
class Settings:
    """The engine's and the runner's tunables. ``mode`` comes from the top-level ``mode`` key."""

    enabled: bool = setting(True, "run the reconciler with the host")
    interval_seconds: float | None = setting(None, "seconds between cycles (default: 2 live, 5 paper)",
                                             minimum=0.05)
    dry_run: bool = setting(False, "plan and report only: write nothing, publish no order event")
    missing_grace_seconds: float = setting(10.0, "orders younger than this are not counted missing", minimum=0)
    missing_retries: int = setting(3, "consecutive misses before the targeted query", minimum=1)
    max_queries_per_cycle: int = setting(10, "cap on targeted order queries per cycle", minimum=0)
    external_orders: ExternalOrders = setting(ExternalOrders.ADOPT, "broker orders placed elsewhere: adopt or report")
    position_mismatch_cycles: int = setting(2, "cycles a position mismatch must persist before a rebuild",
                                            minimum=1)
    position_settle_seconds: float = setting(10.0, "after a fill on a position, how long the broker's positions "
                                                   "may trail its order book before a mismatch counts", minimum=0)
    push: bool = setting(True, "take the broker's pushed order updates when it has a push channel "
                               "(hostspec.broker.PushingBroker); polling stays the backstop")
    push_poll_seconds: float | None = setting(None, "seconds between polls while the push channel is healthy "
                                                    "(default: 30 live, the interval paper); the interval applies "
                                                    "again when it goes down", minimum=0.05)
    mode: Mode = field(default=Mode.PAPER)

    def check(self) -> None:
        """Refuse what makes the missing-order ladder impossible (``recon_plugin.resolve.reconcile_missing``).

        An acknowledged order the book stops listing is counted, and at ``missing_retries`` misses it
        is asked for by id: only that answer finds it or marks it LOST. With no query allowed it is
        counted for ever, one store write and one discrepancy each cycle, with no end and no alarm
        that says why. Every other value keeps the ladder finite (``missing_retries`` >= 1, a grace
        that ends); a reconciler that is switched off has no ladder, so any value is allowed there.
        """
        if self.enabled and self.max_queries_per_cycle == 0:
            raise SettingError("max_queries_per_cycle", "0 would leave an order missing from the broker's book "
                                                        "counted for ever: the missing-order ladder needs a "
                                                        "query after missing_retries misses; use at least 1")

    @property
    def interval(self) -> float:
        """Seconds between cycles: ``interval_seconds``, or the mode's default."""
        return self.interval_seconds or DEFAULT_INTERVAL[self.mode]

    @property
    def push_interval(self) -> float:
        """Seconds between polls while pushes arrive: ``push_poll_seconds``, or 30 s live (Kite asks not
        to poll its order book every other second), the interval in paper mode; never below the interval."""
        default = 30.0 if self.mode is Mode.LIVE else self.interval
        return max(self.interval, self.push_poll_seconds or default)


def settings_for(config: Config) -> Settings:
    """The ``reconciliation`` section of ``config``, with the host's mode."""
    return replace(config.get(Settings), mode=config.mode)
