"""Kite's WebSocket order updates, as a task on the reconciler's own asyncio loop (``websockets``).

The protocol is Kite's (as ``kiteconnect.KiteTicker`` speaks it): ``{ws_root}?api_key=…&access_token=…``
with the header ``X-Kite-Version: 3``; text frames are JSON ``{"type": "order", "data": {…}}`` (an
order update, the postback's payload: parsed by ``statuses.order_from_kite``, ``UPDATE`` being a
partial fill or a modification), ``{"type": "error", "data": …}`` and ``{"type": "message", …}``;
binary frames are market data (we subscribe to none) and 1-byte heartbeats, about one a second.

Any frame is a sign of life. No frame for ``silence_seconds`` is a disconnect: the socket is
dropped and opened again. Reconnecting never stops (polling is the backstop meanwhile), after a
delay that doubles from ``Backoff.first`` to ``Backoff.longest``, each drawn between half and all of
it (jitter: many hosts cut off together do not come back together). ``PushSink.connected`` is
called on every (re)connect, ``PushSink.disconnected`` once each time the channel goes down (and
once if the first attempt fails), with a reason that never holds the API key or the token.

Why ``websockets`` and not ``KiteTicker``: see the README's "Push updates" (measured: no thread of
its own, a tenth of the memory, a reconnect that can be stopped and started again in one process).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import json
import logging
import random
import re
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from hostspec.broker import PushSink
from hostspec.secrets import redact
from recon_plugin.brokers.kite.statuses import order_from_kite

log = logging.getLogger(__name__)
KITE_WS_ROOT = "wss://ws.kite.trade"
CREDENTIAL = re.compile(r"(api_key|access_token)=[^&\s'\"]*")
"""A credential in a URL's query, wherever a library may quote the URL."""


def scrub(text: str) -> str:
    """``text`` without a secret: registered secrets masked (``hostspec.secrets.redact``) and any
    ``api_key=`` or ``access_token=`` query value cut out, registered or not."""
    return CREDENTIAL.sub(r"\1=***", redact(text))


class _Scrubbing(logging.Filter):
    """On the ``websockets`` library's logger for our connections: its debug lines quote the
    request, whose query holds the credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        return True


WIRE_LOG = logging.getLogger(f"{__name__}.wire")
WIRE_LOG.addFilter(_Scrubbing())


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: ``first``, doubling up to ``longest``, each drawn
    uniformly between half and all of it."""

    first: float = 0.5
    longest: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.longest, self.first * 2 ** min(attempt, 30))
        return rng.uniform(ceiling / 2, ceiling)


def socket_url(ws_root: str, api_key: str, access_token: str) -> str:
    """Kite's socket URL (as ``KiteTicker`` builds it)."""
    return f"{ws_root}?api_key={api_key}&access_token={access_token}"


def read_frame(text: str | bytes) -> tuple[str, Any]:
    """A text frame as (type, data): ``("order", <dict>)``, ``("error", …)``, ``("message", …)``;
    ``("unreadable", None)`` for what is not a JSON object with a type (KiteTicker ignores those too)."""
    try:
        frame = json.loads(text)
    except ValueError:
        return "unreadable", None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return "unreadable", None
    return frame["type"], frame.get("data")


class _Silent(Exception):
    """No frame for ``silence_seconds``."""


class KitePush:
    """The WebSocket client (see the module's docstring). ``credentials`` gives the API key and the
    current access token at each connection (a token renewed by ``kite login --token-file`` is used
    at the next reconnect)."""

    def __init__(self, ws_root: str, credentials: Callable[[], tuple[str, str]], *,
                 silence_seconds: float = 8.0, backoff: Backoff = Backoff(), open_timeout: float = 10.0,
                 rng: random.Random | None = None) -> None:
        self.ws_root = ws_root
        self.silence_seconds = silence_seconds
        self.backoff = backoff
        self.open_timeout = open_timeout
        self.counts: Counter[str] = Counter()  # connects, disconnects, orders, unreadable, errors, frames
        self._credentials = credentials
        self._rng = rng or random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: concurrent.futures.Future[None] | None = None
        self._coroutine: Coroutine[Any, Any, None] | None = None
        self._finished = threading.Event()
        self._finished.set()

    def __repr__(self) -> str:
        return f"KitePush(ws_root={self.ws_root!r})"  # never the credentials

    @property
    def running(self) -> bool:
        """Whether the task still runs (``stop`` returns once it has ended, its socket closed)."""
        return not self._finished.is_set()

    # -- PushingBroker ---------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, sink: PushSink) -> None:
        """Run on ``loop`` (from any thread); returns at once. Starting twice is refused."""
        if self.running:
            raise RuntimeError("the Kite push channel is already running")
        self._finished.clear()
        self._loop = loop
        self._coroutine = self._run(sink)
        self._future = asyncio.run_coroutine_threadsafe(self._coroutine, loop)

    def stop(self, timeout: float = 2.0) -> None:
        """Cancel the task and wait (up to ``timeout``) for its socket to close; never waits on the
        loop's own thread, or for a loop that no longer runs."""
        future, loop = self._future, self._loop
        if future is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: its task is gone with it
            future.cancel()  # cancels the task on its loop
        running = loop.is_running() and not loop.is_closed()
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is loop:
                running = False
        if running:
            self._finished.wait(timeout)
        elif self._coroutine is not None and inspect.getcoroutinestate(self._coroutine) == inspect.CORO_CREATED \
                and not loop.is_running():
            self._coroutine.close()  # never started, and now never will: no "never awaited" warning
            self._finished.set()
        self._future = self._coroutine = None

    # -- the task --------------------------------------------------------------------------------------

    async def _run(self, sink: PushSink) -> None:
        attempt, down_reported, last_reason = 0, False, ""
        try:
            while True:
                opened, reason = await self._session(sink)
                self.counts["disconnects" if opened else "failed-attempts"] += 1
                if opened or not down_reported:
                    _tell(sink.disconnected, reason)
                    down_reported = True
                    log.warning("Kite push channel down (%s); polling carries on", reason)
                elif reason != last_reason:  # a new cause while down (a token refused ...): said once
                    log.warning("Kite push channel still down: %s", reason)
                else:
                    log.debug("Kite push channel: attempt %d failed (%s)", attempt, reason)
                last_reason = reason
                attempt = 0 if opened else attempt + 1
                await asyncio.sleep(self.backoff.delay(attempt, self._rng))
        finally:
            self._finished.set()

    async def _session(self, sink: PushSink) -> tuple[bool, str]:
        """One connection, until it ends: (whether it opened, why it ended, scrubbed of secrets)."""
        from websockets.asyncio.client import connect

        opened = False
        try:
            api_key, token = self._credentials()
            async with connect(socket_url(self.ws_root, api_key, token), additional_headers={"X-Kite-Version": "3"},
                               open_timeout=self.open_timeout, close_timeout=1, compression=None, proxy=None,
                               max_size=2 ** 22, logger=WIRE_LOG) as ws:
                opened = True
                self.counts["connects"] += 1
                log.info("Kite push channel connected")
                _tell(sink.connected)
                while True:
                    try:
                        frame = await asyncio.wait_for(ws.recv(), self.silence_seconds)
                    except TimeoutError:
                        raise _Silent from None
                    self.counts["frames"] += 1
                    if isinstance(frame, str):
                        self._on_text(frame, sink)
        except _Silent:
            return opened, f"no frame (not even a heartbeat) for {self.silence_seconds:g} s"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return opened, scrub(f"{type(exc).__name__}: {exc}")[:300]
        return opened, "the connection ended"  # recv() returns only frames: not reached

    def _on_text(self, text: str, sink: PushSink) -> None:
        kind, data = read_frame(text)
        if kind == "order" and data:
            try:
                update = order_from_kite(data)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                self.counts["unreadable"] += 1
                order_id = data.get("order_id") if isinstance(data, dict) else None
                log.warning("Kite push: an unreadable order update (order %s: %s); the next poll reads it",
                            order_id, type(exc).__name__)
                return
            self.counts["orders"] += 1
            _tell(sink.order, update)
        elif kind == "error":
            self.counts["errors"] += 1
            log.warning("Kite push: the server sent an error: %s", scrub(str(data))[:300])
        elif kind == "message":
            log.info("Kite push: a message from Kite: %s", scrub(str(data))[:300])
        else:
            self.counts["unreadable"] += 1
            log.debug("Kite push: a text frame that is not Kite's JSON was ignored")


def _tell(method: Callable[..., None], *args: Any) -> None:
    """Call a sink method; its failure is logged, never the end of the channel."""
    try:
        method(*args)
    except Exception:
        log.exception("the push sink failed on %s", getattr(method, "__name__", "a call"))
