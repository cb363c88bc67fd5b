"""`genbatch run --simulate` on a ledger whose jobs in flight were submitted to the real API.

The ledger does not say which API a request id came from, so a rehearsal keeps its own ledger
beside the real one. It must never take on the real API's requests: its simulator would
"finish" them with its own files, mark paid jobs done with fake outputs, and the real outputs
would never be fetched (lost once the API's retention ends).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from genbatch.simulator import Simulator, SimulatorConfig

from support import cli_env, genbatch, kill, kling_manifest, start_genbatch, status, wait_until


def test_a_rehearsal_never_finishes_the_real_apis_requests_with_its_own_files(
    tmp_path: Path,
) -> None:
    manifest = kling_manifest(tmp_path, 6)
    # "The real API": generations take minutes, so the jobs stay in flight.
    with Simulator(SimulatorConfig(time_scale=1.0, capacity=2, seed=5)) as real_api:
        env = cli_env(real_api, tmp_path / "ledger.db")
        real = start_genbatch(["run", str(manifest), "-c", "4"], env=env, cwd=tmp_path)
        wait_until(lambda: len(real_api.records) == 4, what="four paid submits")
        assert kill(real, signal.SIGINT)[0] == 130
        paid_in_flight = sum(status(env, tmp_path)["counts"][s] for s in ("queued", "running"))
        assert paid_in_flight == 4

        rehearsal_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("RUNCOMFY_", "GENBATCH_"))
        }
        rehearsal_env["GENBATCH_LEDGER"] = str(tmp_path / "ledger.db")
        genbatch(["run", str(manifest), "--simulate"], env=rehearsal_env, cwd=tmp_path)

        counts = status(env, tmp_path)["counts"]
        # At most the two jobs the rehearsal itself submitted are done; the four the real
        # API holds are not marked done with the rehearsal simulator's files.
        assert counts["done"] <= 2, counts
