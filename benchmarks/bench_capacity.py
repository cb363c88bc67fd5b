"""Figure 12: the account's capacity is the limit (issue 16, target 4).

An account runs C generations at once (the simulator's ``capacity``); the others wait in its
queue. A sweep of 10 x C jobs of varied length (lognormal) runs as a whole ``genbatch run``
process, with the setting genbatch documents for such an account (``--capacity C``: C requests
in flight plus a few waiting in the remote queue, so that a slot never idles while genbatch
notices a completion), against the simulator in its own process. Everything else is at its
default (polling included).

The ideal makespan is computed from the simulator's own records: C slots always busy, each
request started the moment a slot frees, in the order the requests arrived (the remote queue's
order), from the first request's creation. The measured makespan is the first request's creation
to the last one's finish, both as the simulator recorded them. Process start-up and the last
download are outside both (the whole process's wall time is printed beside them).

The baseline, in the same run: C single-job pollers, the naive way (``benchmarks/baseline.py
--poll-interval 2`` as a whole process): each submits a job, polls its result every 2 s,
downloads it, then takes the next, as C copies of the official CLI would.

    python benchmarks/bench_capacity.py            # C = 4 and C = 8, real time (about 4 minutes)
    python benchmarks/bench_capacity.py --quick    # tiny sizes
"""

from __future__ import annotations

import argparse
import heapq
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import KLING, Row, SimProcess, child_env, wait_measured, write_manifest

FIGURE = 12
CAPACITIES = (4, 8)
JOBS_PER_SLOT = 10
TIMES = (4.0, 0.5)
"""Generation times in real seconds: lognormal, median 4 s, sigma 0.5 (5% of the jobs under
1.8 s, 5% over 9 s), the length of a fast image model. Short jobs are the hard case: genbatch's
polls are at least ``--poll-interval`` (2 s) apart, long beside a 4 s job."""
QUICK_TIMES = (0.4, 0.5)
NAIVE_POLL_SECONDS = 2.0
TARGET = 1.05
"""The measured makespan at most 5% over the ideal."""


@dataclass(frozen=True, kw_only=True)
class Makespan:
    """One side's run, from the simulator's records."""

    measured: float
    ideal: float
    wall: float
    """Seconds from the process's start to its exit."""
    polls_per_job: float
    peak_queued: int
    """Most requests waiting in the remote queue at once."""

    @property
    def ratio(self) -> float:
        """Measured over ideal makespan."""
        return self.measured / self.ideal


def ideal_makespan(records: list[dict[str, Any]], capacity: int) -> float:
    """Seconds ``capacity`` always-busy slots take to run the records' generations in the
    order they arrived, every request available from the first one's creation."""
    ordered = sorted(records, key=lambda r: r["created_at"])
    slots = [0.0] * capacity
    for record in ordered:
        heapq.heapreplace(slots, slots[0] + record["generation_seconds"])
    return max(slots)


def measured_makespan(records: list[dict[str, Any]]) -> float:
    """The first request's creation to the last one's finish, as the simulator recorded them."""
    return float(max(r["finished_at"] for r in records) - min(r["created_at"] for r in records))


def _simulator(capacity: int, times: tuple[float, float]) -> SimProcess:
    return SimProcess(time_scale=1.0, capacity=capacity, seed=16, durations={KLING: list(times)})


def _read(sim: SimProcess, capacity: int, jobs: int, wall: float) -> Makespan:
    records = sim.ask("records")
    stats = sim.ask("stats")
    if len(records) != jobs or any(r["status"] != "succeeded" for r in records):
        raise RuntimeError(f"expected {jobs} succeeded requests, the simulator has {records!r}")
    if stats["duplicate_submissions"]:
        raise RuntimeError(f"{stats['duplicate_submissions']} jobs were submitted twice")
    calls = stats["calls"]
    return Makespan(
        measured=measured_makespan(records),
        ideal=ideal_makespan(records, capacity),
        wall=wall,
        polls_per_job=(calls.get("status", 0) + calls.get("result", 0)) / jobs,
        peak_queued=max(0, int(stats["peak_active"]) - capacity),
    )


def _run(command: list[str], env: dict[str, str], cwd: Path) -> float:
    """Run ``command`` to completion; its wall seconds. Fails loudly."""
    log = cwd / "log.txt"
    with log.open("wb") as output:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=output, stderr=output)
        usage = wait_measured(process, started)
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} exited {process.returncode}: {log.read_text()[-2000:]}")
    return usage.wall


def genbatch_side(
    capacity: int,
    jobs: int,
    times: tuple[float, float],
    work: Path,
    settings: tuple[str, ...] | None = None,
) -> Makespan:
    """``genbatch run MANIFEST --capacity C`` (or ``settings``), default options otherwise,
    fresh ledger."""
    work.mkdir(parents=True)
    manifest = write_manifest(work, jobs, name="capacity", concurrency=capacity)
    with _simulator(capacity, times) as sim:
        command = [str(Path(sys.executable).with_name("genbatch")), "run", str(manifest)]
        settings = settings or ("--capacity", str(capacity))
        wall = _run([*command, *settings], sim.env(work / "ledger.db"), work)
        return _read(sim, capacity, jobs, wall)


def naive_side(capacity: int, jobs: int, times: tuple[float, float], work: Path) -> Makespan:
    """C single-job pollers at 2 s (``baseline.py``), as a whole process."""
    work.mkdir(parents=True)
    with _simulator(capacity, times) as sim:
        env = child_env(RUNCOMFY_API_BASE=sim.base_url, RUNCOMFY_TOKEN=sim.token)
        command = [
            sys.executable,
            str(Path(__file__).with_name("baseline.py")),
            f"--jobs={jobs}",
            f"--concurrency={capacity}",
            f"--max-connections={capacity}",
            f"--poll-interval={NAIVE_POLL_SECONDS}",
            f"--out={work / 'out'}",
        ]
        wall = _run(command, env, work)
        return _read(sim, capacity, jobs, wall)


def measure(capacity: int, jobs: int, quick: bool, work: Path) -> tuple[Makespan, Makespan]:
    """Both sides for one capacity: genbatch, then the naive pollers."""
    times = QUICK_TIMES if quick else TIMES
    ours = genbatch_side(capacity, jobs, times, work / f"genbatch-{capacity}")
    naive = naive_side(capacity, jobs, times, work / f"naive-{capacity}")
    return ours, naive


def rows(capacity: int, jobs: int, ours: Makespan, naive: Makespan) -> list[Row]:
    """The figure's rows for one capacity."""
    return [
        Row(
            figure=FIGURE,
            label=f"capacity {capacity}, {jobs} jobs: genbatch --capacity {capacity}, makespan "
            f"over the ideal {ours.ideal:.1f} s (process {ours.wall:.1f} s, "
            f"{ours.polls_per_job:.1f} polls/job, up to {ours.peak_queued} queued)",
            value=ours.ratio,
            unit="x ideal",
            baseline=naive.ratio,
            baseline_label=f"{capacity} pollers at 2 s: ideal {naive.ideal:.1f} s, process "
            f"{naive.wall:.1f} s, {naive.polls_per_job:.1f} polls/job",
            target=f"<= {TARGET:g} x the ideal makespan",
            met=ours.ratio <= TARGET,
        )
    ]


def run(quick: bool) -> list[Row]:
    """Entry point for ``benchmarks/run.py``."""
    found: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="genbatch-capacity-") as tmp:
        for capacity in CAPACITIES[:1] if quick else CAPACITIES:
            jobs = capacity * (2 if quick else JOBS_PER_SLOT)
            ours, naive = measure(capacity, jobs, quick, Path(tmp))
            found.extend(rows(capacity, jobs, ours, naive))
    return found


def main() -> None:
    """Run standalone and print the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    for row in run(parser.parse_args().quick):
        print(row)


if __name__ == "__main__":
    main()
