"""The reconciler's signals: a private blinker namespace, one line per signal.

The sender is always the ``Reconciler`` instance. Every signal carries ``payload`` (the typed
payload, a class of ``recon_plugin.events``), ``event`` (the ``hostspec.model.Event``, with its
deterministic ``event_id``; not for ``cycle-finished``, which is no event) and, as keyword
arguments, the payload's fields as on the wire (``event.data``). Receivers should accept
``**extra`` so that new arguments never break them.
Receivers run on the reconciler's thread: keep them fast. One that raises is logged and skipped
(``send_safe``); it never stops the engine or the other receivers.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

from hostspec.events import Payload, PayloadError
from hostspec.model import Event

log = logging.getLogger(__name__)
_signals = Namespace()

_ORDER_ARGS = ("order_id, symbol, broker_order_id, side, quantity, status, previous_status, filled_qty, "
               "rule, summary")

order_updated = _signals.signal("order-updated", doc=f"An order's status or broker id changed. kwargs: {_ORDER_ARGS}")
order_filled = _signals.signal("order-filled", doc=(
    f"A fill was applied to positions (exactly once). kwargs: {_ORDER_ARGS}, fill_id, fill_qty, "
    "fill_price (str Decimal), fill_value (str Decimal)"))
order_cancelled = _signals.signal("order-cancelled", doc=f"An order was cancelled at the broker. kwargs: {_ORDER_ARGS}")
order_rejected = _signals.signal("order-rejected", doc=f"An order was rejected. kwargs: {_ORDER_ARGS}, reason")
order_external = _signals.signal("order-external", doc=(
    "A broker order no local order accounts for was adopted. kwargs: order_id, symbol, broker_order_id, "
    "side, quantity, status, action, summary"))
position_synced = _signals.signal("position-synced", doc=(
    "Local positions were rebuilt from the broker's (live mode). kwargs: differences (list of "
    "{key, local, broker, delta}), broker_quantities ({key: quantity}), summary"))
reconciliation_discrepancy = _signals.signal("reconciliation-discrepancy", doc=(
    "Local and broker disagree in a way worth a person's attention (rejection, missing or lost order, "
    "stale or unknown report, external order only reported). kwargs: order_id, symbol, rule, action, "
    "local (evidence dict), broker (evidence dict), summary"))
reconciliation_error = _signals.signal("reconciliation-error", doc=(
    "A step of a cycle failed (fetch, query, store, publish); nothing local changed for that step. "
    "kwargs: step, error_kind, message, consecutive, summary"))
broker_session_expired = _signals.signal("broker-session-expired", doc=(
    "The broker refused our credentials: a person must log in again. Polling slows down until a valid "
    "session appears. kwargs: message, summary"))
cycle_finished = _signals.signal("cycle-finished", doc=(
    "A reconciliation cycle ended (not sent to event sinks). kwargs: stats (dict), decisions (int), "
    "fills (int), writes (int), duration_ms (float), dry_run (bool), summary"))

BY_KIND: dict[str, NamedSignal] = {s.name: s for s in (
    order_updated, order_filled, order_cancelled, order_rejected, order_external, position_synced,
    reconciliation_discrepancy, reconciliation_error, broker_session_expired, cycle_finished)}


def send_safe(signal: NamedSignal, sender: Any, **kwargs: Any) -> int:
    """Send to every receiver, each guarded: one that raises is logged and the rest still run.

    Returns the number of receivers that raised.
    """
    failures = 0
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception:
            failures += 1
            log.exception("receiver %r of signal %r raised; skipped",
                          getattr(receiver, "__qualname__", receiver), signal.name)
    return failures


def send_event(sender: Any, event: Event) -> int:
    """Send ``event`` to the receivers of the signal of its kind, if any, each guarded (``send_safe``).

    Data that does not fit its kind's payload class (an event stored by another version) is logged
    and sent with a bare ``Payload``: a delivery is never lost to it. Returns the receivers that raised.
    """
    signal = BY_KIND.get(event.kind)
    if signal is None or not signal.receivers:
        return 0
    try:
        payload = event.payload
    except PayloadError as exc:
        log.warning("event %s does not fit its payload class (%s); sent with its summary only", event.event_id, exc)
        payload = Payload(summary=event.summary)
    return send_safe(signal, sender, event=event, payload=payload, **event.data)
