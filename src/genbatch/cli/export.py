"""``genbatch export``: the ledger's record of each output file as JSON Lines or CSV, or the
files themselves as a dataset (Parquet, WebDataset shards, Hugging Face folders)."""

from __future__ import annotations

import codecs
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from genbatch.atomic import atomic_writer
from genbatch.cli import app
from genbatch.cli.common import LEDGER_ENVIRONMENT, LEDGER_OPTION, one_line_errors
from genbatch.cli.export_dataset import dataset_request, write_dataset
from genbatch.cli.selection import reading_ledger, runs_for
from genbatch.errors import ForeignMetadata, GenbatchError, UsageError
from genbatch.ratings import STARS
from genbatch.states import JobState

if TYPE_CHECKING:
    from genbatch.export import ExportFilter, TextSink
    from genbatch.ledger import Ledger


EPILOG = """Examples:

  genbatch export sweep.yaml > sweep.jsonl

  genbatch export --format csv --all-states --output all-runs.csv

  genbatch export sweep.yaml --format parquet --output sweep.parquet [--embed]

  genbatch export sweep.yaml --format webdataset --output shards/ --shard-size 500MB

  genbatch export sweep.yaml --format hf --output sweep-dataset/

  genbatch export sweep.yaml --kept --min-stars 4 > best.jsonl

  genbatch export sweep.yaml --state failed --state unknown

Each row is one output file: file_name (relative to output_dir), prompt and every input as
columns, inputs, variables, model_id, job_key, index, block, repeat, request_id, sha256, size,
created_at, finished_at, cost_usd, verdict, stars, note, run, output_dir, url, state, error,
in_manifest, rated_at, rated_by (ratings come from genbatch review). Also rewrites
metadata.jsonl in the output directories. parquet needs pyarrow (pip install
'genbatch[dataset]'); webdataset and hf write a folder, replaced whole. --output is never
the ledger, a manifest, metadata.jsonl or a generated file (exit 2); any other file is
replaced. See docs/outputs.md.
"""


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"
    WEBDATASET = "webdataset"
    HF = "hf"


_TEXT_FORMATS = (ExportFormat.JSONL, ExportFormat.CSV)


@app.command(epilog=EPILOG + "\n" + LEDGER_ENVIRONMENT)
@one_line_errors
def export(
    manifest: Path | None = typer.Argument(
        None, metavar="MANIFEST", help="Only this manifest's run [default: every run]."
    ),
    output_format: ExportFormat = typer.Option(
        ExportFormat.JSONL,
        "--format",
        "-f",
        help="jsonl or csv (rows); parquet (a file), webdataset or hf (a folder): datasets.",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="PATH",
        help="Write here (mode 0600; a folder for webdataset and hf) [default: stdout, for "
        "jsonl and csv].",
    ),
    ledger: str | None = LEDGER_OPTION,
    all_states: bool = typer.Option(
        False,
        "--all-states",
        help="Also jobs that are not done, one row each, with their state and error.",
    ),
    embed: bool = typer.Option(
        False, "--embed", help="parquet: put each file's bytes in the file_bytes column."
    ),
    shard_size: str = typer.Option(
        "1GB", "--shard-size", metavar="SIZE", help="webdataset: largest shard (500MB, 2GiB)."
    ),
    states: list[JobState] = typer.Option(
        [],
        "--state",
        metavar="STATE",
        help="Only jobs in this state (repeat for several): done, failed, unknown, pending... "
        "[default: done].",
    ),
    kept: bool = typer.Option(False, "--kept", help="Only files kept in genbatch review."),
    min_stars: int | None = typer.Option(
        None,
        "--min-stars",
        metavar="N",
        help="Only files rated at least N stars (1-5) in genbatch review.",
    ),
) -> None:
    """Write one row per output file of the done jobs (of MANIFEST's run, or of every run), or
    the files themselves as a dataset (parquet, webdataset, hf)."""
    wanted = _filter(all_states=all_states, states=states, kept=kept, min_stars=min_stars)
    request = dataset_request(
        output_format,
        output,
        all_states=wanted.states != frozenset({JobState.DONE}),
        embed=embed,
        shard_size=shard_size,
    )
    from genbatch.export import ledger_export_rows, write_metadata  # on use: start-up

    with reading_ledger(ledger, manifest) as store:
        run_ids = None if manifest is None else [run.id for run in runs_for(store, manifest)]
        if output is not None:
            from genbatch.output_guard import refuse_kept_output

            folder = output_format in (ExportFormat.WEBDATASET, ExportFormat.HF)
            refuse_kept_output(store, output, folder=folder)
        try:
            write_metadata(store, store.output_dirs(run_ids), whole=True)
        except ForeignMetadata as exc:  # the export itself does not need that file
            print(f"genbatch: warning: metadata.jsonl not updated: {exc}", file=sys.stderr)

        def rows() -> Iterator[dict[str, Any]]:
            return ledger_export_rows(store, run_ids, wanted)

        if request is not None:
            runs = {run.name: Path(run.manifest_path).name for run in store.runs()}
            print(f"genbatch: {write_dataset(request, rows, runs)}", file=sys.stderr)
            return
        if output is None:
            _write(output_format, rows, sys.stdout)
            return
        with atomic_writer(output) as raw:
            count = _write(output_format, rows, codecs.getwriter("utf-8")(raw))
    print(f"genbatch: {count} row(s) written to {output}", file=sys.stderr)


def _filter(
    *, all_states: bool, states: list[JobState], kept: bool, min_stars: int | None
) -> ExportFilter:
    if all_states and states:
        raise UsageError("--all-states and --state: give one or the other")
    if min_stars is not None and min_stars not in STARS:
        raise UsageError(f"--min-stars: {min_stars} is not from 1 to 5")
    chosen = frozenset(JobState) if all_states else frozenset(states or [JobState.DONE])
    if (kept or min_stars is not None) and JobState.DONE not in chosen:
        raise UsageError("--kept and --min-stars keep rated files, which only done jobs have")
    from genbatch.export import ExportFilter

    return ExportFilter(states=chosen, kept=kept, min_stars=min_stars)


def _write(
    output_format: ExportFormat, rows: Callable[[], Iterator[dict[str, Any]]], out: TextSink
) -> int:
    from genbatch.export import write_csv, write_jsonl

    # Rows stream from the ledger to the output: an export of a million files fits in memory.
    if output_format == ExportFormat.CSV:
        return write_csv(rows, out)
    return write_jsonl(rows(), out)


def refresh_metadata(store: Ledger, run_id: int) -> None:
    """After a run: rewrite metadata.jsonl beside its files; a failure only warns (the run's
    own outcome is what the exit code reports)."""
    from genbatch.export import write_run_metadata

    try:
        write_run_metadata(store, run_id)
    except GenbatchError as exc:
        print(f"genbatch: warning: metadata.jsonl not updated: {exc}", file=sys.stderr)
