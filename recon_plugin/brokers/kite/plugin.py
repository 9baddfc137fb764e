"""The Kite Connect broker plugin (registered as ``kite``). Imports ``kiteconnect`` only when a Kite
broker is actually created, so paper mode never loads Twisted."""

from __future__ import annotations

from typing import Any

from hostspec import hookimpl
from hostspec.config import Option, Schema

SCHEMA: Schema = {
    "api_key_env": Option(str, "KITE_API_KEY", "environment variable holding the API key"),
    "access_token_env": Option(str, "KITE_ACCESS_TOKEN", "environment variable holding the access token"),
    "root": Option(str, "https://api.kite.trade", "API root (a local simulator's URL in tests)"),
    "timeout_seconds": Option(float, 7.0, "HTTP timeout per request", minimum=0.1),
}


@hookimpl
def hostspec_config_schema() -> dict[str, Schema]:
    return {"broker.kite": SCHEMA}


def open_kite(host: Any) -> Any:
    from recon_plugin.brokers.kite.broker import open_kite_broker

    return open_kite_broker(host)


@hookimpl
def hostspec_register_brokers(register: Any) -> None:
    register("kite", open_kite)
