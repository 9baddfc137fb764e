"""The log's two formats (``logging.format``): text, one readable line per record, and JSON, one object
per line with the record's context (event kind, order id, symbol, rule) as fields. Every value is
passed through ``secrets.redact`` before it is written; ``EventLog`` writes each event as a record."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hostspec.config import LogFormat, read_yaml
from hostspec.errors import ConfigError
from hostspec.markers import hookimpl
from hostspec.model import Event
from hostspec.secrets import RedactingFilter, redact

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
CONTEXT = ("event", "event_id", "order_id", "symbol", "rule", "severity", "local", "broker")
"""The fields a record may carry (``extra=``) that a JSON line writes, when present."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the
    context fields the record carries, and ``exc`` for a traceback; never a registered secret."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": redact(record.getMessage())}
        for name in CONTEXT:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = redact(record.exc_text)
        return redact(json.dumps(line, default=str, ensure_ascii=False))


def formatter(kind: LogFormat) -> logging.Formatter:
    return JsonFormatter() if kind is LogFormat.JSON else logging.Formatter(TEXT_FORMAT, "%H:%M:%S")


def format_in(path: str | Path) -> LogFormat:
    """The ``logging.format`` a configuration file asks for, read ahead of opening the host (whose
    plugins log while it opens); text when the file cannot say (opening the host reports why)."""
    try:
        section = read_yaml(path).get("logging")
    except ConfigError:
        return LogFormat.TEXT
    value = section.get("format") if isinstance(section, dict) else None
    return LogFormat.JSON if value == LogFormat.JSON.value else LogFormat.TEXT


class NotOnConsole(logging.Filter):
    """Drops the records that say what an event line on the console already says (``announced``: a
    reported decision, whose ``reconciliation-discrepancy`` event ``tradehost run`` prints): in text
    mode each discrepancy is one line. The JSON log keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "announced", False)


def use_format(kind: LogFormat, console: bool = False) -> None:
    """Switch the root logger's handlers (``tradehost``'s stderr handler) to ``kind``; ``console``:
    events are printed as lines of their own (``tradehost run``), so text mode drops what they say."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(kind))
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
        for f in [f for f in handler.filters if isinstance(f, NotOnConsole)]:
            handler.removeFilter(f)
        if console and kind is LogFormat.TEXT:
            handler.addFilter(NotOnConsole())


class EventLog:
    """An event sink that writes every event to the log (logger ``tradehost.events``) with its kind,
    order id, symbol and rule as fields: in JSON mode the log then holds the whole run. ``tradehost
    run`` adds it in JSON mode only (in text mode the console already prints each event once)."""

    logger = logging.getLogger("tradehost.events")

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    @hookimpl
    def hostspec_handle_event(self, event: Event) -> None:
        if not self.enabled:
            return
        data = event.data
        level = logging.WARNING if event.kind in WARNING_KINDS else logging.INFO
        self.logger.log(level, "%s %s", event.kind, event.summary or "", extra={
            "event": event.kind, "event_id": event.event_id, "order_id": data.get("order_id"),
            "symbol": data.get("symbol"), "rule": data.get("rule")})


WARNING_KINDS = frozenset({"reconciliation-discrepancy", "reconciliation-error", "broker-session-expired",
                           "reconciler-stopped"})
