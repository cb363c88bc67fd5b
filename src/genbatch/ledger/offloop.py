"""Ledger calls from the event loop: awaited, one at a time, in call order; those that wait
for the disk or the network made in a worker thread; several jobs' writes sharing one commit.

A commit can wait for the disk (the durable claim's fsync takes milliseconds) and, on
PostgreSQL, for the network; made on the event loop, that wait stalls every job's HTTP calls.
So calls run in a worker thread. The caller still awaits each call, so a state change is
committed before the side effect that depends on it, exactly as with a direct call.

One call at a time, in the order they were made: SQLite has a single writer, and two threads
writing at once would leave one waiting in SQLite's busy handler. Group commit: the calls made
with ``grouped`` that queued up together run in one transaction (``Ledger.grouped``), and each
caller resumes only after its commit. With dozens of jobs in flight that is one commit for
several writes instead of one each (figure 6 of docs/benchmarks.md). Should any call of a group
fail, the group rolls back and its calls run again one by one, each in its own transaction, so
that each caller gets its own result or error, as if they had never been grouped.

Groups on the event loop (``groups_on_loop``, for SQLite): a group's commit there never waits
for the disk (WAL with ``synchronous=NORMAL`` writes to the WAL file and returns; only the
occasional checkpoint flushes), while in a thread every statement hands the GIL back and forth
with the event loop, which costs more CPU than the statements themselves (figure 1). Such a group
waits a moment (``GROUP_GATHER_SECONDS``) for the writes of the jobs answered at the same time,
then runs at once on the loop. Durable claims, and every call on PostgreSQL (a round trip each),
still run in the thread.

A call that has started always runs to its end, its caller waiting for it (cancellation reaches
the caller afterwards); a cancelled task whose call has not started yet loses its turn, as it
could have been cancelled just before a direct call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread

from genbatch.group_commit import BatchQueue

P = ParamSpec("P")
T = TypeVar("T")

GROUP_GATHER_SECONDS = 0.001
"""How long a group run on the event loop waits for others' writes to join it (measured in
figure 1: 1-2 ms gathers as many as the thread did; 5 ms slows the jobs down)."""


class _Call:
    """One queued call and, once it ran, its result or its exception."""

    __slots__ = ("error", "finished", "function", "groupable", "result", "taken")

    def __init__(self, function: Callable[[], Any], *, groupable: bool) -> None:
        self.function = function
        self.groupable = groupable
        self.taken = False
        """A batch took it: it will run, whatever happens to its caller."""
        self.finished = False
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        """Call it; keep what it returned or raised."""
        try:
            self.result = self.function()
        except BaseException as exc:  # handed to the caller, whatever it is
            self.error = exc
        self.finished = True


class OffLoop(BatchQueue[_Call]):
    """Runs ``Ledger`` methods in a worker thread, one batch at a time, in call order.

    ``group`` opens a transaction that the calls of a batch share (``Ledger.grouped``); with
    ``groups_on_loop`` those batches run on the event loop instead.
    """

    def __init__(
        self,
        group: Callable[[], AbstractContextManager[Any]] | None = None,
        *,
        groups_on_loop: bool = False,
        gather_seconds: float = GROUP_GATHER_SECONDS,
    ) -> None:
        super().__init__()
        self._group = group
        self._groups_on_loop = groups_on_loop and group is not None
        self._gather_seconds = gather_seconds

    async def __call__(self, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``call(*args, **kwargs)`` in the ledger's thread, in a transaction of its own."""
        result: T = await self._run(
            _Call(functools.partial(call, *args, **kwargs), groupable=False)
        )
        return result

    async def grouped(self, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """The same, possibly sharing its transaction with the calls queued beside it.

        Only for calls that are not durable claims and have no effect outside the ledger.
        """
        result: T = await self._run(
            _Call(functools.partial(call, *args, **kwargs), groupable=self._group is not None)
        )
        return result

    async def _run(self, call: _Call) -> Any:
        await self._until_finished(call)
        if call.error is not None:
            raise call.error
        return call.result

    async def _gather(self) -> None:
        if self._groups_on_loop and self._queue[0].groupable:
            with anyio.CancelScope(shield=True):  # the gathering may not be cut short
                await anyio.sleep(self._gather_seconds)

    def _take(self) -> list[_Call]:
        """One call alone, or every groupable one in a row."""
        batch = [self._queue.popleft()]
        while batch[0].groupable and self._queue and self._queue[0].groupable:
            batch.append(self._queue.popleft())
        return batch

    async def _handle(self, batch: list[_Call]) -> None:
        if self._groups_on_loop and batch[0].groupable:
            self._execute(batch)
        else:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._execute, batch)

    def _abandon(self, call: _Call) -> None:
        call.error = call.error or RuntimeError("the ledger's thread failed")

    def _execute(self, batch: list[_Call]) -> None:
        if len(batch) > 1 and self._run_grouped(batch):
            return
        for call in batch:
            call.run()

    def _run_grouped(self, batch: list[_Call]) -> bool:
        """Every call of ``batch`` in one transaction; False when it rolled back instead."""
        assert self._group is not None  # only groupable calls are batched
        try:
            with self._group():
                results = [call.function() for call in batch]
        except BaseException:
            return False  # nothing was committed: each call runs again alone
        for call, result in zip(batch, results, strict=True):
            call.result = result
            call.finished = True
        return True
