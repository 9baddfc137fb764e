"""The journal archive: numbering that never starts again under an old archive, a writer's open that
reads only its tail, reports that stream and skip by time, rotation, and the rollover across segments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hostspec.model import ChangeSet, JournalEntry
from recon_plugin.stores.journal_archive import JournalArchive
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import paper_config, tradehost

T0 = datetime(2026, 11, 19, 4, 0, tzinfo=UTC)


def entries(first: int, count: int, at: datetime = T0, pad: int = 0) -> list[JournalEntry]:
    return [JournalEntry(f"j{i}", at, "fill", f"applied {i}" + "." * pad) for i in range(first, first + count)]


# -- numbering ---------------------------------------------------------------------------------------------


def test_a_lost_state_file_numbers_on_from_its_archive_and_the_report_shows_every_entry(tmp_path):
    state = tmp_path / "state.json"
    first = TinyDBStore(state)
    for batch in range(3):
        first.apply(ChangeSet(journal=entries(batch * 2, 2)))
    first.close()
    state.unlink()  # lost (or moved away by hand), its archive left beside it
    second = TinyDBStore(state)
    second.apply(ChangeSet(journal=entries(6, 2)))
    assert [e.seq for e in second.journal()] == list(range(1, 9))
    assert [e.entry_id for e in second.journal()] == [f"j{i}" for i in range(8)]
    second.close()
    report = tradehost("recon", "report", "--config", str(paper_config(tmp_path, state)))
    assert report.returncode == 0, report.stderr
    assert ": 8 entries (" in report.stdout
    assert all(f"applied {i}" in report.stdout for i in range(8))


def test_paper_reset_moves_the_whole_archive_with_the_state_and_the_new_store_starts_clean(tmp_path):
    state = tmp_path / "state.json"
    config = paper_config(tmp_path, state)
    old = TinyDBStore(state, journal_rotate_bytes=200)  # a rotated segment, too
    for batch in range(3):
        old.apply(ChangeSet(journal=entries(batch * 2, 2)))
    old.close()
    assert old.journal_archive.segments()
    done = tradehost("paper", "reset", "--config", str(config), "--yes")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "state.json.journal.jsonl").exists() and not (tmp_path / "state.json.journal.d").exists()
    assert (tmp_path / "state.json.journal.d.bak").is_dir()
    fresh = TinyDBStore(state)
    fresh.apply(ChangeSet(journal=entries(100, 1)))
    assert [(e.seq, e.entry_id) for e in fresh.journal()] == [(1, "j100")]
    fresh.close()


# -- a long history ------------------------------------------------------------------------------------------


def long_history(path: Path, batches: int, per_batch: int, rotate_bytes: int) -> TinyDBStore:
    """A store whose archive holds ``batches * per_batch`` entries, one batch a minute from T0."""
    store = TinyDBStore(path, journal_rotate_bytes=rotate_bytes)
    for batch in range(batches):
        store.apply(ChangeSet(journal=entries(batch * per_batch, per_batch, T0 + timedelta(minutes=batch), pad=60)))
    return store


def test_a_writers_open_reads_only_the_tail_of_a_long_archive(tmp_path):
    store = long_history(tmp_path / "state.json", 10, 2000, rotate_bytes=1 << 40)  # no rotation: one file
    store.close()
    size = store.journal_path.stat().st_size
    assert size > 2_000_000
    reopened = TinyDBStore(tmp_path / "state.json", journal_rotate_bytes=1 << 40)
    assert reopened.journal_archive.bytes_read <= 128 * 1024  # the tail, never the whole file
    assert reopened.journal_archive.last_seq == 20_000
    reopened.apply(ChangeSet(journal=entries(20_000, 1)))
    assert reopened.journal()[-1].seq == 20_001
    reopened.close()


@pytest.fixture
def rotated(tmp_path: Path) -> Iterator[TinyDBStore]:
    store = long_history(tmp_path / "state.json", 12, 200, rotate_bytes=40_000)
    yield store
    store.close()


def test_the_archive_rotates_into_segments_and_reads_back_whole(rotated):
    segments = rotated.journal_archive.segments()
    assert len(segments) >= 4
    assert [s[0] for s in segments] == sorted(s[0] for s in segments)
    assert all(path.with_suffix(".json").exists() for _, _, path in segments)
    assert not rotated.journal_path.exists() or rotated.journal_path.stat().st_size < 40_000 + 20_000
    assert [e.seq for e in rotated.journal()] == list(range(1, 2401))


@pytest.fixture
def files_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the archive files read from here on, in order (a counted reader)."""
    read: list[str] = []
    original = JournalArchive._read_lines

    def counted(self: JournalArchive, path: Path) -> Iterator[dict[str, object]]:
        read.append(path.name)
        return original(self, path)

    monkeypatch.setattr(JournalArchive, "_read_lines", counted)
    return read


def test_a_report_by_time_skips_older_segments_unread(rotated, files_read):
    since = T0 + timedelta(minutes=10)
    found = rotated.journal(since)
    assert [e.entry_id for e in found] == [f"j{i}" for i in range(2000, 2400)]
    segments = rotated.journal_archive.segments()
    old = [path.name for _, last, path in segments if last <= 1800]
    assert old and not set(old) & set(files_read)


def test_a_report_streams(rotated, files_read):
    stream = rotated.iter_journal()
    assert next(stream).seq == 1
    assert files_read == [rotated.journal_archive.segments()[0][2].name]  # one segment opened so far


def test_the_rollover_takes_past_entries_out_of_every_segment(tmp_path):
    store = TinyDBStore(tmp_path / "state.json", journal_rotate_bytes=1)  # every append rotates
    thursday, friday = datetime(2026, 11, 19, 6, tzinfo=UTC), datetime(2026, 11, 20, 6, tzinfo=UTC)
    store.apply(ChangeSet(journal=entries(0, 2, thursday)))
    store.apply(ChangeSet(journal=entries(2, 2, friday)))
    store.apply(ChangeSet(journal=entries(4, 1, thursday)))
    store.apply(ChangeSet(journal=entries(5, 1, friday)))
    store.archive_before(date(2026, 11, 20))
    assert [e.entry_id for e in store.journal_day(date(2026, 11, 19))] == ["j0", "j1", "j4"]
    assert [e.entry_id for e in store.journal()] == [f"j{i}" for i in range(6)]
    archived = [json.loads(line)["seq"] for _, _, path in store.journal_archive.segments()
                for line in path.read_bytes().splitlines()]
    assert archived == [3, 4, 6]
    store.close()


def test_a_late_entry_of_an_earlier_day_still_reads_in_seq_order(tmp_path):
    """An order's entry belongs to its order's day, so the day files are not in seq order one after
    the other: the stream merges them."""
    from hostspec.model import OrderStatus
    from tests.helpers import order

    thursday, friday = datetime(2026, 11, 19, 6, tzinfo=UTC), datetime(2026, 11, 20, 4, tzinfo=UTC)
    store = TinyDBStore(tmp_path / "state.json")
    store.apply(ChangeSet(orders=[order("X", OrderStatus.FILLED, trading_date=date(2026, 11, 19))],
                          journal=[JournalEntry("a", thursday, "fill", "applied", order_id="X")]))
    store.apply(ChangeSet(journal=[JournalEntry("b", friday, "position-drift", "synced", symbol="INFY")]))
    store.apply(ChangeSet(journal=[JournalEntry("c", friday, "late-fill", "applied", order_id="X")]))
    store.apply(ChangeSet(journal=[JournalEntry("d", friday, "position-drift", "synced", symbol="TCS")]))
    store.archive_before(date(2026, 11, 23))
    assert [e.entry_id for e in store.journal_day(date(2026, 11, 19))] == ["a", "c"]
    assert [(e.seq, e.entry_id) for e in store.journal()] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    store.close()
