"""The host contract: hook specifications, the canonical model and a small reference host.

Third-party plugins need only ``hostspec.hookimpl``::

    from hostspec import hookimpl

    @hookimpl
    def hostspec_register_brokers(register):
        register("mybroker", make_my_broker)

and an entry point in the ``hostspec`` group. The specs and their contracts are in
``hostspec.hookspecs``; the broker and store protocols in ``hostspec.broker`` and ``hostspec.store``.
"""

from hostspec.broker import (
    Broker,
    BrokerError,
    FailureKind,
    HoldingsBroker,
    PushingBroker,
    PushSink,
    TaggingBroker,
    TradesBroker,
)
from hostspec.commands import Command, HostOpener
from hostspec.config import Config, Option, setting
from hostspec.errors import ConfigError, HostError, PluginError, ResourceBusyError
from hostspec.host import Host
from hostspec.markers import PROJECT, hookimpl, hookspec
from hostspec.model import (
    BrokerOrder,
    ChangeSet,
    Event,
    Fill,
    Holding,
    JournalEntry,
    LedgerEntry,
    LocalState,
    Mode,
    Order,
    OrderStatus,
    Position,
    Side,
    Trade,
)
from hostspec.store import ConflictError, StateStore, StoreError

__all__ = [
    "PROJECT",
    "Broker",
    "BrokerError",
    "BrokerOrder",
    "ChangeSet",
    "Command",
    "Config",
    "ConfigError",
    "ConflictError",
    "Event",
    "FailureKind",
    "Fill",
    "Holding",
    "HoldingsBroker",
    "Host",
    "HostError",
    "HostOpener",
    "JournalEntry",
    "LedgerEntry",
    "LocalState",
    "Mode",
    "Option",
    "Order",
    "OrderStatus",
    "PluginError",
    "Position",
    "PushSink",
    "PushingBroker",
    "ResourceBusyError",
    "Side",
    "StateStore",
    "StoreError",
    "TaggingBroker",
    "Trade",
    "TradesBroker",
    "hookimpl",
    "hookspec",
    "setting",
]
