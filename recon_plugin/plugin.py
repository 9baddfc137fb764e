"""The reconciler as a ``hostspec`` plugin: its config section, start and stop with the host, commands.

Only wiring: the settings are declared in ``recon_plugin.settings``, the loop in ``recon_plugin.runner``,
the operator commands in ``recon_plugin.commands``.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping

from hostspec import hookimpl
from hostspec.commands import Command
from hostspec.config import Section
from hostspec.host import Host
from recon_plugin.commands import RECON_COMMAND
from recon_plugin.ops.monitor import Monitor
from recon_plugin.ops.settings import MonitoringSettings
from recon_plugin.runner import Reconciler, make_reconciler
from recon_plugin.settings import Settings, settings_for
from recon_plugin.stats import Stats

log = logging.getLogger("recon")

_running: weakref.WeakKeyDictionary[Host, Reconciler] = weakref.WeakKeyDictionary()
_at_start: weakref.WeakKeyDictionary[Host, Stats] = weakref.WeakKeyDictionary()  # the counters when it started
_monitors: weakref.WeakKeyDictionary[Host, Monitor] = weakref.WeakKeyDictionary()


def reconciler_for(host: Host) -> Reconciler | None:
    """The reconciler running in ``host``, if any (for other plugins and tests)."""
    return _running.get(host)


def monitor_for(host: Host) -> Monitor | None:
    """What watches the reconciler running in ``host`` (its health, metrics and endpoint), if any."""
    return _monitors.get(host)


@hookimpl
def hostspec_config_schema() -> Mapping[str, Section]:
    return {"reconciliation": Settings, "monitoring": MonitoringSettings}


@hookimpl
def hostspec_startup(host: Host) -> None:
    settings = settings_for(host.config)
    if not settings.enabled:
        log.info("reconciliation is disabled (reconciliation.enabled: false); nothing started")
        return
    reconciler = make_reconciler(host, settings)
    _monitors[host] = Monitor(reconciler, host.config.get(MonitoringSettings))  # before the startup cycle: /readyz
    _running[host] = reconciler
    _at_start[host] = Stats.from_dict(reconciler.stats.to_dict())
    replayed = reconciler.publisher.publish_pending()
    if replayed:
        log.info("delivered %d events left unsent by the previous run", replayed)
    report = reconciler.run_cycle()
    if report.error:
        log.error("startup reconciliation failed (%s); the loop keeps retrying every %.0fs",
                  report.error, reconciler.next_delay)
    else:
        log.info("startup reconciliation: %d decisions, %d fills applied, %d events (%.1f ms)",
                 len(report.decisions), len(report.plan.fills) if report.plan else 0, report.published,
                 report.duration_ms)
    reconciler.start()
    log.info("reconciling every %.1fs%s", reconciler.interval, " (dry-run)" if reconciler.dry_run else "")


@hookimpl(trylast=True)
def hostspec_shutdown(host: Host) -> None:
    reconciler = _running.pop(host, None)
    monitor = _monitors.pop(host, None)
    if reconciler is None or monitor is None:
        return
    health = monitor.health.status()
    if not health.healthy:
        host.report_unhealthy(f"reconciliation: {health.reason}")
    monitor.close()
    reconciler.stop()
    reconciler.flush()
    s = reconciler.stats.since(_at_start.pop(host, Stats()))  # this run's, not the store's since it began
    log.info("reconciler stopped; this run: %d cycles (%d failed), %d order updates pushed, %d fills applied, "
             "%d events published, decisions by rule: %s", s.cycles, s.cycles_failed, s.pushes, s.fills_applied,
             s.events_published, ", ".join(f"{rule} {n}" for rule, n in s.discrepancies.most_common()) or "none")


@hookimpl
def hostspec_register_commands(register: Callable[[Command], None]) -> None:
    register(RECON_COMMAND)
