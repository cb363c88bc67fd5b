"""Moving verified files into place durably, several at a time.

A downloaded file becomes visible under its final name only once it is on the disk: its data is
flushed (fsync), it is renamed from its ``.part`` name, and its directory is flushed so that the
rename itself survives a power loss. A file never replaces one with other bytes: a name taken by
another job's file (one of a result's several outputs, ``name_1``, may be another job's whole
name) or by a file of the user's, the new file takes the name with its sha256's first 12 hex
digits after the stem instead; a hard link puts it in place, so that no other process placing
the same name at that moment can race it. Those waits for the disk happen in a worker thread,
never on the event loop, and the files that finish together share one trip to the thread, each
directory flushed once for all of its files of the trip (``group_commit``). Each caller resumes
only once its own file is in place and flushed, or with its own error.
"""

from __future__ import annotations

import errno
import functools
import hashlib
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

    async def move_into_place(self, fd: int, part: Path, final: Path, sha256: str) -> Path:
        """Flush ``part`` (open as ``fd``, which stays open; its bytes hash to ``sha256``),
        rename it to ``final`` (or the name beside it, when ``final`` holds other bytes) and
        flush the rename; the path it has now. Raises ``OutputError`` when the disk refuses."""
        work = functools.partial(_flush_and_rename, fd, part, final, sha256)
        return await self._group.do(work)


def _move_all(batch: Sequence[Work]) -> None:
    """Each file flushed and renamed, then each directory flushed once."""
    directories: dict[Path, list[Work]] = {}
    for work in batch:
        work.run()
        if work.error is None:
            directories.setdefault(work.result.parent, []).append(work)
    for directory, works in directories.items():
        try:
            fsync_path(directory)
        except OSError as exc:
            for work in works:
                work.error = _cannot_move(directory, exc)


def _flush_and_rename(fd: int, part: Path, final: Path, sha256: str) -> Path:
    """``part`` flushed and put in place at ``final``, or beside it: where it is now."""
    beside = final.with_name(f"{final.stem}.{sha256[:12]}{final.suffix}")
    try:
        os.fsync(fd)
        for name in (final, beside):
            if _place(part, name, sha256):
                return name
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) and final.parent.is_dir():
            # Removed as stale by a process that put the same file in place: download it again.
            raise IncompleteDownload(f"{part.name} was removed before its rename") from None
        raise _cannot_move(final, exc) from None
    raise OutputError(f"cannot move {final.name} into place: {beside.name} holds other bytes too")


def _place(part: Path, name: Path, sha256: str) -> bool:
    """``part`` at ``name``, unless other bytes are there (False). Never over a file: a hard
    link is refused on a name taken, at once, even by another process placing the same name
    at that moment (workers sharing a folder); the same bytes there already are this file."""
    try:
        os.link(part, name)
    except FileExistsError:
        if not _holds(name, sha256):
            return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        # A file system without hard links: looked at, then renamed (no other way there).
        if name.exists() and not _holds(name, sha256):
            return False
        os.replace(part, name)
        return True
    os.unlink(part)
    return True


_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK})


def _holds(path: Path, sha256: str) -> bool:
    """Whether ``path`` is a file of the bytes whose digest is ``sha256`` (a folder, or a file
    that cannot be read, is taken for other bytes: never replaced)."""
    try:
        return sha256_of(path) == sha256
    except OSError:
        return False


def sha256_of(path: Path) -> str:
    """The sha256 of the file ``path``, hex; ``OSError`` when it cannot be read."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _cannot_move(where: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot move {where.name} into place: {exc.strerror}")
