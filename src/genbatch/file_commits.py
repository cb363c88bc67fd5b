"""Moving verified files into place durably, several at a time.

A downloaded file becomes visible under its final name only once it is on the disk: its data is
flushed (fsync), it is renamed from its ``.part`` name, and its directory is flushed so that the
rename itself survives a power loss. Those waits for the disk happen in a worker thread, never
on the event loop, and the files that finish together share one trip to the thread, each
directory flushed once for all of its files of the trip (``group_commit``). Each caller resumes
only once its own file is in place and flushed, or with its own error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from genbatch.atomic import fsync_path
from genbatch.errors import IncompleteDownload, OutputError
from genbatch.group_commit import GroupCommit, Work


class FileCommitter:
    """Flushes and renames files into place in a worker thread, files of the same moment
    sharing one trip and one flush of their directory."""

    def __init__(self) -> None:
        self._group = GroupCommit(_move_all)

    async def move_into_place(self, fd: int, part: Path, final: Path) -> None:
        """Flush ``part`` (open as ``fd``, which stays open), rename it to ``final`` and flush
        the rename. Raises ``OutputError`` when the disk refuses."""
        await self._group.do(lambda: _MoveOrder(fd, part, final))


class _MoveOrder:
    """What one piece of work asks for: built in the thread, carried out by ``_move_all``."""

    __slots__ = ("fd", "final", "part")

    def __init__(self, fd: int, part: Path, final: Path) -> None:
        self.fd = fd
        self.part = part
        self.final = final


def _move_all(batch: Sequence[Work]) -> None:
    """Each file flushed and renamed, then each directory flushed once."""
    directories: dict[Path, list[Work]] = {}
    for work in batch:
        order: _MoveOrder = work.function()
        try:
            os.fsync(order.fd)
            os.replace(order.part, order.final)
        except OSError as exc:
            work.error = _failed_move(order, exc)
            work.ran = True
            continue
        directories.setdefault(order.final.parent, []).append(work)
    for directory, works in directories.items():
        try:
            fsync_path(directory)
        except OSError as exc:
            for work in works:
                work.error = _cannot_move(directory, exc)
        for work in works:
            work.ran = True


def _failed_move(order: _MoveOrder, exc: OSError) -> IncompleteDownload | OutputError:
    if isinstance(exc, FileNotFoundError) and order.final.parent.is_dir():
        # Removed as stale by a process that put the same file in place: download it again.
        return IncompleteDownload(f"{order.part.name} was removed before its rename")
    return _cannot_move(order.final, exc)


def _cannot_move(where: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot move {where.name} into place: {exc.strerror}")
