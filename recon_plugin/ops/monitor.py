"""What watches one reconciler from outside, started and stopped with it (``recon_plugin.plugin``):
its ``Health`` always (the exit status asks it), the heartbeat, and with ``monitoring.enabled`` the
Prometheus metrics and the HTTP endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recon_plugin.ops.health import Health
from recon_plugin.ops.heartbeat import Heartbeat
from recon_plugin.ops.server import MonitoringServer
from recon_plugin.ops.settings import MonitoringSettings
from recon_plugin.runner import Reconciler

if TYPE_CHECKING:
    from recon_plugin.ops.metrics import ReconMetrics


class Monitor:
    def __init__(self, reconciler: Reconciler, settings: MonitoringSettings) -> None:
        self.health = Health(reconciler, settings.stale_intervals)
        self.heartbeat = Heartbeat(reconciler, self.health, settings.heartbeat_seconds) \
            if settings.heartbeat_seconds > 0 else None
        self.server: MonitoringServer | None = None
        self.metrics: ReconMetrics | None = None
        if settings.enabled:
            from recon_plugin.ops.metrics import ReconMetrics  # prometheus-client: only when switched on

            metrics = self.metrics = ReconMetrics(reconciler, self.health)
            try:
                self.server = MonitoringServer(settings.address, self.health, metrics.exposition)
            except BaseException:
                self.close()
                raise
            self.server.start()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.metrics is not None:
            self.metrics.close()
        if self.heartbeat is not None:
            self.heartbeat.close()
