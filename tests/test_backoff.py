"""The waits genbatch puts between calls: backoff jitter and the rate gate."""

from __future__ import annotations

import random

from genbatch.backoff import Backoff
from genbatch.throttle import RateGate


class StoppedClock:
    """A clock that stays where it is set."""

    def __init__(self) -> None:
        self.time = 1000.0

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += seconds


def test_jitter_is_not_lined_up_by_a_program_that_seeds_random() -> None:
    backoff = Backoff(base=1.0, factor=2.0, cap=60.0)

    random.seed(7)
    first_worker = [backoff.delay(4) for _ in range(5)]
    random.seed(7)
    second_worker = [backoff.delay(4) for _ in range(5)]
    drawn_after_the_waits = random.random()
    random.seed(7)

    assert first_worker != second_worker
    assert all(4.0 <= wait <= 8.0 for wait in first_worker + second_worker)
    assert drawn_after_the_waits == random.random()  # the program's own draws are its own


def test_the_gate_says_what_keeps_it_shut_longest() -> None:
    clock = StoppedClock()
    gate = RateGate(clock)

    gate.block_for(30.0, "rate limited")
    gate.block_for(0.5, "no answer")

    assert gate.remaining == 30.0
    assert gate.reason == "rate limited"

    gate.block_for(45.0, "API unreachable")
    assert (gate.remaining, gate.reason) == (45.0, "API unreachable")
    clock.time += 45.0
    assert gate.reason is None
