"""``tradehost recon status | report | check | resolve``: the operator's commands. The first three read
without changing anything; ``resolve`` is the operator's hand (``recon_plugin.operator``).

``status`` and ``report`` read today's state by default; with ``--date`` they read one past trading day
from the store's per-day archive (past days leave the live state at the rollover, so they need asking for).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from hostspec.book import needs_attention, order_line
from hostspec.broker import BrokerError
from hostspec.codec import to_dict
from hostspec.commands import Command, HostOpener
from hostspec.display import WIDTH, clip, money
from hostspec.errors import ConfigError
from hostspec.host import Host
from hostspec.model import JournalEntry, LocalState, Order, OrderStatus, Side, utcnow
from hostspec.store import StateStore, StoreError
from recon_plugin.operator import AS_STATUS, Refused, Request, operator_name, resolve
from recon_plugin.plan import Plan
from recon_plugin.rules import Rule, Severity
from recon_plugin.runner import make_reconciler
from recon_plugin.settings import settings_for
from recon_plugin.views import (
    OPERATOR_RULES,
    EntryFilter,
    OrderFilter,
    Where,
    action_text,
    exchanges_of,
    plural,
    report_lines,
    statistics_lines,
    status_lines,
)


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _add_date(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--date", metavar="YYYY-MM-DD", type=_parse_date,
                        help=f"{what} of this past trading day, from the archive (past days leave the live state "
                             "at the rollover); exit 1 when the archive has nothing of that day")


def _setup_status(parser: argparse.ArgumentParser) -> None:
    _add_json(parser)
    _add_date(parser, "the orders and ledger")
    parser.add_argument("--all", action="store_true", help="also list the orders that need nothing (terminal)")
    parser.add_argument("--symbol", metavar="SYMBOL", help="only this symbol's orders and positions")
    parser.add_argument("--status", metavar="STATUS[,STATUS]", type=_parse_statuses,
                        help="only orders in these statuses, e.g. LOST or PLACED,PARTIAL")


def _setup_report(parser: argparse.ArgumentParser) -> None:
    _add_json(parser)
    parser.add_argument("--since", metavar="TIME", type=_parse_since,
                        help="only entries at or after TIME: ISO 8601 (2026-01-02T09:15) or an age (30m, 2h, 1d)")
    parser.add_argument("--until", metavar="TIME", type=_parse_since,
                        help="only entries at or before TIME (as --since)")
    _add_date(parser, "the journal")
    parser.add_argument("--symbol", metavar="SYMBOL", help="only entries about this symbol")
    parser.add_argument("--order", metavar="ORDER", help="only entries about this local order id")
    parser.add_argument("--rule", metavar="RULE[,RULE]", type=_parse_rules, default=frozenset(),
                        help="only entries of these rules, e.g. lost,missing")
    parser.add_argument("--severity", choices=[s.value for s in Severity],
                        help="only entries of this severity or worse (info < warning < error)")
    parser.add_argument("--limit", metavar="N", type=_positive, help="list only the last N entries (the summary "
                                                                        "counts them all)")


def _setup_resolve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("order", metavar="ORDER", help="the local order id (recon status lists them)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--as", dest="as_status", choices=sorted(AS_STATUS),
                        help="what became of the order, as you learnt it outside the broker's book")
    action.add_argument("--dismiss", action="store_true",
                        help="acknowledge the order's alarm: it leaves 'needs attention' until its condition changes")
    parser.add_argument("--reason", required=True, metavar="TEXT", help="why, for the record (journal and events)")
    parser.add_argument("--price", metavar="PRICE", type=_price, help="with --as filled: the average fill price")


def _parse_statuses(text: str) -> frozenset[OrderStatus]:
    try:
        return frozenset(OrderStatus(s.strip().upper()) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a status: {text!r} (one of {', '.join(OrderStatus)})") from None


def _parse_rules(text: str) -> frozenset[str]:
    rules = frozenset(r.strip() for r in text.split(",") if r.strip())
    unknown = rules - {r.value for r in Rule}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown rule {', '.join(sorted(unknown))} (recon report --json shows "
                                         "the rules written)")
    return rules


def _positive(text: str) -> int:
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")


def _price(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"not a price: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive price: {text!r}")
    return value


def _parse_date(text: str) -> date:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}")


def _parse_since(text: str) -> datetime:
    match = re.fullmatch(r"(\d+)\s*([smhd])", text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return utcnow() - timedelta(**{unit: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time or an age: {text!r}") from None
    return when if when.tzinfo else when.astimezone()


def _where(host: Host) -> Where:
    zone = host.calendar.zone if host.calendar is not None else None
    return Where(zone, utcnow().astimezone(zone).date())


def status(args: argparse.Namespace, app: HostOpener) -> int:
    with app.open_host(args.config, read_only=True, with_broker=False) as host:
        assert host.store is not None
        where = _where(host)
        if args.date is not None:
            return _day_status(host.store, args.date, args.json, where)
        state = host.store.load()
        journal = host.store.journal(utcnow() - timedelta(days=1))
    only = OrderFilter(args.symbol, args.status or frozenset())
    orders = sorted((o for o in state.orders.values() if only.keeps(o)), key=lambda o: o.created_at)
    stats = state.checkpoint.get("stats", {})
    if args.json:
        attention = [a for a in needs_attention(state) if only.keeps(a.order)]
        _print_json({"orders": [to_dict(o) for o in orders],
                     "positions": [{**to_dict(p), "average_price": _text(p.average_price(12))}
                                   for p in state.positions.values() if args.symbol is None
                                   or p.symbol.upper() == args.symbol.upper()],
                     "needs_attention": [{"order_id": a.order.order_id, "symbol": a.order.symbol,
                                          "status": a.order.status.value, "why": a.why,
                                          "since": a.order.updated_at.isoformat()} for a in attention],
                     "resolved_by_hand": [to_dict(e) for e in journal if e.rule in OPERATOR_RULES],
                     "stats": stats, "last_snapshot_at": state.checkpoint.get("last_snapshot_at")})
        return 0
    for line in status_lines(state, journal, where, only, args.all) + statistics_lines(stats):
        print(line)
    return 0


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=1, default=str))


def _day_status(store: StateStore, day: date, as_json: bool, where: Where) -> int:
    """An archived day: its orders as ``status`` shows today's, and what its ledger applied to positions."""
    state = store.load_day(day)
    if state is None:
        return _no_archive(store, day)
    orders = sorted(state.orders.values(), key=lambda o: o.created_at)
    if as_json:
        _print_json({"date": day.isoformat(), "orders": [to_dict(o) for o in orders],
                     "ledger": [to_dict(e) for e in state.ledger.values()]})
        return 0
    print(f"trading date {day.isoformat()} (archived)")
    print(f"orders ({len(orders)}):")
    for order in orders:
        print(clip(order_line(order, where.zone, where.today)))
    print(f"ledger ({len(state.ledger)} orders with fills applied):")
    exchange = orders[0].exchange if orders else None
    for side in Side:
        entries = [e for e in state.ledger.values() if (o := state.orders.get(e.order_id)) and o.side is side]
        print(f"  {'bought' if side is Side.BUY else 'sold':<6} {sum(e.filled_qty for e in entries):>8} "
              f"for {money(sum((e.filled_value for e in entries), Decimal(0)), exchange)}")
    return 0


def _no_archive(store: StateStore, day: date) -> int:
    days = store.archived_days()
    held = f"it holds {len(days)} days, {days[0].isoformat()} to {days[-1].isoformat()}" if days else "it is empty"
    print(f"recon: the archive has nothing of {day.isoformat()} ({held}; today's state is read without --date)",
          file=sys.stderr)
    return 1


def report(args: argparse.Namespace, app: HostOpener) -> int:
    only = EntryFilter(args.since, args.until, args.symbol, args.order, args.rule,
                       Severity(args.severity) if args.severity else None)
    with app.open_host(args.config, read_only=True, with_broker=False) as host:
        store = host.store
        assert store is not None
        where = _where(host)
        if args.date is not None:
            day = store.load_day(args.date)
            if day is None:
                return _no_archive(store, args.date)
            archived = store.journal_day(args.date)
            orders = day.orders

            def source() -> Iterable[JournalEntry]:
                return archived
        else:
            orders = store.load().orders

            def source() -> Iterable[JournalEntry]:  # streamed when the store can: a long journal is never held whole
                return cast(Iterable[JournalEntry], getattr(store, "iter_journal", store.journal)(args.since))

        def matching() -> Iterator[JournalEntry]:
            return (e for e in source() if only.keeps(e))

        if args.json:
            _print_json_stream(deque(matching(), maxlen=args.limit) if args.limit else matching())
            return 0
        for line in report_lines(matching, exchanges_of(orders.values()), where, args.limit):
            print(line)
    return 0


def _print_json_stream(entries: Iterable[JournalEntry]) -> None:
    """``json.dumps(list, indent=1)``'s text, one entry at a time."""
    separator = "[\n"
    for e in entries:
        sys.stdout.write(separator + textwrap.indent(json.dumps(to_dict(e), indent=1, default=str), " "))
        separator = ",\n"
    print("[]" if separator == "[\n" else "\n]")


def check(args: argparse.Namespace, app: HostOpener) -> int:
    try:
        host = app.open_host(args.config, read_only=True)
    except (BrokerError, StoreError) as exc:
        print(f"recon check: could not complete a cycle: cannot open the broker or store: {exc}")
        return 2
    with host:
        result = make_reconciler(host, replace(settings_for(host.config), dry_run=True)).run_cycle()
        state = host.store.load() if host.store is not None else LocalState()
    if result.error or result.plan is None:
        print(f"recon check: could not complete a cycle: {result.error}")
        return 2
    plan = result.plan
    pending = _pending_past_day(plan, state)
    in_sync = not plan.decisions and not pending
    if args.json:
        _print_json({"in_sync": in_sync, "decisions": [asdict(d) for d in plan.decisions],
                     "past_day_orders": [o.order_id for o in pending],
                     "fills": [to_dict(f) for f in plan.fills],
                     "would_write": {"orders": len(plan.changes.orders), "positions": len(plan.changes.positions),
                                     "ledger": len(plan.changes.ledger), "events": len(plan.changes.events)}})
    elif in_sync:
        print("recon check: local state and broker agree")
    else:
        for line in check_lines(plan, pending, exchanges_of(state.orders.values())):
            print(clip(line))
    return 0 if in_sync else 1


def _pending_past_day(plan: Plan, state: LocalState) -> list[Order]:
    """Orders a cycle would only mark with their (ended) trading date: the broker is asked for them at
    the next cycles, and they settle or expire then. A difference, though no rule fired yet."""
    decided = {d.order_id for d in plan.decisions}
    return [o for o in plan.changes.orders if o.order_id not in decided and not o.status.is_terminal
            and (before := state.orders.get(o.order_id)) is not None and before.trading_date is None
            and o.trading_date is not None]


def check_lines(plan: Plan, pending: list[Order], exchanges: dict[str, str]) -> list[str]:
    """What a cycle would do, in sentences: one line per difference, its rule, what the rule means and
    what a cycle would do (prices at tick precision)."""
    lines = []
    if plan.decisions:
        lines.append(f"recon check: {plural(len(plan.decisions), 'difference', 'differences')}; a cycle would "
                     f"resolve {'it' if len(plan.decisions) == 1 else 'them'} as follows (dry run: nothing was "
                     "changed):")
        lines += [f"  {d.order_id or d.symbol or '-'} [{d.rule}]: {d.rule.meaning.split(':')[0]}; "
                  f"{action_text(d.action, exchanges.get(d.order_id or ''))}" for d in plan.decisions]
    if pending:
        days = ", ".join(sorted({str(o.trading_date) for o in pending}))
        them = "it" if len(pending) == 1 else "them"
        lines += textwrap.wrap(
            f"recon check: {plural(len(pending), 'order', 'orders')} of an ended trading day ({days}) still open "
            f"locally; the next cycles ask the broker for {them}, then settle or expire {them} (dry run: nothing "
            "was changed):", WIDTH, subsequent_indent="  ")
        lines += [f"  {o.order_id} {o.symbol} {o.side.value} {o.quantity} ({o.status})" for o in pending]
    return lines


def resolve_command(args: argparse.Namespace, app: HostOpener) -> int:
    """``recon resolve``: one operator action, through the plan-and-apply path (``recon_plugin.operator``)."""
    if args.price is not None and args.as_status != "filled":
        raise ConfigError("--price", "", "only goes with --as filled")
    request = Request(args.order, None if args.dismiss else AS_STATUS[args.as_status], args.reason.strip(),
                      operator_name(), args.price)
    if not request.reason:
        raise ConfigError("--reason", "", "must say why (it goes on the record)")
    with app.open_host(args.config, with_broker=not args.dismiss) as host:
        assert host.store is not None
        try:
            plan = resolve(host.store, host.broker, request, settings_for(host.config), utcnow(), host.calendar)
        except BrokerError as exc:
            print(f"recon resolve: could not ask the broker about {args.order} ({exc}); nothing was changed",
                  file=sys.stderr)
            return 1
        except Refused as exc:
            print(f"recon resolve: refused, nothing was changed: {exc}", file=sys.stderr)
            return exc.exit_status
    for d in plan.decisions:
        print(clip(f"recon resolve: {d.order_id} [{d.rule}] {d.action}"))
    for event in plan.changes.events:
        print(clip(f"  event {event.kind}: {event.summary} (published when the host next starts)"))
    return 0


def _text(value: Any) -> str:
    """A Decimal without trailing zeros (same value, shorter text); anything else as is."""
    if value is None:
        return "-"
    return f"{value.normalize():f}" if isinstance(value, Decimal) else str(value)


RECON_COMMAND = Command("recon", "inspect reconciliation: status, journal report, dry-run check", subcommands=(
    Command("status", "local orders, positions and reconciliation statistics, read from the store "
                      "(--date: a past trading day's orders and ledger, from the archive)",
            _setup_status, status, uses_config=True),
    Command("report", "the reconciliation journal: every discrepancy and its resolution "
                      "(--date: a past trading day's, from the archive)",
            _setup_report, report, uses_config=True),
    Command("check", "run one cycle in dry-run: report what would change, change nothing "
                     "(exit 0 in sync, 1 differences found, 2 error)", _add_json, check, uses_config=True),
    Command("resolve", "resolve an order the broker does not know by hand (--as cancelled|filled|expired), or "
                       "dismiss an alarm (--dismiss), with --reason on the record; stop the host first "
                       "(exit 2: refused, nothing changed)", _setup_resolve, resolve_command, uses_config=True),
))
