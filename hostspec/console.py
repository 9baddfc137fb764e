"""The console event sink of ``tradehost run``: one readable line per event, a summary at the end."""

from __future__ import annotations

import threading
from collections import Counter
from typing import TextIO

from hostspec.markers import hookimpl
from hostspec.model import Event


def format_event(kind: str, summary: str, at: str) -> str:
    return f"{at}  {kind:<27} {summary}"


class ConsoleSink:
    """Prints every event as it happens and counts them by kind."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.counts = Counter[str]()
        self._lock = threading.Lock()

    @hookimpl
    def hostspec_handle_event(self, event: Event) -> None:
        summary = event.summary or str(event.data)
        line = format_event(event.kind, summary, event.at.astimezone().strftime("%H:%M:%S"))
        with self._lock:
            self.counts[event.kind] += 1
            print(line, file=self.stream, flush=True)

    def summary_lines(self) -> list[str]:
        total = sum(self.counts.values())
        lines = [f"summary: {total} events"]
        lines += [f"  {kind:<27} {count}" for kind, count in sorted(self.counts.items())]
        return lines
