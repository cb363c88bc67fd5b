"""Figures 1 and 6: engine overhead and the ledger's write path.

Jobs with zero generation time and small files, so that what is measured is the engine itself:
genbatch (manifest, ledger, scheduler, verified downloads) against the bare loop of
``baseline.py`` making the same HTTP calls, each in its own process against its own simulator
process. The genbatch side also counts the ledger's transactions and the time spent in them:
wall time, and the CPU time of the thread that runs them (on SQLite the runner makes its claims
in a worker thread and its other writes, grouped, on the event loop; either way their CPU
competes with the event loop for the GIL and the cores).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from baseline import run_baseline
from common import Row, SimProcess, cpu_seconds, run_worker, worker_main, write_manifest
from sqlalchemy import Connection, event

from genbatch import batch
from genbatch.client import DEFAULT_MAX_CONNECTIONS
from genbatch.ledger import Ledger, resolve_location
from genbatch.manifest import load_manifest
from genbatch.runner import RunOptions
from genbatch.states import JobState

FULL_JOBS = 5000
QUICK_JOBS = 60
CONCURRENCY = 64
ROUNDS = 3
"""Pairs (bare loop, then genbatch) run at full size. One pair's ratio moves by about ±10% with
the box's noise; the median pair is reported, and every pair's ratio beside it."""


class TimedLedger(Ledger):
    """The ledger, timing every transaction (wall, and CPU of the thread running it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reset()

    def reset(self) -> None:
        """Forget what was measured so far."""
        self.seconds = 0.0
        self.cpu_seconds = 0.0
        self.transactions = 0
        self.cpu_by_kind: Counter[str] = Counter()
        """CPU seconds per kind of transaction (``claim_jobs``, ``grouped``, ``outputs``...)."""
        self.count_by_kind: Counter[str] = Counter()

    @contextmanager
    def _transaction(self, what: str, *, durable: bool = False) -> Iterator[Connection]:
        # Real transactions only: a call joining the one open in its thread (``Ledger.grouped``,
        # or a method calling another) is timed as part of it.
        if getattr(self._open, "conn", None) is not None:
            with super()._transaction(what, durable=durable) as conn:
                yield conn
            return
        start, cpu_start = time.perf_counter(), time.thread_time()
        try:
            with super()._transaction(what, durable=durable) as conn:
                yield conn
        finally:
            cpu = time.thread_time() - cpu_start
            self.seconds += time.perf_counter() - start
            self.cpu_seconds += cpu
            self.transactions += 1
            self.cpu_by_kind[what] += cpu
            self.count_by_kind[what] += 1


def genbatch_worker(params: dict[str, Any]) -> dict[str, Any]:
    """Load, sync and run the manifest in this process; what it cost."""
    work = Path(params["dir"])
    manifest_path = write_manifest(work, params["jobs"], concurrency=params["concurrency"])
    started = time.perf_counter()
    manifest = load_manifest(manifest_path)
    ledger = TimedLedger.open(resolve_location(str(work / "ledger.db")))
    prepared = batch.prepare(manifest, ledger)
    prepare_seconds = time.perf_counter() - started
    commits = [0]
    event.listen(ledger.engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1))
    ledger.reset()
    # The default poll policy, as users get it: the first jobs are first polled after 0.25 s
    # (no history of the model yet), the others at once (their model's generations took 0 s).
    options = RunOptions(concurrency=params["concurrency"], handle_signals=False)
    connection = batch.Connection(api_base=params["base_url"], token=params["token"])
    cpu, wall = cpu_seconds(), time.perf_counter()
    summary = anyio.run(batch.execute, prepared, connection, options)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    ledger.close()
    return {
        "seconds": wall,
        "cpu": cpu,
        "prepare_seconds": prepare_seconds,
        "done": summary.counts[JobState.DONE],
        "commits": commits[0],
        "transactions": ledger.transactions,
        "ledger_seconds": ledger.seconds,
        "ledger_cpu": ledger.cpu_seconds,
        "ledger_cpu_by_kind": dict(ledger.cpu_by_kind.most_common(3)),
        "ledger_count_by_kind": dict(ledger.count_by_kind.most_common(3)),
    }


def baseline_worker(params: dict[str, Any]) -> dict[str, Any]:
    """The bare loop in this process; what it cost."""
    cpu, wall = cpu_seconds(), time.perf_counter()
    anyio.run(
        lambda: run_baseline(
            base_url=params["base_url"],
            token=params["token"],
            jobs=params["jobs"],
            concurrency=params["concurrency"],
            out_dir=Path(params["dir"]) / "out",
            max_connections=DEFAULT_MAX_CONNECTIONS,
        )
    )
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {"seconds": wall, "cpu": cpu, "done": params["jobs"]}


def _measure(task: str, jobs: int, work: Path) -> dict[str, Any]:
    with SimProcess(time_scale=0.0, capacity=CONCURRENCY, seed=0) as sim:
        answer, _ = run_worker(
            "bench_engine.py",
            task,
            {
                "base_url": sim.base_url,
                "token": sim.token,
                "jobs": jobs,
                "concurrency": CONCURRENCY,
                "dir": str(work / task),
            },
        )
        answer["api_calls"] = sim.api_calls()
        answer["files"] = sim.ask("stats")["files_served"]
    if answer["done"] != jobs:
        raise RuntimeError(f"{task}: only {answer['done']} of {jobs} jobs done")
    return answer


def run(quick: bool) -> list[Row]:
    """Figures 1 and 6."""
    jobs = QUICK_JOBS if quick else FULL_JOBS
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="genbatch-bench-") as tmp:
        for number in range(1 if quick else ROUNDS):
            work = Path(tmp) / f"pair{number}"
            pairs.append((_measure("baseline", jobs, work), _measure("genbatch", jobs, work)))
    ratios = [base["seconds"] / ours["seconds"] for base, ours in pairs]
    median = sorted(range(len(pairs)), key=ratios.__getitem__)[len(pairs) // 2]
    base, ours = pairs[median]
    return _rows(jobs, base, ours, ratios)


def _rows(jobs: int, base: dict[str, Any], ours: dict[str, Any], ratios: list[float]) -> list[Row]:
    rate, base_rate = jobs / ours["seconds"], jobs / base["seconds"]
    calls = f"{ours['api_calls'] / jobs:.2f} vs {base['api_calls'] / jobs:.2f} API calls/job"
    ledger_ms, base_ms = 1000 * ours["ledger_cpu"] / jobs, 1000 * base["seconds"] / jobs
    counts = ours.get("ledger_count_by_kind", {})
    heaviest = ", ".join(
        f"{kind} {1000 * seconds / jobs:.2f} ms ({counts.get(kind, 0) / jobs:.2f}/job)"
        for kind, seconds in ours["ledger_cpu_by_kind"].items()
    )
    return [
        Row(
            figure=1,
            label=f"jobs/s, {jobs} jobs, c={CONCURRENCY} ({calls})",
            value=rate,
            unit="jobs/s",
            baseline=base_rate,
            baseline_label="bare anyio+httpx loop",
            target=">= 0.8x baseline",
            met=rate >= 0.8 * base_rate,
        ),
        Row(
            figure=1,
            label=f"jobs/s ratio, the median of {len(ratios)} pairs (each pair, in "
            f"run order: {', '.join(f'{r:.2f}' for r in ratios)})",
            value=rate / base_rate,
            unit="",
        ),
        Row(
            figure=1,
            label="CPU seconds per 1,000 jobs",
            value=1000 * ours["cpu"] / jobs,
            unit="s",
            baseline=1000 * base["cpu"] / jobs,
            baseline_label="bare loop",
        ),
        Row(
            figure=1,
            label="prepare (load, validate, sync) before the run",
            value=ours["prepare_seconds"],
            unit="s",
        ),
        Row(
            figure=6,
            label="ledger transactions per job",
            value=ours["transactions"] / jobs,
            unit="tx/job",
        ),
        Row(
            figure=6,
            label="ledger commits per second sustained",
            value=ours["commits"] / ours["seconds"],
            unit="commits/s",
        ),
        # The ledger is not the bottleneck when it fits in the overhead figure 1 allows: a
        # quarter of the bare loop's time per job (0.8x its rate). What it takes from the event
        # loop is its CPU (the GIL), not its waits: those of claims are in a worker thread.
        Row(
            figure=6,
            label=f"ledger CPU ms per job (heaviest: {heaviest})",
            value=ledger_ms,
            unit="ms",
            baseline=base_ms,
            baseline_label="bare loop ms per job",
            target="<= 0.25x baseline",
            met=ledger_ms <= 0.25 * base_ms,
        ),
        Row(
            figure=6,
            label="ledger wall ms per job inside transactions",
            value=1000 * ours["ledger_seconds"] / jobs,
            unit="ms",
        ),
        Row(
            figure=6,
            label="share of genbatch's CPU spent in ledger transactions",
            value=ours["ledger_cpu"] / ours["cpu"],
            unit="",
        ),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker_main({"genbatch": genbatch_worker, "baseline": baseline_worker})
    else:
        for row in run(quick="--quick" in sys.argv):
            print(row)
