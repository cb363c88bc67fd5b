"""Figure 8: the whole process as users meet it (the yardstick of issues 12 and 16).

Two sides, each a whole OS process timed from its start to its exit in real time (``wait4``:
wall seconds, and the user + system CPU of that process alone), each against a fresh simulator
process (zero generation time, small files, no faults) started before the clock:

* ``genbatch run MANIFEST``, the console script with default options: concurrency 64 from the
  manifest, default polling (no ``--poll-interval``), the default ledger
  (``.genbatch/ledger.db``) in a fresh working directory, the API named by ``RUNCOMFY_API_BASE``
  and ``RUNCOMFY_TOKEN``, output to a log file (not a terminal: the line log, not the live
  display);
* ``benchmarks/baseline.py`` as a process: the bare anyio + httpx loop making the same calls
  (submit, result, file) for the same jobs, at the same concurrency and pool size.

Pairs run back to back, the side that goes first alternating from pair to pair, after one
untimed warm-up of each side; the median pair by throughput ratio is reported, with every
pair's ratio. A run counts only if it exited 0 (``genbatch run``: every job done), the simulator
took exactly one submit and served one file per job, and every file is in the output folder.
For genbatch, the ledger's timestamps also say where the wall time went.

    python benchmarks/bench_process.py [--jobs 800] [--pairs 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from common import BENCH_DIR, Row, SimProcess, Usage, child_env, wait_measured, write_manifest

from genbatch.client import DEFAULT_MAX_CONNECTIONS

FULL_JOBS = 800
QUICK_JOBS = 40
PAIRS = 3
WARM_UP_JOBS = 16
CONCURRENCY = 64
SIDES = ("bare", "genbatch")
TARGET_RATE = 0.9
"""Issue 16, target 1: at least 0.9x the bare loop's throughput, CPU per job at most its own."""


@dataclass(frozen=True, kw_only=True)
class Measured:
    """One side's process: what it cost, and for genbatch where its wall time went."""

    side: str
    jobs: int
    usage: Usage
    start_up: float
    """Seconds from the process's start to the first submit the simulator received."""
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Jobs per second, start to exit."""
        return self.jobs / self.usage.wall

    @property
    def cpu_per_1000(self) -> float:
        """CPU seconds (user + system) per 1,000 jobs."""
        return 1000 * self.usage.cpu / self.jobs


@dataclass(frozen=True, kw_only=True)
class Pair:
    """The two sides, measured one right after the other."""

    bare: Measured
    genbatch: Measured
    first: str

    @property
    def rate_ratio(self) -> float:
        """genbatch's jobs/s over the bare loop's."""
        return self.genbatch.rate / self.bare.rate

    @property
    def cpu_ratio(self) -> float:
        """genbatch's CPU per job over the bare loop's."""
        return self.genbatch.cpu_per_1000 / self.bare.cpu_per_1000


# -- one side -------------------------------------------------------------------------------------


def _genbatch_command() -> list[str]:
    """The ``genbatch`` script installed beside this interpreter, as a user runs it."""
    script = Path(sys.executable).with_name("genbatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "genbatch"]


def _command(side: str, jobs: int, work: Path) -> list[str]:
    if side == "genbatch":
        return [*_genbatch_command(), "run", str(write_manifest(work, jobs))]
    return [
        sys.executable,
        str(BENCH_DIR / "baseline.py"),
        f"--jobs={jobs}",
        f"--concurrency={CONCURRENCY}",
        f"--max-connections={DEFAULT_MAX_CONNECTIONS}",
        f"--out={work / 'out-bench'}",
    ]


def _env(sim: SimProcess) -> dict[str, str]:
    env = child_env(RUNCOMFY_API_BASE=sim.base_url, RUNCOMFY_TOKEN=sim.token)
    # Users' installs keep their bytecode; the warm-up writes it once.
    env.pop("PYTHONDONTWRITEBYTECODE")
    return env


def _run_timed(command: Sequence[str], env: dict[str, str], work: Path) -> Usage:
    """Run ``command`` in ``work`` from start to exit; its output goes to a log file there."""
    log = work / "output.log"
    with log.open("wb") as output:
        started = time.monotonic()
        process = subprocess.Popen(
            command, env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=output, stderr=output
        )
        usage = wait_measured(process, started)
    if process.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}: {tail}")
    return usage


def _check_done(side: str, jobs: int, sim: SimProcess, work: Path) -> None:
    """Refuse a run that did not do every job exactly once: it is never reported as fast."""
    stats = sim.ask("stats")
    files = sum(1 for path in (work / "out-bench").iterdir() if path.suffix == ".mp4")
    seen = (stats["calls"].get("submit", 0), stats["files_served"], files)
    if seen != (jobs, jobs, jobs):
        raise RuntimeError(
            f"{side}: {jobs} jobs, but {seen[0]} submits, {seen[1]} files served, "
            f"{seen[2]} files written"
        )


def measure_side(side: str, jobs: int, work: Path) -> Measured:
    """One whole process of ``side`` doing ``jobs`` jobs in the new folder ``work``."""
    work.mkdir(parents=True)
    command = _command(side, jobs, work)
    with SimProcess(time_scale=0.0, capacity=CONCURRENCY, seed=0) as sim:
        started_at = time.time()
        usage = _run_timed(command, _env(sim), work)
        _check_done(side, jobs, sim, work)
        first_submit = min(record["created_at"] for record in sim.ask("records"))
    phases = {}
    if side == "genbatch":
        phases = _phases(work / ".genbatch" / "ledger.db", started_at + usage.wall)
    return Measured(
        side=side, jobs=jobs, usage=usage, start_up=first_submit - started_at, phases=phases
    )


# -- where genbatch's time went -------------------------------------------------------------------

# Every job of the run, one attempt each (the checks above): its times as the ledger wrote them.
_JOB_TIMES = """SELECT a.intent_at, a.accepted_at, a.finished_at, j.finished_at
    FROM jobs j JOIN attempts a ON a.job_id = j.id WHERE j.state = 'done'"""


def _unix(text: str) -> float:
    """A ledger timestamp (SQLite text, UTC) as Unix seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _phases(ledger: Path, exited_at: float) -> dict[str, float]:
    """The exit and each job's steps (means), in seconds, from the ledger's timestamps."""
    with closing(sqlite3.connect(ledger)) as conn:
        rows = [[_unix(value) for value in row] for row in conn.execute(_JOB_TIMES)]
    intents, accepted, answered, done = zip(*rows, strict=True)
    return {
        "exit": exited_at - max(done),
        "submit": statistics.fmean(b - a for a, b in zip(intents, accepted, strict=True)),
        "to_result": statistics.fmean(b - a for a, b in zip(accepted, answered, strict=True)),
        "to_done": statistics.fmean(b - a for a, b in zip(answered, done, strict=True)),
        "life": statistics.fmean(b - a for a, b in zip(intents, done, strict=True)),
    }


# -- pairs ----------------------------------------------------------------------------------------


def measure(jobs: int, pairs: int, *, progress: bool = False) -> list[Pair]:
    """A warm-up of each side, then ``pairs`` pairs, the first side alternating."""
    measured: list[Pair] = []
    with tempfile.TemporaryDirectory(prefix="genbatch-bench-process-") as tmp:
        for side in SIDES:
            measure_side(side, WARM_UP_JOBS, Path(tmp) / f"warm-up-{side}")
        for number in range(pairs):
            order = SIDES if number % 2 == 0 else SIDES[::-1]
            runs = {
                side: measure_side(side, jobs, Path(tmp) / f"{number}-{side}") for side in order
            }
            pair = Pair(bare=runs["bare"], genbatch=runs["genbatch"], first=order[0])
            measured.append(pair)
            if progress:
                print(_pair_lines(number + 1, pair), flush=True)
    return measured


def median_pair(pairs: Sequence[Pair]) -> Pair:
    """The pair whose throughput ratio is the median (the upper one of an even count)."""
    return sorted(pairs, key=lambda pair: pair.rate_ratio)[len(pairs) // 2]


def run(quick: bool) -> list[Row]:
    """Figure 8."""
    jobs = QUICK_JOBS if quick else FULL_JOBS
    return rows(measure(jobs, 1 if quick else PAIRS))


def rows(pairs: Sequence[Pair]) -> list[Row]:
    """The median pair as ``run.py`` prints it, every pair's ratio beside it."""
    pair = median_pair(pairs)
    ours, bare, steps = pair.genbatch, pair.bare, pair.genbatch.phases
    each = ", ".join(f"{p.rate_ratio:.2f}" for p in pairs)
    which = "1 pair" if len(pairs) == 1 else f"the median of {len(pairs)} pairs"
    return [
        Row(
            figure=8,
            label=f"wall s, start to exit, {ours.jobs} jobs, c={CONCURRENCY}, default options",
            value=ours.usage.wall,
            unit="s",
            baseline=bare.usage.wall,
            baseline_label="bare loop process",
        ),
        Row(
            figure=8,
            label=f"jobs/s, {which} (each pair's ratio: {each})",
            value=ours.rate,
            unit="jobs/s",
            baseline=bare.rate,
            baseline_label="bare loop process",
            target=f">= {TARGET_RATE}x baseline (issue 16, target 1)",
            met=ours.rate >= TARGET_RATE * bare.rate,
        ),
        Row(
            figure=8,
            label="CPU s per 1,000 jobs (user + system of the process, same pair)",
            value=ours.cpu_per_1000,
            unit="s",
            baseline=bare.cpu_per_1000,
            baseline_label="bare loop process",
            target="<= 1.0x baseline (issue 16, target 1)",
            met=ours.cpu_per_1000 <= bare.cpu_per_1000,
        ),
        Row(
            figure=8,
            label="start-up: process start to the first submit received (same pair)",
            value=ours.start_up,
            unit="s",
            baseline=bare.start_up,
            baseline_label="bare loop process",
        ),
        Row(
            figure=8, label="genbatch's exit: last job done to exit", value=steps["exit"], unit="s"
        ),
        Row(
            figure=8,
            label=f"genbatch ms per job: submit {1000 * steps['submit']:.0f}, answered to result "
            f"read {1000 * steps['to_result']:.0f}, result to done {1000 * steps['to_done']:.0f}"
            f"; share of a job's life before its result",
            value=steps["to_result"] / steps["life"],
            unit="",
        ),
    ]


# -- alone ----------------------------------------------------------------------------------------


def box() -> str:
    """The machine, in one line: cores, CPU model, Python, load."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {model}, {platform.python_implementation()} "
        f"{platform.python_version()}, load average {load}"
    )


def _side_line(run: Measured) -> str:
    return (
        f"{run.side:>8}: {run.usage.wall:6.2f} s  {run.rate:6.1f} jobs/s  "
        f"{run.cpu_per_1000:5.2f} CPU s/1000 jobs  first submit at {run.start_up:.2f} s"
    )


def _pair_lines(number: int | str, pair: Pair) -> str:
    return (
        f"pair {number} ({pair.first} first)\n  {_side_line(pair.bare)}\n"
        f"  {_side_line(pair.genbatch)}\n  genbatch/bare: jobs/s {pair.rate_ratio:.2f}, "
        f"CPU per job {pair.cpu_ratio:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the pairs, print each as it ends, then the median pair and where its time went."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=FULL_JOBS, help="jobs per run")
    parser.add_argument("--pairs", type=int, default=PAIRS, help="pairs of runs")
    args = parser.parse_args(argv)
    print(f"whole process, {args.jobs} jobs, c={CONCURRENCY}, on {box()}", flush=True)
    pairs = measure(args.jobs, args.pairs, progress=True)
    print(_pair_lines("median", median_pair(pairs)))
    for row in rows(pairs):
        against = "" if row.baseline is None else f" vs {row.baseline:.2f} (ratio {row.ratio:.2f})"
        print(f"  {row.label}: {row.value:.2f} {row.unit}{against}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
