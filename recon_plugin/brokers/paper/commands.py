"""``tradehost paper reset``: start a fresh paper account and local state, keeping the old files."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from hostspec.commands import Command, HostOpener
from hostspec.errors import ConfigError, ResourceBusyError
from recon_plugin.atomicfile import WriterLock
from recon_plugin.brokers.paper.account import new_account, save_account
from recon_plugin.brokers.paper.settings import PaperSettings, account_path
from recon_plugin.stores.tinydb_store import store_files


def _setup_reset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _reset(args: argparse.Namespace, app: HostOpener) -> int:
    with app.open_host(args.config, read_only=True, with_broker=False) as host:
        config, now = host.config, host.clock.now()
    if config.broker.name != "paper":
        raise ConfigError(args.config, "broker.name", "paper reset needs broker.name: paper")
    account, store = account_path(config), Path(config.store.path)
    settings = config.get(PaperSettings)
    if not args.yes:
        if not sys.stdin.isatty():
            print("paper reset: refusing without --yes (no terminal to confirm on)", file=sys.stderr)
            return 2
        answer = input(f"Start a fresh paper account at {account} and empty {store}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("paper reset: nothing changed")
            return 1
    locks = []
    try:
        for path in (account, store):
            locks.append(WriterLock(path))
    except ResourceBusyError as exc:
        print(f"paper reset: {exc}; stop the host first. Nothing changed.", file=sys.stderr)
        return 1
    finally:
        if len(locks) < 2:
            for lock in locks:
                lock.release()
    try:
        for path in (account, *store_files(store)):
            if path.exists():
                backup = path.with_name(path.name + ".bak")
                if backup.is_dir():
                    shutil.rmtree(backup)  # a previous reset's archive: the one before it is kept as is
                path.replace(backup)
        save_account(account, new_account(settings.seed, settings.tick_seconds, now))
    finally:
        for lock in locks:
            lock.release()
    print(f"paper reset: fresh paper account at {account}; local state {store} emptied "
          "(previous files kept with a .bak suffix)")
    return 0


PAPER_COMMAND = Command("paper", "manage the paper trading account", subcommands=(
    Command("reset", "start a fresh paper account and local state (old files kept as .bak)", _setup_reset, _reset,
            uses_config=True,
            description="Start a fresh paper account: no orders, a new simulated clock, and an empty state store "
                        "(its orders belong to the old account). The previous files are renamed to <file>.bak. "
                        "Refuses while a host is running on them."),
))
