"""The ledger as an event loop sees it: every call awaited, none blocking the loop.

A commit can wait for the disk (a durable claim's fsync takes milliseconds) and, on PostgreSQL,
for the network; on the event loop that wait would stall every job's HTTP calls. So
``AsyncLedger`` hands each call to ``group_commit.GroupCommit``, which runs it in a worker thread,
in the order calls were made. The calls queued together share one transaction: with dozens of
jobs in flight, one commit for several jobs' writes instead of one each. Claims are durable
commits and run alone, in the thread. On SQLite the other batches run on the event loop: their
commits hardly ever wait for the disk (WAL, ``synchronous=NORMAL``), and a trip to a thread
costs more CPU than they do (docs/benchmarks.md, the whole-process figure). Should any call
of a shared transaction fail, it rolls back and its calls run again one by one, each in its
own transaction, so that each caller gets its own result or error, as if never grouped; one
that PostgreSQL ended before its commit (``TransactionEnded``: this process was frozen in it, or
the session was closed) runs once more. A commit whose answer was lost (``CommitInDoubt``) is
never run again, it may have been written; except the calls done twice as once (a heartbeat, a
worker's exit, a note), which run once more rather than end the run.

A call returns once its transaction is committed, so a state change is on record before the
side effect that depends on it (the POST after a claim, the download after the output URLs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack

import anyio

from genbatch.errors import CommitInDoubt, TransactionEnded
from genbatch.group_commit import GroupCommit, Work
from genbatch.ledger.ledger import Ledger
from genbatch.ledger.records import JobRecord, MoveDetails
from genbatch.lifecycle import Move

P = ParamSpec("P")
T = TypeVar("T")


def _queued(
    method: Callable[Concatenate[Ledger, P], T], *, alone: bool = False, idempotent: bool = False
) -> Callable[Concatenate[AsyncLedger, P], Coroutine[Any, Any, T]]:
    """The ``Ledger`` method, awaited: queued to the writer, in a batch (``alone``: in a
    transaction of its own). An ``idempotent`` one (done twice is done once) runs once more
    when its commit is in doubt or ended again."""

    async def queued(self: AsyncLedger, /, *args: P.args, **kwargs: P.kwargs) -> T:
        call = functools.partial(method, self._ledger, *args, **kwargs)
        try:
            result: T = await self._writer.do(call, alone=alone)
        except (CommitInDoubt, TransactionEnded):
            if not idempotent:
                raise
            result = await self._writer.do(call, alone=alone)
        return result

    queued.__doc__ = method.__doc__
    return queued


class AsyncLedger:
    """Async facade of a ``Ledger``, for code running in an event loop: each method is the
    ``Ledger`` method of the same name."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._writer = GroupCommit(self._run_batch, light_on_loop=not ledger.shared)
        self.shared = ledger.shared
        """Several processes may drive its runs at once (their changes come from elsewhere)."""

    claim_jobs = _queued(Ledger.claim_jobs, alone=True)  # a durable commit
    note_error = _queued(Ledger.note_error, idempotent=True)
    outputs = _queued(Ledger.outputs, idempotent=True)
    record_files = _queued(Ledger.record_files)
    fail_pending_of_model = _queued(Ledger.fail_pending_of_model)
    start_worker = _queued(Ledger.start_worker)
    stop_worker = _queued(Ledger.stop_worker, idempotent=True)
    heartbeat = _queued(Ledger.heartbeat, idempotent=True)
    take_over = _queued(Ledger.take_over)
    park_job = _queued(Ledger.park_job, idempotent=True)
    work_may_come = _queued(Ledger.work_may_come, idempotent=True)
    _try_move = _queued(Ledger.try_move)
    _refusal = _queued(Ledger.refusal)

    async def move(
        self, job: JobRecord, move: Move, *, worker: str, **details: Unpack[MoveDetails]
    ) -> JobRecord:
        """``Ledger.try_move`` of the runner: the job, moved; ``TransitionRefused`` when it was
        not where expected (a cancel or a takeover came first)."""
        moved = await self._try_move(job, move, worker=worker, **details)
        if moved is None:
            raise await self._refusal(job, move)
        return moved

    async def generation_times(self, model_id: str, limit: int) -> list[float]:
        """``Ledger.generation_times``, read in a worker thread: a read needs no place in the
        order of writes, and on a large ledger it may scan."""
        return await anyio.to_thread.run_sync(self._ledger.generation_times, model_id, limit)

    def _run_batch(self, batch: Sequence[Work]) -> None:
        """Runs in the writer's thread: the batch in one transaction, else each call alone."""
        if len(batch) > 1 and self._run_together(batch):
            return
        for work in batch:
            work.run()
            if isinstance(work.error, TransactionEnded):
                # Ended by the database before its commit: nothing was written, so once more.
                work.error = None
                work.run()

    def _run_together(self, batch: Sequence[Work]) -> bool:
        try:
            with self._ledger.grouped():
                results = [work.function() for work in batch]
        except CommitInDoubt as exc:  # maybe written: running the calls again could repeat them
            for work in batch:
                work.error, work.ran = exc, True
            return True
        except Exception:
            return False  # rolled back: nothing of the batch was committed
        for work, result in zip(batch, results, strict=True):
            work.result = result
            work.ran = True
        return True
