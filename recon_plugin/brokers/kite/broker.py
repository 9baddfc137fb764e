"""The Kite Connect broker: the official ``kiteconnect`` client, classified errors, a rate limit kept
by construction, and a per-cycle cost that does not grow with dateutil.

Reading the order book: the stock ``kite.orders()`` parses every 19-character timestamp with
``dateutil.parser.parse`` (about 26 µs each, ~10,000 of them on a 5,000-order book). This broker
calls the client's own request path, ``KiteConnect._get("orders")`` (same URL, headers, session,
envelope handling and exceptions), and parses the timestamps it needs with ``datetime.fromisoformat``.
``_get`` is private, so the ``kiteconnect`` version range is pinned in pyproject.toml and a test
checks this path against the public ``orders()`` call on the same book.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from hostspec.broker import BrokerError, FailureKind, PushSink
from hostspec.errors import ConfigError
from hostspec.host import Host
from hostspec.model import BrokerOrder, Holding, Position, Side, Trade
from hostspec.secrets import redact, register_secret
from recon_plugin.brokers.kite.orders import DEFAULT_MARKET_PROTECTION, modify_request, order_request
from recon_plugin.brokers.kite.postback import PostbackReceiver, parse_address
from recon_plugin.brokers.kite.push import KITE_WS_ROOT, KitePush
from recon_plugin.brokers.kite.settings import KiteSettings, variable_name_problem
from recon_plugin.brokers.kite.statuses import (
    OrderParser,
    holding_from_kite,
    iceberg_family,
    order_from_kite,
    position_from_kite,
    trade_from_kite,
)
from recon_plugin.brokers.kite.tags import order_tag

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_ROOT = "https://api.kite.trade"
REQUESTS_PER_SECOND = 8  # Kite allows 10/s per endpoint; one limit over all of them, with a margin
ORDERS_PER_MINUTE = 180  # Kite allows 200 order placements, modifications and cancellations a minute
UNKNOWN_ORDER = re.compile(r"could(?:n'?t| not) find (?:that |the )?order[ _]?id", re.IGNORECASE)
"""Kite's answer about an order id it does not hold ("Couldn't find that `order_id`."), whatever
the quotes, apostrophe or spacing."""


class RateLimiter:
    """At most ``limit`` calls in any rolling ``window`` seconds, across threads: callers wait their turn."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self._stamps: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            while True:
                now = self.clock()
                while self._stamps and now - self._stamps[0] >= self.window:
                    self._stamps.popleft()
                if len(self._stamps) < self.limit:
                    self._stamps.append(now)
                    return
                self.sleep(self.window - (now - self._stamps[0]))


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector around a book read.

    Decoding a 5,000-order /orders body allocates ~200,000 dicts and lists; the collector's passes
    over them while they are alive cost about as much as the decoding itself (measured: a cycle's
    median 82 ms with the collector, 55 ms without). They hold no reference cycles, so reference
    counting frees them all; the pause lasts one request.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_book(what: str, request: Callable[[], Any], parser: OrderParser) -> list[BrokerOrder]:
    """An /orders answer as canonical orders: every row or none (see ``KiteBroker._parse_orders``)."""
    with gc_paused():
        return KiteBroker._parse_orders(what, request(), parser.parse)


def classify(what: str, exc: BaseException) -> BrokerError:
    """A client failure as a BrokerError; the message is redacted of every registered secret."""
    import requests
    from kiteconnect import exceptions as kex

    code = getattr(exc, "code", None)
    if isinstance(exc, kex.TokenException):
        kind = FailureKind.AUTH
    elif isinstance(exc, kex.NetworkException) and code == 429:
        kind = FailureKind.RATE_LIMIT
    elif is_refusal(exc):
        kind = FailureKind.REJECTED
    elif isinstance(exc, kex.KiteException | requests.exceptions.RequestException):
        kind = FailureKind.TRANSIENT
    else:  # the client's own crashes on odd bodies: KeyError, TypeError, UnboundLocalError, ValueError
        kind = FailureKind.UNREADABLE
    text = redact(f"{what}: {type(exc).__name__}: {exc}")
    return BrokerError(text[:500], kind, retry_after=1.0 if kind is FailureKind.RATE_LIMIT else None,
                       status_code=code if isinstance(code, int) else None)


def is_refusal(exc: BaseException) -> bool:
    """Whether a client failure is Kite refusing the request itself (asking again would be refused
    again): an ``InputException``, ``OrderException`` or ``PermissionException``, or an error type the
    client has no class for (``MarginException``, ``UserException``, ``HoldingException`` surface as
    ``GeneralException``) answered with a 4xx status other than 429."""
    from kiteconnect import exceptions as kex

    if isinstance(exc, kex.InputException | kex.OrderException | kex.PermissionException):
        return True
    code = getattr(exc, "code", None)
    return (type(exc) is kex.GeneralException and isinstance(code, int) and 400 <= code < 500
            and code not in (403, 429))


def is_unknown_order(exc: BaseException) -> bool:
    """Whether a client failure is Kite saying it does not hold the order id (a previous day's id, or
    one never placed): "Couldn't find that `order_id`.", reported both as HTTP 500 OrderException and
    as HTTP 400 InputException. Nothing else is: an unrelated 400 must never make an order look gone."""
    from kiteconnect import exceptions as kex

    if not isinstance(exc, kex.KiteException) or getattr(exc, "code", None) not in (400, 500):
        return False
    text = str(exc).replace("\u2019", "'").replace("`", "").replace('"', "")
    return UNKNOWN_ORDER.search(text) is not None


class UnknownOrder(Exception):
    """Raised by ``KiteBroker._call`` (when asked to tell) for Kite's "Couldn't find that order_id"."""


class KiteBroker:
    """``hostspec.broker.Broker`` for Zerodha Kite Connect."""

    name = "kite"

    def __init__(self, api_key: str, access_token: str, root: str, timeout: float,
                 access_token_env: str | None = None, access_token_file: Path | None = None,
                 on_close: Callable[[], None] | None = None,
                 market_protection: Decimal = DEFAULT_MARKET_PROTECTION) -> None:
        from kiteconnect import KiteConnect  # Twisted comes with it: imported only for a Kite broker

        register_secret(api_key)
        register_secret(access_token)
        self._kite = KiteConnect(api_key=api_key, access_token=access_token, root=root, timeout=timeout)
        self._token = access_token
        self._token_env = access_token_env
        self._token_file = access_token_file
        self._limiter = RateLimiter(REQUESTS_PER_SECOND)
        self._order_limiter = RateLimiter(ORDERS_PER_MINUTE, window=60.0)
        self._book_parser = OrderParser()
        self._on_close = on_close  # e.g. stop the in-process simulator of the live demo
        self._market_protection = market_protection
        self._lock = threading.Lock()
        self.requests = 0  # made, for tests and benchmarks

    def __repr__(self) -> str:
        return f"KiteBroker(root={self._kite.root!r})"  # never the key or the token

    # -- the session -------------------------------------------------------------------------------

    def _refresh_token(self) -> None:
        """Pick up a new access token, if one appeared: how the broker resumes by itself after a person
        logs in again. One source, by one precedence (``current_token``): the token file when one is
        configured and holds a token, else the environment; never one then the other."""
        token = current_token(self._token_env, self._token_file)
        if token and token != self._token:
            register_secret(token)
            self._kite.set_access_token(token)
            self._token = token
            log.info("a new Kite access token was found; using it")

    def _call(self, what: str, request: Callable[[], T], *, about_an_order: bool = False,
              order_entry: bool = False) -> T:
        """``request()`` within the rate limits (``order_entry``: the orders-a-minute limit too); a
        failure raised as a classified ``BrokerError``, or, ``about_an_order``, as ``UnknownOrder``
        when Kite says it does not hold the order."""
        self._refresh_token()
        if order_entry:
            self._order_limiter.acquire()
        self._limiter.acquire()
        with self._lock:
            self.requests += 1
        try:
            return request()
        except Exception as exc:
            if about_an_order and is_unknown_order(exc):
                raise UnknownOrder(what) from None
            raise classify(what, exc) from None

    # -- Broker protocol -------------------------------------------------------------------------------

    def fetch_orders(self) -> list[BrokerOrder]:
        return read_book("GET /orders", lambda: self._call("GET /orders", lambda: self._kite._get("orders")),
                         self._book_parser)

    def order_history(self, broker_order_id: str) -> list[BrokerOrder]:
        """The order's states; ``[]`` only when Kite says "Couldn't find that `order_id`" (a previous
        trading day's order: the book only lives for a day). Every other failure raises."""
        try:
            rows = self._call(f"GET /orders/{broker_order_id}",
                              lambda: self._kite._get("order.info", url_args={"order_id": broker_order_id}),
                              about_an_order=True)
        except UnknownOrder:
            return []
        return self._parse_orders(f"GET /orders/{broker_order_id}", rows)

    def fetch_positions(self) -> list[Position]:
        data = self._call("GET /portfolio/positions", self._kite.positions)
        try:
            return [position_from_kite(row) for row in data["net"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise BrokerError(f"GET /portfolio/positions: unreadable body ({type(exc).__name__}: {exc})",
                              FailureKind.UNREADABLE) from None

    def fetch_trades(self) -> list[Trade]:
        """``GET /trades`` (``hostspec.broker.TradesBroker``): the day's trades, every row or none."""
        what = "GET /trades"
        rows = self._call(what, lambda: self._kite._get("trades"))
        if not isinstance(rows, list):
            raise BrokerError(f"{what}: expected a list, got {type(rows).__name__}", FailureKind.UNREADABLE)
        try:
            with gc_paused():
                return [trade_from_kite(row) for row in rows]
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise BrokerError(f"{what}: unreadable trade record ({type(exc).__name__}: {exc})",
                              FailureKind.UNREADABLE) from None

    def fetch_holdings(self) -> list[Holding]:
        """``GET /portfolio/holdings`` (``hostspec.broker.HoldingsBroker``): every row or none, like
        the order book, because a holding left out would look sold."""
        what = "GET /portfolio/holdings"
        rows = self._call(what, self._kite.holdings)
        if not isinstance(rows, list):  # the client returns data: null as None
            raise BrokerError(f"{what}: expected a list, got {type(rows).__name__}", FailureKind.UNREADABLE)
        try:
            return [holding_from_kite(row) for row in rows]
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise BrokerError(f"{what}: unreadable holding record ({type(exc).__name__}: {exc})",
                              FailureKind.UNREADABLE) from None

    @staticmethod
    def order_tag(order_id: str) -> str:
        """``hostspec.broker.TaggingBroker``: Kite's tag for a local order id (``kite.tags``)."""
        return order_tag(order_id)

    def place_order(self, *, tag: str | None, exchange: str, symbol: str, product: str, side: Side,
                    quantity: int, price: Decimal | None = None, order_type: str | None = None,
                    trigger_price: Decimal | None = None, variety: str = "regular", validity: str = "DAY",
                    validity_ttl: int | None = None, market_protection: Decimal | None = None,
                    iceberg_legs: int | None = None, iceberg_quantity: int | None = None) -> str:
        """Place an order as Kite accepts it (``kite.orders.order_request``: refused here, naming the
        field, what Kite would refuse). ``order_type`` defaults to LIMIT with a price, else MARKET; a
        MARKET or SL-M order carries market protection (this call's, else the configured one). The
        local order id ``tag`` is sent as its Kite tag (``kite.tags``)."""
        request = order_request(
            tag=tag, exchange=exchange, symbol=symbol, product=product, side=side, quantity=quantity, price=price,
            order_type=order_type, trigger_price=trigger_price, variety=variety, validity=validity,
            validity_ttl=validity_ttl, iceberg_legs=iceberg_legs, iceberg_quantity=iceberg_quantity,
            market_protection=market_protection if market_protection is not None else self._market_protection)
        placed = str(self._call(f"POST /orders/{variety}", lambda: self._kite.place_order(**request),
                                order_entry=True))
        # an iceberg order goes by the id its legs name (each leg is an order of its own)
        return iceberg_family(request["tag"]) if variety == "iceberg" else placed

    def place_autoslice_order(self, *, tag: str | None, exchange: str, symbol: str, product: str, side: Side,
                              quantity: int, price: Decimal | None = None, order_type: str | None = None,
                              validity: str = "DAY", market_protection: Decimal | None = None) -> str:
        """Place an order Kite slices into children of at most the exchange's freeze quantity; returns
        the parent's id (not itself an order in the book: the children name it, and the reconciler
        sums their fills into the local order). A child Kite refused at placement is logged here; the
        local order then stays short of its quantity and ends with its day."""
        request = order_request(
            tag=tag, exchange=exchange, symbol=symbol, product=product, side=side, quantity=quantity, price=price,
            order_type=order_type, trigger_price=None, variety="regular", validity=validity, validity_ttl=None,
            iceberg_legs=None, iceberg_quantity=None,
            market_protection=market_protection if market_protection is not None else self._market_protection)
        answer = self._call("POST /orders/regular (autoslice)", lambda: self._kite.place_autoslice_order(**request),
                            order_entry=True)
        for child in answer.get("children", []) if isinstance(answer, dict) else []:
            if isinstance(child, dict) and "error" in child:
                log.warning("autoslice %s: a child was refused: %s", answer.get("order_id"),
                            redact(str(child["error"].get("message") if isinstance(child["error"], dict)
                                       else child["error"])))
        if not isinstance(answer, dict) or not answer.get("order_id"):
            raise BrokerError("POST /orders/regular (autoslice): no parent order id in the answer",
                              FailureKind.UNREADABLE)
        return str(answer["order_id"])

    def modify_order(self, broker_order_id: str, *, variety: str = "regular", quantity: int | None = None,
                     price: Decimal | None = None, trigger_price: Decimal | None = None,
                     order_type: str | None = None, validity: str | None = None) -> None:
        """Ask Kite to modify a working order (a Kite extra, not in the ``Broker`` contract). A 200
        answer means only that the request was accepted: the order walks MODIFY VALIDATION PENDING,
        MODIFY PENDING, then MODIFIED (or NOT MODIFIED), and the reconciler adopts its new terms."""
        checked = modify_request(variety=variety, quantity=quantity, price=price, trigger_price=trigger_price,
                                 order_type=order_type, validity=validity)
        self._call(f"PUT /orders/{variety}/{broker_order_id}", lambda: self._kite.modify_order(
            order_id=broker_order_id, **checked), order_entry=True)

    def cancel_order(self, broker_order_id: str, *, variety: str = "regular") -> None:
        self._call(f"DELETE /orders/{variety}/{broker_order_id}",
                   lambda: self._kite.cancel_order(variety=variety, order_id=broker_order_id), order_entry=True)

    def close(self) -> None:
        self._kite.reqsession.close()
        if self._on_close is not None:
            self._on_close()

    @staticmethod
    def _parse_orders(what: str, rows: Any,
                      parse: Callable[[list[dict[str, Any]]], list[BrokerOrder]] | None = None) -> list[BrokerOrder]:
        """Every row or none: one unreadable row makes the whole answer unreadable, because a book
        with a row left out would make that order look missing."""
        if not isinstance(rows, list):
            raise BrokerError(f"{what}: expected a list, got {type(rows).__name__}", FailureKind.UNREADABLE)
        try:
            return parse(rows) if parse else [order_from_kite(row) for row in rows]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BrokerError(f"{what}: unreadable order record ({type(exc).__name__}: {exc})",
                              FailureKind.UNREADABLE) from None


class PushingKiteBroker(KiteBroker):
    """The Kite broker with Kite's push channels (``hostspec.broker.PushingBroker``): the WebSocket
    of order updates (``kite.push``, on the reconciler's loop) and, when an address is configured,
    the postback receiver (``kite.postback``), both delivering to the same sink. The WebSocket alone
    reports the channel's health (``connected``/``disconnected``): postbacks cover only orders placed
    with this API key, so they never make the reconciler poll less."""

    def __init__(self, api_key: str, access_token: str, root: str, timeout: float, *, ws_root: str | None,
                 silence_seconds: float = 8.0, postbacks: PostbackReceiver | None = None, **options: Any) -> None:
        super().__init__(api_key, access_token, root, timeout, **options)
        self._api_key = api_key
        self.push = KitePush(ws_root, self._push_credentials, silence_seconds=silence_seconds) if ws_root else None
        self.postbacks = postbacks

    def _push_credentials(self) -> tuple[str, str]:
        self._refresh_token()  # a token renewed by `kite login --token-file` is used at the next connection
        return self._api_key, self._token

    def start_push(self, loop: asyncio.AbstractEventLoop, sink: PushSink) -> None:
        if self.postbacks is not None:
            self.postbacks.start(sink)
        if self.push is not None:
            self.push.start(loop, sink)

    def stop_push(self) -> None:
        if self.push is not None:
            self.push.stop()
        if self.postbacks is not None:
            self.postbacks.stop()


def secret_from_env(variable: str, config_key: str, config_path: Path) -> str:
    """The secret in the environment variable ``variable`` (named by ``config_key``). A ``variable``
    that is no variable's name is refused without quoting it: it may be the secret itself."""
    if problem := variable_name_problem(variable):
        raise ConfigError(config_path, config_key, problem)
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(config_path, config_key, f"environment variable {variable} is not set")
    return value


def current_token(variable: str | None, token_file: Path | None) -> str:
    """The access token to use now ("" when there is none), by one documented precedence: the token
    file when one is configured and holds a token (``tradehost kite login --token-file`` rewrites it
    at every daily login, and a running host can read it again), else the environment variable (read
    once by a process: a new ``export`` never reaches a running host)."""
    if token_file is not None:
        with contextlib.suppress(OSError):
            if token := token_file.read_text().strip():
                return token
    return (os.environ.get(variable) or "") if variable else ""


def open_kite_broker(host: Host) -> KiteBroker:
    """The configured Kite broker: the configured API root, credentials from the environment (or the
    token file). It never starts a simulator: the live demo's broker is ``kite-sim``."""
    settings = host.config.get(KiteSettings)
    path = host.config.path
    api_key = secret_from_env(settings.api_key_env, "broker.kite.api_key_env", path)
    token_file = Path(settings.access_token_file) if settings.access_token_file else None
    token = current_token(settings.access_token_env, token_file)
    if not token:
        raise ConfigError(path, "broker.kite.access_token_env",
                          f"environment variable {settings.access_token_env} is not set"
                          + (f" and {token_file} does not exist" if token_file else ""))
    options: dict[str, Any] = {"access_token_env": settings.access_token_env, "access_token_file": token_file,
                               "market_protection": Decimal(str(settings.market_protection))}
    ws_root = push_root(settings)
    postbacks = None
    if settings.postback_address is not None:
        secret = secret_from_env(settings.api_secret_env, "broker.kite.api_secret_env", path)
        postbacks = PostbackReceiver(parse_address(settings.postback_address), secret)
    if ws_root is None and postbacks is None:
        return KiteBroker(api_key, token, settings.root, settings.timeout_seconds, **options)
    return PushingKiteBroker(api_key, token, settings.root, settings.timeout_seconds, ws_root=ws_root,
                             silence_seconds=settings.push_silence_seconds, postbacks=postbacks, **options)


def push_root(settings: KiteSettings) -> str | None:
    """The WebSocket root to push from, or None (``push: false``). Kite's own WebSocket is used only
    with Kite's own API root: credentials meant for another server (a simulator, a proxy) are never
    sent to Kite's, so a configuration that moves ``root`` must move ``ws_root`` too."""
    if not settings.push:
        return None
    if settings.ws_root == KITE_WS_ROOT and settings.root.rstrip("/") != DEFAULT_ROOT:
        log.warning("broker.kite.root is not Kite's but broker.kite.ws_root is: push updates are off "
                    "(set broker.kite.ws_root to the WebSocket of %s, or push: false)", settings.root)
        return None
    return settings.ws_root
