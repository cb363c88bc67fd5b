"""Showing a run: a live rich display on a terminal, one line per event otherwise, or JSON lines.

All three are event sinks (see ``genbatch.events``); none ever sees the API token.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from genbatch.events import Event, JobEvent, RunNotice
from genbatch.states import SETTLED_STATES, JobState

STATE_STYLES = {
    JobState.DONE: "green", JobState.FAILED: "red", JobState.UNKNOWN: "magenta",
    JobState.EXPIRED: "red", JobState.CANCELLED: "yellow", JobState.RUNNING: "cyan",
    JobState.QUEUED: "blue", JobState.FETCHING: "cyan",
}


class StateTally:
    """Counts of jobs per state, kept current from events."""

    def __init__(self, counts: dict[JobState, int]) -> None:
        self.counts: Counter[JobState] = Counter(counts)

    def apply(self, event: JobEvent) -> None:
        """Move the event's job from its previous state to its new one."""
        self.counts[event.previous] -= 1
        self.counts[event.state] += 1

    @property
    def total(self) -> int:
        """Jobs in the run."""
        return sum(self.counts.values())

    @property
    def settled(self) -> int:
        """Jobs that reached a final state."""
        return sum(self.counts[s] for s in SETTLED_STATES)

    def describe(self) -> str:
        """``done 3 · running 2 · ...`` for the states that have jobs, in lifecycle order."""
        return " · ".join(f"{state.value} {self.counts[state]}" for state in JobState
                          if self.counts[state] > 0)


class LineLog:
    """One line per event: for logs, pipes, CI and ``nohup``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr

    def __call__(self, event: Event) -> None:
        stamp = time.strftime("%H:%M:%S")
        if isinstance(event, RunNotice):
            line = f"{stamp} {event.level}: {event.message}"
        else:
            request = f" {event.request_id}" if event.request_id else ""
            note = f" ({event.message})" if event.message else ""
            line = f"{stamp} {event.state.value:<10} #{event.ordinal} {event.key}{request}{note}"
        print(line, file=self._stream, flush=True)


class JsonLog:
    """One JSON object per line, for machines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout

    def __call__(self, event: Event) -> None:
        record: dict[str, object]
        if isinstance(event, RunNotice):
            record = {"event": "notice", "level": event.level, "message": event.message}
        else:
            record = {"event": "job", "key": event.key, "index": event.ordinal,
                      "state": event.state.value, "request_id": event.request_id,
                      "message": event.message}
        record["time"] = time.time()
        print(json.dumps(record), file=self._stream, flush=True)


class LiveDisplay:
    """A progress bar with ETA and per-state counts, redrawn in place on a terminal."""

    def __init__(self, counts: dict[JobState, int], console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._tally = StateTally(counts)
        self._progress = Progress(
            TextColumn("[bold]genbatch"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), TextColumn("{task.description}"),
            console=self._console, transient=False)
        self._task = self._progress.add_task(self._tally.describe(), total=self._tally.total,
                                             completed=self._tally.settled)

    def __enter__(self) -> LiveDisplay:
        self._progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunNotice):
            style = {"error": "bold red", "warning": "yellow"}.get(event.level, "")
            self._progress.console.print(f"[{style}]{event.level}:[/] {event.message}"
                                         if style else event.message, highlight=False)
            return
        self._tally.apply(event)
        if event.state in (JobState.FAILED, JobState.UNKNOWN, JobState.EXPIRED) and event.message:
            self._progress.console.print(
                f"[{STATE_STYLES[event.state]}]{event.state.value}[/] #{event.ordinal} "
                f"{event.key}: {event.message}", highlight=False)
        self._progress.update(self._task, completed=self._tally.settled,
                              description=self._tally.describe())
