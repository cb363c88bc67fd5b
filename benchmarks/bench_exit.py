"""Figure 11: the exit of a run in a big ledger (issue 16, target 5).

A ledger of 1,000,000 done jobs, each with its attempt, its output row and a real (small) file on
disk, as earlier runs leave them. Two whole ``genbatch run`` processes each do one new job, and
the figure is the time from that job's ``done`` event to the process's exit:

- baseline: the first run after the ledger was built, whose exit has no record of how
  metadata.jsonl was last written, so it writes it whole (what every exit did before);
- genbatch: the next run (the manifest grew by one prompt), which appends one row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Row, SimProcess, run_worker, worker_main, write_manifest
from done_ledger import mark_done, synced
from sqlalchemy import text

DONE_JOBS = 1_000_000
DONE_JOBS_QUICK = 200
EXIT_TARGET_SECONDS = 2.0

# Every job but the last is done, as a real run leaves it: attempt, output row, file on disk.
_MARK_DONE = """UPDATE jobs SET state = 'done', attempts = 1, request_id = 'req-' || id,
    finished_at = updated_at, done_seq = id WHERE run_id = :run AND ordinal < :done"""
_ADD_OUTPUTS = """INSERT INTO outputs (job_id, attempt_id, position, url, path, size, sha256,
    downloaded_at) SELECT a.job_id, a.id, 0, 'http://127.0.0.1/files/' || a.request_id,
    j.output_dir || '/' || j.file_stem || '.mp4', 16, 'ab', a.finished_at
    FROM attempts a JOIN jobs j ON j.id = a.job_id"""
_PATHS = "SELECT path FROM outputs"


def build_worker(params: dict[str, Any]) -> dict[str, Any]:
    """Sync the manifest into a new ledger, mark all but its last job done and put their files
    on disk: the ledger earlier runs against the same simulator (same prices) left."""
    ledger, run_id = synced(params)
    mark_done(ledger, run_id, _MARK_DONE, {"done": params["done"]}, _ADD_OUTPUTS)
    with ledger.engine.connect() as conn:
        paths = conn.execute(text(_PATHS)).scalars().all()
    ledger.close()
    Path(paths[0]).parent.mkdir(parents=True, exist_ok=True)
    for path in paths:
        with open(path, "wb") as out:
            out.write(b"not a real clip\n")
    return {"files": len(paths)}


def _exit_seconds(manifest: Path, sim: SimProcess, ledger: Path) -> float:
    """Seconds from the run's last ``done`` event to its exit."""
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "genbatch", "run", str(manifest), "--json"],
            env=sim.env(ledger),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert process.stdout is not None
        done_at = None
        for line in process.stdout:
            event = json.loads(line)
            if event.get("event") == "job" and event.get("state") == "done":
                done_at = time.monotonic()
        process.wait(timeout=600)
        exited_at = time.monotonic()
        if process.returncode != 0 or done_at is None:
            errors.seek(0)
            raise RuntimeError(f"genbatch run exited {process.returncode}: {errors.read()[-2000:]}")
    return exited_at - done_at


def run(quick: bool) -> list[Row]:
    done = DONE_JOBS_QUICK if quick else DONE_JOBS
    with tempfile.TemporaryDirectory(prefix="genbatch-exit-") as tmp:
        work = Path(tmp)
        ledger = work / "exit.db"
        manifest = write_manifest(work, done + 1, name="exit")
        with SimProcess(time_scale=0.0, capacity=8) as sim:
            built, _ = run_worker(
                "bench_exit.py",
                "build",
                {
                    "manifest": str(manifest),
                    "ledger": str(ledger),
                    "done": done,
                    "api_base": sim.base_url,
                    "token": sim.token,
                },
            )
            whole = _exit_seconds(manifest, sim, ledger)
            rows = sum(1 for _ in (work / "out-exit" / "metadata.jsonl").open("rb"))
            write_manifest(work, done + 2, name="exit")  # one more prompt: one more job
            appended = _exit_seconds(manifest, sim, ledger)
        size_mb = os.path.getsize(work / "out-exit" / "metadata.jsonl") / 1e6
    return [
        Row(
            figure=11,
            label=(
                f"exit of a run of 1 new job in a ledger of {built['files']:,} done jobs "
                f"(metadata.jsonl {rows + 1:,} rows, {size_mb:,.0f} MB)"
            ),
            value=appended,
            unit="s",
            baseline=whole,
            baseline_label="the same exit rewriting metadata.jsonl whole",
            target=f"< {EXIT_TARGET_SECONDS:g} s",
            met=appended < EXIT_TARGET_SECONDS,
        )
    ]


if __name__ == "__main__":
    worker_main({"build": build_worker})
