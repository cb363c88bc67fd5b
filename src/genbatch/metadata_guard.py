"""Telling the ``metadata.jsonl`` genbatch writes from a file of that name it did not write.

genbatch never replaces bytes it did not write: an output file in the way is kept and the new
one saved beside it. ``metadata.jsonl`` has one fixed name per folder, so it cannot step aside:
a file there that genbatch did not write is never appended to, rewritten or removed, and a run
whose folder holds one is refused before anything is sent (``preflight``).

A file is genbatch's when it is the file the ledger's mark describes (as genbatch last wrote
it: nothing to read), or else, read, when every line is a row as genbatch writes one: a JSON
object whose first field is ``file_name``, holding the fields every genbatch version has
written. So a file from an earlier run, another ledger or a ledger since deleted is still
recognised, and so is one whose last line an append cut short (any unterminated tail after
genbatch rows). A row edited or deleted by hand keeps the file genbatch's (rewritten whole at
the next run); a line of anything else makes it someone else's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from genbatch.export import METADATA_FILE

if TYPE_CHECKING:
    from genbatch.ledger import Ledger
    from genbatch.ledger.metadata_marks import MetadataMark

__all__ = ["ROW_FIELDS", "foreign_metadata", "why_not_ours"]

ROW_FIELDS = ("inputs", "model_id", "job_key", "request_id", "sha256")
"""Fields of every row genbatch has written, besides ``file_name`` (first)."""

_ROW_START = b'{"file_name": '
# As ``json.dumps`` writes each key: a quote before it, so ``input_job_key`` is no ``job_key``.
_FIELD_MARKERS = tuple((name, f'"{name}": '.encode()) for name in ROW_FIELDS)


def foreign_metadata(ledger: Ledger, directories: Sequence[str]) -> dict[str, str]:
    """The ``metadata.jsonl`` of ``directories`` that genbatch did not write: why, by
    directory. A file matching its mark in the ledger is not read."""
    marks = ledger.metadata_marks(directories)
    found = {}
    for directory in directories:
        why = why_not_ours(Path(directory) / METADATA_FILE, marks.get(directory))
        if why is not None:
            found[directory] = why
    return found


def why_not_ours(path: Path, mark: MetadataMark | None = None) -> str | None:
    """Why the file at ``path`` is not a ``metadata.jsonl`` genbatch wrote, as a clause ("line
    1 lacks job_key, which genbatch's rows have"); None when it is one, or there is none."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"it cannot be read ({error.strerror or type(error).__name__})"
    if not stat.S_ISREG(found.st_mode):
        return "it is not a regular file"
    if mark is not None and _matches(found, mark):
        return None
    try:
        return _not_rows(path)
    except OSError as error:
        return f"it cannot be read ({error.strerror or type(error).__name__})"


def _matches(found: os.stat_result, mark: MetadataMark) -> bool:
    return (found.st_size, found.st_mtime_ns, found.st_ino) == (
        mark.size,
        mark.mtime_ns,
        mark.inode,
    )


def _not_rows(path: Path) -> str | None:
    """Why some line of the file is not a genbatch row; None when every line is one."""
    rows = 0
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.endswith(b"\n") and rows:
                return None  # an append cut short: what follows genbatch's rows is its own
            why = _not_a_row(line)
            if why is not None:
                return f"line {number} {why}"
            rows += line.strip() != b""
    return None


def _not_a_row(line: bytes) -> str | None:
    """Why ``line`` is not one row as genbatch writes it, or None (a blank line is none)."""
    text = line.strip()
    if not text:
        return None
    if not (text.startswith(_ROW_START) and text.endswith(b"}")):
        return "is not a JSON object starting with file_name, as genbatch's rows are"
    missing = [name for name, marker in _FIELD_MARKERS if marker not in text]
    return f"lacks {', '.join(missing)}, which genbatch's rows have" if missing else None
