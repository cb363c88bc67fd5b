"""When to ask the API again about a request: early when the model's past says it may be done,
then ever less often.

A job is first polled when earlier generations of its model say it may have finished: at
``margin`` times the ``quantile`` of their generation times, as the API itself reported them
(``finished_at - created_at`` of each success, kept in the ledger across runs). A model with no
history yet is first polled after ``first_poll`` (a fraction of a second: a fast generation is
noticed at once). After that, the gap between two polls (from one's sending to the next's) is
``growth`` (10%) of the time since the submit was accepted, never shorter than ``interval`` nor
longer than ``max_interval``. So a job finishing at time T is noticed at most 10% of T late (or
``interval``, whichever is larger) plus the last answer's round trip, its calls grow with the
logarithm of T, and a job waiting in the remote queue is polled no more often than every
``interval`` (its gaps grow from acceptance, not from when it started).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime

HISTORY_SIZE = 200
"""Generation times kept per model: the most recent ones (a model's speed drifts)."""


@dataclass(frozen=True, kw_only=True)
class PollPolicy:
    """How often to poll one job; every figure is in seconds."""

    interval: float = 2.0
    """The shortest gap between two polls of one job after its first (``--poll-interval``)."""
    first_poll: float | None = None
    """The first poll of a job whose model has no history: None means ``interval / 8``."""
    growth: float = 0.10
    """A gap as a fraction of the time since the submit: the bound on the detection delay."""
    max_interval: float = 30.0
    """The longest gap between two polls (unless ``interval`` is longer)."""
    quantile: float = 0.10
    """Which of the model's past generation times the first poll aims at (0.1: the 10th
    percentile: the fastest tenth is noticed somewhat late, everything else costs fewer calls)."""
    margin: float = 0.9
    """The first poll comes this fraction of that time after the submit."""

    def scaled(self, factor: float) -> PollPolicy:
        """The same policy with every absolute time multiplied by ``factor``."""
        return replace(
            self,
            interval=self.interval * factor,
            first_poll=None if self.first_poll is None else self.first_poll * factor,
            max_interval=self.max_interval * factor,
        )

    def first_delay(self, history: GenerationTimes, model_id: str) -> float:
        """Seconds from the submit's answer to the first poll of a job of ``model_id``."""
        typical = history.quantile(model_id, self.quantile)
        if typical is None:
            return self.interval / 8 if self.first_poll is None else self.first_poll
        return self.margin * typical

    def next_delay(self, since_accepted: float) -> float:
        """Seconds from sending a poll that found the job unfinished (``since_accepted`` after
        the submit was accepted) to sending the next one."""
        return max(self.interval, min(self.growth * since_accepted, self.max_interval))


class GenerationTimes:
    """The most recent generation times of each model, in seconds, as the API reported them."""

    def __init__(self, *, size: int = HISTORY_SIZE) -> None:
        self._size = size
        self._times: dict[str, deque[float]] = {}
        self._sorted: dict[str, list[float]] = {}

    def add(self, model_id: str, seconds: float) -> None:
        """Remember one generation of ``model_id`` that took ``seconds``."""
        times = self._times.setdefault(model_id, deque(maxlen=self._size))
        times.append(seconds)
        self._sorted.pop(model_id, None)

    def quantile(self, model_id: str, q: float) -> float | None:
        """The ``q`` quantile (0..1, interpolated) of the times kept; None with none."""
        ordered = self._sorted.get(model_id)
        if ordered is None:
            ordered = self._sorted[model_id] = sorted(self._times.get(model_id, ()))
        if not ordered:
            return None
        position = (len(ordered) - 1) * q
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def generation_seconds(created_at: str | None, finished_at: str | None) -> float | None:
    """``finished_at - created_at`` of a result, in seconds; None when either is missing or
    unreadable, or the difference is negative (the API's clock is not ours to fix)."""
    if not created_at or not finished_at:
        return None
    try:
        seconds = (
            datetime.fromisoformat(finished_at) - datetime.fromisoformat(created_at)
        ).total_seconds()
    except (TypeError, ValueError):  # naive against aware, or not a timestamp at all
        return None
    return seconds if seconds >= 0 else None
