"""The Kite Connect broker plugin (registered as ``kite``) and its login helper.

``kiteconnect`` (and with it Twisted) is imported only when a Kite broker or command is actually
used, so paper mode never loads it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from hostspec import hookimpl
from hostspec.broker import Broker
from hostspec.calendar import MarketCalendar
from hostspec.commands import Command, HostOpener
from hostspec.config import Config, Section
from hostspec.hookspecs import BrokerFactory
from hostspec.host import Host
from recon_plugin.brokers.kite.settings import KiteSettings
from recon_plugin.calendars.india import IndiaCalendar


@hookimpl
def hostspec_config_schema() -> Mapping[str, Section]:
    return {"broker.kite": KiteSettings}


@hookimpl
def hostspec_market_calendar(config: Config) -> MarketCalendar | None:
    """Kite trades the Indian exchanges: it follows their calendar."""
    return IndiaCalendar.from_config(config) if config.broker.name == "kite" else None


def open_kite(host: Host) -> Broker:
    from recon_plugin.brokers.kite.broker import open_kite_broker

    return open_kite_broker(host)


@hookimpl
def hostspec_register_brokers(register: Callable[[str, BrokerFactory], None]) -> None:
    register("kite", open_kite)


# -- tradehost kite login ----------------------------------------------------------------------------

def _setup_login(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--request-token", metavar="TOKEN", help="the request_token from the login redirect")
    parser.add_argument("--token-file", metavar="PATH", type=Path,
                        help="write the access token to this file (mode 0600) instead of printing an export line")


def _login(args: argparse.Namespace, app: HostOpener) -> int:
    from kiteconnect import KiteConnect

    from recon_plugin.brokers.kite.broker import classify, secret_from_env

    with app.open_host(args.config, read_only=True, with_broker=False) as host:
        settings, path = host.config.get(KiteSettings), host.config.path
    api_key = secret_from_env(settings.api_key_env, "broker.kite.api_key_env", path)
    kite = KiteConnect(api_key=api_key, root=settings.root, timeout=settings.timeout_seconds)
    if not args.request_token:
        print(f"1. Log in at: {kite.login_url()}")
        print("2. Copy request_token from the redirect URL, then run:")
        print(f"   tradehost kite login --config {args.config} --request-token TOKEN")
        return 0
    secret = secret_from_env(settings.api_secret_env, "broker.kite.api_secret_env", path)
    try:
        session = kite.generate_session(args.request_token, api_secret=secret)
    except Exception as exc:
        print(f"kite login: {classify('POST /session/token', exc)}", file=sys.stderr)
        return 1
    token = str(session["access_token"])
    if args.token_file:
        from recon_plugin.atomicfile import atomic_write

        atomic_write(args.token_file, token.encode())
        print(f"kite login: access token written to {args.token_file} (mode 0600); set "
              f"broker.kite.access_token_file to it, and a running host picks it up by itself")
    else:
        print("kite login: export this in the shell that runs tradehost (valid until 6 AM tomorrow):")
        print(f"export {settings.access_token_env}={token}")
    return 0


KITE_COMMAND = Command("kite", "Kite Connect helpers (login for today's access token)", subcommands=(
    Command("login", "get today's access token", _setup_login, _login, uses_config=True,
            description="Without --request-token: print the Kite login URL. After logging in there, Kite "
                        "redirects to your app with ?request_token=...; run again with it to exchange it for "
                        "an access token (the API secret is read from the environment variable named by "
                        "broker.kite.api_secret_env)."),
))


@hookimpl
def hostspec_register_commands(register: Callable[[Command], None]) -> None:
    register(KITE_COMMAND)
