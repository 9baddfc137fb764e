"""What is installed and what a configuration file means: ``tradehost --version``, ``tradehost plugins
[--config F] [--json]`` and ``tradehost config check --config F [--json]``.

``plugins`` lists every plugin with the broker and store names it registers and, given a config,
whether that file enables it (``plugins.disabled``, ``TRADEHOST_DISABLE_PLUGINS``) and which of its
names the file selects. ``config check`` validates a file as a host would open it (nothing is opened:
no store, no broker) and prints every effective value, defaults included; a value under a key that
names a secret is masked, and an ``*_env`` key shows the variable's name and whether it is set, never
its value.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from hostspec.app import App, Configured
from hostspec.commands import Command, HostOpener
from hostspec.errors import PluginError
from hostspec.manager import DISABLE_ENV

DISTRIBUTION = "recon-plugin"
SECRET_KEY = re.compile(r"(token|secret|password|passwd|api_key|apikey|credential)", re.IGNORECASE)
MASK = "********"


def version_text() -> str:
    try:
        version = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    return f"tradehost {version} ({DISTRIBUTION}; Python {sys.version.split()[0]})"


# -- tradehost plugins ------------------------------------------------------------------------------

def _setup_plugins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="also say which plugins this file enables and selects")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def plugin_rows(app: App, config_path: str | None) -> list[dict[str, Any]]:
    """One row per plugin: where it comes from, its hooks, the broker and store names it registers,
    and (with a config) whether that file enables it and which of its names it selects."""
    try:
        brokers, stores = app.plugins.brokers(), app.plugins.stores()
    except PluginError:
        brokers, stores = {}, {}
    configured: Configured | None = app.configure(config_path) if config_path else None
    enabled = {info.name for info in configured.plugins.describe()} if configured else set()
    chosen = {configured.config.broker.name, configured.config.store.name} if configured else set()
    rows: list[dict[str, Any]] = []
    for info in app.plugins.describe():
        row: dict[str, Any] = {
            "name": info.name, "distribution": info.distribution, "version": info.version, "loaded": True,
            "hooks": list(info.hooks), "brokers": sorted(n for n, (p, _) in brokers.items() if p == info.name),
            "stores": sorted(n for n, (p, _) in stores.items() if p == info.name)}
        if configured is not None:
            row["enabled"] = info.name in enabled
            row["selected"] = sorted(n for n in (*row["brokers"], *row["stores"]) if n in chosen)
        rows.append(row)
    for failure in app.plugins.failures:
        rows.append({"name": failure.name, "distribution": failure.distribution, "loaded": False,
                     "error": failure.error, **({"enabled": False} if configured else {})})
    for name in app.plugins.blocked:
        rows.append({"name": name, "loaded": False, "disabled_by": DISABLE_ENV,
                     **({"enabled": False} if configured else {})})
    return rows


def plugins_command(args: argparse.Namespace, app: HostOpener) -> int:
    """``tradehost plugins``: what is loaded, from which distribution, registering what."""
    assert isinstance(app, App), "tradehost plugins lists the reference host's plugins"
    rows = plugin_rows(app, args.config)
    if args.json:
        print(json.dumps({"config": args.config, "plugins": rows}, indent=1))
        return 0
    for row in rows:
        if not row["loaded"]:
            if "disabled_by" in row:
                print(f"{row['name']:<10} disabled ({row['disabled_by']})")
            else:
                print(f"{row['name']:<10} {row['distribution']}: NOT LOADED: {row['error']}")
            continue
        version = f" {row['version']}" if row["version"] else ""
        state = ""
        if "enabled" in row:
            state = f"  {'enabled' if row['enabled'] else 'DISABLED'} by {args.config}" + (
                f", selected: {', '.join(row['selected'])}" if row["selected"] else "")
        print(f"{row['name']:<10} {row['distribution']}{version}{state}")
        print(f"{'':<10} hooks: {', '.join(row['hooks']) or '(none)'}")
        names = [f"{what}: {', '.join(row[what])}" for what in ("brokers", "stores") if row[what]]
        if names:
            print(f"{'':<10} {'; '.join(names)}")
    return 0


# -- tradehost config check -------------------------------------------------------------------------

def _setup_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def shown_value(key: str, value: Any) -> Any:
    """What ``config check`` shows of one value: a secret-named key's value masked, an ``*_env`` key's
    variable named with whether it is set (never its value)."""
    name = key.rsplit(".", 1)[-1]
    if name.endswith("_env") and isinstance(value, str):
        return f"{value} ({'set' if os.environ.get(value) else 'not set'} in the environment)"
    if value is not None and SECRET_KEY.search(name) and not name.endswith(("_file", "_env")):
        return MASK
    return value


def config_check(args: argparse.Namespace, app: HostOpener) -> int:
    """``tradehost config check``: validate a file as a host would open it, and show its effective values."""
    assert isinstance(app, App), "tradehost config check reads the reference host's plugins"
    configured = app.configure(args.config)
    values = {key: shown_value(key, value) for key, value in _flatten(configured.config.data)}
    loaded = [info.name for info in configured.plugins.describe()]
    if args.json:
        print(json.dumps({"config": str(Path(args.config)), "valid": True, "plugins": loaded,
                          "disabled": list(configured.plugins.blocked), "values": values}, indent=1, default=str))
        return 0
    print(f"{args.config}: valid; plugins: {', '.join(loaded)}"
          + (f"; disabled: {', '.join(configured.plugins.blocked)}" if configured.plugins.blocked else ""))
    print("effective values (defaults included; secrets masked):")
    for key, value in values.items():
        print(f"  {key} = {json.dumps(value, default=str) if not isinstance(value, str) else value}")
    return 0


INFO_COMMANDS = (
    Command("plugins", "list the plugins: distributions, hooks, the broker and store names each registers "
                       "(--config: which that file enables and selects)", _setup_plugins, plugins_command),
    Command("config", "work with configuration files", subcommands=(
        Command("check", "validate a configuration file and show its effective values (secrets masked); "
                         "exit 2 when it is not valid", _setup_check, config_check, uses_config=True),)),
)
