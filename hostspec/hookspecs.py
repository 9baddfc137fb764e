"""The hook specifications: the whole contract between the host and its plugins.

A plugin is a module (or object) with functions marked ``@hostspec.hookimpl`` whose names match the
specs below; it may implement any subset and accept any subset of each spec's arguments. Plugins are
found through the ``hostspec`` entry-point group of installed distributions::

    [project.entry-points.hostspec]
    mybroker = "mybroker.plugin"

Hooks are always called with keyword arguments, from the host's main thread unless a spec says
otherwise. Unless a spec says otherwise, an exception raised by an implementation is reported with
the plugin's name and stops the host's start (configure, startup) or is logged and skipped
(shutdown, events): a plugin never takes the others down with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hostspec.broker import Broker
from hostspec.calendar import MarketCalendar
from hostspec.commands import Command
from hostspec.config import Config, Section
from hostspec.host import Host
from hostspec.markers import PROJECT, hookspec
from hostspec.model import Event
from hostspec.store import StateStore

__all__ = ["PROJECT", "BrokerFactory", "StoreFactory", "hookspec"]

BrokerFactory = Callable[[Host], Broker]
"""Makes the broker from the running host (its ``config`` and ``read_only`` flag)."""
StoreFactory = Callable[[Host], StateStore]
"""Makes the state store from the running host."""


@hookspec
def hostspec_config_schema() -> Mapping[str, Section] | None:
    """Declare the configuration sections this plugin reads.

    Return a mapping of section path to a settings dataclass, for example
    ``{"broker.mybroker": MyBrokerSettings}``: a frozen dataclass whose fields are
    ``hostspec.config.setting(default, help, minimum=...)``, typed ``bool``, ``int``, ``float``,
    ``str``, an ``Enum`` (its values are the choices) or ``tuple[str, ...]``, each optionally
    ``| None``. Read it back, typed, with ``host.config.get(MyBrokerSettings)``. (A raw
    ``hostspec.config.Schema`` of ``Option`` objects is accepted too.)

    The host validates the YAML file against the union of all sections before anything starts: an
    unknown key, a key written twice, a value of the wrong type or a number that is not finite
    stops the host with exit status 2 and a message naming the file and the key. Defaults fill in
    omitted keys. Rules across fields go in the settings class, as ``def check(self) -> None``
    raising ``hostspec.config.SettingError(field, message)``; it runs when the file is loaded.

    Return a dict literal with the section paths written out, as above: when your plugin is not
    loaded (``plugins.disabled``, ``TRADEHOST_DISABLE_PLUGINS``, or it fails to import) the host
    reads those paths from this function's source, without importing the plugin, and leaves those
    sections of the file unread while refusing every other unknown key. If the source does not say
    (the paths are computed, or the hook is defined in another module than the entry point's), the
    only section left unread is the top-level one named after your entry point.

    Called once, before ``hostspec_configure``.
    """


@hookspec
def hostspec_configure(config: Config) -> None:
    """Receive the validated configuration, before any broker or store exists.

    Raise ``hostspec.errors.ConfigError`` for a value that is well-typed but unusable: the host
    reports it as a configuration error (exit status 2).
    """


@hookspec
def hostspec_register_brokers(register: Callable[[str, BrokerFactory], None]) -> None:
    """Register broker factories by name: ``register("kite", make_kite_broker)``.

    ``broker.name`` in the configuration picks one; the host calls only that factory, with the
    running ``Host`` (whose ``config`` holds the broker's own section ``broker.<name>`` and whose
    ``read_only`` flag says whether the caller may change anything). The factory returns an object
    satisfying ``hostspec.broker.Broker``. It must read secrets from the environment, never from the
    configuration, and a missing secret is an error naming the variable, never its value.

    Two plugins registering one name is a startup error naming both.
    """


@hookspec(firstresult=True)
def hostspec_market_calendar(config: Config) -> MarketCalendar | None:
    """Say which market calendar the configured broker's markets follow.

    A broker plugin returns its calendar (``hostspec.calendar.MarketCalendar``) when
    ``config.broker.name`` is one of its brokers, and None otherwise; the first answer wins. The
    reconciler uses it to know each order's trading date and when a trading day has ended. A host
    whose broker brings no calendar reconciles without trading days (no rollover).

    Called once per host, after ``hostspec_configure``; raise ``ConfigError`` for unusable settings.
    """


@hookspec
def hostspec_register_stores(register: Callable[[str, StoreFactory], None]) -> None:
    """Register state-store factories by name: ``register("tinydb", make_store)``.

    ``store.name`` in the configuration picks one; the factory receives the ``Host`` and returns an
    object satisfying ``hostspec.store.StateStore``. With ``host.read_only`` the store must open its
    data without changing it (an operator command reading while the host runs).
    """


@hookspec
def hostspec_register_commands(register: Callable[[Command], None]) -> None:
    """Add subcommands to ``tradehost``: ``register(Command(name="recon", ...))``.

    See ``hostspec.commands.Command``. Called once while the command line is built.
    """


@hookspec
def hostspec_startup(host: Host) -> None:
    """The host is up: configuration validated, broker and store created.

    Start background work here (threads of your own), and return promptly. ``host.stop_requested``
    is a ``threading.Event`` set when the host begins to stop.
    """


@hookspec
def hostspec_shutdown(host: Host) -> None:
    """The host is stopping: stop your threads and flush your files within a few seconds.

    Every implementation is called even if another raises; the broker and store are closed after
    the last one returns.
    """


@hookspec
def hostspec_handle_event(event: Event, host: Host) -> None:
    """An event sink: receive every event the host's plugins announce (``host.emit``).

    Called on the thread that emitted the event (for reconciliation events, the reconciler's worker
    thread, never inside a running event loop: a sink may call ``asyncio.run`` for an async client):
    keep it fast, and hand slow work to a queue of your own. Every implementation receives every
    event; one that raises (anything, ``SystemExit`` included) is logged with its name and skipped,
    and the others still receive the event. The same event (same ``event_id``) may arrive twice
    around a crash.
    """

