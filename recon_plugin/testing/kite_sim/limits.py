"""The simulator's own rate limits, as Kite documents them, and the record of every request.

- 10 requests per second per endpoint (``"GET /orders"``, ``"GET /orders/{id}"``,
  ``"POST /orders/{variety}"`` ...: the method and the route with its ids abstracted);
- placements (``POST /orders/{variety}``): also 10 orders per second and 200 orders per minute
  (the brief's figure; Kite staff have also said 400 per minute).

A request over a limit is answered HTTP 429 ``NetworkException`` "Too many requests" and does not
count. Windows slide over ``time.monotonic()`` (real time, whatever the simulator's clock says).
Every request is recorded as ``(monotonic time, endpoint)`` so a benchmark can compute the peak
requests per second per endpoint (``peak_per_second``).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable

PER_ENDPOINT_PER_SECOND = 10
ORDERS_PER_SECOND = 10
ORDERS_PER_MINUTE = 200
PLACE = "POST /orders/{variety}"
_ROUTES = [
    (re.compile(r"/orders/\d+/trades"), "/orders/{id}/trades"),
    (re.compile(r"/orders/\d+"), "/orders/{id}"),
    (re.compile(r"/orders/[a-z]+/\d+"), "/orders/{variety}/{id}"),
    (re.compile(r"/orders/[a-z]+"), "/orders/{variety}"),
    (re.compile(r"/gtt/triggers/\d+"), "/gtt/triggers/{id}"),
]


def endpoint(method: str, path: str) -> str:
    """The endpoint a request counts against: its method and route, ids abstracted."""
    for pattern, route in _ROUTES:
        if pattern.fullmatch(path):
            return f"{method} {route}"
    return f"{method} {path}"


class RateLimits:
    """Sliding windows per endpoint and for placements; ``enabled`` is the switch (tests that hammer
    the simulator on purpose turn it off)."""

    def __init__(self, enabled: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self.clock = clock
        self.log: list[tuple[float, str]] = []  # every request: (monotonic time, endpoint)
        self.refused: list[tuple[float, str]] = []  # every request answered 429 by these limits
        self._windows: dict[str, deque[float]] = {}
        self._orders: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self, method: str, path: str) -> bool:
        """Record the request; False if it is over a limit (it is then answered 429)."""
        key = endpoint(method, path)
        with self._lock:
            now = self.clock()
            self.log.append((now, key))
            if not self.enabled:
                return True
            window = self._windows.setdefault(key, deque())
            _trim(window, now - 1.0)
            over = len(window) >= PER_ENDPOINT_PER_SECOND
            if key == PLACE:
                _trim(self._orders, now - 60.0)
                recent = sum(1 for t in self._orders if t > now - 1.0)
                over = over or recent >= ORDERS_PER_SECOND or len(self._orders) >= ORDERS_PER_MINUTE
            if over:
                self.refused.append((now, key))
                return False
            window.append(now)
            if key == PLACE:
                self._orders.append(now)
            return True

    def peak_per_second(self, since: float = 0.0) -> dict[str, int]:
        """Per endpoint, the most requests recorded within any one second (after ``since``)."""
        with self._lock:
            times: dict[str, list[float]] = {}
            for at, key in self.log:
                if at >= since:
                    times.setdefault(key, []).append(at)
        peaks = {}
        for key, stamps in times.items():
            best, start = 0, 0
            for end, at in enumerate(stamps):
                while stamps[start] <= at - 1.0:
                    start += 1
                best = max(best, end - start + 1)
            peaks[key] = best
        return peaks


def _trim(window: deque[float], before: float) -> None:
    while window and window[0] <= before:
        window.popleft()
