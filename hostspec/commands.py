"""Subcommands that plugins add to ``tradehost`` (see ``hostspec_register_commands``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hostspec.host import App


@dataclass(frozen=True)
class Command:
    """One ``tradehost`` subcommand.

    - ``setup(parser)`` adds arguments (and, for a group like ``recon``, its own subparsers);
    - ``run(args, app)`` does the work and returns the exit status: 0 success, 1 "found something"
      where that has a meaning (``recon check``), 2 bad input or configuration. ``app`` opens the
      configuration and the plugins' broker and store (``app.open_host(path, read_only=True)``).
    """

    name: str
    help: str
    setup: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, App], int]
