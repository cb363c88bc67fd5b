"""What a run leaves behind for people and tools: ``metadata.jsonl`` beside the files, exports.

``metadata.jsonl`` is brought up to date from the ledger at the end of every run and by
``genbatch export``, never written from the hot path: the ledger is the one source of truth. A
run's exit appends the rows of the jobs done since the file was last written, so its cost
follows the run, not the ledger (a million done jobs took 40 s to rewrite); the file is
rewritten whole (temp file, fsync, rename) whenever appending could be wrong: the ledger keeps a
mark of each file as genbatch wrote it (``ledger/metadata_marks.py``) and anything else (a file
edited or cut short, rows changed) makes the next write whole. ``genbatch export`` always
rewrites whole. A crash mid-run leaves the previous file, which the next run or export updates.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from genbatch.atomic import atomic_writer, remove_if_present
from genbatch.errors import ForeignMetadata
from genbatch.ratings import Rating, Verdict
from genbatch.states import JobState

if TYPE_CHECKING:
    from genbatch.ledger import JobOutputs, Ledger, OutputRecord
    from genbatch.ledger.metadata_marks import MetadataMark, Watermark


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
    "verdict",
    "stars",
    "note",
)
"""The fixed columns of a metadata row; every input is also a top-level column."""

EXPORT_COLUMNS = (
    "run",
    "output_dir",
    "url",
    "state",
    "error",
    "in_manifest",
    "rated_at",
    "rated_by",
)
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


@dataclass(frozen=True, kw_only=True)
class ExportFilter:
    """Which rows an export keeps. The default: every file of the done jobs."""

    states: frozenset[JobState] = frozenset({JobState.DONE})
    """Jobs in these states; a job that is not done gives one row without file columns."""
    kept: bool = False
    """Only files kept in ``genbatch review``."""
    min_stars: int | None = None
    """Only files rated at least this many stars."""

    @property
    def rated_only(self) -> bool:
        """Only rated files pass: jobs without files (not done) give no row."""
        return self.kept or self.min_stars is not None

    def admits(self, rating: Rating | None) -> bool:
        """Whether a file with this rating (None: unrated) passes."""
        if not self.rated_only:
            return True
        if rating is None or (self.kept and rating.verdict != Verdict.KEPT):
            return False
        return self.min_stars is None or (rating.stars or 0) >= self.min_stars


ALL_STATES = ExportFilter(states=frozenset(JobState))
"""Every job: ``--all-states``."""


def export_rows(
    items: Iterable[JobOutputs], wanted: ExportFilter = ExportFilter()
) -> Iterator[dict[str, Any]]:
    """Export rows: the metadata columns plus run, place, url, state and error.

    Done jobs give one row per recorded output file (those ``wanted`` admits); jobs in other
    states ``wanted`` names give one row each without file columns, with state and last error.
    """
    for item in items:
        if item.job.state == JobState.DONE and item.outputs:
            for output in item.outputs:
                if wanted.admits(item.ratings.get(output.position)):
                    yield _export_row(item, output)
        elif item.job.state != JobState.DONE and not wanted.rated_only:
            yield _export_row(item, None)


def ledger_export_rows(
    ledger: Ledger, run_ids: Sequence[int] | None, wanted: ExportFilter = ExportFilter()
) -> Iterator[dict[str, Any]]:
    """The export rows of the runs ``run_ids`` (None: every run), streamed from the ledger."""
    for run_id in run_ids if run_ids is not None else [None]:
        with ledger.stream_job_outputs(run_id=run_id, states=wanted.states) as items:
            yield from export_rows(items, wanted)


def write_run_metadata(ledger: Ledger, run_id: int) -> list[Path]:
    """Bring ``metadata.jsonl`` up to date in every output directory of a run; the files
    written."""
    return write_metadata(ledger, ledger.output_dirs(run_id))


def write_metadata(
    ledger: Ledger, directories: Sequence[str], *, whole: bool = False
) -> list[Path]:
    """Bring ``metadata.jsonl`` in ``directories`` up to date with every run writing there.

    The rows of jobs done since a file was last written are appended to it when nothing else
    changed (a run's exit, the common case: its cost follows the new jobs, not the ledger's
    size). The file is rewritten whole when it must be: the first time, when it is not the
    file genbatch last wrote (edited, replaced, an append cut short), when rows already in it
    changed (a manifest edit reordered done jobs), when a new job took over another's file
    name, on a PostgreSQL ledger (workers finish jobs in an order that is not commit order),
    and with ``whole``. Rows stream from the ledger, so memory stays flat.

    A ``metadata.jsonl`` genbatch did not write (``metadata_guard``) is left as it is: the
    other directories are written, then ``ForeignMetadata`` names it.
    """
    from genbatch.metadata_guard import foreign_metadata

    foreign = foreign_metadata(ledger, directories)
    written = _write_metadata(ledger, [d for d in directories if d not in foreign], whole=whole)
    if foreign:
        _refuse_foreign(foreign)
    return written


def _refuse_foreign(foreign: dict[str, str]) -> None:
    directory, why = next(iter(foreign.items()))
    path = Path(directory) / METADATA_FILE
    others = f" ({len(foreign) - 1} other folder(s) likewise)" if len(foreign) > 1 else ""
    raise ForeignMetadata(
        f"{path} is not one genbatch wrote ({why}): left as it is, without the rows of "
        f"{directory}{others}; move or rename it, then `genbatch export` writes genbatch's"
    )


def _write_metadata(ledger: Ledger, directories: Sequence[str], *, whole: bool) -> list[Path]:
    if not directories:
        return []
    if ledger.shared:
        return _rewrite(ledger, directories, through=None)
    now = ledger.metadata_watermark()
    marks = {} if whole else ledger.metadata_marks(directories)
    updated: dict[str, MetadataMark | None] = {}
    rewrite: list[str] = []
    for directory in directories:
        mark = marks.get(directory)
        if mark is None or not _appendable(ledger, directory, mark, now):
            rewrite.append(directory)
            continue
        updated[directory] = _append(ledger, directory, (mark.through, now.through), now)
    written = _rewrite(ledger, rewrite, through=now.through)
    for directory in rewrite:
        path = Path(directory) / METADATA_FILE
        updated[directory] = _mark(path.stat(), now) if path in written else None
    ledger.save_metadata_marks(updated)
    return [Path(directory) / METADATA_FILE for directory in updated if updated[directory]]


def _appendable(ledger: Ledger, directory: str, mark: MetadataMark, now: Watermark) -> bool:
    """The file is the one ``mark`` describes, no row in it changed since, and no new job
    takes over a file name: its missing rows are the jobs done after ``mark.through``."""
    try:
        found = (Path(directory) / METADATA_FILE).stat()
    except OSError:
        return False
    return (
        (found.st_size, found.st_mtime_ns, found.st_ino) == (mark.size, mark.mtime_ns, mark.inode)
        and mark.generation == now.generation
        and mark.through <= now.through
        and not ledger.renames_done_files(directory, (mark.through, now.through))
    )


def _append(
    ledger: Ledger, directory: str, done_ranks: tuple[int, int], now: Watermark
) -> MetadataMark:
    """Append the rows of the directory's jobs done within ``done_ranks``; the new mark."""
    path = Path(directory) / METADATA_FILE
    with (
        open(path, "ab") as out,
        ledger.stream_job_outputs(
            output_dirs=[directory], states=[JobState.DONE], done_ranks=done_ranks
        ) as items,
    ):
        for item in items:
            for _output, row in _present_files(item):
                out.write(jsonl_line(row).encode("utf-8"))
        out.flush()
        os.fsync(out.fileno())
        # The file appended to, not whatever the name points at now (an export may have
        # renamed a new file in meanwhile: the mark then matches neither, and the next write
        # is whole).
        return _mark(os.fstat(out.fileno()), now)


def _rewrite(ledger: Ledger, directories: Sequence[str], *, through: int | None) -> list[Path]:
    """Write ``metadata.jsonl`` in ``directories`` whole from the jobs done up to rank
    ``through`` (None: every done job); a directory without any file left loses its
    ``metadata.jsonl`` rather than keep stale rows. The files written."""
    if not directories:
        return []
    winners = _latest_writers(ledger, directories)
    files: dict[str, BinaryIO] = {}
    with (
        ExitStack() as stack,
        ledger.stream_job_outputs(
            output_dirs=directories,
            states=[JobState.DONE],
            done_ranks=None if through is None else (-1, through),
        ) as items,
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


def _mark(found: os.stat_result, now: Watermark) -> MetadataMark:
    from genbatch.ledger.metadata_marks import MetadataMark

    return MetadataMark(
        size=found.st_size,
        mtime_ns=found.st_mtime_ns,
        inode=found.st_ino,
        through=now.through,
        generation=now.generation,
    )


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
    rating = item.ratings.get(output.position) if output else None
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
        "verdict": rating.verdict.value if rating and rating.verdict else None,
        "stars": rating.stars if rating else None,
        "note": rating.note if rating else None,
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
    rating = item.ratings.get(output.position) if output else None
    row.update(
        rated_at=iso(rating.rated_at) if rating else None,
        rated_by=rating.rated_by if rating else None,
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
