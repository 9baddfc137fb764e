"""The reconciler and the paper broker through Thursday 2026-11-19, Friday 20 and Monday 23, through
the real host: the configuration, the installed plugins (the paper broker on the host's clock, its
calendar from ``hostspec_market_calendar``), the TinyDB store; a host restart each morning and one in
the middle of Friday, all on one ManualClock.

The same promises as with Kite: no order LOST, no alarm; yesterday's unfinished orders EXPIRED with
their fills kept, each asked for once; positions equal the broker's (LIVE mode, so they are
compared); delivery buys named settlement with the paper account's holdings; an AMO placed on
Friday evening still working on Monday; past days' settled orders in the archive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from hostspec.app import App
from hostspec.calendar import ManualClock
from hostspec.host import Host
from hostspec.model import OrderStatus, Side
from recon_plugin.brokers.paper import PaperExchange
from recon_plugin.rules import Rule
from recon_plugin.runner import make_reconciler
from recon_plugin.settings import settings_for
from tests.helpers import FRI, MON, THU, DayDesk, alarms, ist, write

S = OrderStatus
NEVER = 10**6  # a script tick that never comes



class PaperDesk(DayDesk):
    """A host opened from a config file on the shared clock, cycles driven by the test's hand."""

    def __init__(self, config: Path, clock: ManualClock) -> None:
        super().__init__()
        self.config, self.clock = config, clock
        self.app = App()
        self.asked: Counter[str] = Counter()
        self.host: Host | None = None
        self.restart()

    def restart(self) -> None:
        """A host restart: close everything, open the host again from the same files."""
        self.close()
        self.host = self.app.open_host(self.config, clock=self.clock)
        assert self.host.calendar is not None  # the paper plugin said which calendar it follows
        self.store, self.broker = self.host.store, self.host.broker
        self.reconciler = make_reconciler(self.host, settings_for(self.host.config))
        self.asked = Counter()  # this host's direct queries
        history = self.exchange.order_history

        def counted(broker_order_id: str) -> list:  # every direct query, counted
            self.asked[broker_order_id] += 1
            return history(broker_order_id)
        self.exchange.order_history = counted  # type: ignore[method-assign]

    def close(self) -> None:
        if self.host is not None:
            self.host.close()

    @property
    def exchange(self) -> PaperExchange:
        assert self.host is not None and isinstance(self.host.broker, PaperExchange)
        return self.host.broker

    def place(self, local_id: str, symbol: str, quantity: int, *script: tuple[int, str, int],
              product: str = "CNC", exchange: str = "NSE") -> str:
        """Place on the paper account (with a known future: steps at ticks after placement) and record
        the order locally, as the host's order flow would."""
        broker_id = self.exchange.place_order(tag=local_id, exchange=exchange, symbol=symbol, product=product,
                                              side=Side.BUY, quantity=quantity)
        placed = self.exchange._account["orders"][broker_id]
        placed["script"] = [[placed["placed_tick"] + tick, action, qty] for tick, action, qty in script]
        self.exchange._save(self.exchange._account)
        return self.record(local_id, broker_id, symbol, quantity, exchange, product)


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[PaperDesk]:
    config = write(tmp_path / "paper.yaml", f"""
        mode: live
        broker:
          name: paper
          paper: {{path: {tmp_path / 'paper.json'}, tick_seconds: 1, reject_rate: 0, cancel_rate: 0}}
        store: {{path: {tmp_path / 'state.json'}}}
        reconciliation: {{interval_seconds: 2, missing_grace_seconds: 4}}
        plugins: {{disabled: [demo]}}
    """)
    d = PaperDesk(config, ManualClock(ist(THU, 9, 20)))
    yield d
    d.close()


def test_three_trading_days_on_the_paper_account_with_a_restart_every_morning(desk: PaperDesk) -> None:
    # Thursday: one order never fills, one half-fills, a future and a delivery buy fill; the host
    # stops at 15:00, before the close
    ids = {"A": desk.place("A", "SBIN", 10, (1, "ack", 0), (NEVER, "fill", 10)),
           "B": desk.place("B", "ITC", 6, (1, "ack", 0), (2, "fill", 3), (NEVER, "fill", 3)),
           "F": desk.place("F", "NIFTY26NOVFUT", 75, (1, "ack", 0), (2, "fill", 75), product="NRML",
                           exchange="NFO"),
           "C": desk.place("C", "INFY", 5, (1, "ack", 0), (3, "fill", 5))}
    desk.run(6)
    assert alarms(desk.reports) == []
    assert {k: desk.local(k).status for k in ids} == {"A": S.PLACED, "B": S.PARTIAL, "F": S.FILLED, "C": S.FILLED}
    desk.positions_agree()

    # Friday morning (the paper exchange cancelled A and B at Thursday's close; the host was down)
    desk.clock.set(ist(FRI, 9, 20))
    desk.restart()
    friday = desk.run(6)
    assert alarms(friday) == []
    assert (desk.local("A").status, desk.local("A").filled_qty) == (S.EXPIRED, 0)
    assert (desk.local("B").status, desk.local("B").filled_qty) == (S.EXPIRED, 3)
    assert desk.asked == Counter({ids["A"]: 1, ids["B"]: 1})  # once each after their day, then never
    settled = sorted(d.symbol for r in friday for d in r.decisions if d.rule is Rule.SETTLEMENT)
    assert settled == ["NSE:INFY:CNC", "NSE:ITC:CNC"]
    assert {(h.symbol, h.t1_quantity) for h in desk.exchange.fetch_holdings()} == {("INFY", 5), ("ITC", 3)}
    desk.positions_agree()

    # a restart in the middle of Friday changes nothing
    desk.clock.advance(timedelta(hours=2))
    desk.restart()
    before = desk.store.load()
    assert all(r.plan.is_empty() for r in desk.run(3)) and desk.store.load().orders == before.orders

    # Friday evening: an order for Monday's session; then the weekend
    desk.clock.set(ist(FRI, 18))
    desk.place("AMO", "TCS", 2, (1, "ack", 0), (NEVER, "fill", 2))
    desk.run(3)
    desk.clock.set(ist(MON, 9, 20))
    desk.restart()
    monday = desk.run(6)
    assert alarms(monday) == []
    assert desk.local("AMO").status is S.PLACED  # still working: it belongs to Monday
    assert desk.asked == Counter()  # nothing of a past day asked for again
    desk.positions_agree()
    assert {(h.symbol, h.t1_quantity, h.realised_quantity) for h in desk.exchange.fetch_holdings()} == {
        ("INFY", 0, 5), ("ITC", 0, 3)}
    assert THU in desk.store.archived_days() and {"A", "B", "C", "F"} <= set(desk.store.load_day(THU).orders)
    assert not set(ids) & set(desk.store.load().orders)
