"""The rules table: every rule the reconciler can fire, with its severity and what it means.

A rule's value is the name written to the journal, counted in the statistics and carried in event
payloads (``rule``), so values never change once released. Each entry says:

- ``severity``: how much a firing matters, and so the level it is logged at (``log_level``);
- ``reported``: whether a firing is also announced as a ``reconciliation-discrepancy`` event, for a
  person to look at;
- ``meaning``: one line, for logs, docs and reports.

The logic of each rule is in ``recon_plugin.resolve``. This module imports nothing of the project,
so that any module may name a rule.
"""

from __future__ import annotations

import logging
from enum import StrEnum


class Severity(StrEnum):
    INFO = "info"  # the usual way local state catches up with the broker
    WARNING = "warning"  # the two sides disagreed in a way worth a look
    ERROR = "error"  # an order is unaccounted for

    @property
    def log_level(self) -> int:
        return _LOG_LEVELS[self]


_LOG_LEVELS = {Severity.INFO: logging.DEBUG, Severity.WARNING: logging.WARNING, Severity.ERROR: logging.ERROR}


def _rule(value: str, severity: Severity, meaning: str, *, reported: bool = False) -> tuple[str, Severity, str, bool]:
    return value, severity, meaning, reported


class Rule(StrEnum):
    """One named resolution of a difference between local state and the broker."""

    _value_: str
    severity: Severity
    meaning: str
    reported: bool

    def __new__(cls, value: str, severity: Severity, meaning: str, reported: bool) -> Rule:
        member = str.__new__(cls, value)
        member._value_ = value
        member.severity = severity
        member.meaning = meaning
        member.reported = reported
        return member

    @property
    def log_level(self) -> int:
        return self.severity.log_level

    # -- an order the broker lists --------------------------------------------------------------
    ACK = _rule("ack", Severity.INFO, "the broker moved the order forward (sent, working): local follows")
    SUBMIT_CONFIRMED = _rule("submit-confirmed", Severity.INFO,
                             "an order without a broker id was found by its tag: the broker's id is recorded")
    FOUND = _rule("found", Severity.INFO, "an order missing from the book (or LOST) is listed again: resolved as such")
    QUANTITY_MODIFIED = _rule("quantity-modified", Severity.INFO,
                              "the broker has another quantity (modified there): the broker's is adopted")
    ORDER_MODIFIED = _rule("order-modified", Severity.INFO,
                           "the broker has another price, trigger price, order type or validity (modified there, "
                           "or a protected market order listed as LIMIT): the broker's is adopted")
    FILL = _rule("fill", Severity.INFO, "filled at the broker: the remaining quantity is applied, once")
    PARTIAL_FILL = _rule("partial-fill", Severity.INFO, "more filled at the broker: the increment is applied, once")
    VALUE_CORRECTED = _rule("value-corrected", Severity.WARNING,
                            "the broker revised the average price of fills already applied: the position and the "
                            "ledger take the exact difference, announced with both values")
    LATE_FILL = _rule("late-fill", Severity.INFO, "a fill on an order local holds as terminal: real, and applied")
    CANCEL = _rule("cancel", Severity.INFO, "cancelled at the broker: local becomes CANCELLED, keeping what filled")
    CANCEL_WAS_FILL = _rule("cancel-was-fill", Severity.INFO,
                            "an order held as terminal whose fills cover its quantity: it becomes FILLED")
    REJECT = _rule("reject", Severity.WARNING, "rejected at the broker: local becomes REJECTED", reported=True)
    FIELD_MISMATCH = _rule("field-mismatch", Severity.WARNING,
                           "the broker has another side or instrument than local: fills follow the broker",
                           reported=True)
    UNKNOWN_STATUS = _rule("unknown-status", Severity.WARNING,
                           "a status the broker plugin could not map: the local status is kept", reported=True)
    TERMINAL_CONFLICT = _rule("terminal-conflict", Severity.WARNING,
                              "the broker says another terminal status than local: ignored", reported=True)
    STALE_STATUS = _rule("stale-status", Severity.WARNING, "the broker reports an older status than local: ignored",
                         reported=True)
    STALE_FILL = _rule("stale-fill", Severity.WARNING,
                       "released name, no longer decided: less filled than applied is now a trade-bust alarm "
                       "(kept so that journals written before read back)", reported=True)
    TRADE_BUST = _rule("trade-bust", Severity.ERROR,
                       "the broker reports less filled than already applied (a trade bust, or the broker's error): "
                       "nothing is undone by itself; alarmed with both figures, and the instrument's position is "
                       "not rebuilt until the figures agree again or a person resolves it", reported=True)
    IMPLAUSIBLE_FILL = _rule("implausible-fill", Severity.WARNING,
                             "more filled at an average of 0, or worth nothing at a positive average: the order "
                             "stays working (never terminal with fills unapplied) until a readable report",
                             reported=True)
    OVERFILL = _rule("overfill", Severity.WARNING, "more filled than the order's quantity: applied as reported",
                     reported=True)

    # -- an order the broker does not list --------------------------------------------------------
    MISSING = _rule("missing", Severity.WARNING,
                    "a working order the book does not list: counted; queried after missing_retries misses",
                    reported=True)
    LOST = _rule("lost", Severity.ERROR,
                 "not found even when asked for directly: LOST, asked for again at 1, 2, 4 ... intervals (at most "
                 "every 5 minutes)", reported=True)

    BOOK_ANOMALY = _rule("book-anomaly", Severity.WARNING,
                         "what the book or the store should never hold: one broker id listed twice (the most "
                         "advanced record is used), two local orders claiming one broker order (the later is left "
                         "alone), a broker id reused for another instrument after its order ended (ignored)",
                         reported=True)

    # -- the trading day ended ------------------------------------------------------------------
    DAY_EXPIRY = _rule("day-expiry", Severity.INFO,
                       "its trading day ended with it unfinished: EXPIRED (the exchange cancels DAY orders at the "
                       "close), keeping what filled; never LOST")

    # -- a broker order no local order accounts for ---------------------------------------------
    EXTERNAL_ADOPTED = _rule("external-adopted", Severity.INFO, "placed from another app: adopted as ext-<id>")
    SQUARE_OFF = _rule("square-off", Severity.INFO,
                       "the broker's own exit of an intraday (MIS) position at its square-off time: adopted as "
                       "ext-<id> (with external_orders: report too: it is the broker's, not another app's), and "
                       "the cause of a flat MIS position")
    CHILD_LINKED = _rule("child-linked", Severity.INFO,
                         "an order the broker made of a local one (an autoslice child, an iceberg leg, a cover "
                         "order's leg) is adopted as <parent>/<id>, linked to its parent; never external")
    CHILDREN = _rule("children", Severity.INFO,
                     "a local order the broker split into children follows them: its fills are their sum (applied "
                     "once, by each child), its status the family's")
    CHILD_FAILED = _rule("child-failed", Severity.WARNING,
                         "a child of a local order was rejected or cancelled alone: reported against the parent",
                         reported=True)
    EXTERNAL_REPORTED = _rule("external-reported", Severity.WARNING,
                              "placed from another app, with external_orders: report: reported once, not adopted",
                              reported=True)

    # -- positions (live mode) ------------------------------------------------------------------
    POSITION_MISMATCH = _rule("position-mismatch", Severity.WARNING,
                              "local and broker positions differ: watched, rebuilt if it persists")
    POSITION_DRIFT = _rule("position-drift", Severity.WARNING,
                           "a position mismatch persisted with the same figures and no known cause (a corporate "
                           "action, a missed trade): rebuilt from the broker's")
    SETTLEMENT = _rule("settlement", Severity.INFO,
                       "a delivery (CNC) position left the broker's positions for its holdings (T1) after its "
                       "trading day: rebuilt from the broker's")
    HOLDINGS_MISMATCH = _rule("holdings-mismatch", Severity.WARNING,
                              "the broker holds more T1 (yesterday's delivery buys) than local positions account "
                              "for: a fill the host never saw, on an order that ended unseen", reported=True)
    CONTRACT_EXPIRY = _rule("contract-expiry", Severity.INFO,
                            "a derivative position gone from the broker's after its contract's expiry (read from "
                            "its symbol): rebuilt from the broker's")
    PRODUCT_CONVERSION = _rule("product-conversion", Severity.INFO,
                               "a quantity moved between two products of one instrument with no order (a conversion "
                               "at the broker): both rebuilt from the broker's")
    POSITION_MISMATCH_PERSISTS = _rule("position-mismatch-persists", Severity.WARNING,
                                       "a position mismatch held unrebuilt because an order on it is unresolved: "
                                       "reported again with its age every 15 minutes, never silent",
                                       reported=True)
    POSITION_DRIFT_DEFERRED = _rule("position-drift-deferred", Severity.INFO,
                                    "a persistent mismatch on a key with an unresolved order: its fills come first")

    # -- an operator's hand (tradehost recon resolve) ------------------------------------------------
    OPERATOR_RESOLVED = _rule("operator-resolved", Severity.INFO,
                              "an order the broker does not know, resolved by hand (cancelled, filled or expired) "
                              "with the operator's name and reason on the record")
    OPERATOR_DISMISSED = _rule("operator-dismissed", Severity.INFO,
                               "an alarm dismissed by hand, with the operator's name and reason: the order stays "
                               "as it is and leaves 'needs attention' until its condition changes")

    # -- the snapshot as a whole -------------------------------------------------------------------
    STALE_SNAPSHOT = _rule("stale-snapshot", Severity.WARNING,
                           "a snapshot older than the last one applied (by its run's sequence, not the wall clock): "
                           "the whole cycle is ignored")
    CLOCK_STEPPED_BACK = _rule("clock-stepped-back", Severity.WARNING,
                               "the host's clock reads earlier than the last snapshot applied (a VM resume, NTP): the "
                               "snapshot is newer by its run's sequence, so it is applied and the stored time heals",
                               reported=True)
