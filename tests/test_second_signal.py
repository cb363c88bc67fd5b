"""A second signal that arrives right behind the first (a supervisor's SIGINT then SIGTERM, a
script's `kill -INT; kill -TERM`) still exits at once."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from genbatch.simulator import Simulator

from support import cli_env, kling_manifest, run_args, start_genbatch, wait_until


def test_two_signals_back_to_back_exit_at_once(tmp_path: Path, simulator: Simulator) -> None:
    env = cli_env(simulator, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 3)
    simulator.inject(route="submit", fault="slow", delay=60)  # created, its answer 60 s late
    process = start_genbatch(run_args(manifest, "-c", "1"), env=env, cwd=tmp_path)
    wait_until(lambda: len(simulator.records) == 1, what="the first submit")

    os.kill(process.pid, signal.SIGINT)
    os.kill(process.pid, signal.SIGTERM)  # before the event loop has read the first
    _, stderr = process.communicate(timeout=90)

    # Not: the second signal taken by the first one's receiver and dropped as it closes, the
    # run waiting the whole minute for the submit's answer.
    assert process.returncode == 130, stderr
    assert "exited at once" in stderr, stderr
