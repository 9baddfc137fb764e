"""The Kite Connect broker plugin (registered as ``kite``) and its login helper.

``kiteconnect`` (and with it Twisted) is imported only when a Kite broker or command is actually
used, so paper mode never loads it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hostspec import hookimpl
from hostspec.commands import Command
from hostspec.config import Option, Schema
from hostspec.host import App, Host

SCHEMA: Schema = {
    "api_key_env": Option(str, "KITE_API_KEY", "environment variable holding the API key"),
    "access_token_env": Option(str, "KITE_ACCESS_TOKEN", "environment variable holding the access token"),
    "api_secret_env": Option(str, "KITE_API_SECRET", "environment variable holding the API secret "
                                                     "(tradehost kite login only)"),
    "root": Option(str, "https://api.kite.trade", "API root (a local simulator's URL in tests)"),
    "timeout_seconds": Option(float, 7.0, "HTTP timeout per request", minimum=0.1),
    "access_token_file": Option(str, None, "a file holding the access token, re-read when the session "
                                           "expires (tradehost kite login --token-file writes it)", nullable=True),
}


@hookimpl
def hostspec_config_schema() -> dict[str, Schema]:
    return {"broker.kite": SCHEMA}


def open_kite(host: Host) -> Any:
    from recon_plugin.brokers.kite.broker import open_kite_broker

    return open_kite_broker(host)


@hookimpl
def hostspec_register_brokers(register: Any) -> None:
    register("kite", open_kite)


# -- tradehost kite login ----------------------------------------------------------------------------

def _setup_kite(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kite_command", metavar="ACTION", required=True)
    login = sub.add_parser(
        "login", help="get today's access token",
        description="Without --request-token: print the Kite login URL. After logging in there, Kite "
                    "redirects to your app with ?request_token=...; run again with it to exchange it for "
                    "an access token (the API secret is read from the environment variable named by "
                    "broker.kite.api_secret_env).")
    login.add_argument("--config", required=True, metavar="PATH", help="the YAML configuration file")
    login.add_argument("--request-token", metavar="TOKEN", help="the request_token from the login redirect")
    login.add_argument("--token-file", metavar="PATH", type=Path,
                       help="write the access token to this file (mode 0600) instead of printing an export line")


def _run_kite(args: argparse.Namespace, app: App) -> int:
    from kiteconnect import KiteConnect

    from recon_plugin.brokers.kite.broker import classify, secret_from_env

    host = app.open_host(args.config, read_only=True, with_broker=False)
    host.close()
    section, path = host.config.section("broker.kite"), host.config.path
    api_key = secret_from_env(section["api_key_env"], "broker.kite.api_key_env", path)
    kite = KiteConnect(api_key=api_key, root=section["root"], timeout=section["timeout_seconds"])
    if not args.request_token:
        print(f"1. Log in at: {kite.login_url()}")
        print("2. Copy request_token from the redirect URL, then run:")
        print(f"   tradehost kite login --config {args.config} --request-token TOKEN")
        return 0
    secret = secret_from_env(section["api_secret_env"], "broker.kite.api_secret_env", path)
    try:
        session = kite.generate_session(args.request_token, api_secret=secret)
    except Exception as exc:
        print(f"kite login: {classify('POST /session/token', exc)}", file=sys.stderr)
        return 1
    token = session["access_token"]
    if args.token_file:
        from recon_plugin.atomicfile import atomic_write

        atomic_write(args.token_file, token.encode())
        print(f"kite login: access token written to {args.token_file} (mode 0600); set "
              f"broker.kite.access_token_file to it, and a running host picks it up by itself")
    else:
        print("kite login: export this in the shell that runs tradehost (valid until 6 AM tomorrow):")
        print(f"export {section['access_token_env']}={token}")
    return 0


@hookimpl
def hostspec_register_commands(register: Any) -> None:
    register(Command("kite", "Kite Connect helpers (login for today's access token)", _setup_kite, _run_kite))

