"""The reconciler's signals: a private blinker namespace, one line per signal.

The sender is always the ``Reconciler`` instance. Every signal carries ``payload``, the typed
payload (its class, in brackets in each signal's doc, is in ``recon_plugin.events``; the fields are
documented in docs/plugin-guide.md), ``event`` (the ``hostspec.model.Event``, with its deterministic
``event_id``; not for ``cycle-finished``, which is no event) and, as keyword arguments, the
payload's fields in their wire form (``event.data``). Receivers should accept ``**extra`` so that
new arguments never break them. Receivers run on the reconciler's thread: keep them fast. One that
raises is logged and skipped (``send_safe``); it never stops the engine or the other receivers.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

from hostspec.events import Payload, PayloadError
from hostspec.model import Event
from recon_plugin.events import (
    BrokerSessionExpired,
    CycleFinished,
    FillCorrected,
    OrderCancelled,
    OrderExpired,
    OrderExternal,
    OrderFilled,
    OrderRejected,
    OrderUpdated,
    PositionSynced,
    ReconcilerStopped,
    ReconciliationDiscrepancy,
    ReconciliationError,
)

log = logging.getLogger(__name__)
_signals = Namespace()

# One line per signal: when it is sent, and (in brackets) the payload class of recon_plugin.events.
order_updated = _signals.signal(OrderUpdated.kind, doc="An order's status or broker id changed [OrderUpdated].")
order_filled = _signals.signal(OrderFilled.kind, doc="A fill was applied to positions, exactly once [OrderFilled].")
fill_corrected = _signals.signal(FillCorrected.kind, doc=(
    "The broker revised the value of fills already applied; positions took the difference [FillCorrected]."))
order_cancelled = _signals.signal(OrderCancelled.kind, doc="An order was cancelled at the broker [OrderCancelled].")
order_rejected = _signals.signal(OrderRejected.kind, doc="An order was rejected at the broker [OrderRejected].")
order_expired = _signals.signal(OrderExpired.kind, doc="An order's trading day ended unfinished [OrderExpired].")
order_external = _signals.signal(OrderExternal.kind, doc="A broker order placed elsewhere was adopted [OrderExternal].")
position_synced = _signals.signal(PositionSynced.kind, doc="Positions were rebuilt from the broker's [PositionSynced].")
reconciliation_discrepancy = _signals.signal(ReconciliationDiscrepancy.kind, doc=(
    "Local and broker disagree in a way worth a person's attention [ReconciliationDiscrepancy]."))
reconciliation_error = _signals.signal(ReconciliationError.kind, doc=(
    "A step of a cycle failed; nothing local changed for that step [ReconciliationError]."))
broker_session_expired = _signals.signal(BrokerSessionExpired.kind, doc=(
    "The broker refused the credentials: a person must log in again [BrokerSessionExpired]."))
reconciler_stopped = _signals.signal(ReconcilerStopped.kind, doc=(
    "The reconciliation thread ended while the host ran: nothing is reconciled any more [ReconcilerStopped]."))
cycle_finished = _signals.signal(CycleFinished.kind, doc="A cycle ended (no event: signal only) [CycleFinished].")

BY_KIND: dict[str, NamedSignal] = {s.name: s for s in (
    order_updated, order_filled, fill_corrected, order_cancelled, order_rejected, order_expired, order_external,
    position_synced, reconciliation_discrepancy, reconciliation_error, broker_session_expired, reconciler_stopped,
    cycle_finished)}


def send_safe(signal: NamedSignal, sender: Any, **kwargs: Any) -> int:
    """Send to every receiver, each guarded: one that raises (anything but ``KeyboardInterrupt``, even
    ``SystemExit``) is logged and the rest still run.

    Returns the number of receivers that raised.
    """
    failures = 0
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException:  # SystemExit too: a library's sys.exit() must not end the reconciler
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
