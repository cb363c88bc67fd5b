"""What a run reports as it goes: job state changes and run-level notices.

The runner emits these to a sink; the terminal UI, the line log and ``--json`` output are sinks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

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


Event = JobEvent | RunNotice | RunGauge
EventSink = Callable[[Event], None]


def ignore_events(_event: Event) -> None:
    """A sink that drops everything."""
