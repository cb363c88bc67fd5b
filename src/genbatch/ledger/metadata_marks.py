"""What each ``metadata.jsonl`` was last written from, so a run's exit can append to it.

A mark, kept in ``genbatch_meta`` per output directory, says: the file had this size and
modification time when genbatch last wrote it, and then held the rows of every job of the
directory done up to rank ``through`` (``jobs.done_seq``), as the ledger stood at generation
``generation``. The generation is a counter bumped by anything that changes rows already
written (a manifest edit that reorders done jobs, a rating); the rank only ever grows. While a
file still matches its mark and the generation is the same, the rows it lacks are exactly
those of the jobs done after ``through``: they can be appended.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, delete, select

from genbatch.ledger.statements import highest_done_rank, insert_on_conflict
from genbatch.ledger.tables import META

__all__ = ["MetadataMark", "Watermark", "bump_generation", "read_marks", "save_marks", "watermark"]

GENERATION_KEY = "metadata_generation"
MARK_PREFIX = "metadata_file:"


@dataclass(frozen=True, kw_only=True)
class Watermark:
    """Where the ledger stands for metadata files: its generation and its highest done rank."""

    generation: int
    through: int


@dataclass(frozen=True, kw_only=True)
class MetadataMark:
    """A ``metadata.jsonl`` as genbatch last wrote it."""

    size: int
    mtime_ns: int
    inode: int
    through: int
    generation: int


def watermark(conn: Connection) -> Watermark:
    """The ledger's generation and highest done rank, for writing metadata files."""
    through = conn.execute(highest_done_rank()).scalar()
    return Watermark(generation=_generation(conn), through=int(through or 0))


def bump_generation(conn: Connection) -> None:
    """Rows already written to metadata files changed: the next write of each is whole."""
    _upsert(conn, GENERATION_KEY, str(_generation(conn) + 1))


def read_marks(conn: Connection, directories: Iterable[str]) -> dict[str, MetadataMark]:
    """How the metadata files of ``directories`` were last written, where recorded (an
    unreadable mark counts as none)."""
    keys = {MARK_PREFIX + directory: directory for directory in directories}
    found: dict[str, MetadataMark] = {}
    for key, value in conn.execute(select(META.c.key, META.c.value).where(META.c.key.in_(keys))):
        try:
            found[keys[key]] = MetadataMark(**json.loads(value))
        except (TypeError, ValueError):
            continue
    return found


def save_marks(conn: Connection, marks: dict[str, MetadataMark | None]) -> None:
    """Record how metadata files were just written, by directory (None: forget its mark)."""
    for directory, mark in marks.items():
        if mark is None:
            conn.execute(delete(META).where(META.c.key == MARK_PREFIX + directory))
        else:
            _upsert(conn, MARK_PREFIX + directory, json.dumps(asdict(mark), sort_keys=True))


def _upsert(conn: Connection, key: str, value: str) -> None:
    statement = insert_on_conflict(conn, META).values(key=key, value=value)
    conn.execute(
        statement.on_conflict_do_update(index_elements=[META.c.key], set_={"value": value})
    )


def _generation(conn: Connection) -> int:
    value = conn.execute(select(META.c.value).where(META.c.key == GENERATION_KEY)).scalar()
    return int(value) if isinstance(value, str) and value.isdigit() else 0
