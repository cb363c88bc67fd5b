"""The time the scheduler runs on: real by default, injectable so tests need not wait."""

from __future__ import annotations

import time
from typing import Protocol

import anyio


class Clock(Protocol):
    """Monotonic seconds, and a way to wait for them to pass."""

    def now(self) -> float:
        """Seconds on a monotonic clock (only differences mean anything)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """The machine's monotonic clock; sleeping yields to the event loop."""

    def now(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep``."""
        await anyio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
