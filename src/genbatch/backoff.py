"""Backoff for calls that are safe to repeat: capped exponential, with jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

_JITTER = random.Random()
"""The jitter's own generator: a program that seeds ``random`` (a Python API user) must not
line its workers' waits up, nor have its own draws taken."""


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Delays of ``base * factor**n`` seconds, capped, each drawn in its upper half."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 60.0

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failures`` consecutive failures (1 for the first)."""
        ceiling = min(self.cap, self.base * self.factor ** max(0, failures - 1))
        # "Equal jitter": spreads clients apart without ever retrying at once.
        return ceiling / 2 + (rng or _JITTER).uniform(0, ceiling / 2)

    def scaled(self, factor: float) -> Backoff:
        """The same backoff with its absolute times multiplied by ``factor``."""
        return Backoff(base=self.base * factor, factor=self.factor, cap=self.cap * factor)
