"""Figure 3: planning at scale.

A manifest expanding to 1,000,000 jobs (one prompt template, a 1000 x 1000 grid). Each step
runs in its own process, measured with ``wait4`` (wall time, peak resident memory):

* baseline: loading the manifest and expanding every job once (``Manifest.jobs()``), nothing else;
* ``genbatch plan`` (load, then one walk that validates and summarises every job), the real
  command;
* loading with ``load_manifest`` and inserting every job into a new SQLite ledger with
  ``batch.prepare`` (which validates each job in the walk that inserts it), as ``genbatch run``
  does before its first submit.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Row, Usage, run_child, run_worker, worker_main, write_grid_manifest

from genbatch import batch
from genbatch.ledger import Ledger, resolve_location
from genbatch.manifest import load_manifest

FULL_SIDE = 1000
QUICK_SIDE = 30
SECONDS_TARGET = 20.0
MEMORY_TARGET_MB = 400.0


def expand_worker(params: dict[str, Any]) -> dict[str, Any]:
    """Load the manifest and expand every job once."""
    manifest = load_manifest(params["manifest"], max_jobs=params["jobs"])
    count = sum(1 for _ in manifest.jobs())
    return {"jobs": count}


def prepare_worker(params: dict[str, Any]) -> dict[str, Any]:
    """``load_manifest`` then ``prepare`` into a new ledger, timing both (as ``genbatch run``)."""
    started = time.perf_counter()
    manifest = load_manifest(params["manifest"], max_jobs=params["jobs"])
    loaded = time.perf_counter()
    ledger = Ledger.open(resolve_location(params["ledger"]))
    prepared = batch.prepare(manifest, ledger)
    synced = time.perf_counter()
    ledger.close()
    return {
        "jobs": prepared.sync.new,
        "open_seconds": loaded - started,
        "prepare_seconds": synced - loaded,
    }


def run(quick: bool) -> list[Row]:
    """Figure 3."""
    side = QUICK_SIDE if quick else FULL_SIDE
    jobs = side * side
    with tempfile.TemporaryDirectory(prefix="genbatch-bench-") as tmp:
        manifest = str(write_grid_manifest(Path(tmp), side))
        params = {"manifest": manifest, "jobs": jobs, "ledger": str(Path(tmp) / "ledger.db")}
        expanded, expand_usage = run_worker("bench_plan.py", "expand", params)
        _, plan_usage = run_child(
            [
                "-m",
                "genbatch",
                "plan",
                manifest,
                "--sample",
                "0",
                "--ledger",
                str(Path(tmp) / "absent.db"),
            ]
        )
        prepared, prepare_usage = run_worker("bench_plan.py", "prepare", params)
    if expanded["jobs"] != jobs or prepared["jobs"] != jobs:
        raise RuntimeError(f"expected {jobs} jobs, got {expanded['jobs']}/{prepared['jobs']}")
    return _rows(jobs, expand_usage, plan_usage, prepared, prepare_usage)


def _rows(
    jobs: int, expand: Usage, plan: Usage, prepared: dict[str, Any], prepare: Usage
) -> list[Row]:
    seconds_target = SECONDS_TARGET
    what = f"{jobs:,} jobs"
    return [
        Row(
            figure=3,
            label=f"genbatch plan, whole process ({what})",
            value=plan.wall,
            unit="s",
            baseline=expand.wall,
            baseline_label="load + expand once",
            target=f"< {seconds_target:g} s",
            met=plan.wall < seconds_target,
        ),
        Row(
            figure=3,
            label="genbatch plan, peak memory",
            value=plan.peak_mb,
            unit="MB",
            baseline=expand.peak_mb,
            baseline_label="load + expand once",
            target=f"< {MEMORY_TARGET_MB:g} MB",
            met=plan.peak_mb < MEMORY_TARGET_MB,
        ),
        Row(
            figure=3,
            label="load_manifest (jobs are validated by prepare)",
            value=prepared["open_seconds"],
            unit="s",
        ),
        Row(
            figure=3,
            label="batch.prepare (validate + insert every job, one walk)",
            value=prepared["prepare_seconds"],
            unit="s",
            baseline=expand.wall,
            baseline_label="load + expand once",
            target=f"< {seconds_target:g} s",
            met=prepared["prepare_seconds"] < seconds_target,
        ),
        Row(
            figure=3,
            label="load_manifest + prepare, whole process",
            value=prepare.wall,
            unit="s",
            baseline=expand.wall,
            baseline_label="load + expand once",
        ),
        Row(
            figure=3,
            label="load_manifest + prepare, peak memory",
            value=prepare.peak_mb,
            unit="MB",
            baseline=expand.peak_mb,
            baseline_label="load + expand once",
            target=f"< {MEMORY_TARGET_MB:g} MB",
            met=prepare.peak_mb < MEMORY_TARGET_MB,
        ),
    ]


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        worker_main({"expand": expand_worker, "prepare": prepare_worker})
    else:
        for row in run(quick="--quick" in sys.argv):
            print(row)
