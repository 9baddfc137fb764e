"""The paper broker as a ``hostspec`` plugin (registered as ``paper``): its config section, its
factory and its ``tradehost paper`` command."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hostspec import hookimpl
from hostspec.calendar import MarketCalendar
from hostspec.commands import Command
from hostspec.config import Config, Section
from hostspec.hookspecs import BrokerFactory
from hostspec.host import Host
from recon_plugin.brokers.paper.commands import PAPER_COMMAND
from recon_plugin.brokers.paper.exchange import PaperExchange
from recon_plugin.brokers.paper.settings import PaperSettings, account_path
from recon_plugin.calendars.days import SessionCalendar
from recon_plugin.calendars.india import IndiaCalendar


def open_paper(host: Host) -> PaperExchange:
    """The paper broker of ``host``'s configuration (``ResourceBusyError`` while another host writes it),
    on the host's clock and calendar: the exchange and the reconciler live through the same days."""
    settings = host.config.get(PaperSettings)
    calendar = host.calendar if isinstance(host.calendar, SessionCalendar) else IndiaCalendar.from_config(host.config)
    return PaperExchange(account_path(host.config), seed=settings.seed, tick_seconds=settings.tick_seconds,
                         reject_rate=settings.reject_rate, cancel_rate=settings.cancel_rate,
                         read_only=host.read_only, clock=host.clock, calendar=calendar,
                         market_hours=settings.market_hours)


@hookimpl
def hostspec_config_schema() -> Mapping[str, Section]:
    return {"broker.paper": PaperSettings}


@hookimpl
def hostspec_market_calendar(config: Config) -> MarketCalendar | None:
    """The paper exchange simulates the Indian markets: it follows their calendar."""
    return IndiaCalendar.from_config(config) if config.broker.name == "paper" else None


@hookimpl
def hostspec_register_brokers(register: Callable[[str, BrokerFactory], None]) -> None:
    register("paper", open_paper)


@hookimpl
def hostspec_register_commands(register: Callable[[Command], None]) -> None:
    register(PAPER_COMMAND)
