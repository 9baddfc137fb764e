"""pytest fixtures for testing against the Kite Connect simulator: ``kite_sim`` and ``kite_client``,
on the clock of ``kite_clock``.

A pytest plugin, registered through the ``pytest11`` entry point of the recon-plugin distribution,
so any test run in an environment where it is installed has the fixtures without a conftest.py
line (``-p no:recon_plugin`` turns them off). It imports pytest, a test-only dependency, which is
why only pytest imports this module: tests take the simulator's credentials from
``recon_plugin.testing.kite_simulator`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from hostspec.calendar import Clock
from recon_plugin.testing.kite_simulator import SIM_ACCESS_TOKEN, SIM_API_KEY, KiteSimulator

if TYPE_CHECKING:
    from kiteconnect import KiteConnect


@pytest.fixture
def kite_clock() -> Clock | None:
    """The clock ``kite_sim`` runs on: None, the system clock. A test module that drives trading days
    overrides this fixture with a ``hostspec.calendar.ManualClock`` and moves it
    (``kite_sim.advance_to(when)``)."""
    return None


@pytest.fixture
def kite_sim(kite_clock: Clock | None) -> Iterator[KiteSimulator]:
    """A Kite Connect simulator on 127.0.0.1 (any free port), driven by the test's hand, on
    ``kite_clock``; it accepts ``SIM_API_KEY`` and ``SIM_ACCESS_TOKEN``. As Kite, it refuses
    unprotected MARKET orders and answers 429 past its rate limits: a test that means otherwise sets
    ``kite_sim.require_market_protection = False`` or ``kite_sim.rate_limits = False``."""
    sim = KiteSimulator(api_key=SIM_API_KEY, access_token=SIM_ACCESS_TOKEN, slow_seconds=1.5, clock=kite_clock)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def kite_client(kite_sim: KiteSimulator) -> KiteConnect:
    """The official ``kiteconnect`` client pointed at ``kite_sim``."""
    from kiteconnect import KiteConnect  # imported when a test asks for it: Twisted comes with it

    return KiteConnect(api_key=SIM_API_KEY, access_token=SIM_ACCESS_TOKEN, root=kite_sim.url, timeout=1)
