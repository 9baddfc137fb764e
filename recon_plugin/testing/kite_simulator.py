"""The Kite Connect simulator's public names (the package ``recon_plugin.testing.kite_sim`` holds it,
one concern a module; the simulator's behaviour is described in ``kite_sim.simulator``)."""

from __future__ import annotations

from recon_plugin.testing.kite_sim.entry import AUTO_PROTECTION, BAD_TAG, NO_MARKET_PROTECTION
from recon_plugin.testing.kite_sim.limits import ORDERS_PER_MINUTE, ORDERS_PER_SECOND, PER_ENDPOINT_PER_SECOND
from recon_plugin.testing.kite_sim.simulator import KiteSimulator
from recon_plugin.testing.kite_sim.walks import Pace
from recon_plugin.testing.kite_sim.wire import (
    AMO_IN_SESSION,
    AMO_STATUS,
    FAULTS,
    IST,
    PENDING_STEPS,
    RMS_MARGIN,
    SIM_ACCESS_TOKEN,
    SIM_API_KEY,
    SQUARE_OFF_PLACED_BY,
    TERMINAL,
    UNKNOWN_ORDER,
    USER_ID,
    Fault,
    kite_time,
)
from recon_plugin.testing.kite_sim.wire import error as _error

__all__ = [
    "AMO_IN_SESSION", "AMO_STATUS", "AUTO_PROTECTION", "BAD_TAG", "FAULTS", "IST", "NO_MARKET_PROTECTION",
    "ORDERS_PER_MINUTE", "ORDERS_PER_SECOND", "PENDING_STEPS", "PER_ENDPOINT_PER_SECOND", "RMS_MARGIN",
    "SIM_ACCESS_TOKEN", "SIM_API_KEY", "SQUARE_OFF_PLACED_BY", "TERMINAL", "UNKNOWN_ORDER", "USER_ID", "Fault",
    "KiteSimulator", "Pace", "_error", "kite_time",
]
