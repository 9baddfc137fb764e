"""``tradehost recon status | report | check``: operator commands that read without changing anything.

``status`` and ``report`` read today's state by default; with ``--date`` they read one past trading day
from the store's per-day archive (past days leave the live state at the rollover, so they need asking for).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Iterable
from dataclasses import asdict, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hostspec.broker import BrokerError
from hostspec.codec import to_dict
from hostspec.commands import Command, HostOpener
from hostspec.model import JournalEntry, Order, Side, key_str, utcnow
from hostspec.store import StateStore, StoreError
from recon_plugin.runner import make_reconciler
from recon_plugin.settings import settings_for


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _add_date(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--date", metavar="YYYY-MM-DD", type=_parse_date,
                        help=f"{what} of this past trading day, from the archive (past days leave the live state "
                             "at the rollover); exit 1 when the archive has nothing of that day")


def _setup_status(parser: argparse.ArgumentParser) -> None:
    _add_json(parser)
    _add_date(parser, "the orders and ledger")


def _setup_report(parser: argparse.ArgumentParser) -> None:
    _add_json(parser)
    parser.add_argument("--since", metavar="TIME", type=_parse_since,
                        help="only entries at or after TIME: ISO 8601 (2026-01-02T09:15) or an age (30m, 2h, 1d)")
    _add_date(parser, "the journal")


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


def status(args: argparse.Namespace, app: HostOpener) -> int:
    with app.open_host(args.config, read_only=True, with_broker=False) as host:
        assert host.store is not None
        if args.date is not None:
            return _day_status(host.store, args.date, args.json)
        state = host.store.load()
    orders = sorted(state.orders.values(), key=lambda o: o.created_at)
    stats = state.checkpoint.get("stats", {})
    if args.json:
        print(json.dumps({"orders": [to_dict(o) for o in orders],
                          "positions": [{**to_dict(p), "average_price": _text(p.average_price())}
                                        for p in state.positions.values()],
                          "stats": stats, "last_snapshot_at": state.checkpoint.get("last_snapshot_at")}, indent=1))
        return 0
    _print_orders(orders)
    print(f"positions ({len(state.positions)}):")
    for p in sorted(state.positions.values(), key=lambda p: p.key):
        print(f"  {key_str(p.key):<24} {p.quantity:>8}  avg {_text(p.average_price())}  "
              f"(bought {p.buy_qty} for {_text(p.buy_value)}, sold {p.sell_qty} for {_text(p.sell_value)})")
    print("statistics (as of the last write):")
    if not stats:
        print("  none yet")
    for key in ("cycles", "cycles_failed", "fills_applied", "events_published", "store_writes", "conflicts",
                "last_cycle_at", "last_cycle_ms"):
        if key in stats:
            print(f"  {key:<18} {stats[key]}")
    for key in ("discrepancies", "failures"):
        if stats.get(key):
            print(f"  {key:<18} " + ", ".join(f"{k} {v}" for k, v in sorted(stats[key].items())))
    return 0


def _print_orders(orders: list[Order]) -> None:
    print(f"orders ({len(orders)}):")
    print(f"  {'id':<22} {'symbol':<10} {'side':<4} {'qty':>6} {'status':<10} {'filled':>6} {'avg price':>12}")
    for o in orders:
        print(f"  {o.order_id:<22} {o.symbol:<10} {o.side.value:<4} {o.quantity:>6} {o.status.value:<10} "
              f"{o.filled_qty:>6} {_text(o.avg_price):>12}")


def _day_status(store: StateStore, day: date, as_json: bool) -> int:
    """An archived day: its orders as ``status`` shows today's, and what its ledger applied to positions."""
    state = store.load_day(day)
    if state is None:
        return _no_archive(store, day)
    orders = sorted(state.orders.values(), key=lambda o: o.created_at)
    if as_json:
        print(json.dumps({"date": day.isoformat(), "orders": [to_dict(o) for o in orders],
                          "ledger": [to_dict(e) for e in state.ledger.values()]}, indent=1))
        return 0
    print(f"trading date {day.isoformat()} (archived)")
    _print_orders(orders)
    print(f"ledger ({len(state.ledger)} orders with fills applied):")
    for side in Side:
        entries = [e for e in state.ledger.values() if (o := state.orders.get(e.order_id)) and o.side is side]
        print(f"  {'bought' if side is Side.BUY else 'sold':<6} {sum(e.filled_qty for e in entries):>8} "
              f"for {_text(sum((e.filled_value for e in entries), Decimal(0)))}")
    return 0


def _no_archive(store: StateStore, day: date) -> int:
    days = store.archived_days()
    held = f"it holds {len(days)} days, {days[0].isoformat()} to {days[-1].isoformat()}" if days else "it is empty"
    print(f"recon: the archive has nothing of {day.isoformat()} ({held}; today's state is read without --date)",
          file=sys.stderr)
    return 1


def report(args: argparse.Namespace, app: HostOpener) -> int:
    with app.open_host(args.config, read_only=True, with_broker=False) as host:
        assert host.store is not None
        entries: Iterable[JournalEntry]
        if args.date is not None:
            if host.store.load_day(args.date) is None:
                return _no_archive(host.store, args.date)
            entries = [e for e in host.store.journal_day(args.date) if args.since is None or e.at >= args.since]
        else:  # streamed when the store can (a long journal is never held whole)
            entries = getattr(host.store, "iter_journal", host.store.journal)(args.since)
        if args.json:
            _print_json(entries)
        else:
            _print_entries(entries)
    return 0


def _print_json(entries: Iterable[JournalEntry]) -> None:
    """``json.dumps(list, indent=1)``'s text, one entry at a time."""
    separator = "[\n"
    for e in entries:
        sys.stdout.write(separator + textwrap.indent(json.dumps(to_dict(e), indent=1), " "))
        separator = ",\n"
    print("[]" if separator == "[\n" else "\n]")


def _print_entries(entries: Iterable[JournalEntry]) -> None:
    count = 0
    for e in entries:
        count += 1
        print(f"{e.at.astimezone().isoformat(timespec='seconds')}  {e.rule:<18} {e.order_id or e.symbol or '-':<22} "
              f"{e.action}")
        print(f"{'':<27}local {_compact(e.local)}  broker {_compact(e.broker)}")
    print(f"{count} journal entries")


def check(args: argparse.Namespace, app: HostOpener) -> int:
    try:
        host = app.open_host(args.config, read_only=True)
    except (BrokerError, StoreError) as exc:
        print(f"recon check: could not complete a cycle: cannot open the broker or store: {exc}")
        return 2
    with host:
        result = make_reconciler(host, replace(settings_for(host.config), dry_run=True)).run_cycle()
    if result.error or result.plan is None:
        print(f"recon check: could not complete a cycle: {result.error}")
        return 2
    plan = result.plan
    if args.json:
        print(json.dumps({"in_sync": plan.is_empty(), "decisions": [asdict(d) for d in plan.decisions],
                          "fills": [to_dict(f) for f in plan.fills],
                          "would_write": {"orders": len(plan.changes.orders), "positions": len(plan.changes.positions),
                                          "ledger": len(plan.changes.ledger), "events": len(plan.changes.events)}},
                         indent=1, default=str))
    elif plan.is_empty():
        print("recon check: local state and broker agree")
    else:
        print(f"recon check: {len(plan.decisions)} differences (dry-run: nothing was changed)")
        for d in plan.decisions:
            print(f"  [{d.rule}] {d.order_id or d.symbol or '-'}: would {d.action}")
    return 0 if plan.is_empty() else 1


def _text(value: Any) -> str:
    """A Decimal without trailing zeros (same value, shorter text); anything else as is."""
    if value is None:
        return "-"
    return f"{value.normalize():f}" if isinstance(value, Decimal) else str(value)


def _compact(data: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in data.items() if v not in (None, "")) or "-"


RECON_COMMAND = Command("recon", "inspect reconciliation: status, journal report, dry-run check", subcommands=(
    Command("status", "local orders, positions and reconciliation statistics, read from the store "
                      "(--date: a past trading day's orders and ledger, from the archive)",
            _setup_status, status, uses_config=True),
    Command("report", "the reconciliation journal: every discrepancy and its resolution "
                      "(--date: a past trading day's, from the archive)",
            _setup_report, report, uses_config=True),
    Command("check", "run one cycle in dry-run: report what would change, change nothing "
                     "(exit 0 in sync, 1 differences found, 2 error)", _add_json, check, uses_config=True),
))
