"""Sizing a run for an account that runs a fixed number of generations at once.

A RunComfy account runs C generations at a time (its plan's concurrency); what it is sent beyond
that waits in the account's queue and starts the moment a slot frees. genbatch learns that a
generation finished only when it next polls it (up to ``--poll-interval``, or 10% of the job's
age, later), and only then submits the next job. With exactly C requests in flight, a slot stands
idle for that delay after every generation: with 4 s jobs and 2 s polling, about a fifth of the
account's time. A few requests kept waiting in the remote queue start at once instead, so the
account's slots stay busy whatever genbatch's delay.

A request waiting in the queue is an ordinary request in flight: the budget counts it (as it
counts every request in flight), ``genbatch cancel`` cancels it (a queued request can always be
cancelled), a resume re-attaches to it, and it is polled no more often than every
``--poll-interval``.
"""

from __future__ import annotations

import math


def queue_margin(capacity: int) -> int:
    """Requests to keep waiting in the remote queue beyond the account's ``capacity``.

    Enough to cover the generations that finish while genbatch has not noticed yet: at most
    about half the slots when jobs are as short as two poll intervals (measured, figure 12 of
    docs/benchmarks.md), far fewer for minutes-long jobs, which cost nothing more than a few
    polls each for waiting.
    """
    if capacity < 1:
        raise ValueError("an account's capacity is at least 1")
    return max(2, math.ceil(capacity / 2))


def concurrency_for_capacity(capacity: int) -> int:
    """The ``concurrency`` that keeps an account of ``capacity`` always busy."""
    return capacity + queue_margin(capacity)
