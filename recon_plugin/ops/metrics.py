"""The reconciler's Prometheus metrics, in a registry of their own (one per reconciler, never the
global default one). Imported only when ``monitoring.enabled`` is true: ``prometheus-client`` is the
``metrics`` extra, and the product runs without it.

Counters and gauges are read from the reconciler's own record (``Stats``, the store, ``Health``) when
Prometheus scrapes, so a cycle pays nothing for them; the histograms are observed as cycles end
(``cycle-finished``), as the store writes and as order events are published (the reconciler's
``on_store_write`` and ``on_published`` hooks: no payload is decoded for them). Labels are bounded
(step, failure kind, rule, severity, status): never an order id or a symbol.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hostspec.model import Event, OrderStatus
from recon_plugin import signals
from recon_plugin.events import CycleFinished, OrderCancelled, OrderExpired, OrderFilled, OrderRejected, OrderUpdated
from recon_plugin.ops.health import Health
from recon_plugin.rules import Rule
from recon_plugin.runner import Reconciler

CYCLE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CHANGE_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
ORDER_KINDS = frozenset(cls.kind for cls in (OrderUpdated, OrderFilled, OrderCancelled, OrderRejected, OrderExpired))


class ReconMetrics:
    """Every metric of one reconciler, in ``registry`` (a new one unless given)."""

    def __init__(self, reconciler: Reconciler, health: Health, registry: CollectorRegistry | None = None) -> None:
        self.reconciler = reconciler
        self.registry = registry or CollectorRegistry()
        self.cycle_seconds = Histogram(
            "recon_cycle_duration_seconds", "Duration of a successful cycle (fetch, plan, write, publish)",
            buckets=CYCLE_BUCKETS, registry=self.registry)
        self.store_write_seconds = Histogram(
            "recon_store_write_duration_seconds", "Duration of one durable store write (a cycle with changes)",
            buckets=CYCLE_BUCKETS, registry=self.registry)
        self.change_to_signal_seconds = Histogram(
            "recon_broker_change_to_signal_seconds",
            "From the broker's last update of an order (its timestamp) to the order event's signal",
            buckets=CHANGE_BUCKETS, registry=self.registry)
        self.registry.register(_ReadAtScrape(reconciler, health))
        self._updated_at: tuple[int, dict[str, datetime]] = (0, {})
        signals.cycle_finished.connect(self._cycle_finished, sender=reconciler, weak=False)
        reconciler.on_store_write = self.store_write_seconds.observe
        reconciler.on_published = self._published

    def exposition(self) -> tuple[bytes, str]:
        """The metrics page: Prometheus' text format."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        signals.cycle_finished.disconnect(self._cycle_finished, sender=self.reconciler)
        self.reconciler.on_store_write = self.reconciler.on_published = None

    def _cycle_finished(self, sender: Any, payload: CycleFinished, **_: Any) -> None:
        self.cycle_seconds.observe(payload.duration_ms / 1000)

    def _published(self, event: Event) -> None:
        """An order event: how long after the broker's update of the order its signal went out."""
        snapshot = self.reconciler.last_snapshot
        broker_order_id = event.data.get("broker_order_id") if event.kind in ORDER_KINDS else None
        if snapshot is None or broker_order_id is None:
            return
        if self._updated_at[0] != id(snapshot):  # one index per snapshot, built on its first order event
            self._updated_at = (id(snapshot), {o.broker_order_id: o.updated_at for o in snapshot.orders
                                               if o.updated_at is not None})
        updated_at = self._updated_at[1].get(broker_order_id)
        if updated_at is not None:
            seconds = (self.reconciler.clock.now() - updated_at).total_seconds()
            if seconds >= 0:
                self.change_to_signal_seconds.observe(seconds)


class _ReadAtScrape(Collector):
    """The counters and gauges, read from the reconciler's record when Prometheus asks."""

    def __init__(self, reconciler: Reconciler, health: Health) -> None:
        self.reconciler = reconciler
        self.health = health
        self._backlog: tuple[tuple[int, int] | None, int] = (None, 0)

    def collect(self) -> Iterable[Metric]:
        r = self.reconciler
        stats = r.stats
        cycles = CounterMetricFamily("recon_cycles", "Reconciliation cycles, by outcome", labels=["outcome"])
        cycles.add_metric(["ok"], stats.cycles)
        cycles.add_metric(["failed"], stats.cycles_failed)
        yield cycles
        failures = CounterMetricFamily("recon_snapshot_failures", "Failed steps of a cycle, by step and failure kind",
                                       labels=["step", "kind"])
        for key, count in sorted(dict(stats.failures).items()):
            step, _, kind = key.partition(":")
            failures.add_metric([step, kind], count)
        yield failures
        discrepancies = CounterMetricFamily("recon_discrepancies", "Rule firings, by rule and severity",
                                            labels=["rule", "severity"])
        for rule, count in sorted(dict(stats.discrepancies).items()):
            discrepancies.add_metric([rule, _severity(rule)], count)
        yield discrepancies
        for name, text, value in (
                ("recon_fills_applied", "Fills applied to positions (each exactly once)", stats.fills_applied),
                ("recon_events_published", "Events published to signals and event sinks", stats.events_published),
                ("recon_store_writes", "Durable store writes", stats.store_writes),
                ("recon_store_conflicts", "Store writes refused as based on a stale read", stats.conflicts)):
            yield CounterMetricFamily(name, text, value=value)
        yield from self._state()
        status = self.health.status()
        yield GaugeMetricFamily("recon_healthy", "1 while /healthz answers 200", value=int(status.healthy))
        yield GaugeMetricFamily("recon_ready", "1 once the startup reconciliation succeeded", value=int(status.ready))
        if status.snapshot_age_seconds is not None:
            yield GaugeMetricFamily("recon_last_good_snapshot_age_seconds", "Seconds since the last good snapshot",
                                    value=status.snapshot_age_seconds)
        path = getattr(r.store, "path", None)
        if path is not None and os.path.exists(path):
            yield GaugeMetricFamily("recon_store_file_bytes", "Size of the store's file",
                                    value=os.path.getsize(path))

    def _state(self) -> Iterable[Metric]:
        r = self.reconciler
        state = r.store.load()
        counts = dict.fromkeys(OrderStatus, 0)
        for order in state.orders.values():
            counts[order.status] += 1
        orders = GaugeMetricFamily("recon_orders", "Local orders held, by status", labels=["status"])
        for status, count in counts.items():
            orders.add_metric([status.value], count)
        yield orders
        yield GaugeMetricFamily("recon_lost_orders", "Orders LOST: not found at the broker even when asked by id",
                                value=counts[OrderStatus.LOST])
        key = (r.store.generation, r.publisher.sent_upto)
        if self._backlog[0] != key:  # reading the outbox costs: only after a write or a publish
            self._backlog = (key, sum(1 for event in r.store.pending_events() if event.seq > key[1]))
        backlog = self._backlog[1]
        yield GaugeMetricFamily("recon_outbox_backlog_events", "Events written but not yet published", value=backlog)


def _severity(rule: str) -> str:
    known = Rule._value2member_map_.get(rule)  # None: a rule counted by another version
    return known.severity.value if isinstance(known, Rule) else "unknown"
