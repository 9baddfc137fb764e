"""The plugin manager: finds plugins through entry points, and calls each hook through a typed method
of its own (as tox's manager does), so that no call site spells a hook's name.

Every call goes to each implementation separately, in pluggy's order: one implementation raising
never hides the others. Where the host cannot go on (configure, registration, startup) the error
becomes a ``PluginError`` naming the plugin; where it can (shutdown, events) it is logged and skipped.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from hostspec import hookspecs
from hostspec.calendar import MarketCalendar
from hostspec.commands import Command
from hostspec.config import Config, Section
from hostspec.errors import PluginError
from hostspec.hookspecs import BrokerFactory, StoreFactory
from hostspec.host import Host
from hostspec.markers import PROJECT
from hostspec.model import Event

ENTRY_POINT_GROUP = "hostspec"
DISABLE_ENV = "TRADEHOST_DISABLE_PLUGINS"
log = logging.getLogger("tradehost")


@dataclass(frozen=True)
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


@dataclass(frozen=True)
class LoadFailure:
    name: str
    distribution: str
    error: str


def env_disabled() -> list[str]:
    """Plugin names listed in ``TRADEHOST_DISABLE_PLUGINS`` (comma- or space-separated)."""
    return [n for n in os.environ.get(DISABLE_ENV, "").replace(",", " ").split() if n]


class PluginManager:
    """The loaded plugins, where each came from, what failed to load, and the typed hook calls."""

    def __init__(self, disabled: Iterable[str] = (), load_entrypoints: bool = True,
                 extra: Iterable[tuple[str, object]] = ()) -> None:
        """Add the specs, block ``disabled`` names, load the ``hostspec`` entry points one by one (a
        plugin that fails to import or register is recorded and skipped, not fatal), register
        ``extra`` in-process plugins, then check every plugin's hooks against the specs."""
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.failures: list[LoadFailure] = []
        self.blocked = tuple(dict.fromkeys(disabled))
        for name in self.blocked:
            self.pm.set_blocked(name)
        if load_entrypoints:
            self._load_entrypoints()
        for name, plugin in extra:
            if not self.pm.is_blocked(name):
                self.pm.register(plugin, name=name)
        self._check_pending()

    def _load_entrypoints(self) -> None:
        for dist in importlib.metadata.distributions():
            for ep in dist.entry_points:
                if ep.group != ENTRY_POINT_GROUP or self.pm.get_plugin(ep.name) or self.pm.is_blocked(ep.name):
                    continue
                dist_name = dist.metadata["name"] or "?"
                try:
                    self.pm.register(ep.load(), name=ep.name)
                except Exception as exc:
                    log.warning("plugin %r from %s could not be loaded and is skipped: %s: %s",
                                ep.name, dist_name, type(exc).__name__, exc)
                    self.failures.append(LoadFailure(ep.name, dist_name, f"{type(exc).__name__}: {exc}"))
                    continue
                self.infos[ep.name] = PluginInfo(ep.name, dist_name, dist.version, ())

    def _check_pending(self) -> None:
        """``check_pending()``, unregistering (and reporting) each plugin that implements an unknown hook."""
        while True:
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin) or "?"
                self.pm.unregister(exc.plugin)
                info = self.infos.pop(name, None)
                self.failures.append(LoadFailure(name, info.distribution if info else "?", str(exc)))
                log.warning("plugin %r is skipped: %s", name, exc)

    def describe(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution, version and implemented hooks."""
        described = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or ()))
            info = self.infos.get(name) or PluginInfo(name, "(registered in process)", "", ())
            described.append(PluginInfo(name, info.distribution, info.version, hooks))
        return sorted(described, key=lambda p: p.name)

    # -- the hooks, one typed method each ---------------------------------------------------------------

    def config_sections(self) -> list[tuple[str, Mapping[str, Section]]]:
        """``hostspec_config_schema``: each plugin's declared sections, by plugin name."""
        return [(name, sections) for name, sections in self._call_each(self.pm.hook.hostspec_config_schema)
                if sections]

    def configure(self, config: Config) -> None:
        """``hostspec_configure``; a plugin's ``ConfigError`` is re-raised as it is."""
        self._call_each(self.pm.hook.hostspec_configure, config=config)

    def brokers(self) -> dict[str, tuple[str, BrokerFactory]]:
        """``hostspec_register_brokers``: broker factories by name, with the registering plugin."""
        return self._registry(self.pm.hook.hostspec_register_brokers, "broker")

    def market_calendar(self, config: Config) -> MarketCalendar | None:
        """``hostspec_market_calendar``: the first calendar a plugin gives for the configured broker."""
        for _plugin, calendar in self._call_each(self.pm.hook.hostspec_market_calendar, config=config):
            if calendar is not None:
                return calendar  # type: ignore[no-any-return]
        return None

    def stores(self) -> dict[str, tuple[str, StoreFactory]]:
        """``hostspec_register_stores``: store factories by name, with the registering plugin."""
        return self._registry(self.pm.hook.hostspec_register_stores, "store")

    def commands(self) -> list[Command]:
        """``hostspec_register_commands``: every command the plugins add."""
        found: list[Command] = []
        self._call_each(self.pm.hook.hostspec_register_commands, register=found.append)
        return found

    def startup(self, host: Host) -> None:
        """``hostspec_startup``; the first plugin that raises stops the start (``PluginError``)."""
        self._call_each(self.pm.hook.hostspec_startup, host=host)

    def shutdown(self, host: Host) -> None:
        """``hostspec_shutdown``: every implementation runs, whatever another raised."""
        self._call_each(self.pm.hook.hostspec_shutdown, guard=True, host=host)

    def handle_event(self, event: Event, host: Host) -> list[str]:
        """``hostspec_handle_event`` to every sink; returns the names of the sinks that raised."""
        failed: list[str] = []
        for impl in reversed(self.pm.hook.hostspec_handle_event.get_hookimpls()):
            try:
                impl.function(**{k: v for k, v in (("event", event), ("host", host)) if k in impl.argnames})
            except KeyboardInterrupt:
                raise
            except BaseException:  # SystemExit too: one sink's sys.exit() must end neither the others nor the host
                failed.append(impl.plugin_name)
                log.exception("event sink %r raised on %s %s; skipped", impl.plugin_name, event.kind, event.event_id)
        return failed

    # -- how hooks are called ---------------------------------------------------------------------------

    def _call_each(self, caller: pluggy.HookCaller, guard: bool = False, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of a hook separately; with ``guard`` an error is logged and the
        call goes on, without it ``PluginError`` names the plugin that raised."""
        results = []
        for impl in reversed(caller.get_hookimpls()):
            try:
                result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
            except Exception as exc:
                if not guard:
                    raise PluginError(impl.plugin_name, caller.name, exc) from exc
                log.exception("plugin %r raised in %s; skipped", impl.plugin_name, caller.name)
                continue
            results.append((impl.plugin_name, result))
        return results

    def _registry(self, caller: pluggy.HookCaller, what: str) -> dict[str, tuple[str, Any]]:
        """Ask every plugin to register factories; refuse one name registered twice."""
        registry: dict[str, tuple[str, Callable[[Host], Any]]] = {}
        for impl in reversed(caller.get_hookimpls()):
            def register(name: str, factory: Callable[[Host], Any], _plugin: str = impl.plugin_name) -> None:
                if name in registry:
                    raise PluginError(_plugin, caller.name, ValueError(
                        f"{what} {name!r} is registered by both {registry[name][0]!r} and {_plugin!r}"))
                registry[name] = (_plugin, factory)
            impl.function(**{"register": register} if "register" in impl.argnames else {})
        return registry
