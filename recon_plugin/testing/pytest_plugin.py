"""pytest fixtures for testing against the Kite Connect simulator.

Use from a conftest.py: ``pytest_plugins = ["recon_plugin.testing.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from recon_plugin.testing.kite_simulator import KiteSimulator

SIM_API_KEY = "simkey_7Qx2"
SIM_ACCESS_TOKEN = "simtoken_Zr81pW"


@pytest.fixture
def kite_sim() -> Iterator[KiteSimulator]:
    """A Kite Connect simulator on 127.0.0.1 (any free port), driven by the test's hand."""
    sim = KiteSimulator(api_key=SIM_API_KEY, access_token=SIM_ACCESS_TOKEN, slow_seconds=1.5)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def kite_client(kite_sim: KiteSimulator):
    """The official ``kiteconnect`` client pointed at ``kite_sim``."""
    from kiteconnect import KiteConnect

    return KiteConnect(api_key=SIM_API_KEY, access_token=SIM_ACCESS_TOKEN, root=kite_sim.url, timeout=1)
