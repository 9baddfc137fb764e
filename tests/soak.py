"""The soak: a real paper host (``tests.soak_child``) driven through a seeded random schedule of broker
faults, disk faults and kills, with the store on disk checked after every step. Shared by the bounded
soak in CI (``tests/test_soak.py``) and the long one (``bench/soak.py``).

A step is one life of the host: it starts (``python -m tests.soak_child``), runs a random while under
the step's fault, and is SIGKILLed at a random instant (or, now and then, stopped cleanly); some kill
themselves right after a store write, before publishing. The schedule is a pure function of the seed and
the step number (``plan_step``), so a failure reported with both is replayed with ``--seed``. Faults:

- broker: the paper exchange behind a wrapper that raises ``BrokerError`` (transient, unreadable) or
  hands back garbage (not a list, a malformed record, a stale book, an order left out, a slow answer);
- disk: a file size limit (``RLIMIT_FSIZE``) in the child for a while, the store's directory read-only
  for a while (and at a start: the host must refuse with one line), a torn final line left in the journal
  archive before a start;
- kills: SIGKILL at a random instant, and right after a write with events, before they are published.

After every step, from the files alone (``check_files``): positions equal the signed sum of the ledger; every
ledger entry is one of its paper order's cumulative fill figures, never ahead of the account's fills
(so no fill is applied twice); each broker order is claimed by one local order; the journal's sequence
numbers (state file, archive and day archives, ``TinyDBStore.iter_journal``) run 1..N with no gap, and
no entry seen at an earlier step is lost or changed; every event marked sent was delivered, each
sequence number always with one id, each id under one sequence number, in order within a run.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from hostspec.model import LedgerEntry, Order, Position
from recon_plugin.brokers.paper import PaperExchange
from recon_plugin.brokers.paper.simulation import market_price
from recon_plugin.stores.tinydb_store import TinyDBStore
from tests.helpers import (
    ROOT,
    child_command,
    every_local_order_and_ledger,
    permissions_can_be_honoured,
    positions_from_ledger,
    write,
)

STEP_KINDS = {"plain": 2, "broker": 4, "file-size-limit": 2, "read-only": 1, "torn-line": 1, "read-only-start": 1}
READY_WITHIN = 60.0  # seconds a child may take to start on a loaded machine before the step is a failure
VALUE_TOLERANCE = Decimal("1e-9")  # a cumulative value re-derived from an average: exact to ~1e-25
ONCE_ONLY = frozenset({"order-filled"})  # event kinds whose id names one thing that happens once


class InvariantBroken(AssertionError):
    """An invariant failed; the message names the seed and the step to replay."""


@dataclass
class Figures:
    """What a soak did and checked."""

    seed: int
    steps: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    kills_survived: int = 0
    clean_stops: int = 0
    starts_refused: int = 0
    fills_checked: int = 0
    journal_entries_checked: int = 0
    entries_lost: int = 0
    events_delivered: int = 0
    orders_placed: int = 0
    ledger_entries: int = 0  # at the last check: each is checked again after every step
    journal_entries: int = 0

    def lines(self) -> list[str]:
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults.items())) or "none"
        return [f"seed {self.seed}: {self.steps} steps",
                f"faults injected: {sum(self.faults.values())} ({faults})",
                f"kills survived: {self.kills_survived}; clean stops: {self.clean_stops}; "
                f"starts refused (read-only directory): {self.starts_refused}",
                f"paper orders placed: {self.orders_placed}; fills checked: {self.fills_checked} (the "
                f"{self.ledger_entries} ledger entries, after every step); journal entries checked: "
                f"{self.journal_entries_checked} (the {self.journal_entries} entries, after every step)",
                f"events delivered: {self.events_delivered}",
                f"entries lost: {self.entries_lost}"]


@dataclass
class Observed:
    """What earlier steps saw, to hold later steps to it."""

    journal: dict[int, str] = field(default_factory=dict)  # seq -> entry id
    event_ids: dict[int, str] = field(default_factory=dict)  # seq -> event id, as first delivered
    event_seqs: dict[str, int] = field(default_factory=dict)  # a fill's event id -> seq


# -- the schedule ----------------------------------------------------------------------------------------

def plan_step(seed: int, step: int, read_only_possible: bool = True) -> dict[str, Any]:
    """Step ``step`` of seed ``seed``'s schedule (the same on every replay)."""
    rng = random.Random(f"soak:{seed}:{step}")
    kinds = {k: w for k, w in STEP_KINDS.items() if read_only_possible or "read-only" not in k}
    kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
    run = rng.uniform(0.2, 1.6)
    plan: dict[str, Any] = {
        "seed": seed, "step": step, "kind": kind, "run": run,
        "broker_rate": rng.choice((0.2, 0.4, 0.8)) if kind == "broker" else 0.0,
        "kill_after_write": rng.choice((0.0, 0.0, 0.1, 0.3)),
        "orders": rng.randint(0, 6), "order_every": rng.uniform(0.03, 0.2),
        "stop": "term" if rng.random() < 0.15 else "kill",
    }
    if kind == "file-size-limit":  # as a share of the state file's size: every write fails, or growing ones
        plan["fsize_share"] = rng.choice((0.5, 1.0, 1.05))
        plan["fsize"] = [rng.uniform(0.0, run / 2), 0, rng.uniform(0.1, run)]
    if kind == "read-only":
        plan["read_only"] = [rng.uniform(0.0, run / 2), rng.uniform(0.1, run)]
    if kind == "torn-line":
        plan["torn"] = rng.randint(1, 60)  # bytes of an entry's line left without its end
    return plan


# -- one life of the host --------------------------------------------------------------------------------

@dataclass
class Life:
    """What one child printed, how it ended."""

    messages: list[dict[str, Any]]
    returncode: int
    stderr: str
    ready: bool


def soak_config(directory: Path, seed: int) -> Path:
    """The paper host's configuration: a fast simulated exchange and a fast reconciler."""
    return write(directory / "host.yaml", f"""
        mode: paper
        broker:
          name: soak-paper
          paper: {{seed: {seed}, tick_seconds: 0.1, reject_rate: 0.1, cancel_rate: 0.2}}
        store: {{path: {directory / 'state.json'}}}
        reconciliation: {{interval_seconds: 0.05, missing_grace_seconds: 0}}
        plugins: {{disabled: [demo, alerts]}}
    """)


def live(config: Path, plan: dict[str, Any], honour_permissions: bool,
         during: Callable[[subprocess.Popen[str]], None]) -> Life:
    """Run the host for one step: start it, wait until it is ready, ``during(child)`` (the step's run and
    end: a kill or a stop), then collect everything it printed."""
    command = child_command(["-m", "tests.soak_child", str(config), json.dumps(plan)],
                            honour_permissions=honour_permissions)
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    messages: list[dict[str, Any]] = []
    errors: deque[str] = deque(maxlen=200)
    ready = threading.Event()

    def read_stdout() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            try:
                message = json.loads(line)
            except ValueError:  # the last line, torn by the kill
                continue
            messages.append(message)
            if "ready" in message:
                ready.set()

    readers = [threading.Thread(target=read_stdout, daemon=True),
               threading.Thread(target=lambda: errors.extend(child.stderr or ()), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + READY_WITHIN
        while not ready.wait(0.02) and child.poll() is None and time.monotonic() < deadline:
            pass
        if ready.is_set():
            during(child)
        elif child.poll() is None:
            child.kill()
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        for reader in readers:
            reader.join(30)
        child.stdout.close()
        child.stderr.close()
    return Life(messages, child.returncode, "".join(errors), ready.is_set())


def stop(child: subprocess.Popen[str], within: float = 60.0) -> None:
    """SIGTERM: the host stops cleanly (exit 0); if it has not within ``within`` seconds, SIGKILL (exit -9:
    the caller reports it)."""
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(within)
    except subprocess.TimeoutExpired:
        child.kill()


# -- the checks -----------------------------------------------------------------------------------------

def fill_figures(account: PaperExchange, broker_id: str) -> list[tuple[int, Decimal]]:
    """The cumulative (quantity, value) figures a paper order goes through, from its script: a ledger
    entry applied exactly once is one of them."""
    order = account._account["orders"][broker_id]
    figures, quantity, value = [(0, Decimal(0))], 0, Decimal(0)
    for tick, action, size in order["script"]:
        if action == "fill":
            quantity += size
            value += market_price(account._account["seed"], order["symbol"], tick) * size
            figures.append((quantity, value))
    return figures


def check_fills(orders: dict[str, Order], ledger: dict[str, LedgerEntry], account: PaperExchange,
                final: bool = False) -> tuple[int, list[str]]:
    """Every ledger entry against its paper order: one of its cumulative fill figures, never ahead of
    the fills the account has made by now (``final``: equal to them); each broker order claimed once
    (``final``: every paper order claimed). Returns the entries checked and the problems."""
    problems: list[str] = []
    book = account._account["orders"]
    tick = account.tick_at(account.clock.now())
    claimed = Counter(o.broker_order_id for o in orders.values() if o.broker_order_id is not None)
    problems += [f"broker order {bid} is claimed by {n} local orders" for bid, n in claimed.items() if n > 1]
    if final:
        problems += [f"paper order {bid} was never recorded or adopted" for bid in book if bid not in claimed]
    checked = 0
    for order_id, entry in ledger.items():
        o = orders.get(order_id)
        if o is None:
            problems.append(f"ledger entry of {order_id}, an order the store does not hold")
            continue
        bid = o.broker_order_id
        if bid is None or bid not in book:
            if entry.filled_qty or entry.filled_value:
                problems.append(f"{order_id} has fills {entry.filled_qty} but no paper order ({bid})")
            continue
        checked += 1
        filled = account._state(bid, book[bid], tick).filled_qty
        figures = dict(fill_figures(account, bid))
        value = figures.get(entry.filled_qty)
        if entry.filled_qty > filled:
            problems.append(f"{order_id} ({bid}): {entry.filled_qty} applied, the account filled "
                            f"{filled}: a fill applied twice")
        elif value is None:
            problems.append(f"{order_id} ({bid}): {entry.filled_qty} applied is none of the "
                            f"account's cumulative fills {sorted(figures)}")
        elif entry.filled_qty and abs(value / entry.filled_qty * entry.filled_qty - entry.filled_value) > \
                VALUE_TOLERANCE:
            problems.append(f"{order_id} ({bid}): value {entry.filled_value} applied for "
                            f"{entry.filled_qty}, the account's is {value}")
        elif final and entry.filled_qty != filled:
            problems.append(f"{order_id} ({bid}): {entry.filled_qty} applied, the account filled "
                            f"{filled}: a fill never applied")
    if final:
        for o in orders.values():
            bid = o.broker_order_id
            if o.order_id not in ledger and bid is not None and bid in book:
                filled = account._state(bid, book[bid], tick).filled_qty
                if filled:
                    problems.append(f"{o.order_id} ({bid}): none of the account's {filled} applied")
    return checked, problems


def check_positions(positions: dict[Any, Position], orders: dict[str, Order],
                    ledger: dict[str, LedgerEntry]) -> list[str]:
    """Positions equal the signed sum of the ledger, instrument by instrument."""
    expected = positions_from_ledger(orders, ledger)
    return [f"position {':'.join(key)}: store {_figures(positions.get(key))}, ledger sum {_figures(expected.get(key))}"
            for key in sorted(positions.keys() | expected.keys())
            if _figures(positions.get(key)) != _figures(expected.get(key))]


def _figures(p: Position | None) -> tuple[int, int, Decimal, int, Decimal]:
    if p is None:
        return (0, 0, Decimal(0), 0, Decimal(0))
    return (p.quantity, p.buy_qty, p.buy_value, p.sell_qty, p.sell_value)


def check_journal(store: TinyDBStore, journal_seq: int, observed: Observed) -> tuple[int, int, list[str]]:
    """The journal (state file, archive, day archives) numbered 1..``journal_seq`` with no gap and no
    repeat, and holding every entry an earlier check saw, unchanged. Returns the entries checked, the
    entries lost and the problems."""
    problems: list[str] = []
    seqs: dict[int, str] = {}
    for entry in store.iter_journal():
        if entry.seq in seqs:
            problems.append(f"journal seq {entry.seq} read twice")
        seqs[entry.seq] = entry.entry_id
    gaps = sorted(set(range(1, journal_seq + 1)) - seqs.keys())
    if gaps:
        problems.append(f"journal has a gap: {len(gaps)} of seqs 1..{journal_seq} missing, first {gaps[:10]}")
    beyond = sorted(s for s in seqs if s > journal_seq or s < 1)
    if beyond:
        problems.append(f"journal holds seqs {beyond[:10]} outside 1..{journal_seq}")
    lost = [s for s in observed.journal if s not in seqs]
    changed = [s for s, entry_id in observed.journal.items() if s in seqs and seqs[s] != entry_id]
    if lost:
        problems.append(f"{len(lost)} journal entries seen before are lost: seqs {sorted(lost)[:10]}")
    if changed:
        problems.append(f"journal entries renumbered or changed: seqs {sorted(changed)[:10]}")
    problems += _archive_lines(store.journal_path)
    observed.journal.update(seqs)
    return len(seqs), len(lost), problems


def _archive_lines(path: Path) -> list[str]:
    """The journal archive's active file: whole lines in increasing seq order; only its very end may be
    torn (a kill mid-append, cut by the next writer's open)."""
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return []
    problems, last = [], 0
    for number, line in enumerate(lines[:-1], 1):
        try:
            seq = json.loads(line)["seq"]
        except (ValueError, KeyError, TypeError):
            problems.append(f"{path.name} line {number} is not a whole entry: {line[:60]!r}")
            continue
        if seq <= last:
            problems.append(f"{path.name} line {number}: seq {seq} after {last}")
        last = seq
    return problems


def check_events(lives: list[list[tuple[int, str, str]]], sent_upto: int, observed: Observed) -> list[str]:
    """At least once, with stable ids: each seq always delivered with one id, every event marked sent
    delivered, within one life in order and each at most once; and a fill's event (its id a function of
    the fill) written under one seq only: written twice, the fill was applied twice. (Another event's id
    is a function of its evidence: the same anomaly seen again later is written again with the same id.)"""
    problems = []
    for everything in lives:
        deliveries = [d for d in everything if d[0] > 0]  # seq 0: about the reconciler itself, not outboxed
        seqs = [seq for seq, _, _ in deliveries]
        if seqs != sorted(set(seqs)):
            problems.append(f"events delivered out of order or twice in one run: {seqs[:20]}")
        for seq, event_id, kind in deliveries:
            known = observed.event_ids.setdefault(seq, event_id)
            if known != event_id:
                problems.append(f"event seq {seq} delivered as {known} and as {event_id}")
            other = observed.event_seqs.setdefault(event_id, seq) if kind in ONCE_ONLY else seq
            if other != seq:
                problems.append(f"event {event_id} ({kind}) written twice, as seq {other} and seq {seq}")
    never = sorted(set(range(1, sent_upto + 1)) - observed.event_ids.keys())
    if never:
        problems.append(f"{len(never)} events marked sent were never delivered: seqs {never[:10]}")
    return problems


@dataclass
class Checked:
    fills: int
    journal_entries: int
    lost: int


def check_files(state_path: Path, account_path: Path, observed: Observed,
          lives: list[list[tuple[int, str, str]]], final: bool = False) -> tuple[Checked, list[str]]:
    """Every invariant, from the files alone. Returns what was checked and the problems found."""
    if not state_path.exists():
        return Checked(0, 0, 0), ([f"{state_path} is gone"] if observed.journal else [])
    meta = json.loads(state_path.read_bytes())["meta"]["1"]
    store = TinyDBStore(state_path, read_only=True)
    try:
        orders, ledger = every_local_order_and_ledger(store)
        problems = check_positions(dict(store.load().positions), orders, ledger)
        account = PaperExchange(account_path, read_only=True)
        fills, fill_problems = check_fills(orders, ledger, account, final)
        problems += fill_problems
        entries, lost, journal_problems = check_journal(store, meta["journal_seq"], observed)
        problems += journal_problems
        problems += check_events(lives, meta["events_sent_upto"], observed)
        if final and meta["events_sent_upto"] != meta["event_seq"]:
            problems.append(f"stopped cleanly with events {meta['events_sent_upto'] + 1}..{meta['event_seq']} unsent")
    finally:
        store.close()
    return Checked(fills, entries, lost), problems


# -- the soak --------------------------------------------------------------------------------------------

class Soak:
    """A soak in ``directory`` with ``seed``: ``step(n)`` for each step of the schedule, then ``finish``."""

    def __init__(self, directory: Path, seed: int, log: Callable[[str], None] = lambda _line: None) -> None:
        self.directory = directory
        self.seed = seed
        self.log = log
        self.state_path = directory / "state.json"
        self.account_path = directory / "paper-account.json"
        self.config = soak_config(directory, seed)
        self.read_only_possible = permissions_can_be_honoured()
        self.figures = Figures(seed)
        self.observed = Observed()

    def fail(self, step: int | str, problems: list[str], life: Life | None = None) -> None:
        tail = f"\nchild stderr (tail):\n{life.stderr[-3000:]}" if life is not None and life.stderr else ""
        raise InvariantBroken(f"soak seed {self.seed} step {step} (replay: --seed {self.seed}): "
                              + "; ".join(problems[:12]) + tail)

    def run(self, steps: int | None = None, until: float | None = None) -> Figures:
        """``steps`` steps, or as many as fit before ``until`` (a ``time.monotonic()``); then ``finish``."""
        step = 0
        while (steps is None or step < steps) and (until is None or time.monotonic() < until):
            self.step(step)
            step += 1
        self.finish()
        return self.figures

    def step(self, step: int) -> None:
        plan = plan_step(self.seed, step, self.read_only_possible)
        kind = plan["kind"]
        if kind == "read-only-start":
            self._refused_start(step, plan)
            return
        if kind == "torn-line" and not self._tear(plan["torn"]):
            plan["kind"] = "plain"
        if kind == "file-size-limit":
            size = self.state_path.stat().st_size if self.state_path.exists() else 4096
            plan["fsize"][1] = max(1024, int(size * plan["fsize_share"]))
        if kind in ("torn-line", "read-only"):
            self.figures.faults[f"disk:{kind}"] += int(plan["kind"] == kind)
        life = live(self.config, plan, self.read_only_possible, lambda child: self._during(child, plan))
        self._account(step, plan, life)

    def _during(self, child: subprocess.Popen[str], plan: dict[str, Any]) -> None:
        """The step's run: a read-only window if planned, then a kill (or a clean stop)."""
        started = time.monotonic()
        if "read_only" in plan:
            after, lasting = plan["read_only"]
            time.sleep(after)
            self.directory.chmod(0o555)
            try:
                time.sleep(lasting)
            finally:
                self.directory.chmod(0o755)
        time.sleep(max(0.0, plan["run"] - (time.monotonic() - started)))
        if plan["stop"] == "term":
            stop(child)
        else:
            child.send_signal(signal.SIGKILL)

    def _account(self, step: int, plan: dict[str, Any], life: Life) -> None:
        """Count what the life did and check the files."""
        self.figures.steps += 1
        deliveries = [(m["event"][0], m["event"][1], m["event"][2]) for m in life.messages if "event" in m]
        for m in life.messages:
            if "fault" in m:
                self.figures.faults[m["fault"]] += 1
        self.figures.events_delivered += len(deliveries)
        killed = life.returncode == -signal.SIGKILL
        killed_itself = any(m.get("fault") == "kill:after-write" for m in life.messages)
        problems = []
        if not life.ready and not killed_itself:
            problems.append(f"the host did not start within {READY_WITHIN:g} s (exit {life.returncode})")
        elif plan["stop"] == "term" and not killed_itself and life.returncode != 0:
            problems.append(f"the host did not stop cleanly on SIGTERM (exit {life.returncode})")
        elif plan["stop"] == "kill" and not killed:
            problems.append(f"the host ended by itself before its kill (exit {life.returncode})")
        checked = self.check(step, [deliveries], life, problems=problems)
        if killed:
            self.figures.kills_survived += 1
        else:
            self.figures.clean_stops += 1
        self.log(f"step {step} {plan['kind']}: {len(deliveries)} events, "
                 f"{'killed' if killed else 'stopped'} after {plan['run']:.2f}s; {checked.fills} fills, "
                 f"{checked.journal_entries} journal entries checked")

    def check(self, step: int | str = "now", lives: list[list[tuple[int, str, str]]] | None = None,
              life: Life | None = None, final: bool = False, problems: list[str] | None = None) -> Checked:
        """``check_files`` now, counted; ``InvariantBroken`` naming the seed and ``step`` if anything is wrong
        (``problems``: found already, about the life that ended)."""
        checked, found = check_files(self.state_path, self.account_path, self.observed, lives or [], final)
        self._count(checked)
        if problems or found:
            self.fail(step, [*(problems or []), *found], life)
        return checked

    def _count(self, checked: Checked) -> None:
        self.figures.fills_checked += checked.fills
        self.figures.journal_entries_checked += checked.journal_entries
        self.figures.entries_lost += checked.lost
        self.figures.ledger_entries, self.figures.journal_entries = checked.fills, checked.journal_entries
        if self.account_path.exists():
            self.figures.orders_placed = len(PaperExchange(self.account_path, read_only=True)._account["orders"])

    def _tear(self, size: int) -> bool:
        """Leave the start of an entry's line at the end of the journal archive, as a kill mid-append does."""
        archive = self.state_path.with_name(self.state_path.name + ".journal.jsonl")
        if not archive.exists():
            return False
        lines = archive.read_bytes().splitlines()
        last = json.loads(lines[-1])["seq"] if lines and lines[-1].startswith(b"{") else 0
        with archive.open("ab") as handle:
            handle.write(json.dumps({"seq": last + 1, "entry_id": "torn" * 20}).encode()[:size])
        return True

    def _refused_start(self, step: int, plan: dict[str, Any]) -> None:
        """A start in a read-only directory: refused with one line naming the state file, nothing changed."""
        before = self.state_path.read_bytes() if self.state_path.exists() else None
        self.directory.chmod(0o555)
        try:
            life = live(self.config, plan, True, lambda child: None)
        finally:
            self.directory.chmod(0o755)
        self.figures.steps += 1
        self.figures.faults["disk:read-only-start"] += 1
        lines = [line for line in life.stderr.splitlines() if str(self.state_path) in line]
        problems = []
        if life.returncode != 1 or life.ready or "Traceback" in life.stderr or len(lines) != 1 or \
                "cannot be written" not in lines[0]:
            problems.append(f"a start in a read-only directory was not refused with one line (exit "
                            f"{life.returncode}): {life.stderr[-500:]!r}")
        if (self.state_path.read_bytes() if self.state_path.exists() else None) != before:
            problems.append("a refused start changed the state file")
        if problems:
            self.fail(step, problems, life)
        self.figures.starts_refused += 1
        self.log(f"step {step} read-only-start: refused")

    def finish(self) -> None:
        """A last life without faults or new orders, until every paper order has ended and its fills are
        applied, stopped cleanly: then the ledger equals the account's fills exactly, and every event
        written was delivered."""
        plan = {**plan_step(self.seed, -1), "kind": "final", "broker_rate": 0.0, "kill_after_write": 0.0,
                "orders": 0, "stop": "term"}
        for key in ("fsize", "read_only", "torn"):
            plan.pop(key, None)
        lives: list[list[tuple[int, str, str]]] = []

        def settle(child: subprocess.Popen[str]) -> None:
            self._wait_until_settled()
            stop(child)

        life = live(self.config, plan, self.read_only_possible, settle)
        lives.append([(m["event"][0], m["event"][1], m["event"][2]) for m in life.messages if "event" in m])
        self.figures.events_delivered += len(lives[-1])
        problems = [] if life.ready and life.returncode == 0 else [f"the last run ended with exit {life.returncode}"]
        self.check("final", lives, life, final=True, problems=problems)
        self.figures.clean_stops += 1

    def _wait_until_settled(self, within: float = 60.0) -> None:
        """Until every paper order has ended and the store's ledger holds its fills (or ``within`` seconds:
        the final check then says what is not applied)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            time.sleep(0.3)
            if not self.account_path.exists():
                return
            account = PaperExchange(self.account_path, read_only=True)
            tick = account.tick_at(account.clock.now())
            book = account._account["orders"]
            states = {bid: account._state(bid, o, tick) for bid, o in book.items()}
            if not all(s.status.is_terminal for s in states.values()):
                continue
            reader = TinyDBStore(self.state_path, read_only=True)
            try:
                orders, ledger = every_local_order_and_ledger(reader)
            finally:
                reader.close()
            applied = {o.broker_order_id: ledger[o.order_id].filled_qty if o.order_id in ledger else 0
                       for o in orders.values() if o.broker_order_id in book}
            if applied == {bid: s.filled_qty for bid, s in states.items()}:
                time.sleep(0.3)  # a cycle or so more: its events are published
                return

