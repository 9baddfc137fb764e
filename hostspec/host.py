"""The reference host: builds the plugin manager, validates configuration, creates the chosen broker
and store, and fans events out to every sink.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from hostspec import hookspecs
from hostspec.broker import Broker
from hostspec.commands import Command
from hostspec.config import Config, ConfigError, disabled_plugins, merge_schemas, read_yaml, validate
from hostspec.hookspecs import PROJECT
from hostspec.model import Event, Mode
from hostspec.store import StateStore

ENTRY_POINT_GROUP = "hostspec"
DISABLE_ENV = "TRADEHOST_DISABLE_PLUGINS"
log = logging.getLogger("tradehost")


class PluginError(Exception):
    """A plugin raised where the host cannot go on; names the plugin."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {type(error).__name__}: {error}")
        self.plugin = plugin
        self.error = error


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


@dataclass
class Plugins:
    """A plugin manager together with where each plugin came from and what failed to load."""

    pm: pluggy.PluginManager
    infos: dict[str, PluginInfo] = field(default_factory=dict)
    failures: list[LoadFailure] = field(default_factory=list)
    blocked: tuple[str, ...] = ()

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


def env_disabled() -> list[str]:
    """Plugin names listed in ``TRADEHOST_DISABLE_PLUGINS`` (comma- or space-separated)."""
    return [n for n in os.environ.get(DISABLE_ENV, "").replace(",", " ").split() if n]


def load_plugins(disabled: Iterable[str] = (), load_entrypoints: bool = True,
                 extra: Iterable[tuple[str, object]] = ()) -> Plugins:
    """Build the plugin manager: add the specs, block ``disabled`` names, load the ``hostspec``
    entry points one by one (a plugin that fails to import or register is recorded and skipped, not
    fatal), register ``extra`` in-process plugins, then ``check_pending()``.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = tuple(dict.fromkeys(disabled))
    for name in blocked:
        pm.set_blocked(name)
    plugins = Plugins(pm, blocked=blocked)
    if load_entrypoints:
        for dist in importlib.metadata.distributions():
            for ep in dist.entry_points:
                if ep.group != ENTRY_POINT_GROUP or pm.get_plugin(ep.name) or pm.is_blocked(ep.name):
                    continue
                dist_name = dist.metadata["name"] or "?"
                try:
                    module = ep.load()
                    pm.register(module, name=ep.name)
                except Exception as exc:
                    log.warning("plugin %r from %s could not be loaded and is skipped: %s: %s",
                                ep.name, dist_name, type(exc).__name__, exc)
                    plugins.failures.append(LoadFailure(ep.name, dist_name, f"{type(exc).__name__}: {exc}"))
                    continue
                plugins.infos[ep.name] = PluginInfo(ep.name, dist_name, dist.version, ())
    for name, plugin in extra:
        if not pm.is_blocked(name):
            pm.register(plugin, name=name)
    _check_pending(plugins)
    return plugins


def _check_pending(plugins: Plugins) -> None:
    """``check_pending()``, unregistering (and reporting) each plugin that implements an unknown hook."""
    while True:
        try:
            plugins.pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = plugins.pm.get_name(exc.plugin) or "?"
            plugins.pm.unregister(exc.plugin)
            info = plugins.infos.pop(name, None)
            plugins.failures.append(LoadFailure(name, info.distribution if info else "?", str(exc)))
            log.warning("plugin %r is skipped: %s", name, exc)


def call_each(pm: pluggy.PluginManager, hook_name: str, guard: bool = False,
              **kwargs: Any) -> list[tuple[str, Any]]:
    """Call every implementation of a hook separately, in pluggy's order.

    Unlike ``pm.hook.x()``, one implementation raising does not hide the others: with ``guard`` the
    error is logged with the plugin's name and the call goes on; without it, ``PluginError`` names
    the plugin that raised.
    """
    results = []
    for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
        try:
            result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        except Exception as exc:
            if not guard:
                raise PluginError(impl.plugin_name, hook_name, exc) from exc
            log.exception("plugin %r raised in %s; skipped", impl.plugin_name, hook_name)
            continue
        results.append((impl.plugin_name, result))
    return results


def collect_registry(pm: pluggy.PluginManager, hook_name: str, what: str) -> dict[str, tuple[str, Callable]]:
    """Ask every plugin to register factories; refuse one name registered twice."""
    registry: dict[str, tuple[str, Callable]] = {}
    for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
        def register(name: str, factory: Callable, _plugin: str = impl.plugin_name) -> None:
            if name in registry:
                raise PluginError(_plugin, hook_name, ValueError(
                    f"{what} {name!r} is registered by both {registry[name][0]!r} and {_plugin!r}"))
            registry[name] = (_plugin, factory)
        impl.function(**{"register": register} if "register" in impl.argnames else {})
    return registry


class Host:
    """The running host, as plugins see it in ``hostspec_startup`` and ``hostspec_shutdown``."""

    def __init__(self, plugins: Plugins, config: Config, read_only: bool = False) -> None:
        self.plugins = plugins
        self.pm = plugins.pm
        self.config = config
        self.read_only = read_only
        self.stop_requested = threading.Event()
        self.broker: Broker | None = None
        self.store: StateStore | None = None
        self.sink_failures = Counter[str]()
        self._emit_lock = threading.Lock()

    @property
    def mode(self) -> Mode:
        return self.config.mode

    def emit(self, event: Event) -> None:
        """Send an event to every ``hostspec_handle_event`` implementation; a sink that raises is
        logged and counted, and the rest still receive the event."""
        for impl in reversed(self.pm.hook.hostspec_handle_event.get_hookimpls()):
            try:
                impl.function(**{k: v for k, v in (("event", event), ("host", self)) if k in impl.argnames})
            except Exception:
                with self._emit_lock:
                    self.sink_failures[impl.plugin_name] += 1
                log.exception("event sink %r raised on %s %s; skipped", impl.plugin_name, event.kind, event.event_id)

    def close(self) -> None:
        """Close the broker and the store (each guarded)."""
        for part in (self.broker, self.store):
            if part is None:
                continue
            try:
                part.close()
            except Exception:
                log.exception("closing %s failed", getattr(part, "name", part))


class App:
    """What the command line needs: plugins loaded once for listing and commands, and hosts opened
    from a configuration file."""

    def __init__(self, extra_plugins: Iterable[tuple[str, object]] = ()) -> None:
        self.extra_plugins = list(extra_plugins)
        self.plugins = load_plugins(env_disabled(), extra=self.extra_plugins)

    def commands(self) -> list[Command]:
        found: list[Command] = []
        call_each(self.plugins.pm, "hostspec_register_commands", register=found.append)
        return found

    def open_host(self, config_path: str | Path, read_only: bool = False,
                  extra_plugins: Iterable[tuple[str, object]] = (), with_broker: bool = True) -> Host:
        """Load and validate ``config_path``, load the plugins it allows, create its store and (unless
        ``with_broker`` is false, for commands that only read local state) its broker.

        Raises ``ConfigError`` for anything the user must fix in the file or the environment.
        """
        path = Path(config_path)
        raw = read_yaml(path)
        disabled = [*env_disabled(), *disabled_plugins(raw, path)]
        plugins = load_plugins(disabled, extra=[*self.extra_plugins, *extra_plugins])
        try:
            sections = [(name, result) for name, result in call_each(plugins.pm, "hostspec_config_schema")
                        if result]
            schema = merge_schemas(sections)
        except (PluginError, ValueError) as exc:
            raise ConfigError(path, "", str(exc)) from exc
        config = Config(validate(raw, schema, path, lenient_sections=bool(disabled)), path)
        try:
            call_each(plugins.pm, "hostspec_configure", config=config)
            brokers = collect_registry(plugins.pm, "hostspec_register_brokers", "broker")
            stores = collect_registry(plugins.pm, "hostspec_register_stores", "store")
        except PluginError as exc:
            if isinstance(exc.error, ConfigError):
                raise exc.error from exc
            raise ConfigError(path, "", str(exc)) from exc
        broker_factory = _choose(brokers, config["broker"]["name"], "broker", path)
        store_factory = _choose(stores, config["store"]["name"], "store", path)
        host = Host(plugins, config, read_only=read_only)
        try:
            host.store = store_factory(host)
            if with_broker:
                host.broker = broker_factory(host)
        except Exception:
            host.close()
            raise
        return host


def _choose(registry: dict[str, tuple[str, Callable]], name: str, what: str, path: Path) -> Callable:
    if name not in registry:
        installed = ", ".join(sorted(registry)) or "none"
        raise ConfigError(path, f"{what}.name", f"unknown {what} {name!r} (installed: {installed})")
    return registry[name][1]
