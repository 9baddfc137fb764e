"""The webhook event sink (plugin ``webhook``): chosen events as an HTTP POST, in plain JSON or in the
shape Slack's incoming webhooks or Telegram's ``sendMessage`` take.

A cycle never waits for it: the sink puts each chosen event on a bounded queue and one daemon worker
posts them in order, retrying a failed post (connection refused, timeout, 429, 5xx) with a growing
pause until it succeeds, so a server that is down gets every event once it is back within the run.
The URL comes from the environment (Slack's and Telegram's URLs hold a secret) and is kept out of
every log line.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hostspec import hookimpl
from hostspec.config import Section, SettingError, setting
from hostspec.errors import ConfigError
from hostspec.host import Host
from hostspec.model import Event
from hostspec.secrets import redact, register_secret

log = logging.getLogger("recon.webhook")

DEFAULT_EVENTS = ("reconciliation-discrepancy:lost", "position-synced", "broker-session-expired",
                  "reconciler-stopped")
RETRY_FIRST_SECONDS = 0.5


class WebhookFormat(StrEnum):
    JSON = "json"  # {"event_id", "kind", "at", "summary", "data"}
    SLACK = "slack"  # {"text": ...}: Slack's (and Mattermost's, Discord's /slack) incoming webhooks
    TELEGRAM = "telegram"  # {"chat_id", "text"}: the Bot API's sendMessage


@dataclass(frozen=True)
class WebhookSettings:
    """``webhook``: off unless ``enabled``."""

    enabled: bool = setting(False, "post the chosen events to the URL in url_env")
    url_env: str = setting("RECON_WEBHOOK_URL", "environment variable holding the URL (it may hold a secret)")
    format: WebhookFormat = setting(WebhookFormat.JSON, "json, slack or telegram")
    chat_id: str | None = setting(None, "the Telegram chat to post to (format: telegram)")
    events: tuple[str, ...] = setting(DEFAULT_EVENTS, "event kinds to post; kind:rule posts that rule's only")
    timeout_seconds: float = setting(5.0, "seconds one POST may take", minimum=0.1)
    retry_max_seconds: float = setting(60.0, "longest pause between two attempts at one event", minimum=0.1)
    queue_size: int = setting(1000, "events waiting at most (the oldest is dropped, and logged, beyond)", minimum=1)

    def check(self) -> None:
        if self.format is WebhookFormat.TELEGRAM and not self.chat_id:
            raise SettingError("chat_id", "format: telegram needs the chat to post to")
        if not self.url_env.replace("_", "A").isalnum() or not self.url_env.isupper():
            raise SettingError("url_env", "must be the name of an environment variable, like RECON_WEBHOOK_URL")


def wanted(event: Event, selectors: tuple[str, ...]) -> bool:
    """Whether ``event`` is chosen: its kind is listed, or ``kind:rule`` with the rule it carries."""
    return event.kind in selectors or f"{event.kind}:{event.data.get('rule')}" in selectors


def body(event: Event, settings: WebhookSettings) -> dict[str, Any]:
    """What one POST carries, in the configured format."""
    text = f"{event.kind}: {event.summary}" if event.summary else event.kind
    if settings.format is WebhookFormat.SLACK:
        return {"text": text}
    if settings.format is WebhookFormat.TELEGRAM:
        return {"chat_id": settings.chat_id, "text": text}
    return {"event_id": event.event_id, "kind": event.kind, "at": event.at.isoformat(), "summary": event.summary,
            "data": event.data}


class WebhookSink:
    """Posts chosen events to ``url`` from its own daemon worker, in order, retrying each until it is
    delivered (or the sink is closed)."""

    def __init__(self, url: str, settings: WebhookSettings) -> None:
        self.url = url
        self.settings = settings
        self.delivered = 0
        self.dropped = 0
        self._queue: queue.Queue[Event] = queue.Queue(settings.queue_size)
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._thread = threading.Thread(target=self._work, name="recon-webhook", daemon=True)
        self._thread.start()

    def offer(self, event: Event) -> None:
        """Queue ``event`` if it is chosen; never blocks."""
        if not wanted(event, self.settings.events):
            return
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    lost = self._queue.get_nowait()
                    self.dropped += 1
                    log.warning("webhook queue full: dropped %s %s", lost.kind, lost.event_id)
                except queue.Empty:
                    pass

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + (1 if self._busy else 0)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queue to empty; True if it did."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.backlog and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(min(left, 0.1))
        return not self.backlog

    def close(self, drain_seconds: float = 0.0) -> None:
        """Deliver what is queued for up to ``drain_seconds``, then stop the worker."""
        self.drain(drain_seconds)
        self._stop.set()
        self._thread.join(self.settings.timeout_seconds + 1)
        if self.backlog:
            log.warning("webhook: %d events not delivered at shutdown (the server did not answer)", self.backlog)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._busy = True
            try:
                self._deliver(event)
            finally:
                self._busy = False
                with self._idle:
                    self._idle.notify_all()

    def _deliver(self, event: Event) -> None:
        pause = RETRY_FIRST_SECONDS
        attempts = 0
        while not self._stop.is_set():
            attempts += 1
            problem = self._post(event)
            if problem is None:
                self.delivered += 1
                return
            retry, why = problem
            if not retry:
                log.error("webhook refused %s %s (%s); not retried", event.kind, event.event_id, why)
                return
            if attempts == 1 or attempts % 10 == 0:
                log.warning("webhook post of %s failed (%s); retrying (attempt %d)", event.kind, why, attempts)
            self._stop.wait(pause)
            pause = min(pause * 2, self.settings.retry_max_seconds)

    def _post(self, event: Event) -> tuple[bool, str] | None:
        """None when delivered, else (whether to retry, why)."""
        data = json.dumps(body(event, self.settings), default=str).encode()
        request = urllib.request.Request(self.url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_seconds) as response:
                response.read()
            return None
        except urllib.error.HTTPError as exc:
            return exc.code == 429 or exc.code >= 500, f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return True, redact(f"{type(reason).__name__}: {reason}")


_sinks: dict[int, WebhookSink] = {}


@hookimpl
def hostspec_config_schema() -> Mapping[str, Section]:
    return {"webhook": WebhookSettings}


@hookimpl
def hostspec_startup(host: Host) -> None:
    settings = host.config.get(WebhookSettings)
    if not settings.enabled:
        return
    url = os.environ.get(settings.url_env)
    if not url:
        raise ConfigError(host.config.path, "webhook.url_env", f"environment variable {settings.url_env} is not set")
    register_secret(url)
    _sinks[id(host)] = WebhookSink(url, settings)
    log.info("webhook: posting %s in %s format", ", ".join(settings.events), settings.format.value)


@hookimpl
def hostspec_handle_event(event: Event, host: Host) -> None:
    sink = _sinks.get(id(host))
    if sink is not None:
        sink.offer(event)


@hookimpl
def hostspec_shutdown(host: Host) -> None:
    sink = _sinks.pop(id(host), None)
    if sink is not None:
        sink.close(drain_seconds=sink.settings.timeout_seconds)
