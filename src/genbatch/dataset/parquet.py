"""``--format parquet``: one Parquet file, one row per output, read back with pyarrow or pandas.

The rows are the export's rows (every input as a column, variables, request id, sha256, cost,
and the review's columns when present), each column in one type (``columns.py``), plus
``file_path``: the file relative to the Parquet file's folder. With ``embed``, ``file_bytes``
holds the file itself, so the Parquet file travels alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genbatch.atomic import atomic_writer
from genbatch.dataset.columns import ColumnKind, ColumnPlan
from genbatch.dataset.extra import require
from genbatch.dataset.files import source_of

__all__ = ["BYTES_COLUMN", "PATH_COLUMN", "ParquetReport", "write_parquet"]

PATH_COLUMN = "file_path"
BYTES_COLUMN = "file_bytes"

# Rows go to the file in batches (one row group each), so memory holds one batch: up to this
# many rows, or about this many bytes of embedded files.
_BATCH_ROWS = 2000
_BATCH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ParquetReport:
    """What ``write_parquet`` wrote."""

    rows: int
    missing: int
    """Rows whose file is not on disk (their ``file_bytes`` is null with ``embed``)."""


def write_parquet(
    rows: Callable[[], Iterable[dict[str, Any]]], path: Path, *, embed: bool = False
) -> ParquetReport:
    """Write ``rows`` (called twice: once to learn the columns) to the Parquet file ``path``,
    atomically and mode 0600."""
    pa = require("pyarrow", needed_by="--format parquet")
    pq = require("pyarrow.parquet", needed_by="--format parquet")
    plan = ColumnPlan.of(rows())
    schema = _schema(pa, plan, embed=embed)
    rows_written = missing = 0
    with atomic_writer(path) as out, pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for batch in _batches(rows(), plan, path.parent, embed=embed):
            writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
            rows_written += len(batch)
            missing += sum(1 for row in batch if row[PATH_COLUMN] is None)
    return ParquetReport(rows=rows_written, missing=missing)


_ARROW_TYPES = {
    ColumnKind.NULL: "null",
    ColumnKind.BOOL: "bool_",
    ColumnKind.INT: "int64",
    ColumnKind.FLOAT: "float64",
    ColumnKind.STRING: "string",
    ColumnKind.JSON: "string",
}


def _schema(pa: Any, plan: ColumnPlan, *, embed: bool) -> Any:
    """The Arrow schema (pyarrow ships no type hints: ``Any``)."""
    fields = [pa.field(name, getattr(pa, _ARROW_TYPES[plan.kind(name)])()) for name in plan.columns]
    fields.append(pa.field(PATH_COLUMN, pa.string()))
    if embed:
        fields.append(pa.field(BYTES_COLUMN, pa.binary()))
    return pa.schema(fields)


def _batches(
    rows: Iterable[dict[str, Any]], plan: ColumnPlan, folder: Path, *, embed: bool
) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for row in rows:
        out = plan.normalise(row)
        source = source_of(row)
        out[PATH_COLUMN] = _relative(source, folder) if source is not None else None
        if embed:
            out[BYTES_COLUMN] = source.read_bytes() if source is not None else None
            size += len(out[BYTES_COLUMN] or b"")
        batch.append(out)
        if len(batch) >= _BATCH_ROWS or size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _relative(source: Path, folder: Path) -> str:
    return Path(os.path.relpath(source, folder.resolve())).as_posix()
