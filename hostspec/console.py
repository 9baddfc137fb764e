"""The console event sink of ``tradehost run``: one readable line per event, and at the end the state
of the book (in sync or not, what needs attention, LOST orders first, open orders, positions) after
what this run printed."""

from __future__ import annotations

import os
import textwrap
import threading
from collections import Counter
from datetime import tzinfo
from typing import TextIO

from hostspec.book import book_lines
from hostspec.display import WIDTH, clip, clock_time, wrap
from hostspec.markers import hookimpl
from hostspec.model import Event, LocalState, utcnow


def silence(stream: TextIO) -> None:
    """The reader of ``stream`` closed the pipe (``tradehost run | head``): what is still written to it goes
    nowhere, quietly, so that the command ends as it would have (its summary, its exit status)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


def format_event(kind: str, summary: str, at: str) -> str:
    """One event: time, kind, summary; a summary too long for one line goes on under itself."""
    head = f"{at}  {kind:<27} "
    return textwrap.fill(summary, WIDTH, initial_indent=head, subsequent_indent=" " * len(head),
                         break_on_hyphens=False) if len(head) + len(summary) > WIDTH else head + summary


class ConsoleSink:
    """Prints every event as it happens (time in ``zone``, the exchanges' once the host is open) and
    counts them by kind."""

    def __init__(self, stream: TextIO, zone: tzinfo | None = None) -> None:
        self.stream = stream
        self.zone = zone
        self.counts = Counter[str]()
        self._lock = threading.Lock()

    @hookimpl
    def hostspec_handle_event(self, event: Event) -> None:
        summary = event.summary or str(event.data)
        line = format_event(event.kind, summary, clock_time(event.at, self.zone))
        with self._lock:
            self.counts[event.kind] += 1
            try:
                print(line, file=self.stream, flush=True)
            except BrokenPipeError:
                silence(self.stream)

    def summary_lines(self, book: LocalState | None = None) -> list[str]:
        """What this run printed, by kind, then the state of the book as the store holds it at the end."""
        total = sum(self.counts.values())
        kinds = [f"{kind} {count}" for kind, count in sorted(self.counts.items(), key=lambda kc: -kc[1])]
        lines = wrap(f"summary: {total} events printed by this run" + (": " if kinds else ""), kinds)
        if self.counts["position-synced"]:
            lines.append(f"positions rebuilt from the broker's this run: {self.counts['position-synced']} times "
                         "(recon status says whether with a known cause)")
        if book is not None:
            today = utcnow().astimezone(self.zone).date()
            lines += [clip(line) for line in book_lines(book, self.zone, today)]
        return lines
