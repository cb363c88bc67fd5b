"""What a run leaves behind for people and tools: ``metadata.jsonl`` beside the files, exports.

``metadata.jsonl`` is regenerated whole from the ledger (temp file, fsync, rename) at the end of
every run and by ``genbatch export``, never appended to from the hot path. The ledger is the one
source of truth: an append-only side file would need its own crash recovery (a file renamed but
its row not yet written, a row written twice after a retry, rows for files since deleted), while a
snapshot is correct by construction and costs milliseconds even for thousands of jobs. A crash
mid-run leaves the previous snapshot, which the next run or export replaces.

Each row describes one file, with ``file_name`` relative to the directory of ``metadata.jsonl``,
so the directory loads as-is with Hugging Face ``datasets`` (``imagefolder``/``videofolder``) and
with ``pandas.read_json(path, lines=True)``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from genbatch.atomic import atomic_writer, remove_if_present
from genbatch.states import JobState

if TYPE_CHECKING:
    from genbatch.ledger import JobOutputs, Ledger, OutputRecord


METADATA_FILE = "metadata.jsonl"

FILE_COLUMNS = (
    "file_name",
    "inputs",
    "variables",
    "model_id",
    "job_key",
    "index",
    "block",
    "repeat",
    "request_id",
    "sha256",
    "size",
    "created_at",
    "finished_at",
    "cost_usd",
)
"""The fixed columns of a metadata row; every input is also a top-level column."""

EXPORT_COLUMNS = ("run", "output_dir", "url", "state", "error", "in_manifest")
"""Columns an export adds to the metadata columns."""


class TextSink(Protocol):
    """Where export text goes: ``sys.stdout``, a text file, a ``StringIO``."""

    def write(self, text: str, /) -> int | None: ...


_RESERVED = frozenset(FILE_COLUMNS) | frozenset(EXPORT_COLUMNS)
INPUT_PREFIX = "input_"
"""Prefix of a flattened input whose name is a fixed column (Seedream's ``size``)."""


def _present_files(item: JobOutputs) -> Iterator[tuple[OutputRecord, dict[str, Any]]]:
    for output in item.outputs:
        if output.path is not None and os.path.isfile(output.path):
            yield output, _file_row(item, output)


def export_rows(
    items: Iterable[JobOutputs], *, all_states: bool = False
) -> Iterator[dict[str, Any]]:
    """Export rows: the metadata columns plus run, place, url, state and error.

    Done jobs give one row per recorded output file; with ``all_states`` every other job gives
    one row without file columns, carrying its state and last error.
    """
    for item in items:
        if item.job.state == JobState.DONE and item.outputs:
            for output in item.outputs:
                yield _export_row(item, output)
        elif all_states:
            yield _export_row(item, None)


def ledger_export_rows(
    ledger: Ledger, run_ids: Sequence[int] | None, *, all_states: bool = False
) -> Iterator[dict[str, Any]]:
    """The export rows of the runs ``run_ids`` (None: every run), streamed from the ledger."""
    for run_id in run_ids if run_ids is not None else [None]:
        with ledger.stream_job_outputs(run_id=run_id) as items:
            yield from export_rows(items, all_states=all_states)


def write_run_metadata(ledger: Ledger, run_id: int) -> list[Path]:
    """Regenerate ``metadata.jsonl`` in every output directory of a run; the files written."""
    return write_metadata(ledger, ledger.output_dirs(run_id))


def write_metadata(ledger: Ledger, directories: Sequence[str]) -> list[Path]:
    """Regenerate ``metadata.jsonl`` in ``directories`` from every run writing there.

    Rows are streamed from the ledger to the files, so memory stays flat however many files a
    run has. A directory without any file left loses its ``metadata.jsonl`` rather than keep
    stale rows.
    """
    if not directories:
        return []
    winners = _latest_writers(ledger, directories)
    files: dict[str, BinaryIO] = {}
    with (
        ExitStack() as stack,
        ledger.stream_job_outputs(output_dirs=directories, states=[JobState.DONE]) as items,
    ):
        for item in items:
            directory = item.job.output_dir
            for output, row in _present_files(item):
                if winners.get((directory, row["file_name"]), output.id) != output.id:
                    continue  # another run's row for the same file name is the newer one
                out = files.get(directory)
                if out is None:
                    out = files[directory] = stack.enter_context(
                        atomic_writer(Path(directory) / METADATA_FILE)
                    )
                out.write(jsonl_line(row).encode("utf-8"))
    for directory in directories:
        if directory not in files and Path(directory).is_dir():
            remove_if_present(Path(directory) / METADATA_FILE)
    return [Path(directory) / METADATA_FILE for directory in directories if directory in files]


def jsonl_line(row: dict[str, Any]) -> str:
    """One JSON Lines line, UTF-8 text kept readable."""
    return json.dumps(row, ensure_ascii=False) + "\n"


def write_jsonl(rows: Iterable[dict[str, Any]], out: TextSink) -> int:
    """Write ``rows`` as JSON Lines, one at a time; how many were written."""
    count = 0
    for row in rows:
        out.write(jsonl_line(row))
        count += 1
    return count


def write_csv(rows: Callable[[], Iterable[dict[str, Any]]], out: TextSink) -> int:
    """Write CSV with the union of the rows' columns (objects as JSON text, null as an empty
    cell); ``rows`` is called twice, once for the columns, so no row has to stay in memory."""
    columns: dict[str, None] = {}
    for row in rows():
        columns.update(dict.fromkeys(row))
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows():
        writer.writerow({key: _csv_cell(value) for key, value in row.items()})
        count += 1
    return count


def flat_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs as top-level columns, prompt first; a name clashing with a fixed column is
    prefixed with ``input_``."""
    ordered = sorted(inputs, key=lambda name: (name != "prompt", name))
    return {(INPUT_PREFIX + name if name in _RESERVED else name): inputs[name] for name in ordered}


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 with an explicit UTC offset (SQLite hands back naive UTC times)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def cost_share(item: JobOutputs) -> float | None:
    """The job's cost as the ledger recorded it (the price the run used: manifest, API or
    built-in) split across its files, so a column sums to the run's cost; None when unpriced."""
    if item.job.cost_usd is None:
        return None
    return round(item.job.cost_usd / max(1, len(item.outputs)), 6)


def _file_row(item: JobOutputs, output: OutputRecord | None) -> dict[str, Any]:
    job, attempt = item.job, item.attempt
    started = (attempt.accepted_at or attempt.intent_at) if attempt else None
    finished = (attempt.finished_at if attempt else None) or item.finished_at
    file_name = _relative(output.path, job.output_dir) if output and output.path else None
    return {
        "file_name": file_name,
        **flat_inputs(job.inputs),
        "inputs": job.inputs,
        "variables": job.variables,
        "model_id": job.model_id,
        "job_key": job.key,
        "index": job.ordinal,
        "block": job.block,
        "repeat": job.repeat_index,
        "request_id": (attempt.request_id if attempt else None) or job.request_id,
        "sha256": output.sha256 if output else None,
        "size": output.size if output else None,
        "created_at": iso(started),
        "finished_at": iso(finished),
        "cost_usd": cost_share(item),
    }


def _export_row(item: JobOutputs, output: OutputRecord | None) -> dict[str, Any]:
    row = _file_row(item, output)
    row.update(
        run=item.run_name,
        output_dir=item.job.output_dir,
        url=output.url if output else None,
        state=item.job.state.value,
        error=item.job.error,
        in_manifest=item.in_manifest,
    )
    return row


def _relative(path: str, directory: str) -> str:
    return Path(os.path.relpath(path, directory)).as_posix()


def _latest_writers(ledger: Ledger, directories: Sequence[str]) -> dict[tuple[str, str], int]:
    """For each file name that several outputs claim (two runs wrote the same name in one
    directory), the output whose row wins: the file on disk is the one finished last."""
    shared = ledger.shared_output_paths(directories)
    if not shared:
        return {}
    latest: dict[tuple[str, str], tuple[str, int]] = {}
    with ledger.stream_job_outputs(output_dirs=directories, states=[JobState.DONE]) as items:
        for item in items:
            for output, row in _present_files(item):
                if output.path not in shared:
                    continue
                key = (item.job.output_dir, row["file_name"])
                finished = row["finished_at"] or ""
                if key not in latest or finished >= latest[key][0]:
                    latest[key] = (finished, output.id)
    return {key: output_id for key, (_finished, output_id) in latest.items()}


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return json.dumps(value, ensure_ascii=False)
    return value
