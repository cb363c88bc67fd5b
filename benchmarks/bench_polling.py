"""Figure 2: polling economy.

Jobs whose generation times are spread like a real video model's (Kling: a median of 240 s,
lognormal), scaled down, all submitted at once. genbatch's adaptive polling (its default policy,
scaled by the same factor) against the official CLI's fixed 2-second polling (scaled too): API
calls per job, and how long after a job finished on the server each noticed it.

The baseline is computed from the same jobs, not run: a poller that submits at the request's
creation time and polls every P seconds exactly makes 1 + ceil(T / P) calls for a generation of
T seconds and notices it ceil(T / P) * P - T seconds late. That is the best a fixed poller can do;
a real one only adds latency. (Running it is not possible at a useful scale: 300 jobs polled every
20 ms of scaled time would need 15,000 calls a second, far beyond one Python client.)
"""

from __future__ import annotations

import math
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from common import (
    KLING,
    Row,
    SimProcess,
    percentile,
    run_worker,
    worker_main,
    write_manifest,
)

from genbatch import batch
from genbatch.ledger import Ledger, resolve_location
from genbatch.manifest import load_manifest
from genbatch.polling import PollPolicy
from genbatch.runner import RunOptions
from genbatch.states import JobState

MEDIAN_SECONDS = 240.0
SIGMA = 0.35
"""Lognormal spread: half the clips within about 0.8x-1.3x of the median, a few at 2x."""
CLI_POLL_SECONDS = 2.0
FULL = {"jobs": 300, "time_scale": 0.1}
QUICK = {"jobs": 20, "time_scale": 0.004}


def genbatch_worker(params: dict[str, Any]) -> dict[str, Any]:
    """Run the jobs with genbatch's default poll policy scaled; when each was noticed done."""
    work = Path(params["dir"])
    manifest = load_manifest(write_manifest(work, params["jobs"], concurrency=params["jobs"]))
    ledger = Ledger.open(resolve_location(str(work / "ledger.db")))
    prepared = batch.prepare(manifest, ledger)
    options = RunOptions(
        concurrency=params["jobs"],
        handle_signals=False,
        poll=PollPolicy().scaled(params["time_scale"]),
    )
    connection = batch.Connection(api_base=params["base_url"], token=params["token"])
    summary = anyio.run(batch.execute, prepared, connection, options)
    noticed = {}
    for job in ledger.jobs(prepared.run.id):
        for attempt in ledger.attempts(job.id):
            if attempt.outcome == "succeeded" and attempt.finished_at is not None:
                noticed[attempt.request_id] = _epoch(attempt.finished_at)
    ledger.close()
    return {"done": summary.counts[JobState.DONE], "noticed": noticed}


def _epoch(when: datetime) -> float:
    return when.timestamp()


def _measure(sizes: dict[str, Any], work: Path) -> dict[str, Any]:
    durations = {KLING: (MEDIAN_SECONDS, SIGMA)}
    with SimProcess(
        time_scale=sizes["time_scale"], capacity=sizes["jobs"], seed=1, durations=durations
    ) as sim:
        answer, _ = run_worker(
            "bench_polling.py",
            "genbatch",
            {"base_url": sim.base_url, "token": sim.token, "dir": str(work), **sizes},
        )
        calls = sim.api_calls()
        records = sim.ask("records")
    if answer["done"] != sizes["jobs"]:
        raise RuntimeError(f"only {answer['done']} of {sizes['jobs']} jobs done")
    return {
        "calls_per_job": calls / sizes["jobs"],
        "records": records,
        "noticed": answer["noticed"],
    }


def _delays(
    records: list[dict[str, Any]], noticed: dict[str, float]
) -> tuple[list[float], list[float]]:
    """Detection delays in seconds, and as shares of each job's generation time."""
    delays = [noticed[r["request_id"]] - r["finished_at"] for r in records]
    return delays, [d / r["generation_seconds"] for d, r in zip(delays, records, strict=True)]


def _fixed_polling(
    records: list[dict[str, Any]], interval: float
) -> tuple[float, dict[str, float]]:
    """Calls per job, and when each job is noticed, by an exact fixed-interval poller."""
    calls = 0
    noticed = {}
    for record in records:
        polls = max(1, math.ceil((record["finished_at"] - record["created_at"]) / interval))
        calls += 1 + polls
        noticed[record["request_id"]] = record["created_at"] + polls * interval
    return calls / len(records), noticed


def run(quick: bool) -> list[Row]:
    """Figure 2."""
    sizes = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="genbatch-bench-") as tmp:
        ours = _measure(sizes, Path(tmp))
    scale, records = sizes["time_scale"], ours["records"]
    base_calls, base_noticed = _fixed_polling(records, CLI_POLL_SECONDS * scale)
    delays, fractions = _delays(records, ours["noticed"])
    base_delays, base_fractions = _delays(records, base_noticed)
    ratio = ours["calls_per_job"] / base_calls
    p95_fraction = percentile(fractions, 0.95)
    longest = max(r["generation_seconds"] for r in records)
    where = f"{sizes['jobs']} jobs, median {MEDIAN_SECONDS * scale:g} s, longest {longest:.1f} s"
    fixed = f"fixed {CLI_POLL_SECONDS * scale:g} s polling"
    return [
        Row(
            figure=2,
            label=f"API calls per job ({where})",
            value=ours["calls_per_job"],
            unit="calls",
            baseline=base_calls,
            baseline_label=fixed,
            target="<= 1/3 of baseline",
            met=ratio <= 1 / 3,
        ),
        Row(
            figure=2,
            label="detection delay p50",
            value=percentile(delays, 0.5),
            unit="s",
            baseline=percentile(base_delays, 0.5),
            baseline_label=fixed,
        ),
        Row(
            figure=2,
            label="detection delay p95",
            value=percentile(delays, 0.95),
            unit="s",
            baseline=percentile(base_delays, 0.95),
            baseline_label=fixed,
        ),
        Row(
            figure=2,
            label="detection delay p95, as a share of the job's generation time",
            value=p95_fraction,
            unit="",
            baseline=percentile(base_fractions, 0.95),
            baseline_label=fixed,
            target="<= 0.10",
            met=p95_fraction <= 0.10,
        ),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker_main({"genbatch": genbatch_worker})
    else:
        for row in run(quick="--quick" in sys.argv):
            print(row)
