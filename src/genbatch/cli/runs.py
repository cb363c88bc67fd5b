"""``genbatch runs``: the runs of the ledger, with their counts and when they last ran."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

import typer

from genbatch.cli import app
from genbatch.cli.common import LEDGER_ENVIRONMENT, LEDGER_OPTION, console, one_line_errors
from genbatch.cli.selection import reading_ledger
from genbatch.export import iso
from genbatch.states import JobState

if TYPE_CHECKING:
    from genbatch.ledger import RunInfo


@app.command(epilog="Example: genbatch runs --json\n\n" + LEDGER_ENVIRONMENT)
@one_line_errors
def runs(
    ledger: str | None = LEDGER_OPTION,
    json_output: bool = typer.Option(False, "--json", help="Print one JSON array."),
) -> None:
    """List the runs of the ledger: jobs per state, created and updated times, stop reason."""
    with reading_ledger(ledger, None) as store:
        found = [(run, store.counts(run.id)) for run in store.runs()]
    if json_output:
        print(json.dumps([_as_json(run, counts) for run, counts in found], ensure_ascii=False))
        return
    if not found:
        print(f"no runs yet in {ledger or 'the ledger'}")
        return
    _print_table(found)


def _as_json(run: RunInfo, counts: dict[JobState, int]) -> dict[str, object]:
    return {
        "run": run.name,
        "manifest": run.manifest_path,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "stop_reason": run.stop_reason,
        "total": sum(counts.values()),
        "counts": {s.value: n for s, n in counts.items()},
    }


def _print_table(found: list[tuple[RunInfo, dict[JobState, int]]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False, box=None, pad_edge=False)
    for column in ("run", "jobs", "states", "created", "updated", "stopped because"):
        table.add_column(
            column,
            justify="right" if column == "jobs" else "left",
            no_wrap=column in ("run", "created", "updated"),
        )
    for run, counts in found:
        states = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n) or "-"
        # Text() keeps names and reasons literal: rich would read "[...]" in them as markup.
        table.add_row(
            Text(run.name),
            str(sum(counts.values())),
            states,
            _when(run.created_at),
            _when(run.updated_at),
            Text(run.stop_reason or ""),
        )
    console().print(table)


def _when(moment: datetime) -> str:
    return (iso(moment) or "-")[:16].replace("T", " ")
