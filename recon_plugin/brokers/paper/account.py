"""The paper account file: only the exchange's inputs (seed, clock start and tick length, every order
placed with its script and trading date, every cancel request), written atomically, only on place
and cancel. It lives through trading days: orders of ended days stay in it (their positions roll
overnight from them), they only leave the book.

Format 1 throughout: an order's ``trading_date`` (``YYYY-MM-DD``) was added with trading days and is
optional, so an older file reads as it was (its orders' dates are derived from their placement)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from hostspec.broker import BrokerError, FailureKind
from hostspec.model import utcnow
from recon_plugin.atomicfile import atomic_write

FORMAT_VERSION = 1


def new_account(seed: int, tick_seconds: float, started_at: datetime | None = None) -> dict[str, Any]:
    """A fresh account: no orders, the simulated clock starting at ``started_at`` (default now)."""
    return {"format": FORMAT_VERSION, "seed": seed, "tick_seconds": tick_seconds,
            "started_at": (started_at or utcnow()).isoformat(), "next_seq": 1, "orders": {}}


def save_account(path: Path, account: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(account, indent=1).encode())


def load_account(path: Path) -> dict[str, Any] | None:
    """The account in ``path``; None when there is none yet. ``BrokerError`` (unreadable) when the file
    is not an account of this format: never read as an empty account."""
    try:
        account = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise BrokerError(f"paper account {path} is not readable JSON: {exc}",
                          FailureKind.UNREADABLE) from None
    if not isinstance(account, dict) or account.get("format") != FORMAT_VERSION:
        found = account.get("format") if isinstance(account, dict) else type(account).__name__
        raise BrokerError(f"paper account {path} has format {found}; expected {FORMAT_VERSION}",
                          FailureKind.UNREADABLE)
    return account
