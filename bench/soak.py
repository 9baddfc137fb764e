"""The long soak (issue #18): the paper host under the random fault schedule of ``tests/test_soak.py``
(broker faults, disk faults, kills), for a long time, its store checked from disk after every step.

    python bench/soak.py                     # 10 minutes, a random seed
    python bench/soak.py --minutes 60
    python bench/soak.py --seed 1234         # replay a schedule (a failure names its seed and step)
    python bench/soak.py --steps 200 --json  # a number of steps; the figures as one JSON object

It prints its figures at the end (steps, faults injected by kind, kills survived, fills checked, journal
entries checked, entries lost) and exits 1 if any invariant broke, naming the seed and the step. Unlike
the other benchmarks it fails: what it measures is correctness. Run it from the repository's root with
the test dependencies installed (the host's child process is ``python -m tests.soak_child``).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the soak's machinery is the test suite's: tests/soak.py

from tests.soak import Figures, InvariantBroken, Soak  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--steps", type=int, help="run this many steps instead of --minutes")
    parser.add_argument("--seed", type=int, help="the schedule's seed (default: a random one, printed)")
    parser.add_argument("--dir", type=Path, help="where to keep the host's files (default: a temporary directory, "
                                                  "kept when an invariant breaks)")
    parser.add_argument("--verbose", action="store_true", help="one line per step")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    directory = args.dir or Path(tempfile.mkdtemp(prefix=f"soak-{seed}-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(f"soak: seed {seed}, {f'{args.steps} steps' if args.steps else f'{args.minutes:g} minutes'}, "
          f"in {directory}", file=sys.stderr, flush=True)
    soak = Soak(directory, seed, log=(lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose
                else lambda _line: None)
    started = time.monotonic()
    broken = None
    try:
        soak.run(steps=args.steps, until=None if args.steps else started + args.minutes * 60)
    except InvariantBroken as exc:
        broken = str(exc)
    report(soak.figures, time.monotonic() - started, broken, args.json)
    if broken:
        print(f"the host's files are kept in {directory}", file=sys.stderr)
    elif args.dir is None:
        shutil.rmtree(directory)
    return 1 if broken else 0


def report(figures: Figures, seconds: float, broken: str | None, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**vars(figures), "faults": dict(figures.faults), "seconds": round(seconds, 1),
                          "broken": broken}))
        return
    print(f"soak ran {seconds / 60:.1f} minutes")
    for line in figures.lines():
        print(line)
    print(f"INVARIANT BROKEN: {broken}" if broken else "every invariant held after every step")


if __name__ == "__main__":
    sys.exit(main())
