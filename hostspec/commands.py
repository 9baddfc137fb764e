"""Subcommands that plugins add to ``tradehost`` (see ``hostspec_register_commands``).

One pattern for every command: a leaf ``Command`` has a ``run``; a group (``tradehost recon``) has
``subcommands`` instead, and the command line dispatches to the leaf the user named. Options that
many commands share (``--config``) are declared here once and asked for by a flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hostspec.host import Host


class HostOpener(Protocol):
    """What a command receives to reach the configured plugins (the reference host's ``App``)."""

    def open_host(self, config_path: str | Path, *, read_only: bool = False, with_broker: bool = True) -> Host:
        """Load and validate ``config_path`` and create its store and (unless ``with_broker`` is false,
        for commands that only read local state) its broker. Use it as a context manager, so that both
        are closed: ``with app.open_host(args.config, read_only=True) as host: ...``.

        Raises ``hostspec.errors.ConfigError`` for anything the user must fix in the file or the
        environment."""
        ...


Run = Callable[[argparse.Namespace, HostOpener], int]
Setup = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class Command:
    """One ``tradehost`` subcommand, or a group of them.

    - ``setup(parser)`` adds the command's own arguments;
    - ``run(args, app)`` does the work and returns the exit status: 0 success, 1 "found something"
      where that has a meaning (``recon check``), 2 bad input or configuration. Raise a
      ``hostspec.errors.HostError`` to end with its one-line message and its ``exit_status``;
    - ``subcommands``: for a group (``tradehost recon status``), the commands under it; a group has
      no ``run`` of its own;
    - ``uses_config``: the command takes the shared ``--config PATH`` option (``args.config``).
    """

    name: str
    help: str
    setup: Setup | None = None
    run: Run | None = None
    subcommands: tuple[Command, ...] = ()
    uses_config: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if (self.run is None) == (not self.subcommands):
            raise ValueError(f"command {self.name!r} needs either run or subcommands (not both)")

    def add_to(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        """Add this command (and any subcommands) to an argparse sub-parser group."""
        parser = subparsers.add_parser(self.name, help=self.help, description=self.description or self.help)
        if self.uses_config:
            add_config_option(parser)
        if self.setup is not None:
            self.setup(parser)
        if self.subcommands:
            group = parser.add_subparsers(dest=f"{self.name}_action", metavar="ACTION", required=True)
            for sub in self.subcommands:
                sub.add_to(group)
        else:
            parser.set_defaults(command_to_run=self)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """The shared ``--config PATH`` option."""
    parser.add_argument("--config", required=True, metavar="PATH", help="the YAML configuration file")
