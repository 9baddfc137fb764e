"""The paper broker's ``broker.paper`` section, declared once, and where its account file lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hostspec.config import Config, setting


@dataclass(frozen=True)
class PaperSettings:
    """The ``broker.paper`` section."""

    path: str | None = setting(None, "the paper account file (default: paper-account.json beside the store's file)")
    seed: int = setting(7, "seed of a new account's simulated market and order outcomes")
    tick_seconds: float = setting(1.0, "length of one step of the simulated clock", minimum=0.01)
    reject_rate: float = setting(0.1, "share of new orders the exchange rejects", minimum=0)
    cancel_rate: float = setting(0.1, "share of new orders the exchange cancels after a partial fill", minimum=0)
    market_hours: bool = setting(False, "trade only in the exchange's sessions: an order placed outside one waits "
                                        "for the next open (an AMO); false: the simulated market trades around the "
                                        "clock (each trading day still closes, squares off and rolls over)")


def account_path(config: Config) -> Path:
    configured = config.get(PaperSettings).path
    return Path(configured) if configured else Path(config.store.path).with_name("paper-account.json")
