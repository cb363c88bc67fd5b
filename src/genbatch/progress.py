"""How far a run has got, and when it will end: what an overnight log needs every so often.

``ProgressTracker`` sits in front of a sink (the live display, the line log, ``--json``): it
passes every event on, keeps the per-state counts current, and hands the sink a ``RunProgress``
every ``PROGRESS_EVERY`` seconds and each time another tenth of the jobs has settled. Its
counts are the manifest's jobs; a job the manifest no longer has, re-attached from an earlier run
to be finished, is counted apart (``removed_finishing``), and its ordinal is not one of the
manifest's.

The ETA is the jobs left times the typical time of one job, divided by the jobs run at once.
The typical time is the median of the last ``RECENT_JOBS`` jobs this process submitted and saw
settle (from their submit to their end): jobs re-attached after a resume are left out, since
they were seen for only part of their life. Before one such job has settled, it is the median
generation time of the run's models that the ledger recorded in earlier runs
(``expected_seconds``); without that either, the ETA is unknown, shown ``--:--``, rather than a
guess from a rate that has not started yet.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, deque
from collections.abc import Callable

from genbatch.events import Event, EventSink, JobEvent, RunGauge, RunProgress, RunStarted
from genbatch.states import SETTLED_STATES, JobState

PROGRESS_EVERY = 30.0
"""Seconds between two progress reports (one is also made at each tenth of the jobs)."""

RECENT_JOBS = 1000
"""Jobs whose durations make the typical time: the latest ones (a run's speed drifts), and a
bounded number, so that a run of a million jobs holds no more than one of a thousand."""

IN_FLIGHT_STATES = frozenset({JobState.SUBMITTING, JobState.QUEUED, JobState.RUNNING})
"""A request in flight remotely, what the concurrency limit counts: a job downloading its files
(``fetching``) is not one."""


class JobTimes:
    """How long jobs take, from their submit to their end, as this process saw them."""

    def __init__(self, expected_seconds: float | None = None) -> None:
        self._submitted: dict[str, float] = {}
        self._durations: deque[float] = deque(maxlen=RECENT_JOBS)
        self._expected = expected_seconds

    def observe(self, event: JobEvent, now: float) -> None:
        """Note a submit's start, or a settled job's duration."""
        if event.state is JobState.SUBMITTING:
            self._submitted[event.key] = now
        elif event.state in SETTLED_STATES:
            started = self._submitted.pop(event.key, None)
            if started is not None:
                self._durations.append(now - started)

    def typical(self) -> float | None:
        """The median duration of the latest jobs seen from start to end; before the first,
        the expected duration (None when there is none)."""
        return statistics.median(self._durations) if self._durations else self._expected


def estimate_seconds_left(
    *, left: int, typical_seconds: float | None, at_once: int
) -> float | None:
    """Jobs ``left`` (pending, in flight or downloading) times a job's typical time, over the
    jobs run at once; None when no job's time is known yet."""
    if left == 0:
        return 0.0
    if typical_seconds is None:
        return None
    return left * typical_seconds / max(at_once, 1)


def format_eta(seconds: float | None) -> str:
    """``1:05:00``, ``4:10``, or ``--:--`` when unknown."""
    if seconds is None:
        return "--:--"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressTracker:
    """An event sink in front of another: passes everything on, adds ``RunProgress``."""

    def __init__(
        self,
        sink: EventSink,
        counts: dict[JobState, int],
        *,
        every: float = PROGRESS_EVERY,
        expected_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._counts: Counter[JobState] = Counter(counts)
        self._every = every
        self._clock = clock
        self._times = JobTimes(expected_seconds)
        self._gauge: RunGauge | None = None
        self._spent: float | None = None
        self._removed: set[str] = set()
        """Keys of jobs no longer in the manifest, re-attached and not settled yet."""
        self._concurrency = 1
        self._starting = False
        self._last_report = clock()
        self._tenths_reported = self._tenths()

    def __call__(self, event: Event) -> None:
        self._sink(event)
        now = self._clock()
        if isinstance(event, JobEvent):
            if event.spent_usd is not None:
                self._spent = event.spent_usd
            if not event.in_manifest:
                self._on_removed(event)
                return
            self._counts[event.previous] -= 1
            self._counts[event.state] += 1
            self._times.observe(event, now)
            if not self._starting and self._tenths() > self._tenths_reported:
                self._report(now)
        elif isinstance(event, RunGauge):
            self._gauge = event
            self._spent = event.spent_usd
            if self._starting or now - self._last_report >= self._every:
                self._starting = False
                self._report(now)  # the first: where the run starts from, an ETA from history
        elif isinstance(event, RunStarted):
            self._concurrency = event.concurrency
            # Reported with the runner's first gauge, once its start has moved the jobs it
            # moves (those a crash left submitting are unknown, unknown ones to resubmit are
            # pending): the counts given here are from before.
            self._starting = True

    def progress(self) -> RunProgress:
        """Where the run stands now."""
        counts = {state: n for state, n in self._counts.items() if n > 0}
        in_flight = max(0, sum(self._counts[s] for s in IN_FLIGHT_STATES))
        limit = self._gauge.limit if self._gauge else self._concurrency
        left = max(0, self._counts[JobState.PENDING] + self._counts[JobState.FETCHING] + in_flight)
        return RunProgress(
            total=sum(self._counts.values()),
            done=self._counts[JobState.DONE],
            settled=self._settled(),
            counts=counts,
            in_flight=in_flight,
            limit=limit,
            eta_seconds=estimate_seconds_left(
                left=left, typical_seconds=self._times.typical(), at_once=limit
            ),
            spent_usd=self._spent,
            removed_finishing=len(self._removed),
        )

    def _on_removed(self, event: JobEvent) -> None:
        """A job the manifest no longer has: counted apart, never in the manifest's counts
        (which it was never part of). Back to pending (a failed generation to retry), it is
        not finishing: a run claims only the manifest's jobs."""
        if event.state in SETTLED_STATES or event.state is JobState.PENDING:
            self._removed.discard(event.key)
        else:
            self._removed.add(event.key)

    def _report(self, now: float) -> None:
        self._last_report = now
        self._tenths_reported = self._tenths()
        self._sink(self.progress())

    def _settled(self) -> int:
        return sum(self._counts[s] for s in SETTLED_STATES)

    def _tenths(self) -> int:
        total = sum(self._counts.values())
        return self._settled() * 10 // total if total else 0
