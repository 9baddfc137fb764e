"""What the command line needs: the plugins loaded once (to list them and their commands), and hosts
opened from a configuration file with the plugins that file allows."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import logging
import sys
import weakref
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import TypeVar

from hostspec.calendar import Clock
from hostspec.commands import Command
from hostspec.config import (
    Config,
    did_you_mean,
    disabled_plugins,
    merge_schemas,
    read_yaml,
    sections_in_source,
    validate,
)
from hostspec.errors import ConfigError, PluginError
from hostspec.host import Host
from hostspec.manager import ENTRY_POINT_GROUP, PluginManager, env_disabled

F = TypeVar("F", bound=Callable[..., object])
log = logging.getLogger("tradehost")


class App:
    """The reference host's entry point: ``hostspec.commands.HostOpener`` for the commands."""

    def __init__(self, extra_plugins: Iterable[tuple[str, object]] = ()) -> None:
        self.extra_plugins = list(extra_plugins)
        self.plugins = PluginManager(env_disabled(), extra=self.extra_plugins)
        self._managers: weakref.WeakKeyDictionary[Host, PluginManager] = weakref.WeakKeyDictionary()

    def commands(self) -> list[Command]:
        return self.plugins.commands()

    def open_host(self, config_path: str | Path, *, read_only: bool = False, with_broker: bool = True,
                  extra_plugins: Iterable[tuple[str, object]] = (), clock: Clock | None = None) -> Host:
        """Load and validate ``config_path``, load the plugins it allows, create its store and (unless
        ``with_broker`` is false, for commands that only read local state) its broker.

        Raises ``ConfigError`` for anything the user must fix in the file or the environment.
        """
        path = Path(config_path)
        raw = read_yaml(path)
        extras = [*self.extra_plugins, *extra_plugins]
        in_file = disabled_plugins(raw, path)
        if in_file:
            _refuse_unknown_plugins(in_file, {name for name, _ in extras}, path)
        plugins = PluginManager([*env_disabled(), *in_file], extra=extras)
        try:
            schema, declared = merge_schemas(plugins.config_sections())
        except (PluginError, ValueError) as exc:
            raise ConfigError(path, "", str(exc)) from exc
        not_loaded = [*plugins.blocked, *(failure.name for failure in plugins.failures)]
        tolerated = _sections_of(not_loaded, {name for name, _ in extras}) if not_loaded else {}
        config = Config(validate(raw, schema, path, tolerated), path, declared)
        try:
            plugins.configure(config)
            calendar = plugins.market_calendar(config)
            brokers = plugins.brokers()
            stores = plugins.stores()
        except PluginError as exc:
            if isinstance(exc.error, ConfigError):
                raise exc.error from exc
            raise ConfigError(path, "", str(exc)) from exc
        broker_factory = _choose(brokers, config.broker.name, "broker", path)
        store_factory = _choose(stores, config.store.name, "store", path)
        host = Host(config, read_only=read_only, sinks=plugins.handle_event, clock=clock, calendar=calendar)
        self._managers[host] = plugins
        try:
            host.store = store_factory(host)
            if with_broker:
                host.broker = broker_factory(host)
        except BaseException:
            host.close()
            raise
        return host


    def start(self, host: Host) -> None:
        """Start a host opened here: every ``hostspec_startup``; raises ``PluginError`` naming the first
        plugin that failed (call ``stop`` all the same)."""
        self._managers[host].startup(host)

    def stop(self, host: Host) -> None:
        """Stop a host opened here: set ``stop_requested``, run every ``hostspec_shutdown`` (each
        guarded), then close the broker and the store."""
        host.stop_requested.set()
        try:
            self._managers[host].shutdown(host)
        finally:
            host.close()


def _installed() -> set[str]:
    return {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _refuse_unknown_plugins(names: list[str], in_process: Collection[str], path: Path) -> None:
    """``plugins.disabled`` names only plugins there are: a misspelt name would leave the plugin it
    meant running (the environment's list is not checked: it is not the file's)."""
    known = _installed() | set(in_process)
    for i, name in enumerate(names):
        if name not in known:
            raise ConfigError(path, f"plugins.disabled[{i}]", f"no plugin is named {name!r}{did_you_mean(name, known)} "
                                                              f"(installed: {', '.join(sorted(known))})")


def _sections_of(plugins: Iterable[str], in_process: Collection[str]) -> dict[str, str]:
    """The config sections of plugins that are not loaded (disabled, or failing to load), by dotted
    path, each with its plugin's name: the sections its source declares (``sections_in_source``),
    or, when the source does not say, the top-level section named after the plugin. Its code never
    runs: a disabled plugin is not imported, not even to ask for its schema."""
    wanted = set(plugins)
    sections: dict[str, str] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in wanted:
            for section in _declared_in_module(ep.module) or [ep.name]:
                sections.setdefault(section, ep.name)
    for name in wanted & set(in_process):
        sections.setdefault(name, name)
    for section, plugin in sections.items():
        log.debug("config section %s is not read: plugin %r is not loaded", section, plugin)
    return sections


def _declared_in_module(module: str) -> list[str] | None:
    """``sections_in_source`` of an importable module, read without executing it or its packages."""
    try:
        spec = _find_without_import(module)
        if spec is None:
            return None
        if isinstance(spec.loader, importlib.abc.InspectLoader):
            source = spec.loader.get_source(module)
        elif spec.has_location and spec.origin and spec.origin.endswith(".py"):  # a loader of its own (pytest's)
            source = Path(spec.origin).read_text(encoding="utf-8")
        else:
            return None
        return sections_in_source(source) if source else None
    except Exception:  # a source the host cannot read: the plugin falls back to the rule by its name
        log.debug("cannot read the sections of %s from its source", module, exc_info=True)
        return None


def _find_without_import(module: str) -> importlib.machinery.ModuleSpec | None:
    """Where ``module`` is, found as ``import`` finds it (each finder on ``sys.meta_path``, package by
    package, in the parent's search path) but without executing it or its parent packages, which
    ``importlib.util.find_spec`` would import."""
    spec: importlib.machinery.ModuleSpec | None = None
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        search = None if spec is None else list(spec.submodule_search_locations or [])
        name = ".".join(parts[:depth])
        spec = next((found for finder in sys.meta_path if (found := _find_spec(finder, name, search))), None)
        if spec is None:
            return None
    return spec


def _find_spec(finder: object, name: str, search: list[str] | None) -> importlib.machinery.ModuleSpec | None:
    find = getattr(finder, "find_spec", None)
    return find(name, search) if callable(find) else None


def _choose(registry: dict[str, tuple[str, F]], name: str, what: str, path: Path) -> F:
    if name not in registry:
        installed = ", ".join(sorted(registry)) or "none"
        raise ConfigError(path, f"{what}.name", f"unknown {what} {name!r} (installed: {installed})")
    return registry[name][1]
