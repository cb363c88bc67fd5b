"""``genbatch status``: counts per state, per run, and the workers driving each run."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from genbatch.cli import app
from genbatch.cli.common import LEDGER_ENVIRONMENT, LEDGER_OPTION, one_line_errors
from genbatch.cli.selection import reading_ledger
from genbatch.errors import UsageError
from genbatch.ledger import Ledger, RunInfo, WorkerInfo
from genbatch.manifest import load_manifest
from genbatch.states import JobState


@app.command(epilog="Example: genbatch status sweep.yaml --json\n\n" + LEDGER_ENVIRONMENT)
@one_line_errors
def status(
    manifest: Path | None = typer.Argument(
        None, metavar="MANIFEST", help="Only this manifest's run."
    ),
    ledger: str | None = LEDGER_OPTION,
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show how many jobs are in each state, for every run of the ledger (or one)."""
    with reading_ledger(ledger, manifest) as store:
        runs = _runs(store, manifest)
        per_run = [(run, store.counts(run.id)) for run in runs]
        reused = {run.id: store.reused(run.id) for run in runs}
        workers = [(run, worker) for run in runs for worker in store.workers(run.id)]
    if json_output:
        report = _as_json(per_run, reused)
        report["workers"] = [_worker_json(run, worker) for run, worker in workers]
        print(json.dumps(report))
        return
    _print_table(per_run)
    for run, _ in per_run:
        if reused[run.id]:
            Console().print(
                f"{run.name}: {reused[run.id]} done job(s) reused the files of the same jobs in "
                "other runs (nothing was submitted for them)",
                highlight=False,
            )
    _print_workers(workers)


def _runs(store: Ledger, manifest: Path | None) -> list[RunInfo]:
    if manifest is None:
        return store.runs()
    name = load_manifest(manifest).name
    run = store.find_run(name)
    if run is None:
        raise UsageError(f"the ledger has no run '{name}' yet: `genbatch run {manifest}` starts it")
    return [run]


def _as_json(
    per_run: list[tuple[RunInfo, dict[JobState, int]]], reused: dict[int, int]
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
                "stop_reason": run.stop_reason,
            }
        )
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
            Console().print(f"{run.name}: last stopped because: {run.stop_reason}", highlight=False)


# Stopped workers pile up run after run: the table shows the live ones and the latest others.
STOPPED_WORKERS_SHOWN = 4


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
    shown = _workers_shown(workers)
    if not shown:
        return
    table = Table(title="workers", show_lines=False)
    for name in ("run", "worker", "status", "held", "lease left", "done", "done/min", "heartbeat"):
        table.add_column(name, justify="left" if name in ("run", "worker", "status") else "right")
    for run, worker in shown:
        left = worker.lease_left
        silent = (worker.as_of - worker.heartbeat_at).total_seconds()
        table.add_row(
            run.name,
            worker.id,
            worker.status,
            str(worker.jobs_held),
            "·" if left is None else f"{left:.0f}s",
            str(worker.jobs_done),
            f"{worker.done_per_minute:.1f}",
            "·" if worker.stopped_at else f"{silent:.0f}s ago",
        )
    Console().print(table)


def _workers_shown(workers: list[tuple[RunInfo, WorkerInfo]]) -> list[tuple[RunInfo, WorkerInfo]]:
    """Every worker not stopped, and the latest few stopped ones of each run (newest first)."""
    stopped_seen: dict[int, int] = {}
    shown = []
    for run, worker in workers:
        if worker.status == "stopped":
            stopped_seen[run.id] = stopped_seen.get(run.id, 0) + 1
            if stopped_seen[run.id] > STOPPED_WORKERS_SHOWN:
                continue
        shown.append((run, worker))
    return shown
