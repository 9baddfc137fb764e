"""The reconciler: runs cycles (fetch, plan, apply, publish) on its own thread and asyncio loop.

It knows nothing of the rules (``engine``) or of any broker's format. Each step is guarded: a
failed fetch skips the cycle (a failure is never an empty book), a store conflict re-plans once,
and every failure is logged with context (quietly when it repeats), counted and announced.
It only reads the broker; it never places, modifies or cancels an order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from hostspec.broker import (
    Broker,
    BrokerError,
    FailureKind,
    HoldingsBroker,
    PushingBroker,
    TaggingBroker,
    TradesBroker,
)
from hostspec.calendar import Clock, MarketCalendar, SystemClock
from hostspec.events import Payload
from hostspec.host import Host
from hostspec.model import BrokerOrder, ChangeSet, Event, Holding, Mode, OrderStatus, Trade, stable_id
from hostspec.secrets import redact
from hostspec.store import ConflictError, StateStore, StoreError
from recon_plugin import signals
from recon_plugin.engine import SyncMemo, orders_to_query, plan_cycle
from recon_plugin.events import BrokerSessionExpired, CycleFinished, ReconcilerStopped, ReconciliationError
from recon_plugin.outbox import Publisher
from recon_plugin.plan import DAY_EXCHANGE, Decision, Plan, Snapshot
from recon_plugin.resolve import current_state, effective_status
from recon_plugin.seam import OrderChecker, check_positions
from recon_plugin.settings import Settings
from recon_plugin.stats import QuietLog, Stats
from recon_plugin.worker import DaemonExecutor

log = logging.getLogger("recon")

AUTH_RETRY_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 60.0
LOST_REQUERY_MAX_SECONDS = 300.0
WATCHDOG_SECONDS = 30.0  # a cycle's step running longer is alarmed, and again at every multiple
TRADES_EVERY_SECONDS = 60.0  # the slow pace of trade reads while no order's filled quantity moves
PAST_DAY_QUERY_ATTEMPTS = 3
HOLDINGS_MAX_AGE = timedelta(minutes=15)  # while a delivery mismatch is watched
ARCHIVE_AFTER_CLOSE = timedelta(hours=3)


@dataclass
class CycleReport:
    """What one cycle did (or, in dry-run, would do)."""

    plan: Plan | None = None
    writes: int = 0
    published: int = 0
    duration_ms: float = 0.0
    dry_run: bool = False
    error: str | None = None
    decisions: list[Decision] = field(default_factory=list)
    pushed: bool = False  # applied pushed updates (a partial snapshot), not a poll: not counted as a cycle


def contained(exc: BaseException) -> Exception:
    """A ``BaseException`` that is not an ``Exception`` (``SystemExit`` from a plugin's ``sys.exit()``)
    as an ``Exception``, so that the step that raised it fails and the loop goes on."""
    return exc if isinstance(exc, Exception) else RuntimeError(f"{type(exc).__name__} raised: {exc!r}")


class PushReceiver:
    """``hostspec.broker.PushSink`` for a reconciler: callable from any thread, it hands everything to
    the reconciler's loop and returns at once."""

    def __init__(self, reconciler: Reconciler, loop: asyncio.AbstractEventLoop) -> None:
        self._reconciler = reconciler
        self._loop = loop

    def _soon(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: the host is stopping
            self._loop.call_soon_threadsafe(callback, *args)

    def order(self, update: BrokerOrder) -> None:
        self._soon(self._reconciler.on_push, update)

    def connected(self) -> None:
        self._soon(self._reconciler.on_push_connected)

    def disconnected(self, reason: str) -> None:
        self._soon(self._reconciler.on_push_disconnected, redact(reason))


def make_reconciler(host: Host, settings: Settings) -> Reconciler:
    """The reconciler for a host's broker and store, announcing through the host's event sinks."""
    if host.broker is None or host.store is None:
        raise ValueError("the reconciler needs a host opened with its broker and store")
    return Reconciler(host.broker, host.store, settings, emit=host.emit, clock=host.clock, calendar=host.calendar)


class Reconciler:
    """Runs cycles for one broker account into one store, by ``settings`` (interval and dry-run
    included); ``emit`` hands each published event to the host's event sinks. ``clock`` is where it
    reads the time; ``calendar`` (the broker's markets') gives it trading days: without one, orders
    never expire with their day."""

    def __init__(self, broker: Broker, store: StateStore, settings: Settings,
                 emit: Callable[[Event], None] | None = None, clock: Clock | None = None,
                 calendar: MarketCalendar | None = None) -> None:
        self.broker = broker
        self.store = store
        self.settings = settings
        self.interval = settings.interval
        self.dry_run = settings.dry_run
        self.emit = emit
        self.clock: Clock = clock or SystemClock()
        self.calendar = calendar
        self.stats = Stats.from_dict(store.load().checkpoint.get("stats", {}))
        self.publisher = Publisher(store, self._deliver)
        self.next_delay = self.interval
        self._quiet = QuietLog(log)
        self._lost_checked: dict[str, tuple[datetime, int]] = {}  # LOST order id: (last asked, times asked)
        self._holdings: list[Holding] | None = None  # the broker's, as last read (None: not read)
        self._holdings_day: date | None = None
        self._holdings_read_at: datetime | None = None
        self._archived_for: date | None = None  # the cut-off the archive was last brought up to
        self._exchanges_day: date | None = None
        self._exchanges: set[str] = {DAY_EXCHANGE}  # exchanges in use, looked up once a trading day
        self._past_day_attempts: Counter[str] = Counter()  # a past day's order: queries that settled nothing
        self._memo = SyncMemo()
        self._run = uuid.uuid4().hex[:12]  # this run's snapshots are ordered by their count, not the clock
        self._snapshots = 0
        self._book_checker = OrderChecker(broker.name)  # what the plugin hands back, checked at the seam
        self._trades_read_at: datetime | None = None
        self._wake: asyncio.Event | None = None  # set to poll at once (a push channel reconnected)
        self._pushes: deque[BrokerOrder] = deque()  # pushed updates waiting for the worker
        self._push_scheduled = False
        self._worker: DaemonExecutor | None = None
        self.push_connected = False
        self._filled_seen: dict[str, int] = {}  # each order's filled quantity when the trades were last read
        self._rate_limited = 0
        self._session_expired = False
        self._paper_positions_logged = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._started = threading.Event()
        self._stopping = False
        # what watching from outside reads (recon_plugin.ops): monotonic time of the last good
        # snapshot, the last failed cycle's (step, kind), why the thread ended, the last snapshot
        self.last_good_at: float | None = None
        self.last_failure: tuple[str, str] | None = None
        self.died: str | None = None
        self.last_snapshot: Snapshot | None = None
        self.on_store_write: Callable[[float], None] | None = None  # seconds one durable write took
        self.on_published: Callable[[Event], None] | None = None  # each event, after its signal

    # -- one cycle ------------------------------------------------------------------------------

    def run_cycle(self) -> CycleReport:
        """One whole cycle, on the calling thread; never raises."""
        start = time.perf_counter()
        self._publish()
        snapshot = self._fetch_guarded()
        if isinstance(snapshot, CycleReport):
            return snapshot
        return self._settle_guarded(snapshot, start)

    def fetch(self) -> Snapshot:
        """All of a cycle's broker reads: positions (live mode), the order book, targeted queries.

        Positions come first: an order book read after them is at least as new, so a fill between
        the two reads shows as a transient excess on the local side, never as drift to adopt.
        """
        fetched_at = self.clock.now()
        positions = None
        if self.settings.mode is Mode.LIVE:
            self._read_holdings(fetched_at)
            try:
                positions = check_positions(self.broker.name, self.broker.fetch_positions())
            except BrokerError as exc:
                self._record_failure("positions", exc)
        elif not self._paper_positions_logged:
            log.info("paper mode: position reconciliation is skipped (positions follow the fills applied)")
            self._paper_positions_logged = True
        checked = self._book_checker.check("fetch_orders", self.broker.fetch_orders())
        book = checked.orders
        queried = self._query_missing(book, fetched_at)
        fresh = self._holdings_read_at == fetched_at
        trades = self._read_trades(book, fetched_at)
        self._snapshots += 1
        return Snapshot(book, fetched_at, positions, queried, self.calendar, self._holdings, fresh, self._unanswered(),
                        self.broker.order_tag if isinstance(self.broker, TaggingBroker) else None,
                        self._run, self._snapshots, checked.unreadable, tuple(checked.unidentified),
                        trades=trades)

    def _read_trades(self, book: list[BrokerOrder], now: datetime) -> dict[str, list[Trade]] | None:
        """The day's trades by broker order id (``TradesBroker``), read when an order's filled quantity
        moved since the last read, and every TRADES_EVERY_SECONDS otherwise (a trade the order book
        shows no sign of, such as a bust); None when not read. A failed read is counted, never "none"."""
        if not isinstance(self.broker, TradesBroker):
            return None
        filled = {bo.broker_order_id: bo.filled_qty for bo in book if bo.filled_qty}  # ~0.3 ms per 5,000 orders
        due = (self._trades_read_at is None or filled != self._filled_seen
               or (now - self._trades_read_at).total_seconds() >= TRADES_EVERY_SECONDS)
        if not due:
            return None
        try:
            trades = self.broker.fetch_trades()
        except BrokerError as exc:
            self._record_failure("trades", exc)
            return None
        if not isinstance(trades, list) or not all(isinstance(t, Trade) for t in trades):
            self._record_failure("trades", BrokerError(f"broker plugin {self.broker.name!r}: fetch_trades returned "
                                                       "something other than a list of Trade", FailureKind.UNREADABLE))
            return None
        self._filled_seen, self._trades_read_at = filled, now
        by_order: dict[str, list[Trade]] = {}
        for trade in trades:
            by_order.setdefault(trade.broker_order_id, []).append(trade)
        return by_order

    def _read_holdings(self, now: datetime) -> None:
        """Delivery holdings change once a day: read at startup and when the (equity) trading date moves
        on, again after a failed read, and on demand while a delivery position's mismatch is watched
        (the broker moves delivery buys into holdings at its book's day start, hours after our
        trading date moved: a host running through the night must see them); never every cycle."""
        if not isinstance(self.broker, HoldingsBroker):
            return
        day = self.calendar.trading_date(now, DAY_EXCHANGE) if self.calendar is not None else None
        fresh = self._holdings is not None and day == self._holdings_day
        if fresh and self._holdings_read_at is not None and now - self._holdings_read_at >= HOLDINGS_MAX_AGE:
            watched = self.store.load().checkpoint.get("position_watch", {})
            fresh = not any(key.endswith(":CNC") for key in watched)
        if fresh:
            return
        try:
            self._holdings = self.broker.fetch_holdings()
            self._holdings_day, self._holdings_read_at = day, now
        except BrokerError as exc:
            self._record_failure("holdings", exc)

    def settle(self, snapshot: Snapshot, start: float | None = None) -> CycleReport:
        """Plan against the current local state, apply in one write, publish. Raises on store errors."""
        start = start if start is not None else time.perf_counter()
        self.last_snapshot = snapshot
        for attempt in (1, 2):
            plan = plan_cycle(self.store.load(), snapshot, self.settings, self._memo)
            if self.dry_run:
                self._log_decisions(plan, "dry-run: would ")
                return self._finish(CycleReport(plan=plan, dry_run=True, pushed=snapshot.partial), start)
            changes = plan.changes
            if not changes.is_empty():
                changes.events_sent_upto = self.publisher.watermark()
                changes.checkpoint["stats"] = self.stats.to_dict()
            try:
                began = time.perf_counter()
                writes = self.store.apply(changes)
                if writes and self.on_store_write is not None:
                    self.on_store_write(time.perf_counter() - began)
                break
            except ConflictError as exc:
                self.stats.conflicts += 1
                if attempt == 2:
                    raise
                log.info("local state changed while planning (%s); planning again", exc)
        self.publisher.persisted(changes.events_sent_upto)
        self._log_decisions(plan, "")
        self.stats.fills_applied += len(plan.fills)
        self.stats.store_writes += writes
        self.stats.discrepancies.update(d.rule.value for d in plan.decisions)
        report = CycleReport(plan=plan, writes=writes, published=self._publish(), pushed=snapshot.partial)
        self._archive_past_days(snapshot.fetched_at, plan)
        return self._finish(report, start)

    def _archive_past_days(self, now: datetime, plan: Plan) -> None:
        """Move past days' settled orders out of the hot state (``StateStore.archive_before``), so that
        a cycle's write costs what today holds: once a trading day has ended on every exchange in use,
        and ARCHIVE_AFTER_CLOSE later (a late report of the day, a fill after a cancel, still finds
        its order), and again after orders of an ended day settle. A failure is counted and retried
        at the next occasion; nothing is lost by waiting.
        """
        if self.calendar is None:
            return
        later = now - ARCHIVE_AFTER_CLOSE
        day = self.calendar.trading_date(later, DAY_EXCHANGE)
        if self._exchanges_day != day:  # once a day: which exchanges are in use
            self._exchanges_day = day
            self._exchanges = {o.exchange for o in self.store.load().orders.values()} or {DAY_EXCHANGE}
        cutoff = min(self.calendar.trading_date(later, exchange) for exchange in self._exchanges)
        closed = any(o.status.is_terminal and o.trading_date is not None and o.trading_date < cutoff
                     for o in plan.changes.orders)
        if cutoff == self._archived_for and not closed:
            return
        try:
            moved = self.store.archive_before(cutoff, self.calendar.zone)
        except StoreError as exc:
            self._record_failure("archive", exc)
            return
        self._archived_for = cutoff
        if moved:
            log.info("moved %d settled orders of trading days before %s to the archive", moved, cutoff)

    def _fetch_guarded(self) -> Snapshot | CycleReport:
        try:
            return self.fetch()
        except Exception as exc:  # a BrokerError, or a bug in a broker plugin: either way not an empty book
            return self._cycle_failed("fetch", exc)
        except BaseException as exc:  # a plugin calling sys.exit(): the loop goes on
            return self._cycle_failed("fetch", contained(exc))

    def _settle_guarded(self, snapshot: Snapshot, start: float) -> CycleReport:
        try:
            return self.settle(snapshot, start)
        except Exception as exc:
            return self._cycle_failed("store" if isinstance(exc, StoreError) else "plan", exc)
        except BaseException as exc:  # a receiver or a store plugin calling sys.exit(): the loop goes on
            return self._cycle_failed("plan", contained(exc))

    def _finish(self, report: CycleReport, start: float) -> CycleReport:
        report.duration_ms = (time.perf_counter() - start) * 1000
        report.decisions = report.plan.decisions if report.plan else []
        if report.pushed:
            return report
        self.stats.cycles += 1
        self.stats.consecutive_failures = 0
        self.last_good_at, self.last_failure = time.monotonic(), None
        self.stats.last_cycle_at = self.clock.now().isoformat()
        self.stats.last_cycle_ms = round(report.duration_ms, 3)
        self._broker_recovered()
        finished = CycleFinished(stats=self.stats.to_dict(), decisions=len(report.decisions),
                                 fills=len(report.plan.fills) if report.plan else 0, writes=report.writes,
                                 duration_ms=report.duration_ms, dry_run=report.dry_run,
                                 summary=f"cycle {self.stats.cycles}: {len(report.decisions)} decisions")
        signals.send_safe(signals.cycle_finished, self, payload=finished, **finished.to_data())
        return report

    # -- targeted queries ---------------------------------------------------------------------------

    def _query_missing(self, book: list[BrokerOrder], now: datetime) -> dict[str, BrokerOrder | None]:
        """The targeted queries of this cycle, by local order id. A past day's order is asked at most
        PAST_DAY_QUERY_ATTEMPTS times while the query fails or the broker says it still works; then it
        is left unanswered (``Snapshot.unanswered``) and the plan expires it, reported."""
        state = self.store.load()

        def lost_due(order_id: str) -> bool:
            """A LOST order is asked for again after 1, 2, 4 ... intervals, at most every few minutes."""
            if order_id not in self._lost_checked:
                return True
            last, times = self._lost_checked[order_id]
            wait = min(self.interval * float(2 ** min(times - 1, 16)), LOST_REQUERY_MAX_SECONDS)
            return (now - last).total_seconds() >= wait

        results: dict[str, BrokerOrder | None] = {}
        for order in orders_to_query(state, book, self.settings, now, lost_due, self.calendar):
            if self._past_day_attempts.get(order.order_id, 0) >= PAST_DAY_QUERY_ATTEMPTS:
                continue  # unanswered: the plan expires it
            if order.status is OrderStatus.LOST:
                times = self._lost_checked.get(order.order_id, (now, 0))[1]
                self._lost_checked[order.order_id] = (now, times + 1)
            past_day = (self.calendar is not None and order.trading_date is not None
                        and order.trading_date < self.calendar.trading_date(now, order.exchange))
            try:
                answer = self.broker.order_history(order.broker_order_id or "")
                history = OrderChecker(self.broker.name).check("order_history", list(answer) if isinstance(
                    answer, (list, tuple)) else answer).orders  # a bad entry is left out of the history
            except BrokerError as exc:
                self._record_failure("query", exc)
                if past_day:
                    self._past_day_attempts[order.order_id] += 1
                continue
            current = results[order.order_id] = current_state(history)
            if past_day and current is not None and not effective_status(current).is_terminal:
                self._past_day_attempts[order.order_id] += 1  # "still working" after its day
        return results

    def _unanswered(self) -> frozenset[str]:
        return frozenset(oid for oid, n in self._past_day_attempts.items() if n >= PAST_DAY_QUERY_ATTEMPTS)

    # -- publishing ---------------------------------------------------------------------------------

    def _deliver(self, event: Event) -> None:
        signals.send_event(self, event)
        if self.on_published is not None:
            self.on_published(event)
        if self.emit is not None:
            try:
                self.emit(event)
            except BaseException:  # the host guards each sink; this guards a host that does not
                self.stats.failures["sink:" + event.kind] += 1
                log.exception("event sink raised on %s %s; skipped", event.kind, event.event_id)
        self.stats.events_published += 1

    def _publish(self) -> int:
        if self.dry_run:
            return 0  # a dry run announces nothing
        try:
            return self.publisher.publish_pending()
        except Exception as exc:
            self._record_failure("publish", exc)
            return 0

    def _announce_now(self, payload: Payload) -> None:
        """An event about the reconciler itself (not about state): delivered directly, not outboxed."""
        self._deliver(Event.of(payload, stable_id(payload.kind, payload.summary, time.time_ns()), self.clock.now()))

    # -- failures and pacing ------------------------------------------------------------------------

    def _record_failure(self, step: str, exc: Exception) -> FailureKind:
        expected = isinstance(exc, BrokerError | StoreError)
        kind = exc.kind if isinstance(exc, BrokerError) else FailureKind.TRANSIENT
        kind_text = kind.value if isinstance(exc, BrokerError) else type(exc).__name__
        self.stats.failures[f"{step}:{kind_text}"] += 1
        unexpected = not expected
        message = f"{type(exc).__name__}: {exc}"
        if self._quiet.failure(f"{step}:{kind_text}", "%s failed (%s); nothing local changed for this step: %s",
                               step, kind_text, message, exc_info=unexpected):
            self._announce_now(ReconciliationError(step=step, error_kind=kind_text, message=message,
                                                   consecutive=self.stats.consecutive_failures + 1,
                                                   summary=f"{step} failed ({kind_text}): {message}"))
        return kind

    def _cycle_failed(self, step: str, exc: Exception) -> CycleReport:
        kind = self._record_failure(step, exc)
        self.stats.cycles_failed += 1
        self.stats.consecutive_failures += 1
        self.last_failure = (step, kind.value if isinstance(exc, BrokerError) else type(exc).__name__)
        self.next_delay = self._delay_after(kind, getattr(exc, "retry_after", None))
        if kind is FailureKind.AUTH and not self._session_expired:
            self._session_expired = True
            log.error("the broker refused the session: log in again (polling every %.0fs until a valid "
                      "session appears)", self.next_delay)
            self._announce_now(BrokerSessionExpired(message=str(exc),
                                                    summary="broker session expired or invalid: log in again"))
        return CycleReport(error=f"{step}: {type(exc).__name__}: {exc}")

    def _delay_after(self, kind: FailureKind, retry_after: float | None) -> float:
        if kind is FailureKind.AUTH:
            return max(self.interval, AUTH_RETRY_SECONDS)
        if kind is FailureKind.RATE_LIMIT:
            self._rate_limited += 1
            base = max(retry_after or 0.0, self.interval * float(2 ** min(self._rate_limited, 5)))
            return min(base, MAX_BACKOFF_SECONDS) * random.uniform(0.8, 1.2)
        return self.interval

    def _broker_recovered(self) -> None:
        self.next_delay = self.interval
        self._rate_limited = 0
        if self._session_expired:
            self._session_expired = False
            log.info("the broker accepts the session again; polling resumed at %.0fs", self.interval)
        self._quiet.recovered("fetch:", "broker reachable again; reconciliation resumed")

    def _log_decisions(self, plan: Plan, prefix: str) -> None:
        """One readable line per decision; the evidence of both sides rides along as fields of the record
        (``logging.format: json`` writes them; the journal and ``recon report`` keep it either way)."""
        for d in plan.decisions:
            who = " ".join(part for part in (d.order_id, d.symbol) if part) or "-"
            log.log(d.rule.log_level, "%s [%s] %s%s", who, d.rule, prefix, d.action,
                    extra={"rule": d.rule.value, "severity": d.rule.severity.value, "order_id": d.order_id,
                           "symbol": d.symbol, "local": d.local, "broker": d.broker,
                           "announced": d.rule.reported and not self.dry_run})

    # -- the thread ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Run cycles every ``next_delay`` seconds on a daemon thread with its own event loop."""
        self._thread = threading.Thread(target=self._run_thread, name="recon-loop", daemon=True)
        self._thread.start()
        self._started.wait(5)

    def _run_thread(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # a bug outside the guarded steps: say so, health turns 503
            self.died = f"{type(exc).__name__}: {exc}"
            log.critical("the reconciliation thread died (%s); nothing is reconciled any more", self.died,
                         exc_info=True)
            self._started.set()
            with contextlib.suppress(Exception):
                self._announce_now(ReconcilerStopped(reason=self.died, summary=f"reconciler stopped: {self.died}"))

    @property
    def thread_dead(self) -> bool:
        """True when the reconciliation thread was started and ended without being asked to stop."""
        return self.died is not None or (self._thread is not None and not self._thread.is_alive()
                                         and not self._stopping)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._wake = asyncio.Event()
        self._started.set()
        executor = self._worker = DaemonExecutor("recon-worker")
        self._start_push()
        try:
            while not self._stop_event.is_set():
                self._wake.clear()
                await self._cycle(executor)
                waiters = {asyncio.ensure_future(self._stop_event.wait()), asyncio.ensure_future(self._wake.wait())}
                _, pending = await asyncio.wait(waiters, timeout=self.poll_delay(),
                                                return_when=asyncio.FIRST_COMPLETED)
                for waiter in pending:
                    waiter.cancel()
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    # -- pushed updates -----------------------------------------------------------------------------

    def _start_push(self) -> None:
        """Start the broker's push channel (``hostspec.broker.PushingBroker``), if it has one and the
        settings allow it. A failure to start is counted and logged: polling carries on alone."""
        if not (self.settings.push and isinstance(self.broker, PushingBroker)) or self._loop is None:
            return
        try:
            self.broker.start_push(self._loop, PushReceiver(self, self._loop))
        except Exception as exc:
            self._record_failure("push", exc)

    def poll_delay(self) -> float:
        """The wait before the next poll: slower while the push channel is healthy (pushes carry the
        news; the poll is the backstop), the interval (or a failure's back-off) otherwise."""
        if self.push_connected and self.next_delay == self.interval:
            return self.settings.push_interval
        return self.next_delay

    def on_push(self, update: BrokerOrder) -> None:
        """One pushed order update, on the loop: queued, and applied at once (on the worker, in turn
        with the cycles' steps) with any others that arrived meanwhile, as one partial snapshot through
        the same plan and write as a poll."""
        self._pushes.append(update)
        if not self._push_scheduled and self._worker is not None:
            self._push_scheduled = True
            self._worker.submit(self._apply_pushes)

    def _apply_pushes(self) -> None:
        self._push_scheduled = False  # first: an update queued from now on schedules another run
        updates = []
        while self._pushes:
            updates.append(self._pushes.popleft())
        checked = OrderChecker(self.broker.name).check("push", updates)
        self.stats.pushes += len(updates)
        if not checked.orders:
            return
        snapshot = Snapshot(checked.orders, self.clock.now(), calendar=self.calendar, partial=True,
                            order_tag=self.broker.order_tag if isinstance(self.broker, TaggingBroker) else None)
        self._settle_guarded(snapshot, time.perf_counter())

    def on_push_connected(self) -> None:
        """(Re)connected: pushes are not replayed after a disconnect, so poll now (a full resync)."""
        self.push_connected = True
        log.info("push channel connected; a full poll now, then every %.0fs while it stays up",
                 self.settings.push_interval)
        if self._wake is not None:
            self._wake.set()

    def on_push_disconnected(self, reason: str) -> None:
        """Down: what it would have pushed is lost, so poll now and at the interval until it is back."""
        if self.push_connected:
            log.warning("push channel down (%s); polling every %.1fs", reason, self.interval)
            if self._wake is not None:
                self._wake.set()
        self.push_connected = False

    async def _cycle(self, executor: DaemonExecutor) -> None:
        """Every blocking step (publishing, the broker reads, the plan and the write) runs on the daemon
        worker, never on the loop: a stop request need not wait for a slow broker (the cycle in flight is
        abandoned before anything is written), and sinks and receivers run outside any event loop. A
        step that overruns is alarmed by the watchdog while it runs."""
        assert self._loop is not None and self._stop_event is not None
        start = time.perf_counter()
        fetching = self._loop.run_in_executor(executor, self._publish_then_fetch)
        stopping = asyncio.ensure_future(self._stop_event.wait())
        racers: set[asyncio.Future[Any]] = {fetching, stopping}
        overrun = 0
        while True:
            done, _ = await asyncio.wait(racers, timeout=WATCHDOG_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            if done:
                break
            overrun += 1
            self._watchdog(overrun * WATCHDOG_SECONDS)
        stopping.cancel()
        if fetching not in done:
            log.info("stopping: abandoned the cycle waiting for the broker; nothing was written")
            return
        snapshot = fetching.result()
        if not isinstance(snapshot, CycleReport):
            await self._loop.run_in_executor(executor, self._settle_guarded, snapshot, start)

    def _publish_then_fetch(self) -> Snapshot | CycleReport:
        self._publish()
        return self._fetch_guarded()

    def _watchdog(self, seconds: float) -> None:
        """A cycle's step has been running for ``seconds``: said (a warning and a reconciliation-error
        event naming the overrun) at every WATCHDOG_SECONDS it goes on, so a hung broker call is never
        silent. The call itself cannot be interrupted; a stop abandons it."""
        message = f"a broker call has been running for {seconds:.0f} s (the broker or its plugin does not answer)"
        self.stats.failures["fetch:overrun"] += 1
        log.warning("%s; waiting on it, nothing local changes meanwhile", message)
        self._announce_soon(ReconciliationError(step="fetch", error_kind="overrun", message=message,
                                                consecutive=int(seconds // WATCHDOG_SECONDS),
                                                summary=f"fetch overrun: {message}"))

    def _announce_soon(self, payload: Payload) -> None:
        """``_announce_now`` from the loop while the worker is busy: on a thread of its own (sinks never
        run on the loop), daemon, so a stop never waits for it."""
        threading.Thread(target=self._announce_now, args=(payload,), name="recon-announce", daemon=True).start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the loop and join the thread; returns False if it did not end within ``timeout``."""
        if self._thread is None:
            return True
        self._stopping = True
        if self.settings.push and isinstance(self.broker, PushingBroker):
            try:
                self.broker.stop_push()
            except Exception as exc:
                log.warning("the broker's push channel did not stop cleanly: %s", redact(str(exc)))
        if self._loop is not None and self._stop_event is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                self._loop.call_soon_threadsafe(self._stop_event.set)
        self._thread.join(timeout)
        stopped = not self._thread.is_alive()
        if not stopped:
            log.warning("the reconciliation thread did not stop within %.1fs", timeout)
        return stopped

    def flush(self) -> None:
        """Persist the sent watermark and statistics (at shutdown)."""
        if self.dry_run:
            return
        upto = self.publisher.watermark()
        try:
            self.store.apply(ChangeSet(events_sent_upto=upto, checkpoint={"stats": self.stats.to_dict()}))
            self.publisher.persisted(upto)
        except Exception as exc:
            log.warning("could not save the reconciler's statistics at shutdown: %s", exc)
