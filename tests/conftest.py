"""Fixtures shared by the test modules (each defined once, here).

The Kite Connect simulator fixtures (``kite_sim``, ``kite_client``) come from the pytest plugin
``recon_plugin.testing.pytest_plugin``, which pytest loads through its ``pytest11`` entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from recon_plugin.stores.tinydb_store import TinyDBStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TinyDBStore]:
    """A fresh TinyDB state store at ``tmp_path / "state.json"``, closed after the test."""
    s = TinyDBStore(tmp_path / "state.json")
    yield s
    s.close()
