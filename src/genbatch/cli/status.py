"""``genbatch status``: counts per state, per run, and the workers driving each run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from genbatch.cli import app
from genbatch.cli.common import LEDGER_ENVIRONMENT, LEDGER_OPTION, console, one_line_errors
from genbatch.cli.selection import reading_ledger, runs_for
from genbatch.states import JobState

if TYPE_CHECKING:
    from genbatch.ledger import RunInfo, WorkerInfo
    from genbatch.ratings import RatingCounts


@app.command(epilog="Example: genbatch status sweep.yaml --json\n\n" + LEDGER_ENVIRONMENT)
@one_line_errors
def status(
    manifest: Path | None = typer.Argument(
        None, metavar="MANIFEST", help="Only this manifest's run."
    ),
    ledger: str | None = LEDGER_OPTION,
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
    all_workers: bool = typer.Option(
        False, "--all", help="List every worker that ever ran (--json always does)."
    ),
) -> None:
    """Show how many jobs are in each state, for every run of the ledger (or one)."""
    with reading_ledger(ledger, manifest) as store:
        runs = runs_for(store, manifest)
        per_run = [(run, store.counts(run.id)) for run in runs]
        reused = {run.id: store.reused(run.id) for run in runs}
        rated = {run.id: store.rating_counts(run.id) for run in runs} if store.rated() else {}
        workers = [(run, worker) for run in runs for worker in store.workers(run.id)]
    if json_output:
        report = _as_json(per_run, reused, rated)
        report["workers"] = [_worker_json(run, worker) for run, worker in workers]
        print(json.dumps(report))
        return
    _print_table(per_run)
    for run, _ in per_run:
        if reused[run.id]:
            console().print(
                f"{run.name}: {reused[run.id]} done job(s) reused the files of the same jobs in "
                "other runs (nothing was submitted for them)",
                highlight=False,
            )
        if run.id in rated:
            console().print(f"{run.name}: review: {_review_line(rated[run.id])}", highlight=False)
    shown = workers if all_workers else _recent(workers)
    _print_workers(shown)
    if len(shown) < len(workers):
        hidden = len(workers) - len(shown)
        print(f"{hidden} worker(s) not seen for over 10 minutes not shown (--all lists them)")


def _review_line(counts: RatingCounts) -> str:
    return (
        f"{counts.kept} kept · {counts.rejected} rejected · {counts.unrated} unrated "
        f"(of {counts.files} files; {counts.starred} with stars)"
    )


def _ratings_json(counts: RatingCounts | None) -> dict[str, int] | None:
    if counts is None:
        return None
    return {
        "files": counts.files,
        "kept": counts.kept,
        "rejected": counts.rejected,
        "unrated": counts.unrated,
        "starred": counts.starred,
    }


def _as_json(
    per_run: list[tuple[RunInfo, dict[JobState, int]]],
    reused: dict[int, int],
    rated: dict[int, RatingCounts],
) -> dict[str, object]:
    total = {state.value: 0 for state in JobState}
    runs = []
    for run, counts in per_run:
        for state, n in counts.items():
            total[state.value] += n
        runs.append(
            {
                "run": run.name,
                "manifest": run.manifest_path,
                "counts": {s.value: n for s, n in counts.items()},
                "total": sum(counts.values()),
                "reused": reused[run.id],
                "ratings": _ratings_json(rated.get(run.id)),
                "stop_reason": run.stop_reason,
            }
        )
    return {"counts": total, "total": sum(total.values()), "runs": runs}


def _print_table(per_run: list[tuple[RunInfo, dict[JobState, int]]]) -> None:
    """Runs by jobs per state: only the states some run has jobs in, so that it fits 80
    columns; a long name wraps, it is never cut."""
    from rich.table import Table

    states = [s for s in JobState if any(counts[s] for _, counts in per_run)]
    table = Table(title="jobs per state", show_lines=False)
    table.add_column("run", overflow="fold")
    for state in states:
        table.add_column(state.value, justify="right", no_wrap=True, min_width=len(state.value))
    table.add_column("total", justify="right", no_wrap=True)
    for run, counts in per_run:
        cells = [str(counts[s]) if counts[s] else "·" for s in states]
        table.add_row(run.name, *cells, str(sum(counts.values())))
    console().print(table)
    for run, _ in per_run:
        if run.stop_reason:
            console().print(f"{run.name}: last stopped because: {run.stop_reason}", highlight=False)


RECENT_WORKER_SECONDS = 600.0
"""Stopped or lost workers seen within this long are still listed (``--all``: every one)."""


def _worker_json(run: RunInfo, worker: WorkerInfo) -> dict[str, object]:
    lease_left = worker.lease_left
    return {
        "run": run.name,
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "status": worker.status,
        "concurrency": worker.concurrency,
        "lease_seconds": worker.lease_seconds,
        "jobs_held": worker.jobs_held,
        "lease_left_seconds": None if lease_left is None else round(lease_left, 3),
        "jobs_done": worker.jobs_done,
        "done_per_minute": round(worker.done_per_minute, 3),
        "started_at": worker.started_at.isoformat(),
        "heartbeat_at": worker.heartbeat_at.isoformat(),
        "stopped_at": worker.stopped_at.isoformat() if worker.stopped_at else None,
    }


def _print_workers(workers: list[tuple[RunInfo, WorkerInfo]]) -> None:
    from rich.table import Table

    if not workers:
        return
    several_runs = len({run.id for run, _ in workers}) > 1
    leases = any(worker.lease_left is not None for _, worker in workers)
    table = Table(title="workers", show_lines=False)
    if several_runs:
        table.add_column("run", overflow="fold")
    table.add_column("worker", overflow="fold")
    for name in ("status", "held", *(["lease"] if leases else []), "done", "/min", "seen"):
        table.add_column(name, justify="left" if name == "status" else "right", no_wrap=True)
    for run, worker in workers:
        left = worker.lease_left
        silent = (worker.as_of - worker.heartbeat_at).total_seconds()
        cells = [
            worker.id,
            worker.status,
            str(worker.jobs_held),
            *([("·" if left is None else f"{left:.0f}s")] if leases else []),
            str(worker.jobs_done),
            f"{worker.done_per_minute:.1f}",
            f"{_ago(silent)} ago",
        ]
        table.add_row(*([run.name] if several_runs else []), *cells)
    console().print(table)


def _recent(workers: list[tuple[RunInfo, WorkerInfo]]) -> list[tuple[RunInfo, WorkerInfo]]:
    """Workers running, or seen within ``RECENT_WORKER_SECONDS``."""
    return [
        (run, worker)
        for run, worker in workers
        if worker.status == "running"
        or (worker.as_of - worker.heartbeat_at).total_seconds() <= RECENT_WORKER_SECONDS
    ]


def _ago(seconds: float) -> str:
    """``12s``, ``5m``, ``3h``, ``2d``."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size:.0f}{unit}"
    return f"{seconds:.0f}s"
