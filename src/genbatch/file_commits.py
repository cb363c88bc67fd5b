"""Moving verified files into place durably, several at a time.

A downloaded file becomes visible under its final name only once it is on the disk: its data is
flushed (fsync), it is renamed from its ``.part`` name, and its directory is flushed so that the
rename itself survives a power loss. Those waits for the disk happen in a worker thread, never
on the event loop. A trip to a thread is not free: besides its own CPU, every system call the
thread makes hands the GIL back and forth with the event loop (about 0.5 ms of CPU per file
measured in figure 1 of docs/benchmarks.md). So the files that finish within a few milliseconds
of each other share one trip, and each directory is flushed once for all of its files of the
trip (group commit, as databases do). Each caller resumes only once its own file is in place
and flushed, or with its own error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import anyio.to_thread

from genbatch.atomic import fsync_path
from genbatch.errors import OutputError
from genbatch.group_commit import BatchQueue

COMMIT_GATHER_SECONDS = 0.01
"""How long the first file of a trip may wait for the files still being written to join it."""
MAX_COMMIT_BATCH = 32


class _Move:
    """One file to move into place and, once done, the error it met (if any)."""

    __slots__ = ("error", "fd", "final", "finished", "part", "taken")

    def __init__(self, fd: int, part: Path, final: Path) -> None:
        self.fd = fd
        self.part = part
        self.final = final
        self.taken = False
        """A trip took it: it will be done, whatever happens to its caller."""
        self.finished = False
        self.error: OutputError | None = None


class FileCommitter(BatchQueue[_Move]):
    """Flushes and renames files into place in a worker thread, files of the same moment
    sharing one trip and one flush of their directory."""

    def __init__(
        self, *, gather_seconds: float = COMMIT_GATHER_SECONDS, max_batch: int = MAX_COMMIT_BATCH
    ) -> None:
        super().__init__()
        self._gather_seconds = gather_seconds
        self._max_batch = max_batch
        self._changed = anyio.Event()
        self._writing = 0

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around the writing of a file that will be moved into place: a trip waits (a moment)
        for the files being written to join it."""
        self._writing += 1
        try:
            yield
        finally:
            self._writing -= 1
            self._changed_now()

    async def move_into_place(self, fd: int, part: Path, final: Path) -> None:
        """Flush ``part`` (open as ``fd``, which stays open), rename it to ``final`` and flush
        the rename. Raises ``OutputError`` when the disk refuses. Cancelled before its trip, the
        file stays where it is; once taken, the trip (which uses ``fd``) is waited for."""
        move = _Move(fd, part, final)
        await self._until_finished(move)
        if move.error is not None:
            raise move.error

    def _on_queued(self) -> None:
        self._changed_now()

    def _changed_now(self) -> None:
        """Wake a trip gathering files: one was queued, or one stopped being written."""
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def _gather(self) -> None:
        with anyio.move_on_after(self._gather_seconds):
            while len(self._queue) < min(self._writing, self._max_batch):
                await self._changed.wait()

    def _take(self) -> list[_Move]:
        return [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]

    async def _handle(self, batch: list[_Move]) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_move_all, batch)

    def _abandon(self, move: _Move) -> None:
        move.error = move.error or OutputError("the file-moving thread failed")


def _move_all(batch: list[_Move]) -> None:
    """Each file flushed and renamed, then each directory flushed once."""
    directories: dict[Path, list[_Move]] = {}
    for move in batch:
        try:
            os.fsync(move.fd)
            os.replace(move.part, move.final)
        except OSError as exc:
            move.error = _cannot_move(move, exc)
            move.finished = True
            continue
        directories.setdefault(move.final.parent, []).append(move)
    for directory, moves in directories.items():
        try:
            fsync_path(directory)
        except OSError as exc:
            for move in moves:
                move.error = _cannot_move(move, exc)
        for move in moves:
            move.finished = True


def _cannot_move(move: _Move, exc: OSError) -> OutputError:
    return OutputError(f"cannot move {move.final.name} into place: {exc.strerror}")
