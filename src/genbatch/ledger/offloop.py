"""Ledger calls off the event loop: awaited, one at a time, in a worker thread.

A commit can wait for the disk (the durable claim's fsync takes milliseconds) and, on
PostgreSQL, for the network; made on the event loop, that wait stalls every job's HTTP calls.
The caller still awaits each call, so a state change is committed before the side effect that
depends on it, exactly as with a direct call.

One call at a time, in the order they were made: SQLite has a single writer, and two threads
writing at once would leave one waiting in SQLite's busy handler. A call that has started always
runs to its end (anyio never abandons it); a cancelled task may lose its turn before its call
starts, as it could have been cancelled just before a direct call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

P = ParamSpec("P")
T = TypeVar("T")


class OffLoop:
    """Runs ``Ledger`` methods in a worker thread, one at a time, in call order."""

    def __init__(self) -> None:
        self._one_at_a_time = anyio.CapacityLimiter(1)

    async def __call__(self, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``call(*args, **kwargs)`` in the ledger's thread; its result or its exception."""
        return await anyio.to_thread.run_sync(functools.partial(call, *args, **kwargs),
                                              limiter=self._one_at_a_time)
