"""``genbatch`` as a whole process, timing its claims: ``python timed_claims.py run MANIFEST ...``.

The same command as ``genbatch ...`` (``genbatch.launch.main``), with ``Ledger.claim_jobs``
wrapped to add up, in this worker, the claims made, the jobs they took, their wall time (lock
waits included) and the CPU time of the thread running them. At exit the sums are written as
one JSON object to the file named by ``$GENBATCH_BENCH_CLAIMS`` (figure 7 reads them: the
claim's cost per job, from one worker to eight).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from genbatch.launch import main
from genbatch.ledger import Ledger

_lock = threading.Lock()
_sums = {"claims": 0, "jobs": 0, "wall_seconds": 0.0, "cpu_seconds": 0.0}


def _timed(claim: Any) -> Any:
    @functools.wraps(claim)
    def timed(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        jobs: list[Any] = []
        try:
            jobs = claim(self, *args, **kwargs)
            return jobs
        finally:
            with _lock:
                _sums["claims"] += 1
                _sums["jobs"] += len(jobs)
                _sums["wall_seconds"] += time.perf_counter() - wall
                _sums["cpu_seconds"] += time.thread_time() - cpu

    return timed


def _save() -> None:
    target = os.environ.get("GENBATCH_BENCH_CLAIMS")
    if target:
        Path(target).write_text(json.dumps(_sums), encoding="utf-8")


if __name__ == "__main__":
    Ledger.claim_jobs = _timed(Ledger.claim_jobs)  # type: ignore[method-assign]  # timing only
    atexit.register(_save)
    main()
