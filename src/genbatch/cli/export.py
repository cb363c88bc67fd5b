"""``genbatch export``: the ledger's record of each output file as JSON Lines or CSV."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import typer

from genbatch import batch
from genbatch.atomic import write_atomically
from genbatch.cli import app
from genbatch.cli.common import LEDGER_OPTION, one_line_errors
from genbatch.cli.selection import runs_for
from genbatch.errors import GenbatchError
from genbatch.export import export_rows, to_csv, to_jsonl, write_metadata, write_run_metadata
from genbatch.ledger import JobOutputs, Ledger

EPILOG = """Examples:

  genbatch export sweep.yaml > sweep.jsonl

  genbatch export --format csv --all-states --output all-runs.csv

Each row is one output file: file_name (relative to output_dir), prompt and every input as
columns, inputs, variables, model_id, job_key, index, block, repeat, request_id, sha256, size,
created_at, finished_at, cost_usd, run, output_dir, url, state, error. Also rewrites
metadata.jsonl in the output directories. See docs/outputs.md.
"""


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


@app.command(epilog=EPILOG)
@one_line_errors
def export(
    manifest: Path | None = typer.Argument(None, help="Only this manifest's run [default: "
                                           "every run]."),
    output_format: ExportFormat = typer.Option(ExportFormat.JSONL, "--format", "-f",
                                               help="jsonl or csv."),
    output: Path | None = typer.Option(None, "--output", "-o", metavar="FILE",
                                       help="Write here (mode 0600) [default: stdout]."),
    ledger: str | None = LEDGER_OPTION,
    all_states: bool = typer.Option(False, "--all-states", help="Also jobs that are not done, "
                                    "one row each, with their state and error."),
) -> None:
    """Write one row per output file of the done jobs (of MANIFEST's run, or of every run)."""
    with batch.open_ledger_for(ledger) as store:
        items = _items(store, manifest)
        write_metadata(store, sorted({item.job.output_dir for item in items}))
    rows = export_rows(items, all_states=all_states)
    text = to_csv(rows) if output_format == ExportFormat.CSV else to_jsonl(rows)
    if output is None:
        sys.stdout.write(text)
        return
    write_atomically(output, text.encode("utf-8"))
    print(f"genbatch: {len(rows)} row(s) written to {output}", file=sys.stderr)


def refresh_metadata(store: Ledger, run_id: int) -> None:
    """After a run: rewrite metadata.jsonl beside its files; a failure only warns (the run's
    own outcome is what the exit code reports)."""
    try:
        write_run_metadata(store, run_id)
    except GenbatchError as exc:
        print(f"genbatch: warning: metadata.jsonl not updated: {exc}", file=sys.stderr)


def _items(store: Ledger, manifest: Path | None) -> list[JobOutputs]:
    if manifest is None:
        return store.job_outputs()
    return [item for run in runs_for(store, manifest)
            for item in store.job_outputs(run_id=run.id)]
