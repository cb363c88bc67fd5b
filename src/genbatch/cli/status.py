"""``genbatch status``: counts per state, per run, from the ledger."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbatch import batch
from genbatch.cli import app
from genbatch.cli.common import LEDGER_OPTION, one_line_errors
from genbatch.errors import UsageError
from genbatch.ledger import Ledger, RunInfo
from genbatch.manifest import load_manifest
from genbatch.states import JobState


@app.command(epilog="Example: genbatch status sweep.yaml --json")
@one_line_errors
def status(
    manifest: Path | None = typer.Argument(None, help="Only this manifest's run."),
    ledger: str | None = LEDGER_OPTION,
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show how many jobs are in each state, for every run of the ledger (or one)."""
    with batch.open_ledger_for(ledger) as store:
        runs = _runs(store, manifest)
        per_run = [(run, store.counts(run.id)) for run in runs]
    if json_output:
        print(json.dumps(_as_json(per_run)))
        return
    _print_table(per_run)


def _runs(store: Ledger, manifest: Path | None) -> list[RunInfo]:
    if manifest is None:
        return store.runs()
    name = load_manifest(manifest).name
    run = store.find_run(name)
    if run is None:
        raise UsageError(f"the ledger has no run '{name}' yet: `genbatch run {manifest}` "
                         "starts it")
    return [run]


def _as_json(per_run: list[tuple[RunInfo, dict[JobState, int]]]) -> dict[str, object]:
    total = {state.value: 0 for state in JobState}
    runs = []
    for run, counts in per_run:
        for state, n in counts.items():
            total[state.value] += n
        runs.append({"run": run.name, "manifest": run.manifest_path,
                     "counts": {s.value: n for s, n in counts.items()},
                     "total": sum(counts.values()), "stop_reason": run.stop_reason})
    return {"counts": total, "total": sum(total.values()), "runs": runs}


def _print_table(per_run: list[tuple[RunInfo, dict[JobState, int]]]) -> None:
    table = Table(title="genbatch runs", show_lines=False)
    table.add_column("run")
    for state in JobState:
        table.add_column(state.value, justify="right")
    for run, counts in per_run:
        table.add_row(run.name, *[str(counts[s]) if counts[s] else "·" for s in JobState])
    Console().print(table)
    for run, _ in per_run:
        if run.stop_reason:
            Console().print(f"{run.name}: last stopped because: {run.stop_reason}",
                            highlight=False)
