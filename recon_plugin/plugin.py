"""The reconciler as a ``hostspec`` plugin: configuration, start and stop with the host, commands."""

from __future__ import annotations

import logging
import weakref
from typing import Any

from hostspec import hookimpl
from hostspec.config import Config, Option, Schema
from hostspec.host import Host
from hostspec.model import Mode
from recon_plugin.plan import Settings
from recon_plugin.runner import Reconciler

log = logging.getLogger("recon")
DEFAULT_INTERVAL = {Mode.LIVE: 2.0, Mode.PAPER: 5.0}

SCHEMA: Schema = {
    "enabled": Option(bool, True, "run the reconciler with the host"),
    "interval_seconds": Option(float, None, "seconds between cycles (default: 2 live, 5 paper)",
                               minimum=0.05, nullable=True),
    "dry_run": Option(bool, False, "plan and report only: write nothing, publish no order event"),
    "missing_grace_seconds": Option(float, 10.0, "orders younger than this are not counted missing", minimum=0),
    "missing_retries": Option(int, 3, "consecutive misses before the targeted query", minimum=1),
    "max_queries_per_cycle": Option(int, 10, "cap on targeted order queries per cycle", minimum=0),
    "external_orders": Option(str, "adopt", "broker orders placed elsewhere: adopt or report",
                              choices=("adopt", "report")),
    "position_mismatch_cycles": Option(int, 2, "cycles a position mismatch must persist before a rebuild",
                                       minimum=1),
}

_running: weakref.WeakKeyDictionary[Host, Reconciler] = weakref.WeakKeyDictionary()


def settings_from(config: Config) -> tuple[Settings, float]:
    """The engine's settings and the cycle interval from the ``reconciliation`` section."""
    section = config.section("reconciliation")
    settings = Settings(
        mode=config.mode, missing_grace_seconds=section["missing_grace_seconds"],
        missing_retries=section["missing_retries"], max_queries_per_cycle=section["max_queries_per_cycle"],
        external_orders=section["external_orders"], position_mismatch_cycles=section["position_mismatch_cycles"])
    return settings, section["interval_seconds"] or DEFAULT_INTERVAL[config.mode]


def make_reconciler(host: Host, dry_run: bool | None = None) -> Reconciler:
    assert host.broker is not None and host.store is not None
    settings, interval = settings_from(host.config)
    if dry_run is None:
        dry_run = host.config.section("reconciliation")["dry_run"]
    return Reconciler(host.broker, host.store, settings, interval, dry_run=dry_run, emit=host.emit)


def reconciler_for(host: Host) -> Reconciler | None:
    """The reconciler running in ``host``, if any (for other plugins and tests)."""
    return _running.get(host)


@hookimpl
def hostspec_config_schema() -> dict[str, Schema]:
    return {"reconciliation": SCHEMA}


@hookimpl
def hostspec_startup(host: Host) -> None:
    if not host.config.section("reconciliation")["enabled"]:
        log.info("reconciliation is disabled (reconciliation.enabled: false); nothing started")
        return
    reconciler = make_reconciler(host)
    _running[host] = reconciler
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
    if reconciler is None:
        return
    reconciler.stop()
    reconciler.flush()
    s = reconciler.stats
    log.info("reconciler stopped: %d cycles (%d failed), %d fills applied, %d events published, "
             "discrepancies: %s", s.cycles, s.cycles_failed, s.fills_applied, s.events_published,
             dict(s.discrepancies) or "none")


@hookimpl
def hostspec_register_commands(register: Any) -> None:
    from recon_plugin.commands import RECON_COMMAND

    register(RECON_COMMAND)
