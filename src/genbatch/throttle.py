"""The run's remote concurrency and its reaction to rate limiting.

``Slots`` bounds the requests in flight remotely (submitting, queued or running). Its limit
follows AIMD, as TCP and the best rate-limited clients do: cut by a quarter on a 429 (once per
burst: 429s within a second of the last cut count as the same signal), then grown back by one
slot per limit's worth of accepted submits. ``RateGate`` holds every API call back while the API
has asked us to wait (``Retry-After``), or while it does not answer.
"""

from __future__ import annotations

import time

import anyio

from genbatch.clock import SYSTEM_CLOCK, Clock

DECREASE_FACTOR = 0.75
DECREASE_QUIET_SECONDS = 1.0


class Slots:
    """A counting limit whose size can change while tasks wait on it."""

    def __init__(self, limit: int) -> None:
        self.max_limit = max(1, limit)
        self.limit = self.max_limit
        self.in_use = 0
        self._credit = 0
        self._last_decrease = -DECREASE_QUIET_SECONDS
        self._changed = anyio.Event()

    async def acquire(self) -> None:
        """Wait for a free slot and take it."""
        while self.in_use >= self.limit:
            await self._changed.wait()
        self.in_use += 1

    async def changed(self) -> None:
        """Wait for the next release of a slot or change of the limit."""
        await self._changed.wait()

    def occupy(self, count: int = 1) -> None:
        """Take slots without waiting: for requests already in flight, or claimed together."""
        self.in_use += count

    def release(self, count: int = 1) -> None:
        """Give ``count`` slots back."""
        if count:
            self.in_use -= count
            self._wake()

    def on_rate_limited(self) -> None:
        """Multiplicative decrease, once per burst of 429s."""
        now = time.monotonic()
        if now - self._last_decrease < DECREASE_QUIET_SECONDS:
            return
        self._last_decrease = now
        self.limit = max(1, int(self.limit * DECREASE_FACTOR))
        self._credit = 0

    def on_accepted(self) -> None:
        """Additive increase, back up to the configured limit."""
        if self.limit >= self.max_limit:
            return
        self._credit += 1
        if self._credit >= self.limit:  # one more slot per window of accepted submits
            self._credit = 0
            self.limit += 1
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()


class RateGate:
    """Holds calls back until a time has passed: the API asked us to wait (429), or an answer
    lost or the API out of reach makes us back off."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.blocked_until = 0.0
        self._reason = ""
        self._clock = clock

    async def wait(self) -> None:
        """Return once the gate is open."""
        while (remaining := self.blocked_until - self._clock.now()) > 0:
            await self._clock.sleep(remaining)

    def block_for(self, seconds: float, reason: str) -> None:
        """Keep the gate shut for at least ``seconds`` from now; ``reason`` says why (kept
        only when it is what now keeps the gate shut longest)."""
        until = self._clock.now() + seconds
        if until > self.blocked_until:
            self.blocked_until, self._reason = until, reason

    @property
    def remaining(self) -> float:
        """Seconds until the gate opens (0 when open)."""
        return max(0.0, self.blocked_until - self._clock.now())

    @property
    def reason(self) -> str | None:
        """Why the gate is shut (None when open): for the display."""
        return self._reason if self.remaining > 0 else None
