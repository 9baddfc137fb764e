"""The ``monitoring`` config section: the metrics and health endpoint, when a run counts as healthy,
and the heartbeat line."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from hostspec.config import SettingError, setting

METRICS_EXTRA = "pip install 'recon-plugin[metrics]'"


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6) as a pair; ValueError naming what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected host:port, e.g. 127.0.0.1:9464, got {address!r}")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class MonitoringSettings:
    """``monitoring``: off by default; ``enabled`` serves ``/metrics``, ``/healthz`` and ``/readyz``."""

    enabled: bool = setting(False, "serve /metrics (Prometheus), /healthz and /readyz on address")
    address: str = setting("127.0.0.1:9464", "host:port the endpoint listens on (port 0: any free port)")
    stale_intervals: float = setting(5.0, "unhealthy when the last good snapshot is older than this many "
                                          "intervals (also decides tradehost run's exit status)", minimum=1)
    heartbeat_seconds: float = setting(300.0, "log a heartbeat line at this pace (0: never)", minimum=0)

    def check(self) -> None:
        try:
            parse_address(self.address)
        except ValueError as exc:
            raise SettingError("address", str(exc)) from None
        if self.enabled and not _installed("prometheus_client"):
            raise SettingError("enabled", f"metrics need the prometheus-client package: {METRICS_EXTRA}")


def _installed(module: str) -> bool:
    """Whether ``module`` imports (only asked when metrics are switched on: the product runs without it)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
