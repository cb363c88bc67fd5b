"""Writing a whole file so that readers see the old version or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from genbatch.errors import OutputError


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: temp file beside it, fsync, rename, fsync the directory.

    A crash at any point leaves either the previous file or the new one; two writers at once
    each rename a complete file, and the last rename wins.
    """
    with atomic_writer(path, mode=mode) as out:
        out.write(data)


@contextmanager
def atomic_writer(path: Path, *, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A file to write ``path``'s new content into, piece by piece; on a clean exit it replaces
    ``path`` as ``write_atomically`` does, on an error ``path`` is left as it was."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the file 0600 with a unique name, so concurrent writers never collide.
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temp, path)
        fsync_path(path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            temp.unlink(missing_ok=True)


def remove_if_present(path: Path) -> bool:
    """Delete ``path`` if it exists; True when something was deleted."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise OutputError(f"cannot remove {path}: {exc.strerror}") from None
    return True


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file's data, or a directory's entries after a rename) to the disk.

    An fsync flushes the file whichever descriptor it is called on, so a read-only one will do.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
