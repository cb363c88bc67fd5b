"""Showing a run: a live rich display on a terminal, one line per event otherwise, or JSON lines.

All three are event sinks (see ``genbatch.events``); none ever sees the API token. Rich honours
``NO_COLOR`` and narrow terminals by itself.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections import Counter, deque
from dataclasses import replace
from types import TracebackType
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from genbatch.events import (
    Event,
    JobEvent,
    RunFinished,
    RunGauge,
    RunNotice,
    RunProgress,
    RunStarted,
    job_label,
)
from genbatch.progress import IN_FLIGHT_STATES, format_eta
from genbatch.states import SETTLED_STATES, JobState
from genbatch.streams import write_line

STATE_STYLES = {
    JobState.PENDING: "dim",
    JobState.SUBMITTING: "blue",
    JobState.QUEUED: "blue",
    JobState.RUNNING: "cyan",
    JobState.FETCHING: "cyan",
    JobState.DONE: "green",
    JobState.FAILED: "red",
    JobState.CANCELLED: "yellow",
    JobState.UNKNOWN: "magenta",
    JobState.EXPIRED: "red",
}
PROBLEM_STATES = frozenset({JobState.FAILED, JobState.UNKNOWN, JobState.EXPIRED})
RECENT_FAILURES = 5
GAUGE_LOG_EVERY = 30.0
"""Seconds between two vital-sign lines in the line log (they are noise in between)."""


class StateTally:
    """Counts of jobs per state, kept current from events."""

    def __init__(self, counts: dict[JobState, int]) -> None:
        self.counts: Counter[JobState] = Counter(counts)

    def apply(self, event: JobEvent) -> None:
        """Move the event's job from its previous state to its new one (a job the manifest no
        longer has is not counted: it never was)."""
        if not event.in_manifest:
            return
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


def describe_gauge(gauge: RunGauge) -> str:
    """``in flight 8/8 · spent ~$4.20`` with the rate-limit backoff when there is one."""
    parts = [f"in flight {gauge.in_flight}/{gauge.limit}"]
    if gauge.limit < gauge.max_limit:
        parts[-1] += f" (lowered from {gauge.max_limit} after rate limiting)"
    if gauge.backoff_seconds > 0:
        reason = gauge.backoff_reason or "rate limited"
        parts.append(f"{reason}: waiting {gauge.backoff_seconds:.1f}s")
    parts.append(f"spent ~${gauge.spent_usd:,.2f}")
    return " · ".join(parts)


def describe_progress(progress: RunProgress) -> str:
    """``progress 120/1000 done · failed 3 · pending 869 · in flight 8/8 · ETA 1:20:00 ·
    spent ~$168.00``."""
    others = [
        f"{state.value} {n}"
        for state, n in progress.counts.items()
        if state is not JobState.DONE and state not in IN_FLIGHT_STATES
    ]
    parts = [f"progress {progress.done}/{progress.total} done", *others]
    parts.append(f"in flight {progress.in_flight}/{progress.limit}")
    if progress.removed_finishing:
        parts.append(f"removed jobs finishing {progress.removed_finishing}")
    parts.append(f"ETA {format_eta(progress.eta_seconds)}")
    if progress.spent_usd is not None:
        parts.append(f"spent ~${progress.spent_usd:,.2f}")
    return " · ".join(parts)


class LineLog:
    """One line per event: for logs, pipes, CI and ``nohup``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._last_gauge = 0.0

    def __call__(self, event: Event) -> None:
        stamp = time.strftime("%H:%M:%S")
        if isinstance(event, RunGauge):
            now = time.monotonic()
            if now - self._last_gauge < GAUGE_LOG_EVERY and event.backoff_seconds == 0:
                return
            self._last_gauge = now
            line = f"{stamp} {describe_gauge(event)}"
        elif isinstance(event, RunProgress):
            line = f"{stamp} {describe_progress(event)}"
        elif isinstance(event, RunNotice):
            line = f"{stamp} {event.level}: {event.message}"
        elif isinstance(event, RunStarted | RunFinished):
            return  # the CLI prints the run's first and last lines itself
        else:
            request = f" {event.request_id}" if event.request_id else ""
            note = f" ({event.message})" if event.message else ""
            line = f"{stamp} {event.state.value:<10} {job_label(event)}{request}{note}"
        write_line(self._stream, line)


RUN_EVENT_NAMES = {RunStarted: "run_started", RunProgress: "progress", RunFinished: "run_finished"}
"""The names of the run's events in ``--json`` (docs/outputs.md: a stable interface)."""


class JsonLog:
    """One JSON object per line, for machines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout

    def __call__(self, event: Event) -> None:
        record: dict[str, object]
        if isinstance(event, RunGauge):
            record = {
                "event": "gauge",
                "in_flight": event.in_flight,
                "limit": event.limit,
                "max_limit": event.max_limit,
                "backoff_seconds": event.backoff_seconds,
                "backoff_reason": event.backoff_reason,
                "spent_usd": event.spent_usd,
            }
        elif isinstance(event, RunNotice):
            record = {"event": "notice", "level": event.level, "message": event.message}
        elif isinstance(event, RunProgress | RunStarted | RunFinished):
            record = {"event": RUN_EVENT_NAMES[type(event)], **dataclasses.asdict(event)}
            if isinstance(event, RunFinished):
                record["counts"] = {state: n for state, n in event.counts.items() if n}
                record["next"] = record.pop("next_command")
        else:
            record = {
                "event": "job",
                "key": event.key,
                "index": event.ordinal if event.in_manifest else None,
                "state": event.state.value,
                "previous": event.previous.value,
                "request_id": event.request_id,
                "message": event.message,
                "in_manifest": event.in_manifest,
            }
        record["time"] = time.time()
        write_line(self._stream, json.dumps(record))


class LiveDisplay:
    """Progress bar with ETA, counts per state, requests in flight, backoff, spend, failures."""

    def __init__(self, counts: dict[JobState, int], console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self._tally = StateTally(counts)
        self._gauge: RunGauge | None = None
        self._failures: deque[str] = deque(maxlen=RECENT_FAILURES)
        self._removed_finishing = 0
        self._progress = Progress(
            TextColumn("[bold]genbatch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=self._console,
        )
        self._task = self._progress.add_task(
            "run", total=self._tally.total, completed=self._tally.settled, eta=format_eta(None)
        )
        self._live = Live(
            self._render(), console=self._console, refresh_per_second=4, transient=False
        )

    def __enter__(self) -> LiveDisplay:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._gauge is not None:
            # The last frame shows how the run ended, not its last second in flight.
            in_flight = sum(self._tally.counts[s] for s in IN_FLIGHT_STATES)
            self._gauge = replace(self._gauge, in_flight=in_flight, backoff_seconds=0.0)
        self._live.update(self._render())
        self._live.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunGauge):
            self._gauge = event
        elif isinstance(event, RunProgress):
            self._progress.update(self._task, eta=format_eta(event.eta_seconds))
            self._removed_finishing = event.removed_finishing
        elif isinstance(event, RunStarted | RunFinished):
            return
        elif isinstance(event, RunNotice):
            style = {"error": "bold red", "warning": "yellow"}.get(event.level, "")
            self._live.console.print(Text(f"{event.level}: {event.message}", style=style))
        else:
            self._tally.apply(event)
            if event.state in PROBLEM_STATES:
                self._failures.append(
                    f"{job_label(event)} {event.state.value}"
                    + (f": {event.message}" if event.message else "")
                )
            self._progress.update(self._task, completed=self._tally.settled)
        self._live.update(self._render())

    def _render(self) -> Group:
        states = Table.grid(padding=(0, 2))
        cells = [
            Text(f"{state.value} {self._tally.counts[state]}", style=STATE_STYLES[state])
            for state in JobState
            if self._tally.counts[state] > 0
        ]
        if self._removed_finishing:
            cells.append(Text(f"removed jobs finishing {self._removed_finishing}", style="dim"))
        if cells:
            states.add_row(*cells)
        parts: list[Text | Table | Progress] = [self._progress, states]
        if self._gauge is not None:
            parts.append(Text(describe_gauge(self._gauge), style="dim"))
        if self._failures:
            parts.append(Text("recent problems:", style="bold red"))
            parts.extend(Text(f"  {line[:160]}", style="red") for line in self._failures)
        return Group(*parts)
