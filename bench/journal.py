"""Benchmark: a journal archive of 1,000,000 entries (about 100 busy trading days), and what it costs a
writer's open and a report.

    python bench/journal.py                     # 1,000,000 entries
    python bench/journal.py --entries 100000
    python bench/journal.py --json              # one JSON object

The history is written through one TinyDBStore the way the reconciler writes it: change sets of
10,000 journal entries (each with both sides' evidence), ten a trading day, so 1,000,000 entries span
100 days; the archive rotates into segments as it grows. Then, each in its own process (peak memory is
the process's ``ru_maxrss``, the interpreter and imports included; the baseline is a process that only
imports):

- ``open``: a writer's open of the store (``TinyDBStore(path)``), and the bytes of the archive it read;
- ``report --since 1m``: ``recon report --since 1m``'s read a minute after the newest entry (nothing
  to print: the case that read the whole archive);
- ``report (all)``: every entry, streamed (``iter_journal``) and counted.

These print figures; they never fail on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hostspec.model import ChangeSet, JournalEntry
from recon_plugin.stores.tinydb_store import TinyDBStore

BATCH = 10_000
T0 = datetime(2026, 7, 1, 4, 0, tzinfo=UTC)
STEP = timedelta(minutes=36)  # ten batches a day


def build(path: Path, count: int) -> datetime:
    """The history: ``count`` entries; returns the newest entry's time."""
    store = TinyDBStore(path)
    at = T0
    for first in range(0, count, BATCH):
        at = T0 + STEP * (first // BATCH)
        store.apply(ChangeSet(journal=[
            JournalEntry(f"j{i}", at, "fill", "applied the remaining fill", order_id=f"O{i}", symbol="INFY",
                         local={"status": "PLACED", "filled_qty": 0},
                         broker={"status": "COMPLETE", "filled_qty": 10, "avg_price": "1501.05"})
            for i in range(first, min(count, first + BATCH))]))
    store.close()
    return at


def measure(what: str, path: Path, newest: datetime) -> dict[str, Any]:
    """One measurement, in this process."""
    started = time.perf_counter()
    result: dict[str, Any] = {}
    if what == "open":
        store = TinyDBStore(path)
        result["archive_bytes_read"] = store.journal_archive.bytes_read
        result["seconds"] = time.perf_counter() - started
        store.close()
    elif what == "since-1m":
        reader = TinyDBStore(path, read_only=True)
        result["entries"] = len(reader.journal(newest + timedelta(seconds=1)))  # a minute after the newest
        result["seconds"] = time.perf_counter() - started
    elif what == "all":
        reader = TinyDBStore(path, read_only=True)
        result["entries"] = sum(1 for _ in reader.iter_journal())
        result["seconds"] = time.perf_counter() - started
    else:
        result["seconds"] = 0.0
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a child: one measurement
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--newest", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.measure:
        print(json.dumps(measure(args.measure, Path(args.path), datetime.fromisoformat(args.newest))))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as directory:
        path = Path(directory) / "state.json"
        started = time.perf_counter()
        newest = build(path, args.entries)
        built = time.perf_counter() - started
        archive = TinyDBStore(path, read_only=True).journal_archive
        files = [p for _, _, p in archive.segments()] + ([archive.path] if archive.path.exists() else [])
        figures: dict[str, Any] = {
            "entries": args.entries, "build_seconds": built, "segments": len(archive.segments()),
            "archive_mb": sum(p.stat().st_size for p in files) / 1e6,
            "active_segment_mb": archive.path.stat().st_size / 1e6 if archive.path.exists() else 0.0}
        for name in ("baseline", "open", "since-1m", "all"):
            child = subprocess.run([sys.executable, __file__, "--measure", name, "--path", str(path),
                                    "--newest", newest.isoformat()], stdout=subprocess.PIPE, text=True, check=True)
            figures[name] = json.loads(child.stdout)
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"journal archive: {figures['entries']:,} entries, {figures['archive_mb']:.1f} MB in "
          f"{figures['segments']} rotated segments + an active one of {figures['active_segment_mb']:.1f} MB "
          f"(built in {figures['build_seconds']:.0f} s)")
    print(f"  baseline process           peak {figures['baseline']['peak_mb']:.1f} MB")
    print(f"  writer's open              {figures['open']['seconds'] * 1000:.1f} ms, "
          f"read {figures['open']['archive_bytes_read']:,} bytes of the archive, "
          f"peak {figures['open']['peak_mb']:.1f} MB")
    print(f"  report --since 1m          {figures['since-1m']['seconds'] * 1000:.1f} ms, "
          f"{figures['since-1m']['entries']} entries, peak {figures['since-1m']['peak_mb']:.1f} MB")
    print(f"  report (all), streamed     {figures['all']['seconds']:.1f} s, {figures['all']['entries']:,} entries, "
          f"peak {figures['all']['peak_mb']:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
