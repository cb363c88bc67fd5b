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
that PostgreSQL ended because this process was frozen in it (``TransactionEnded``) runs once more.

A call returns once its transaction is committed, so a state change is on record before the
side effect that depends on it (the POST after a claim, the download after the output URLs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

import anyio

from genbatch.errors import TransactionEnded
from genbatch.group_commit import GroupCommit, Work
from genbatch.ledger import history
from genbatch.ledger.ledger import Ledger
from genbatch.ledger.records import JobRecord, OutputRecord, StoredFile, Takeover, WorkerStart
from genbatch.lifecycle import Actor, Move
from genbatch.states import JobState

P = ParamSpec("P")
T = TypeVar("T")


class AsyncLedger:
    """Async facade of a ``Ledger``, for code running in an event loop."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._writer = GroupCommit(self._run_batch, light_on_loop=ledger.is_sqlite)
        self.shared = ledger.shared
        """Several processes may drive its runs at once (their changes come from elsewhere)."""

    # -- the runner's calls ---------------------------------------------------------------------

    async def claim_jobs(
        self,
        run_id: int,
        count: int,
        *,
        worker: str,
        budget_usd: float | None,
        run_limit: int | None,
        lease_seconds: float,
    ) -> list[JobRecord]:
        """``Ledger.claim_jobs``: a durable commit of its own."""
        claim = functools.partial(
            self._ledger.claim_jobs,
            run_id,
            count,
            worker=worker,
            budget_usd=budget_usd,
            run_limit=run_limit,
            lease_seconds=lease_seconds,
        )
        return await self._writer.do(claim, alone=True)

    async def move(
        self,
        job: JobRecord,
        move: Move,
        *,
        worker: str,
        actor: Actor = Actor.RUNNER,
        error: str | None = None,
        request_id: str | None = None,
        remote_status: str | None = None,
        urls: Sequence[str] = (),
        files: Sequence[StoredFile] = (),
        generation_seconds: float | None = None,
    ) -> JobRecord:
        """``Ledger.try_move``: the job, moved; ``TransitionRefused`` when it was not where
        expected (a cancel or a takeover came first)."""
        moved = await self._call(
            self._ledger.try_move,
            job,
            move,
            actor=actor,
            worker=worker,
            error=error,
            request_id=request_id,
            remote_status=remote_status,
            urls=urls,
            files=files,
            generation_seconds=generation_seconds,
        )
        if moved is None:
            raise await self._call(self._ledger.refusal, job, move)
        return moved

    async def generation_times(self, model_id: str, limit: int) -> list[float]:
        """``history.recent_generation_times``, read in a worker thread: a read needs no place
        in the order of writes, and on a large ledger it may scan."""
        return await anyio.to_thread.run_sync(
            history.recent_generation_times, self._ledger, model_id, limit
        )

    async def note_error(self, job: JobRecord, error: str) -> None:
        """``Ledger.note_error``."""
        await self._call(self._ledger.note_error, job, error)

    async def outputs(self, job_id: int) -> list[OutputRecord]:
        """``Ledger.outputs``."""
        return await self._call(self._ledger.outputs, job_id)

    async def record_files(self, files: Sequence[StoredFile]) -> None:
        """``Ledger.record_files``."""
        await self._call(self._ledger.record_files, files)

    async def fail_pending_of_model(self, run_id: int, model_id: str, error: str) -> int:
        """``Ledger.fail_pending_of_model``."""
        return await self._call(self._ledger.fail_pending_of_model, run_id, model_id, error)

    # -- the run and its workers ----------------------------------------------------------------

    async def start_worker(
        self,
        run_id: int,
        worker_id: str,
        *,
        host: str,
        pid: int,
        concurrency: int,
        lease_seconds: float,
        resubmit_unknown: bool,
    ) -> WorkerStart:
        """``Ledger.start_worker``."""
        start = functools.partial(
            self._ledger.start_worker,
            run_id,
            worker_id,
            host=host,
            pid=pid,
            concurrency=concurrency,
            lease_seconds=lease_seconds,
            resubmit_unknown=resubmit_unknown,
        )
        return await self._writer.do(start)

    async def stop_worker(
        self, run_id: int, worker_id: str, *, stop_reason: str | None
    ) -> dict[JobState, int]:
        """``Ledger.stop_worker``."""
        return await self._call(
            self._ledger.stop_worker, run_id, worker_id, stop_reason=stop_reason
        )

    async def heartbeat(self, run_id: int, worker_id: str, *, lease_seconds: float) -> None:
        """``Ledger.heartbeat``."""
        await self._call(self._ledger.heartbeat, run_id, worker_id, lease_seconds=lease_seconds)

    async def take_over(
        self, run_id: int, worker_id: str, *, lease_seconds: float, starting: bool = False
    ) -> Takeover:
        """``Ledger.take_over``."""
        return await self._call(
            self._ledger.take_over,
            run_id,
            worker_id,
            lease_seconds=lease_seconds,
            starting=starting,
        )

    async def park_job(self, job: JobRecord, worker_id: str) -> None:
        """``Ledger.park_job``."""
        await self._call(self._ledger.park_job, job, worker_id)

    async def work_may_come(self, run_id: int, worker_id: str) -> bool:
        """``Ledger.work_may_come``."""
        return await self._call(self._ledger.work_may_come, run_id, worker_id)

    # -- plumbing -------------------------------------------------------------------------------

    async def _call(self, call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._writer.do(functools.partial(call, *args, **kwargs))

    def _run_batch(self, batch: Sequence[Work]) -> None:
        """Runs in the writer's thread: the batch in one transaction, else each call alone."""
        if len(batch) > 1 and self._run_together(batch):
            return
        for work in batch:
            work.run()
            if isinstance(work.error, TransactionEnded):
                # Rolled back whole by the database while this process was frozen: once more.
                work.error = None
                work.run()

    def _run_together(self, batch: Sequence[Work]) -> bool:
        try:
            with self._ledger.grouped():
                results = [work.function() for work in batch]
        except Exception:
            return False  # rolled back: nothing of the batch was committed
        for work, result in zip(batch, results, strict=True):
            work.result = result
            work.ran = True
        return True
