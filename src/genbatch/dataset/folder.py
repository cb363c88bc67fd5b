"""Writing a dataset folder whole: readers see the previous export or the new one, never half.

The folder is built beside its destination under a hidden name, then renamed into place. An
existing destination is replaced only when genbatch wrote it (it holds ``MARKER``): a folder of
the user's is never deleted by a mistyped ``--output``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from genbatch.atomic import fsync_path
from genbatch.errors import OutputError, UsageError

__all__ = ["MARKER", "replacing_directory"]

MARKER = ".genbatch-export"
"""The file that says a folder is a genbatch export (hidden: the dataset loaders skip it)."""


@contextmanager
def replacing_directory(destination: Path, *, format_name: str) -> Iterator[Path]:
    """A new empty folder (mode 0700) to fill; on a clean exit it replaces ``destination``,
    on an error it is removed and ``destination`` is left as it was."""
    _check_replaceable(destination)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        building = Path(
            tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent)
        )
    except OSError as exc:
        raise OutputError(f"cannot write {destination}: {exc.strerror}") from None
    try:
        yield building
        (building / MARKER).write_text(f"{format_name}\n", encoding="utf-8")
        _swap_in(building, destination)
    except OSError as exc:
        raise OutputError(f"cannot write {destination}: {exc.strerror}") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)


def _check_replaceable(destination: Path) -> None:
    if not destination.exists():
        return
    if not destination.is_dir():
        raise UsageError(f"--output {destination} is a file; give a folder for this format")
    if (destination / MARKER).is_file() or not any(destination.iterdir()):
        return
    raise UsageError(
        f"--output {destination} is a folder genbatch did not write; give a new or empty one"
    )


def _swap_in(building: Path, destination: Path) -> None:
    """Rename ``building`` to ``destination``, the old folder moved aside first and deleted
    after, so the destination is missing for two renames at most, never half written."""
    old: Path | None = None
    if destination.exists():
        old = Path(
            tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".old", dir=building.parent)
        )
        os.replace(destination, old / destination.name)
    os.replace(building, destination)
    fsync_path(destination.parent)
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
