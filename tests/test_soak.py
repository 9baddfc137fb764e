"""The soak (issue #18): a real paper host under a seeded random schedule of broker faults, disk faults
and kills, its store checked from disk after every step (``tests.soak``). Bounded here by
``SOAK_ROUNDS`` (CI: 25); ``python bench/soak.py --minutes N`` runs the same schedule for long.

The checks are tested too: a store corrupted as a double-applied fill, a dropped journal entry or an
event written twice leaves it is caught, named with the seed and the step to replay."""

from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from hostspec.model import ChangeSet
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import every_local_order_and_ledger
from tests.soak import STEP_KINDS, InvariantBroken, Observed, Soak, check_events, plan_step

ROUNDS = int(os.environ.get("SOAK_ROUNDS", "25"))
SEED = int(os.environ.get("SOAK_SEED", "18"))
pytestmark = pytest.mark.soak


def test_the_paper_host_keeps_every_invariant_through_random_faults_and_kills(tmp_path: Path) -> None:
    directory = tmp_path / "soak"
    directory.mkdir()
    figures = Soak(directory, SEED).run(steps=ROUNDS)  # raises InvariantBroken naming the seed and step
    assert figures.steps == ROUNDS and figures.entries_lost == 0
    assert figures.kills_survived > 0 and figures.fills_checked > 0 and figures.journal_entries_checked > 0
    assert figures.events_delivered > 0 and figures.faults


def test_the_schedule_is_a_function_of_the_seed_and_the_step() -> None:
    assert [plan_step(7, n) for n in range(50)] == [plan_step(7, n) for n in range(50)]
    assert [plan_step(7, n) for n in range(50)] != [plan_step(8, n) for n in range(50)]
    assert {plan_step(7, n)["kind"] for n in range(200)} == set(STEP_KINDS)  # every fault comes up
    assert {plan_step(7, n, read_only_possible=False)["kind"] for n in range(200)} == {
        k for k in STEP_KINDS if "read-only" not in k}


# -- the checks catch what they are for ------------------------------------------------------------------

@pytest.fixture(scope="module")
def soaked(tmp_path_factory: pytest.TempPathFactory) -> Soak:
    """A soak of a few steps (fills applied, the journal archived, events delivered)."""
    directory = tmp_path_factory.mktemp("soaked") / "soak"
    directory.mkdir()
    soak = Soak(directory, 3)
    soak.run(steps=3)
    return soak


@pytest.fixture
def soak(soaked: Soak, tmp_path: Path) -> Soak:
    """That soak resumed on a copy of its files, holding what it saw."""
    directory = tmp_path / "soak"
    shutil.copytree(soaked.directory, directory)
    resumed = Soak(directory, 3)
    resumed.observed = copy.deepcopy(soaked.observed)
    resumed.check()  # the copy as it is passes
    return resumed


def test_a_fill_applied_twice_is_caught_with_the_seed_and_step(soak: Soak) -> None:
    store = TinyDBStore(soak.state_path)
    state = store.load()
    order_id, entry = next((k, e) for k, e in state.ledger.items() if e.filled_qty)
    order = state.orders[order_id]
    position = state.positions[order.key]
    # the same increment applied again, to the ledger and the position together (they stay consistent)
    store.apply(ChangeSet(ledger=[replace(entry, filled_qty=entry.filled_qty * 2, filled_value=entry.filled_value * 2)],
                          positions=[position.with_fill(order.side, entry.filled_qty, entry.filled_value)]))
    store.close()
    with pytest.raises(InvariantBroken, match=rf"seed 3 step 9 .*{order_id} .*applied twice"):
        soak.check(step=9)


def test_a_position_moved_without_its_ledger_entry_is_caught(soak: Soak) -> None:
    store = TinyDBStore(soak.state_path)
    position = next(iter(store.load().positions.values()))
    store.apply(ChangeSet(positions=[replace(position, buy_qty=position.buy_qty + 1, quantity=position.quantity + 1,
                                             buy_value=position.buy_value + Decimal("100.05"))]))
    store.close()
    with pytest.raises(InvariantBroken, match=rf"position {position.exchange}:{position.symbol}:.*ledger sum"):
        soak.check(step=4)


def test_a_journal_entry_dropped_from_the_archive_is_caught_and_counted_lost(soak: Soak) -> None:
    archive = soak.state_path.with_name("state.json.journal.jsonl")
    lines = archive.read_bytes().splitlines(keepends=True)
    dropped = json.loads(lines[len(lines) // 2])["seq"]
    archive.write_bytes(b"".join(lines[:len(lines) // 2] + lines[len(lines) // 2 + 1:]))
    with pytest.raises(InvariantBroken, match=rf"journal has a gap: 1 of seqs .* first \[{dropped}\]"):
        soak.check(step=5)
    assert soak.figures.entries_lost == 1


def test_an_order_claimed_twice_is_caught(soak: Soak) -> None:
    store = TinyDBStore(soak.state_path)
    orders, _ = every_local_order_and_ledger(store)
    taken = next(o for o in orders.values() if o.broker_order_id)
    store.record_order(replace(taken, order_id="twin", version=0))
    store.close()
    with pytest.raises(InvariantBroken, match=f"broker order {taken.broker_order_id} is claimed by 2 local orders"):
        soak.check(step=6)


def test_events_delivered_against_at_least_once_rules() -> None:
    observed = Observed()
    assert check_events([[(1, "a", "order-filled"), (2, "b", "order-filled")]], 2, observed) == []
    assert check_events([[(2, "b", "order-filled"), (3, "c", "order-updated")]], 3, observed) == []  # redelivered
    assert check_events([[(0, "x", "reconciliation-error"), (0, "y", "reconciliation-error")]], 3, observed) == []
    assert check_events([[(4, "a", "order-filled")]], 4, observed) == [
        "event a (order-filled) written twice, as seq 1 and seq 4"]
    assert check_events([[(3, "z", "order-updated")]], 4, observed) == ["event seq 3 delivered as c and as z"]
    assert check_events([[(5, "c", "reconciliation-discrepancy")]], 5, observed) == []  # the same anomaly again
    assert check_events([[(7, "f", "order-filled"), (6, "e", "order-filled")]], 7, observed) == [
        "events delivered out of order or twice in one run: [7, 6]"]
    assert check_events([], 9, observed) == ["2 events marked sent were never delivered: seqs [8, 9]"]

