"""Group commit: many tasks hand work to whoever is writing, who does all that has queued at once.

The ledger's writes (``ledger.AsyncLedger``: several jobs' writes share one transaction) and the
moves of downloaded files into place (``file_commits``: several files share one flush of their
directory) may wait for the disk. A task queues its work; if no batch is running, it leads: after
one turn of the event loop, it takes everything queued and does it as one batch in a worker thread
(or, for light work, on the loop itself: ``light_on_loop``), then the next batch, until its own
work is done (another waiting task then leads). Work queued while a
batch runs goes in the next one. No timer: under load batches grow by themselves, and a lone call
waits for nobody.

Work once queued always runs, and its task waits for it even if cancelled meanwhile (shielded),
so that what the task does next (a POST after a claim, say) never depends on a write that may or
may not have happened.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

T = TypeVar("T")


@dataclass(slots=True, eq=False)
class Work:
    """One piece of work: a function to call in a batch, then its outcome."""

    function: Callable[[], Any]
    alone: bool = False
    """It must not share its batch (a durable commit of its own)."""
    ran: bool = False
    """The batch handler is done with it (its outcome is set)."""
    finished: bool = False
    """Its whole batch is done: its task may go on (``ran`` may come before, mid-batch)."""
    result: Any = None
    error: BaseException | None = None

    def run(self) -> None:
        """Call the function; keep what it returned or raised."""
        try:
            self.result = self.function()
        except BaseException as exc:  # handed to the task that queued it, whatever it is
            self.error = exc
        self.ran = True

    def outcome(self) -> Any:
        """What the function returned; raises what it raised."""
        if self.error is not None:
            raise self.error
        return self.result


BatchHandler = Callable[[Sequence[Work]], None]
"""Does a batch, calling ``run`` on each piece of work (or setting its outcome itself and
``ran``)."""


class GroupCommit:
    """Work of many tasks done in batches, one batch at a time, in the order queued."""

    def __init__(self, handle: BatchHandler, *, light_on_loop: bool = False) -> None:
        self._handle = handle
        self._light_on_loop = light_on_loop
        """Batches of work that need not be alone run on the event loop itself: they hardly
        ever wait for the disk (``AsyncLedger`` says why), and a thread's hand-offs of the GIL
        would cost more CPU than the work."""
        self._queue: deque[Work] = deque()
        self._leading = False
        self._batch_done = anyio.Event()

    async def do(self, function: Callable[[], T], *, alone: bool = False) -> T:
        """Call ``function`` in a batch and return what it returned."""
        work = Work(function, alone=alone)
        self._queue.append(work)
        with anyio.CancelScope(shield=True):
            while not work.finished:
                if self._leading:
                    await self._batch_done.wait()
                else:
                    await self._lead(work)
        result: T = work.outcome()
        return result

    async def _lead(self, own: Work) -> None:
        self._leading = True
        try:
            while not own.finished:
                # One turn of the event loop first: the tasks woken with this one (answers that
                # arrived together) queue their work and share the batch.
                await anyio.lowlevel.cancel_shielded_checkpoint()
                await self._run(self._take())
        finally:
            self._leading = False

    def _take(self) -> list[Work]:
        """Everything queued, up to the first piece of work that must be alone."""
        batch = [self._queue.popleft()]
        while not batch[0].alone and self._queue and not self._queue[0].alone:
            batch.append(self._queue.popleft())
        return batch

    async def _run(self, batch: list[Work]) -> None:
        try:
            if self._light_on_loop and not batch[0].alone:
                self._handle(batch)
            else:
                await anyio.to_thread.run_sync(self._handle, batch)
        except Exception as exc:  # the handler itself failed: its work did not run
            for work in batch:
                if not work.ran:
                    work.error = exc
        for work in batch:
            work.finished = True
        done, self._batch_done = self._batch_done, anyio.Event()
        done.set()
