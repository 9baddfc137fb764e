"""What ``recon status`` and ``recon report`` print: text for a person, at a glance.

Pure functions from the store's records to lines (``hostspec.display`` conventions: prices at the
instrument's tick precision, times in the exchange's zone, at most 120 columns). The commands that
read the store and parse options are ``recon_plugin.commands``.
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from hostspec.book import Attention, attention_line, needs_attention, open_orders, order_line, positions_lines
from hostspec.display import WIDTH, clip, date_time, money, wrap
from hostspec.model import JournalEntry, LocalState, Order, OrderStatus
from recon_plugin.rules import Rule, Severity

OPERATOR_RULES = (Rule.OPERATOR_RESOLVED.value, Rule.OPERATOR_DISMISSED.value)
DRIFT_RULES = (Rule.POSITION_DRIFT.value, Rule.HOLDINGS_MISMATCH.value)
SEVERITY_ORDER = (Severity.ERROR, Severity.WARNING, Severity.INFO)
_RULES = {rule.value: rule for rule in Rule}


@dataclass(frozen=True)
class Where:
    """How times are shown: the exchange's zone, and today's date there (left out of today's times)."""

    zone: tzinfo | None
    today: date | None

    def time(self, at: datetime) -> str:
        return date_time(at, self.zone, self.today)


@dataclass(frozen=True)
class OrderFilter:
    """``--symbol`` and ``--status`` of ``recon status``."""

    symbol: str | None = None
    statuses: frozenset[OrderStatus] = frozenset()

    def keeps(self, order: Order) -> bool:
        return ((self.symbol is None or order.symbol.upper() == self.symbol.upper())
                and (not self.statuses or order.status in self.statuses))


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def severity_of(rule: str) -> Severity:
    known = _RULES.get(rule)
    return known.severity if known is not None else Severity.WARNING  # a rule this version does not know


# -- recon status -------------------------------------------------------------------------------------

def broker_health(stats: dict[str, Any]) -> str | None:
    """What the statistics say of the broker session, when they say anything."""
    failing = int(stats.get("consecutive_failures") or 0)
    if not failing:
        return None
    if any(key.endswith(":auth") for key in stats.get("failures", {})):
        return f"broker: the session was refused in the last cycles ({failing} failed in a row): log in again"
    return f"broker: the last {failing} cycles failed (see the log)"


def status_lines(state: LocalState, journal: Sequence[JournalEntry], where: Where, only: OrderFilter,
                 show_all: bool) -> list[str]:
    """``recon status``: needs attention (LOST first), resolved by hand, open orders, positions, the rest."""
    attention = [a for a in needs_attention(state) if only.keeps(a.order)]
    drift = [e for e in journal if e.rule in DRIFT_RULES and (only.symbol is None or only.symbol.upper()
                                                              in (e.symbol or "").upper().split(":"))]
    health = broker_health(state.checkpoint.get("stats", {}))
    lines = [_heading(state, attention, drift, health, where)]
    count = len(attention) + len(drift) + (health is not None)
    if count:
        lines.append(f"needs attention ({count}):")
        lines += [f"  {health}"] if health else []
        lines += [attention_line(a, where.zone, where.today) for a in attention]
        lines += [f"  {e.symbol or '-':<28} {e.rule}: {e.action} ({where.time(e.at)})" for e in drift]
    resolved = [e for e in journal if e.rule in OPERATOR_RULES
                and (only.symbol is None or (e.symbol or "").upper() == only.symbol.upper())]
    if resolved:
        lines.append(f"resolved by hand ({len(resolved)}):")
        lines += [f"  {where.time(e.at)}  {e.order_id or '-'} {e.symbol or '-'}: {e.action}" for e in resolved]
    shown = {a.order.order_id for a in attention}
    working = [o for o in open_orders(state.orders.values()) if only.keeps(o) and o.order_id not in shown]
    lines.append(f"open orders ({len(working)}):" + ("" if working else " none"))
    lines += [order_line(o, where.zone, where.today) for o in working]
    lines += positions_lines(state.positions.values(), only.symbol)
    rest = sorted((o for o in state.orders.values() if only.keeps(o) and o.order_id not in shown
                   and o not in working), key=lambda o: (o.created_at, o.order_id))
    if show_all:
        lines.append(f"other orders ({len(rest)}):" + ("" if rest else " none"))
        lines += [order_line(o, where.zone, where.today) for o in rest]
    elif rest:
        by_status = Counter(o.status.value for o in rest)
        lines.append(f"not shown: {plural(len(rest), 'other order', 'other orders')} ("
                     + ", ".join(f"{n} {s}" for s, n in sorted(by_status.items())) + "); --all lists them")
    return [clip(line) for line in lines]


def _heading(state: LocalState, attention: list[Attention], drift: list[JournalEntry], health: str | None,
             where: Where) -> str:
    last = state.checkpoint.get("last_snapshot_at")
    seen = f"broker last read {where.time(datetime.fromisoformat(last))}" if last else "broker not read yet"
    lost = sum(a.lost for a in attention)
    if attention or drift or health:
        count = len(attention) + len(drift) + (health is not None)
        verdict = f"NOT in sync: {plural(count, 'thing needs', 'things need')} attention" + (
            f", {lost} LOST" if lost else "")
    else:
        verdict = "in sync"
    held = f"{plural(len(state.orders), 'order', 'orders')}, {plural(len(state.positions), 'position', 'positions')}"
    return f"book: {verdict}; {held}; {seen}"


def statistics_lines(stats: dict[str, Any]) -> list[str]:
    if not stats:
        return ["statistics (since this store began): none yet"]
    figures = [f"{stats[k]} {k.replace('_', ' ')}" for k in (
        "cycles", "cycles_failed", "fills_applied", "events_published", "store_writes", "conflicts") if k in stats]
    lines = wrap("statistics (since this store began): ", figures)
    for key in ("discrepancies", "failures"):
        if stats.get(key):
            items = [f"{k} {v}" for k, v in sorted(stats[key].items(), key=lambda kv: -kv[1])]
            lines += wrap(f"  {'decisions by rule' if key == 'discrepancies' else key}: ", items, indent=4)
    return lines


# -- recon report -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EntryFilter:
    """The filters of ``recon report``; ``severity``: this severity and above."""

    since: datetime | None = None
    until: datetime | None = None
    symbol: str | None = None
    order: str | None = None
    rules: frozenset[str] = frozenset()
    severity: Severity | None = None

    def keeps(self, e: JournalEntry) -> bool:
        if (self.since and e.at < self.since) or (self.until and e.at > self.until):
            return False
        if self.symbol and self.symbol.upper() not in (e.symbol or "").upper().split(":"):
            return False
        if self.order and e.order_id != self.order:
            return False
        if self.rules and e.rule not in self.rules:
            return False
        return self.severity is None or SEVERITY_ORDER.index(severity_of(e.rule)) <= SEVERITY_ORDER.index(
            self.severity)


def summary_lines(entries: Iterable[JournalEntry], where: Where) -> tuple[list[str], int]:
    """The period, then the count of entries by severity and rule, the most pressing first; the orders of
    an error (a LOST order) are named there. One pass over ``entries`` (a stream: never held whole);
    returns the lines and how many entries there were."""
    by_severity: dict[Severity, Counter[str]] = {s: Counter() for s in SEVERITY_ORDER}
    named: dict[str, dict[str, None]] = {}
    first = last = None
    for e in entries:
        first, last = first or e, e
        severity = severity_of(e.rule)
        by_severity[severity][e.rule] += 1
        if severity is Severity.ERROR:
            named.setdefault(e.rule, {})[f"{e.order_id or '-'} {e.symbol or ''}".strip()] = None
    if first is None or last is None:
        return ["journal: no entries match"], 0
    count = sum(sum(c.values()) for c in by_severity.values())
    totals = ", ".join(f"{sum(c.values())} {s}" for s, c in by_severity.items() if c)
    zone = first.at.astimezone(where.zone).tzname()
    period = f"{where.time(first.at)} to {where.time(last.at)}"
    lines = [f"journal {period}: {plural(count, 'entry', 'entries')} ({totals}); times {zone}"]
    for severity, counts in by_severity.items():
        for i, (rule, n) in enumerate(counts.most_common()):
            orders = (": " + ", ".join(named[rule])) if rule in named else ""
            lines += textwrap.wrap(f"  {severity.value if i == 0 else '':<8} {rule:<23} {n:>5}{orders}", WIDTH,
                                   subsequent_indent=" " * 41)
    return lines, count


_PRICE = re.compile(r"@ (\d+(?:\.\d+)?)")


def action_text(action: str, exchange: str | None) -> str:
    """A rule's action with its prices ("applied 3 @ 308") at the exchange's tick precision."""
    return _PRICE.sub(lambda m: f"@ {money(Decimal(m.group(1)), exchange)}", action)


def entry_line(e: JournalEntry, exchange: str | None, where: Where) -> str:
    """One journal entry on one line: when, severity, rule, order, symbol, what was done (prices at tick)."""
    action = action_text(e.action, exchange)
    local = e.at.astimezone(where.zone)
    when = f"{local:%H:%M:%S}" if local.date() == where.today else f"{local:%Y-%m-%d %H:%M:%S}"
    return clip(f"{when}  {severity_of(e.rule).value:<7} {e.rule:<17} {e.order_id or '-':<14} {e.symbol or '-':<10} "
                f"{action}")


def report_lines(entries: Callable[[], Iterable[JournalEntry]], exchanges: dict[str, str], where: Where,
                 limit: int | None) -> Iterator[str]:
    """The summary of every matching entry, then the entries (the last ``limit`` of them), one line each.
    ``entries()`` gives the matching entries afresh: read twice, as streams (the summary comes first)."""
    lines, count = summary_lines(entries(), where)
    yield from (clip(line) for line in lines)
    if count:
        shown = min(limit or count, count)
        yield (f"entries ({shown} of {count}, oldest first; --json for both sides' evidence):" if shown < count
               else "entries (oldest first; --json for both sides' evidence):")
        for e in deque(entries(), maxlen=limit) if limit else entries():
            yield entry_line(e, exchanges.get(e.order_id or ""), where)


def exchanges_of(orders: Iterable[Order]) -> dict[str, str]:
    return {o.order_id: o.exchange for o in orders}
