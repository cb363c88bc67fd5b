"""Figures 4 and 5: resume at scale, and memory that stays flat.

Figure 4: a ledger of 100,000 jobs of which 99% are done (with their attempts and output rows,
as a real run leaves them); the time from starting ``genbatch run`` to the first new submission
answered (the first ``queued`` event of ``--json``). Baseline: the same 1,000 remaining jobs as a
fresh manifest on an empty ledger. Also ``genbatch status`` of that ledger, whole (every run)
and of its 100,000-prompt manifest's run, against ``genbatch --version``.

Figure 5: the peak memory of whole ``genbatch run`` processes of 2,000, 20,000 and 200,000 jobs
(zero generation time, small files): 20,000 against 2,000 (the figure before issue 16) and
200,000 against 20,000 (issue 16, target 6). ``GENBATCH_BENCH_MEMORY_JOBS=2000,20000,60000``
picks other sizes (the largest run takes 11 minutes at 300 jobs/s, 40 at 80).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from common import (
    Row,
    SimProcess,
    median_wall,
    run_worker,
    wait_measured,
    worker_main,
    write_manifest,
)
from done_ledger import mark_done, synced
from sqlalchemy import text

RESUME = {"jobs": 100_000, "done_share": 0.99}
RESUME_QUICK = {"jobs": 2_000, "done_share": 0.99}
RESUME_TARGET_SECONDS = 3.0
STATUS_TARGET_SECONDS = 0.5
STATUS_RUNS = 5
MEMORY_JOBS = (2_000, 20_000, 200_000)
MEMORY_JOBS_QUICK = (20, 60, 150)
MEMORY_TARGETS = (1.5, 1.3)
"""Each run's peak against the run ten times smaller: before issue 16, then its target 6."""
CONCURRENCY = 64

# What a finished job leaves in the ledger: its attempt, its output file, and the worker (the
# earlier run's process) that did it, whose row `genbatch status` reads with the done counts.
_EARLIER_WORKER = "bench-host:4242:earlier"
_MARK_DONE = f"""UPDATE jobs SET state = 'done', attempts = 1, request_id = 'req-' || id,
    finished_at = updated_at, done_seq = id, worker = '{_EARLIER_WORKER}'
    WHERE run_id = :run AND ordinal % :every != 0"""
_ADD_WORKER = f"""INSERT INTO workers (id, run_id, host, pid, concurrency, lease_seconds,
    started_at, heartbeat_at, stopped_at) SELECT '{_EARLIER_WORKER}', :run, 'bench-host', 4242,
    64, 60.0, created_at, updated_at, updated_at FROM runs WHERE id = :run"""
_ADD_OUTPUTS = """INSERT INTO outputs (job_id, attempt_id, position, url, path, size, sha256,
    downloaded_at) SELECT a.job_id, a.id, 0, 'http://127.0.0.1/files/' || a.request_id,
    '/nonexistent/' || a.request_id || '.mp4', 2000, 'ab', a.finished_at FROM attempts a"""


def build_worker(params: dict[str, Any]) -> dict[str, Any]:
    """Sync the manifest into a new ledger and mark all but one job in ``every`` done: the
    ledger an earlier ``genbatch run`` against the same simulator (same prices) left."""
    ledger, run_id = synced(params)
    mark_done(ledger, run_id, _MARK_DONE, {"every": params["every"]}, _ADD_OUTPUTS)
    with ledger.engine.begin() as conn:
        conn.execute(text(_ADD_WORKER), {"run": run_id})
    counts = ledger.counts(run_id)
    ledger.close()
    return {"states": {state.value: n for state, n in counts.items() if n}}


def _first_submission(manifest: Path, sim: SimProcess, ledger: Path) -> float:
    """Seconds from starting ``genbatch run`` to its first ``queued`` event; then stop it."""
    with tempfile.TemporaryFile("w+") as errors:
        started = time.monotonic()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "genbatch",
                "run",
                str(manifest),
                "--json",
                "-c",
                str(CONCURRENCY),
                "--poll-interval",
                "0.001",
            ],
            env=sim.env(ledger),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert process.stdout is not None
        elapsed = None
        for line in process.stdout:
            event = json.loads(line)
            if event.get("event") == "job" and event.get("state") == "queued":
                elapsed = time.monotonic() - started
                break
        process.send_signal(signal.SIGINT)
        process.stdout.close()
        process.wait(timeout=60)
        if elapsed is None:
            errors.seek(0)
            raise RuntimeError(f"genbatch run never submitted: {errors.read()[-2000:]}")
    return elapsed


def _resume_rows(sizes: dict[str, Any], work: Path) -> list[Row]:
    jobs = sizes["jobs"]
    every = round(1 / (1 - sizes["done_share"]))
    big = write_manifest(work, jobs, name="resume")
    small = write_manifest(work, jobs // every, name="fresh")
    with SimProcess(time_scale=0.0, capacity=CONCURRENCY) as sim:
        built, _ = run_worker(
            "bench_resume.py",
            "build",
            {
                "manifest": str(big),
                "jobs": jobs,
                "ledger": str(work / "resume.db"),
                "every": every,
                "api_base": sim.base_url,
                "token": sim.token,
            },
        )
        ledger = str(work / "resume.db")
        status = median_wall(["-m", "genbatch", "status", "--ledger", ledger], STATUS_RUNS)
        of_manifest = median_wall(
            ["-m", "genbatch", "status", str(big), "--ledger", ledger], STATUS_RUNS
        )
        floor = median_wall(["-m", "genbatch", "--version"], STATUS_RUNS)
        fresh = _first_submission(small, sim, work / "fresh.db")
        resumed = _first_submission(big, sim, work / "resume.db")
    done = built["states"].get("done", 0)
    return [
        *(
            Row(
                figure=4,
                label=f"genbatch status{what}, {jobs:,}-job ledger (median of {STATUS_RUNS})",
                value=seconds,
                unit="s",
                baseline=floor,
                baseline_label="genbatch --version",
                target=f"< {STATUS_TARGET_SECONDS:g} s",
                met=seconds < STATUS_TARGET_SECONDS,
            )
            for what, seconds in (("", status), (" MANIFEST", of_manifest))
        ),
        Row(
            figure=4,
            label=f"run to first submission, {jobs:,} jobs, {done:,} done",
            value=resumed,
            unit="s",
            baseline=fresh,
            baseline_label=f"fresh run of {jobs // every:,} jobs",
            target=f"< {RESUME_TARGET_SECONDS:g} s",
            met=resumed < RESUME_TARGET_SECONDS,
        ),
    ]


@dataclass(frozen=True)
class _Peak:
    """What a whole ``genbatch run`` held at most: at its first submit, and over the run."""

    at_first_submit: float
    """MB (``VmHWM`` when its first job was queued: the start-up's peak, loading and sync)."""
    whole: float
    """MB (``wait4``'s ``ru_maxrss``)."""
    wall: float


def _peak_memory(jobs: int, sim: SimProcess, work: Path) -> _Peak:
    """The peaks of a whole ``genbatch run`` of ``jobs`` jobs."""
    manifest = write_manifest(work, jobs, name=f"memory-{jobs}")
    with tempfile.TemporaryFile("w+") as errors:
        started = time.monotonic()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "genbatch",
                "run",
                str(manifest),
                "--json",
                "-c",
                str(CONCURRENCY),
                "--poll-interval",
                "0.001",
            ],
            env=sim.env(work / f"memory-{jobs}.db"),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert process.stdout is not None
        at_first_submit = _peak_at_first_submit(process.pid, process.stdout)
        while process.stdout.read(1 << 16):
            pass  # the rest of the events, unread
        process.stdout.close()
        # A 200,000-job run takes longer than a child's usual limit: give it an hour.
        usage = wait_measured(process, started, timeout=3600.0)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(
                f"genbatch run of {jobs} jobs exited {process.returncode}: {errors.read()[-3000:]}"
            )
    return _Peak(at_first_submit=at_first_submit, whole=usage.peak_mb, wall=usage.wall)


def _peak_at_first_submit(pid: int, events: IO[str]) -> float:
    """MB the process ``pid`` held at most until its first ``queued`` event (0 if none)."""
    for line in events:
        event = json.loads(line)
        if event.get("event") == "job" and event.get("state") == "queued":
            status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
            kilobytes = next(row.split()[1] for row in status.splitlines() if row[:6] == "VmHWM:")
            return int(kilobytes) / 1024
    return 0.0


def _memory_rows(sizes: tuple[int, ...], work: Path) -> list[Row]:
    peaks: list[tuple[int, _Peak]] = []
    with SimProcess(time_scale=0.0, capacity=CONCURRENCY) as sim:
        for jobs in sizes:
            peaks.append((jobs, _peak_memory(jobs, sim, work)))
    rows = [
        Row(
            figure=5,
            label=f"peak memory of a {big:,}-job run ({big_peak.wall:.0f} s)",
            value=big_peak.whole,
            unit="MB",
            baseline=small_peak.whole,
            baseline_label=f"{small:,}-job run",
            target=f"<= {target:g}x baseline",
            met=big_peak.whole <= target * small_peak.whole,
        )
        for (small, small_peak), (big, big_peak), target in zip(
            peaks, peaks[1:], MEMORY_TARGETS, strict=False
        )
    ]
    # Where the peak is: a big manifest's start-up (load and sync) holds what the run does not.
    rows += [
        Row(
            figure=5,
            label=f"peak memory of the {jobs:,}-job run up to its first submit",
            value=peak.at_first_submit,
            unit="MB",
        )
        for jobs, peak in peaks
    ]
    return rows


def _memory_sizes(quick: bool) -> tuple[int, ...]:
    chosen = os.environ.get("GENBATCH_BENCH_MEMORY_JOBS")
    if chosen and not quick:
        return tuple(int(n) for n in chosen.split(","))
    return MEMORY_JOBS_QUICK if quick else MEMORY_JOBS


def run_resume(quick: bool) -> list[Row]:
    """Figure 4."""
    with tempfile.TemporaryDirectory(prefix="genbatch-bench-") as tmp:
        return _resume_rows(RESUME_QUICK if quick else RESUME, Path(tmp))


def run_memory(quick: bool) -> list[Row]:
    """Figure 5."""
    with tempfile.TemporaryDirectory(prefix="genbatch-bench-") as tmp:
        return _memory_rows(_memory_sizes(quick), Path(tmp))


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker_main({"build": build_worker})
    else:
        for row in run_resume("--quick" in sys.argv) + run_memory("--quick" in sys.argv):
            print(row)
