"""The Kite simulator broker (registered as ``kite-sim``) and the ``tradehost kite-sim`` command.

The live demo runs the host in LIVE mode through the real ``kiteconnect`` client over real HTTP,
with nothing leaving the machine: this broker starts the Kite Connect simulator in this process and
returns a real ``KiteBroker`` talking to it over loopback. It is a broker of its own, chosen by name
(``broker.name: kite-sim``), so that the real Kite broker has no switch that starts a fake: a
configuration naming ``kite`` always talks to the configured API root.

The simulator evolves orders by itself (acknowledgements, fills, some rejections and cancels) and
plays a scenario for reconciliation to find: an order placed "from another app" 6 s after start and
a position drift 4 s later. The broker receives order updates through the simulator's WebSocket
(``broker.kite-sim.push``, on by default), as the Kite broker does from Kite's. Closing the broker
stops the simulator.

Like the Kite broker's plugin, this module imports ``kiteconnect`` (and with it Twisted) only when
a broker is made, so a paper host never loads it; it never imports pytest.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hostspec import hookimpl
from hostspec.calendar import MarketCalendar
from hostspec.commands import Command, HostOpener
from hostspec.config import Config, Section, setting
from hostspec.hookspecs import BrokerFactory
from hostspec.host import Host
from recon_plugin.calendars.india import IndiaCalendar

if TYPE_CHECKING:  # each imports kiteconnect's companions or a server: only when a broker is made
    from recon_plugin.brokers.kite.broker import KiteBroker
    from recon_plugin.testing.kite_simulator import KiteSimulator

log = logging.getLogger(__name__)
DEMO_API_KEY = "sim_api_key"  # what the simulator accepts when no variable is named (the simulator's defaults)
DEMO_ACCESS_TOKEN = "sim_access_token"
EXTERNAL_ORDER_AFTER_SECONDS = 6.0
DRIFT_AFTER_SECONDS = 4.0  # after the external order: 10 s from start
DRIFT_SYMBOL = "HDFCBANK"

@dataclass(frozen=True)
class KiteSimSettings:
    """The ``broker.kite-sim`` section."""

    api_key_env: str | None = setting(None, "environment variable holding the API key the simulator accepts and "
                                            "the client sends (null: a fixed demo key)")
    access_token_env: str | None = setting(None, "environment variable holding the access token (null: a fixed "
                                                 "demo token)")
    timeout_seconds: float = setting(2.0, "HTTP timeout per request", minimum=0.1)
    push: bool = setting(True, "order updates pushed through the simulator's WebSocket (Kite's protocol)")


def _from_env(variable: str | None, default: str) -> str:
    return (os.environ.get(variable) if variable else None) or default


def start_demo_simulator(api_key: str, access_token: str, host: Host) -> KiteSimulator:
    """An automatic simulator in this process, with an external order and a position drift
    scheduled so that the live demo has them to find (unless the host stops first). It lives on the
    host's clock and calendar, so the demo's broker and reconciler see the same trading days."""
    from recon_plugin.calendars.days import SessionCalendar
    from recon_plugin.testing.kite_simulator import KiteSimulator

    calendar = host.calendar if isinstance(host.calendar, SessionCalendar) else None
    sim = KiteSimulator(api_key=api_key, access_token=access_token, auto=True, tick_seconds=1.0, seed=3,
                        clock=host.clock, calendar=calendar)
    url = sim.start()

    def scenario() -> None:
        if host.stop_requested.wait(EXTERNAL_ORDER_AFTER_SECONDS):
            return
        sim.add_order(symbol="TCS", side="SELL", quantity=15, status="OPEN PENDING")  # from another app
        log.info("kite-sim: an order was placed from another app")
        if host.stop_requested.wait(DRIFT_AFTER_SECONDS):
            return
        # an instrument the demo flow does not trade: its fills never move the figures being watched
        sim.adjust_position("NSE", DRIFT_SYMBOL, "CNC", 5)
        log.info("kite-sim: 5 %s moved into CNC outside the order book (a product conversion)", DRIFT_SYMBOL)

    threading.Thread(target=scenario, name="kite-sim-scenario", daemon=True).start()
    log.info("kite-sim: simulating Kite Connect at %s (live mode, nothing leaves this machine)", url)
    return sim


def open_kite_sim_broker(host: Host) -> KiteBroker:
    """A real ``KiteBroker`` talking over loopback to a simulator started for it; closing the broker
    stops the simulator."""
    from recon_plugin.brokers.kite.broker import KiteBroker, PushingKiteBroker

    settings = host.config.get(KiteSimSettings)
    api_key = _from_env(settings.api_key_env, DEMO_API_KEY)
    token = _from_env(settings.access_token_env, DEMO_ACCESS_TOKEN)
    sim = start_demo_simulator(api_key, token, host)
    try:
        if settings.push:
            return PushingKiteBroker(api_key, token, sim.url, settings.timeout_seconds, ws_root=sim.ws_url,
                                     on_close=sim.stop)
        return KiteBroker(api_key, token, sim.url, settings.timeout_seconds, on_close=sim.stop)
    except BaseException:
        sim.stop()
        raise


@hookimpl
def hostspec_config_schema() -> Mapping[str, Section]:
    return {"broker.kite-sim": KiteSimSettings}


@hookimpl
def hostspec_market_calendar(config: Config) -> MarketCalendar | None:
    """The simulator plays Kite: the Indian markets' calendar."""
    return IndiaCalendar.from_config(config) if config.broker.name == "kite-sim" else None


@hookimpl
def hostspec_register_brokers(register: Callable[[str, BrokerFactory], None]) -> None:
    register("kite-sim", open_kite_sim_broker)


# -- tradehost kite-sim ------------------------------------------------------------------------------

def _setup_sim(parser: argparse.ArgumentParser) -> None:
    from recon_plugin.testing.kite_simulator import FAULTS

    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765; 0: any)")
    parser.add_argument("--ws-port", type=int, default=0,
                        help="port of the WebSocket of order updates on 127.0.0.1 (default 0: any; printed)")
    parser.add_argument("--auto", action="store_true", help="evolve orders by themselves (ack, fills, cancels)")
    parser.add_argument("--api-key", default=DEMO_API_KEY, help="the API key it accepts")
    parser.add_argument("--access-token", default=DEMO_ACCESS_TOKEN, help="the access token it accepts")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--no-rate-limits", action="store_true",
                        help="never answer 429 (Kite's: 10 requests/s per endpoint, 10 orders/s, 200 orders/min)")
    parser.add_argument("--unprotected-market-orders", action="store_true",
                        help="accept MARKET and SL-M orders without market_protection (Kite refuses them)")
    parser.epilog = "Faults it can inject (from Python: sim.inject(name)): " + "; ".join(
        f"{k}: {v}" for k, v in FAULTS.items())


def _run_sim(args: argparse.Namespace, app: HostOpener) -> int:
    from recon_plugin.testing.kite_simulator import KiteSimulator

    sim = KiteSimulator(api_key=args.api_key, access_token=args.access_token, auto=args.auto,
                        rate_limits=not args.no_rate_limits,
                        require_market_protection=not args.unprotected_market_orders)
    url = sim.start(args.port, args.ws_port)
    print(f"kite-sim: serving Kite Connect at {url} (root for the client), order updates at {sim.ws_url} "
          f"(ws_root); API key {args.api_key!r}, "
          f"access token {args.access_token!r}; Ctrl-C to stop", flush=True)
    done = threading.Event()
    try:
        done.wait(args.duration)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


@hookimpl
def hostspec_register_commands(register: Callable[[Command], None]) -> None:
    register(Command("kite-sim", "serve a local Kite Connect simulator for tests and demos", _setup_sim, _run_sim))
