"""Group commit: tasks of one event loop queue work, and one batch at a time does it for all.

The mechanism under the ledger's calls (``ledger.offloop.OffLoop``: several jobs' writes in one
transaction) and under the moves of downloaded files into place (``file_commits``: several
files per trip to a thread, one fsync per directory). A task queues its item and waits; the
first task to find no batch running runs the next one for everybody, and each task resumes once
its own item is done, reading its outcome from the item.

Cancellation: an item no batch has taken yet leaves the queue with its cancelled task (as if it
had been cancelled just before queueing); an item taken is always finished, its task waiting for
it, shielded, before the cancellation reaches it.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, Protocol, TypeVar

import anyio
import anyio.lowlevel


class Queued(Protocol):
    """What a batch queue needs of its items."""

    taken: bool
    """A batch took it: it will be finished, whatever happens to its task."""
    finished: bool


ItemT = TypeVar("ItemT", bound=Queued)


class BatchQueue(Generic[ItemT]):
    """Items handled in batches, one batch at a time, in the order they were queued."""

    def __init__(self) -> None:
        self._queue: deque[ItemT] = deque()
        self._busy = False
        self._batch_done = anyio.Event()

    async def _until_finished(self, item: ItemT) -> None:
        """Queue ``item`` and return once a batch has finished it."""
        self._queue.append(item)
        self._on_queued()
        try:
            while not item.finished:
                if self._busy:
                    await self._batch_done.wait()
                else:
                    await anyio.lowlevel.checkpoint_if_cancelled()
                    await self._run_batch()
        except anyio.get_cancelled_exc_class():
            if not item.taken:
                self._queue.remove(item)
                raise
            with anyio.CancelScope(shield=True):
                while not item.finished:
                    await self._batch_done.wait()
            raise

    async def _run_batch(self) -> None:
        self._busy = True
        batch: list[ItemT] = []
        try:
            await self._gather()
            if not self._queue:  # every item queued meanwhile was cancelled
                return
            batch = self._take()
            for item in batch:
                item.taken = True
            await self._handle(batch)
        finally:
            for item in batch:
                if not item.finished:  # _handle itself failed
                    self._abandon(item)
                    item.finished = True
            self._busy = False
            done, self._batch_done = self._batch_done, anyio.Event()
            done.set()

    def _on_queued(self) -> None:
        """Called after an item joined the queue."""

    async def _gather(self) -> None:
        """Wait, if worth it, for more items to join the batch about to run."""

    def _take(self) -> list[ItemT]:
        """The next batch, taken from the head of the queue."""
        raise NotImplementedError

    async def _handle(self, batch: list[ItemT]) -> None:
        """Do the work of ``batch``, finishing each item with its outcome."""
        raise NotImplementedError

    def _abandon(self, item: ItemT) -> None:
        """Give ``item`` an error: ``_handle`` failed before finishing it."""
        raise NotImplementedError
