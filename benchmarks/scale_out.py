"""Scale-out: throughput of 1, 2, 4 and 8 workers sharing one run through a PostgreSQL ledger.

    python benchmarks/scale_out.py            # full size (about three minutes)
    python benchmarks/scale_out.py --quick    # tiny sizes: checks that everything runs
    python benchmarks/scale_out.py --json     # the rows as JSON too

A latency-bound run: every generation takes the same simulated time (no spread), the simulator's
capacity is far above what the workers ask, each worker is capped at the same ``-c`` and gets
the same number of jobs (32: eight rounds). The manifest first sets no run-wide limit (its
``concurrency``), so claims of different workers never wait for each other; then a run-wide
limit high enough for every worker (each claim then locks the run's row to check it: claims are
serialized); then one lower than what eight workers would ask: the simulator's peak of requests
in flight shows it holds, and that the workers fill it.

Each worker is ``genbatch run`` as a whole process, started through ``timed_claims.py`` so that
it also reports what its claims cost (wall time, lock waits included, and the CPU of the thread
running them): the claim's cost per job claimed, from one worker to eight.

Throughput is jobs done per minute between the first submit and the last verified file (from the
ledger), so process start-up (the same for any number of workers) does not count; wall time
including start-up is printed beside it. Needs the PostgreSQL at ``$GENBATCH_TEST_POSTGRES_URL``
(default ``postgresql://postgres@127.0.0.1:5432/test``); each scenario uses a schema of its own,
dropped afterwards. ``run(quick)`` returns the rows for ``benchmarks/run.py`` (figure 7).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import KLING, Row, SimProcess, write_manifest  # benchmarks/ is on the path above

from genbatch.ledger import Ledger, resolve_location

FIGURE = 7
POSTGRES_URL = os.environ.get(
    "GENBATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
GENERATION_SECONDS = 4.0
"""Every clip takes exactly this long (simulated): generation time dominates, and the machine's
CPU (shared by the workers and the simulator) stays far from busy."""
PER_WORKER = 4
"""Each worker's own cap (``-c``)."""
LOW_RUN_LIMIT = 6
"""The run-wide limit of the last scenario: less than eight workers' 32."""
TARGETS = {4: 3.5, 8: 7.0}
"""Speed-up over one worker, by number of workers (issue 16, targets 7 and 8)."""
WORKER_COUNTS = (1, 2, 4, 8)
CLAIM_FLAT = 1.25
"""The claim's cost per job stays flat: eight workers' CPU per job claimed at most this many
times one worker's."""
JOBS_PER_WORKER = 32
"""Eight rounds of ``-c`` jobs for each worker."""
LOW_LIMIT_JOBS = 24
"""Jobs of the low-limit scenario: four rounds of its six slots."""


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """What one set of workers did."""

    workers: int
    run_limit: int | None
    """The manifest's ``concurrency`` (None: not given, no run-wide limit)."""
    jobs: int
    per_minute: float
    """Jobs done per minute, first submit to last verified file."""
    wall: float
    """Seconds from starting the workers to the last one's exit."""
    peak_active: int
    submissions: int
    duplicates: int
    claims: int
    """Claim transactions, every worker together."""
    claim_ms_per_job: float
    """Wall milliseconds inside claims per job claimed (lock waits included)."""
    lock_ms_per_job: float
    """Of which locking the run's row (where the claims of several workers wait)."""
    claim_cpu_ms_per_job: float
    """CPU milliseconds of the claiming thread per job claimed."""


def measure(
    workers: int, *, jobs: int, run_limit: int | None, generation: float = GENERATION_SECONDS
) -> Scenario:
    """Run ``jobs`` jobs of ``generation`` seconds each with ``workers`` worker processes and a
    run-wide limit."""
    config = {
        "time_scale": generation / 240.0,
        "capacity": 256,
        "seed": 5,
        "durations": {KLING: [240.0, 0.0]},
    }
    with (
        tempfile.TemporaryDirectory(prefix="genbatch-scale-") as tmp,
        _schema() as ledger_url,
        SimProcess(**config) as sim,
    ):
        manifest = write_manifest(Path(tmp), jobs, name="scale", concurrency=run_limit)
        env = sim.env(ledger_url)  # type: ignore[arg-type]  # a URL is a ledger too
        claim_files = [Path(tmp) / f"claims-{n}.json" for n in range(workers)]
        started = time.monotonic()
        processes = [
            _start_worker(manifest, env | {"GENBATCH_BENCH_CLAIMS": str(path)}, Path(tmp))
            for path in claim_files
        ]
        for process in processes:
            _, stderr = process.communicate(timeout=900)
            if process.returncode != 0:
                raise RuntimeError(f"a worker failed ({process.returncode}): {stderr[-500:]}")
        wall = time.monotonic() - started
        stats = sim.ask("stats")
        window = _active_window(ledger_url)
        claims = _claim_sums(claim_files)
    claimed = max(claims["jobs"], 1)
    return Scenario(
        workers=workers,
        run_limit=run_limit,
        jobs=jobs,
        per_minute=jobs / window * 60.0,
        wall=wall,
        peak_active=int(stats["peak_active"]),
        submissions=int(stats["submissions"]),
        duplicates=int(stats["duplicate_submissions"]),
        claims=int(claims["claims"]),
        claim_ms_per_job=claims["wall_seconds"] * 1000 / claimed,
        lock_ms_per_job=claims["lock_seconds"] * 1000 / claimed,
        claim_cpu_ms_per_job=claims["cpu_seconds"] * 1000 / claimed,
    )


def _claim_sums(paths: list[Path]) -> dict[str, float]:
    """What the workers' claims cost, added up (``timed_claims.py`` wrote one file each)."""
    total = {
        "claims": 0.0,
        "jobs": 0.0,
        "wall_seconds": 0.0,
        "lock_seconds": 0.0,
        "cpu_seconds": 0.0,
    }
    for path in paths:
        for name, value in json.loads(path.read_text(encoding="utf-8")).items():
            total[name] += value
    return total


def _start_worker(manifest: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("timed_claims.py")),
            "run",
            str(manifest),
            "-c",
            str(PER_WORKER),
            "--poll-interval",
            "0.05",
            "--json",
        ],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _active_window(ledger_url: str) -> float:
    """Seconds from the run's first submit intent to its last job done."""
    ledger = Ledger.open(resolve_location(ledger_url))
    try:
        items = ledger.job_outputs()
    finally:
        ledger.close()
    first = min(item.attempt.intent_at for item in items if item.attempt is not None)
    last = max(item.finished_at for item in items if item.finished_at is not None)
    return (last - first).total_seconds()


@contextmanager
def _schema() -> Iterator[str]:
    """A fresh schema of the benchmark PostgreSQL, as a ledger URL; dropped afterwards."""
    import psycopg

    name = f"genbatch_bench_{secrets.token_hex(5)}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        separator = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def scenarios(quick: bool) -> list[Scenario]:
    """1, 2, 4 and 8 workers without a run-wide limit, then 8 under a high run-wide limit (one
    they never reach: it costs only its check), then 8 under a low one.

    Each worker gets the same number of jobs (so every run lasts about as long, and the few
    hundred milliseconds between the first and the last worker's start weigh the same).
    """
    per_worker = 4 if quick else JOBS_PER_WORKER
    generation = 0.5 if quick else GENERATION_SECONDS
    counts = (1, 2) if quick else WORKER_COUNTS
    found = [measure(n, jobs=per_worker * n, run_limit=None, generation=generation) for n in counts]
    workers = counts[-1]
    high = PER_WORKER * WORKER_COUNTS[-1] * 2
    found.append(measure(workers, jobs=per_worker * workers, run_limit=high, generation=generation))
    low_jobs = 2 * LOW_RUN_LIMIT if quick else LOW_LIMIT_JOBS
    found.append(measure(workers, jobs=low_jobs, run_limit=LOW_RUN_LIMIT, generation=generation))
    return found


def rows(found: list[Scenario], quick: bool) -> list[Row]:
    """The figure's rows: each throughput against one worker's, each claim cost against one
    worker's, the low limit's peak, and the jobs submitted twice."""
    one, low = found[0], found[-1]
    result = [_speedup_row(scenario, one) for scenario in found[1:-1]]
    result += [_claim_row(scenario, one) for scenario in found[:-1]]
    result.append(
        Row(
            figure=FIGURE,
            label=f"{low.workers} workers x -c {PER_WORKER}, run-wide limit {low.run_limit}: "
            f"peak requests in flight ({low.per_minute:.1f} jobs/min)",
            value=low.peak_active,
            unit="requests",
            target=f"= {low.run_limit} (held, and filled)",
            met=low.peak_active == low.run_limit,
        )
    )
    result.append(_claim_row(low, one))
    duplicates = sum(s.duplicates for s in found)
    result.append(
        Row(
            figure=FIGURE,
            label="jobs submitted twice, every scenario",
            value=duplicates,
            unit="",
            target="0",
            met=duplicates == 0,
        )
    )
    return result


def _limit(scenario: Scenario) -> str:
    return (
        "no run-wide limit"
        if scenario.run_limit is None
        else f"run-wide limit {scenario.run_limit}"
    )


def _speedup_row(scenario: Scenario, one: Scenario) -> Row:
    target = TARGETS.get(scenario.workers) if scenario.run_limit is None else None
    return Row(
        figure=FIGURE,
        label=f"{scenario.workers} workers x -c {PER_WORKER}, {_limit(scenario)}: jobs/min "
        f"(1 worker {one.per_minute:.1f})",
        value=scenario.per_minute,
        unit="jobs/min",
        baseline=one.per_minute,
        baseline_label="1 worker",
        target=f">= {target} x one worker" if target else "",
        met=None if target is None else scenario.per_minute >= target * one.per_minute,
    )


def _claim_row(scenario: Scenario, one: Scenario) -> Row:
    judged = scenario is not one and scenario.run_limit is None
    judged = judged and scenario.workers == WORKER_COUNTS[-1]
    return Row(
        figure=FIGURE,
        label=f"{scenario.workers} worker(s), {_limit(scenario)}: claim CPU ms "
        f"per job ({scenario.claims} claims; wall {scenario.claim_ms_per_job:.1f} ms per job, "
        f"{scenario.lock_ms_per_job:.1f} of it locking the run; 1 worker: wall "
        f"{one.claim_ms_per_job:.1f}, locking {one.lock_ms_per_job:.1f})",
        value=scenario.claim_cpu_ms_per_job,
        unit="ms",
        baseline=None if scenario is one else one.claim_cpu_ms_per_job,
        baseline_label="1 worker",
        target=f"<= {CLAIM_FLAT} x one worker's" if judged else "",
        met=(scenario.claim_cpu_ms_per_job <= CLAIM_FLAT * one.claim_cpu_ms_per_job)
        if judged
        else None,
    )


def run(quick: bool) -> list[Row]:
    """Entry point for ``benchmarks/run.py``."""
    return rows(scenarios(quick), quick)


def main() -> None:
    """Run standalone and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    parser.add_argument("--json", action="store_true", help="print the scenarios as JSON")
    args = parser.parse_args()
    found = scenarios(args.quick)
    print(
        f"{'workers':>7} {'run limit':>9} {'jobs':>5} {'jobs/min':>9} {'speed-up':>8} "
        f"{'wall s':>7} {'peak':>5} {'subs':>5} {'dups':>4} {'claims':>6} {'claim ms/job':>12} "
        f"{'lock ms/job':>11} {'CPU ms/job':>10}"
    )
    for s in found:
        print(
            f"{s.workers:>7} {s.run_limit or '-':>9} {s.jobs:>5} {s.per_minute:>9.1f} "
            f"{s.per_minute / found[0].per_minute:>8.2f} {s.wall:>7.1f} {s.peak_active:>5} "
            f"{s.submissions:>5} {s.duplicates:>4} {s.claims:>6} {s.claim_ms_per_job:>12.2f} "
            f"{s.lock_ms_per_job:>11.2f} {s.claim_cpu_ms_per_job:>10.2f}"
        )
    for row in rows(found, args.quick):
        if row.met is not None:
            verdict = (
                "not judged at --quick sizes" if args.quick else ("met" if row.met else "MISSED")
            )
            print(f"{row.label}: {row.value:.2f} [{verdict}: {row.target}]")
    if args.json:
        print(json.dumps([asdict(s) for s in found], indent=2))


if __name__ == "__main__":
    main()
