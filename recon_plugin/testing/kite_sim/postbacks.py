"""The simulator's postbacks: an HTTP POST of the order (``wire.push_payload``, with Kite's checksum
``SHA-256(order_id + order_timestamp + api_secret)``) to ``url`` when an order ends (COMPLETE,
CANCELLED, REJECTED) or is updated (a partial fill, a modification: ``UPDATE``), as Kite posts them.
The simulator does not tell apps apart: every order but the broker's own square-offs is posted.

``wrong_checksum(times)`` makes the next postbacks carry a checksum made with another secret.
Posting runs on a thread of its own (a slow receiver never holds the simulator up); ``sent``
records each postback's order id and the HTTP status it was answered (-1: no answer).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from typing import Any, Protocol

from recon_plugin.testing.kite_sim.wire import SQUARE_OFF_PLACED_BY, postback_checksum, push_payload

log = logging.getLogger("recon_plugin.testing.kite_simulator")
POSTED_STATUSES = {"COMPLETE", "CANCELLED", "REJECTED", "UPDATE"}


class Account(Protocol):
    """What the poster reads of the simulator (``KiteSimulator``): the app's secret."""

    api_secret: str


class PostbackPoster:
    """Posts postbacks to ``url`` (None: posts nothing); see the module's docstring."""

    def __init__(self, sim: Account, url: str | None = None) -> None:
        self.sim = sim
        self.url = url
        self.sent: list[tuple[str, int]] = []
        self._wrong = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy

    def wrong_checksum(self, times: int = 1) -> None:
        with self._lock:
            self._wrong += times

    def order_changed(self, order: dict[str, Any], previous: dict[str, Any] | None) -> None:
        """Called by the simulator (under its lock) with the order's new state."""
        if self.url is None or order.get("placed_by") == SQUARE_OFF_PLACED_BY:
            return
        payload = push_payload(order)
        if payload["status"] not in POSTED_STATUSES:
            return
        with self._lock:
            secret = self.sim.api_secret
            if self._wrong:
                self._wrong -= 1
                secret = "not-" + secret
        payload["checksum"] = postback_checksum(payload["order_id"], payload["order_timestamp"], secret)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._post_forever, name="kite-sim-postbacks", daemon=True)
                self._thread.start()
        self._queue.put(payload)

    def stop(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(2)

    def _post_forever(self) -> None:
        while (payload := self._queue.get()) is not None:
            url = self.url
            if url is None:
                continue
            request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                             headers={"Content-Type": "application/json"})
            try:
                with self._opener.open(request, timeout=2) as response:
                    status = int(response.status)
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError as exc:
                log.debug("kite-sim: postback to %s failed: %s", url, type(exc).__name__)
                status = -1
            with self._lock:
                self.sent.append((str(payload["order_id"]), status))
