"""``genbatch`` as a whole process, timing its claims: ``python timed_claims.py run MANIFEST ...``.

The same command as ``genbatch ...`` (``genbatch.launch.main``), with ``Ledger.claim_jobs``
wrapped to add up, in this worker, the claims made, the jobs they took, their wall time, the
part of it spent locking the run's row (``leases.lock_run``, the claim's first statement: where
claims of several workers wait for each other) and the CPU time of the thread running them. At
exit the sums are written as one JSON object to the file named by ``$GENBATCH_BENCH_CLAIMS``
(figure 7 reads them: the claim's cost per job, from one worker to eight).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from genbatch import launch
from genbatch.ledger import Ledger, leases

_lock = threading.Lock()
_claiming = threading.local()
"""Set in a thread while it runs a claim: only the claims' locking of the run is counted."""
_sums = {"claims": 0, "jobs": 0, "wall_seconds": 0.0, "lock_seconds": 0.0, "cpu_seconds": 0.0}


def _timed(claim: Any) -> Any:
    @functools.wraps(claim)
    def timed(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        jobs: list[Any] = []
        _claiming.active = True
        try:
            jobs = claim(self, *args, **kwargs)
            return jobs
        finally:
            _claiming.active = False
            with _lock:
                _sums["claims"] += 1
                _sums["jobs"] += len(jobs)
                _sums["wall_seconds"] += time.perf_counter() - wall
                _sums["cpu_seconds"] += time.thread_time() - cpu

    return timed


def _timed_lock(lock_run: Any) -> Any:
    @functools.wraps(lock_run)
    def timed(*args: Any, **kwargs: Any) -> Any:
        wall = time.perf_counter()
        try:
            return lock_run(*args, **kwargs)
        finally:
            if getattr(_claiming, "active", False):
                with _lock:
                    _sums["lock_seconds"] += time.perf_counter() - wall

    return timed


def _save() -> None:
    target = os.environ.get("GENBATCH_BENCH_CLAIMS")
    if target:
        Path(target).write_text(json.dumps(_sums), encoding="utf-8")


def _saving_first(exit_now: Any) -> Any:
    # genbatch ends with os._exit (no interpreter teardown, so no atexit): save just before.
    @functools.wraps(exit_now)
    def exit_after_saving(code: int) -> Any:
        _save()
        return exit_now(code)

    return exit_after_saving


if __name__ == "__main__":
    Ledger.claim_jobs = _timed(Ledger.claim_jobs)  # type: ignore[method-assign]  # timing only
    leases.lock_run = _timed_lock(leases.lock_run)
    launch._exit_now = _saving_first(launch._exit_now)
    launch.main()
