"""What the command line needs: the plugins loaded once (to list them and their commands), and hosts
opened from a configuration file with the plugins that file allows."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from hostspec.calendar import Clock
from hostspec.commands import Command
from hostspec.config import Config, disabled_plugins, merge_schemas, read_yaml, validate
from hostspec.errors import ConfigError, PluginError
from hostspec.host import Host
from hostspec.manager import PluginManager, env_disabled

F = TypeVar("F", bound=Callable[..., object])


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
        disabled = [*env_disabled(), *disabled_plugins(raw, path)]
        plugins = PluginManager(disabled, extra=[*self.extra_plugins, *extra_plugins])
        try:
            schema, declared = merge_schemas(plugins.config_sections())
        except (PluginError, ValueError) as exc:
            raise ConfigError(path, "", str(exc)) from exc
        config = Config(validate(raw, schema, path, lenient_sections=bool(disabled)), path, declared)
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


def _choose(registry: dict[str, tuple[str, F]], name: str, what: str, path: Path) -> F:
    if name not in registry:
        installed = ", ".join(sorted(registry)) or "none"
        raise ConfigError(path, f"{what}.name", f"unknown {what} {name!r} (installed: {installed})")
    return registry[name][1]
