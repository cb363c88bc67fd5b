"""When to ask the API again about a request: adaptive, so a 4-minute clip costs a handful of calls.

The delay between two polls of a job grows with the time it has been running (a fixed fraction of
it), so the delay in noticing that a job finished stays a bounded fraction of its generation time,
while the number of calls grows only with the logarithm of that time. Once some jobs of a model
have finished, the others are not polled before the shortest time seen for that model.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class PollPolicy:
    """How often to poll; every figure is in seconds."""

    min_interval: float = 1.0
    """Never poll one job more often than this."""
    max_interval: float = 30.0
    """Never leave a running job unpolled longer than this."""
    growth: float = 0.08
    """Delay as a fraction of the time the job has been running: the detection delay bound."""
    history_margin: float = 0.8
    """Skip polls before this fraction of the shortest generation time seen for the model."""

    def scaled(self, factor: float) -> PollPolicy:
        """The same policy with every absolute interval multiplied by ``factor``."""
        return PollPolicy(
            min_interval=self.min_interval * factor,
            max_interval=self.max_interval * factor,
            growth=self.growth,
            history_margin=self.history_margin,
        )


@dataclass(kw_only=True)
class DurationHistory:
    """The shortest generation times seen so far, per model."""

    shortest: dict[str, float] = field(default_factory=dict)

    def observe(self, model_id: str, seconds: float) -> None:
        """Remember that a job of ``model_id`` took ``seconds`` from acceptance to success."""
        if seconds > 0:
            self.shortest[model_id] = min(seconds, self.shortest.get(model_id, seconds))


def next_poll_delay(
    policy: PollPolicy, *, running_for: float, since_accepted: float, shortest_seen: float | None
) -> float:
    """Seconds to wait before the next poll of a job."""
    delay = policy.growth * running_for
    if shortest_seen is not None:
        earliest = policy.history_margin * shortest_seen - since_accepted
        delay = max(delay, earliest)
    return min(max(delay, policy.min_interval), policy.max_interval)
