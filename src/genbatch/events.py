"""What a run reports as it goes: job state changes and run-level notices.

The runner emits these to a sink; the terminal UI, the line log and ``--json`` output are sinks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from genbatch.states import JobState


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    """A job moved to ``state``."""

    key: str
    ordinal: int
    state: JobState
    previous: JobState
    request_id: str | None = None
    message: str | None = None
    in_manifest: bool = True
    """False for a job the manifest no longer has, re-attached from an earlier run to be
    finished (it is paid for; its files are kept): its ``ordinal`` is stale, and it counts in
    none of the run's progress (``RunProgress.removed_finishing`` apart). Such a job is
    announced once as it is re-attached, ``previous`` equal to ``state``."""
    spent_usd: float | None = None
    """The run's estimated spend once this move is made (None when not known)."""


class _NumberedJob(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def ordinal(self) -> int: ...
    @property
    def in_manifest(self) -> bool: ...


def job_label(job: _NumberedJob) -> str:
    """``#12 KEY``; ``removed KEY`` for a job the manifest no longer has (its old number would
    clash with the manifest's)."""
    return f"#{job.ordinal} {job.key}" if job.in_manifest else f"removed {job.key}"


NoticeLevel = Literal["info", "warning", "error"]


@dataclass(frozen=True, kw_only=True)
class RunNotice:
    """Something the user should know about the run as a whole."""

    level: NoticeLevel
    message: str


@dataclass(frozen=True, kw_only=True)
class RunGauge:
    """The run's vital signs, reported every second or so."""

    in_flight: int
    """Requests submitting, queued or running remotely."""
    limit: int
    """The current concurrency limit (lowered after 429s, grown back as submits succeed)."""
    max_limit: int
    backoff_seconds: float
    """How long every call is still held back (0 when not)."""
    spent_usd: float
    """Estimated cost of the jobs done, in flight or unknown."""
    backoff_reason: str | None = None
    """Why calls are held back: ``rate limited``, ``API unreachable``, ``no answer`` (None
    when they are not)."""


@dataclass(frozen=True, kw_only=True)
class RunProgress:
    """How far the run has got (``progress.ProgressTracker``: every 30 s, at each tenth)."""

    total: int
    done: int
    settled: int
    """Jobs in a final state (done, failed, cancelled, expired, unknown)."""
    counts: dict[JobState, int]
    """Jobs per state (states with none left out)."""
    in_flight: int
    """Jobs of the manifest with a request in flight remotely (submitting, queued, running);
    jobs downloading their files (``fetching``) are in ``counts`` only."""
    limit: int
    eta_seconds: float | None
    """Seconds until every job has settled; None while nothing to base it on."""
    spent_usd: float | None
    """The run's estimated spend at this moment (jobs done, in flight or unknown)."""
    removed_finishing: int = 0
    """Jobs the manifest no longer has, re-attached from an earlier run and not settled yet:
    counted apart from every figure above."""


@dataclass(frozen=True, kw_only=True)
class RunStarted:
    """The run is about to start: what it holds (``--json``'s first event)."""

    run: str
    jobs: int
    new: int
    done: int
    to_submit: int
    reattached: int
    """Jobs in flight from an earlier process (request id known): followed, never resent."""
    concurrency: int
    """Requests in flight at once from this process, at most."""
    ledger: str
    api: str


@dataclass(frozen=True, kw_only=True)
class RunFinished:
    """The run ended (``--json``'s last event)."""

    counts: dict[JobState, int]
    spent_usd: float
    exit_code: int
    stop_reason: str | None
    next_command: str | None
    """What to run next, exactly (None when there is nothing to do)."""


Event = JobEvent | RunNotice | RunGauge | RunProgress | RunStarted | RunFinished
EventSink = Callable[[Event], None]


def ignore_events(_event: Event) -> None:
    """A sink that drops everything."""
