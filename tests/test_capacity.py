"""`genbatch run --capacity C`: an account that runs C generations at once is kept busy by a few
requests waiting in its queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from genbatch.capacity import concurrency_for_capacity, queue_margin
from genbatch.simulator import Simulator, SimulatorConfig

from support import cli_env, genbatch, kling_manifest, output_files, run_args


def test_the_queue_margin_is_at_least_two_and_grows_with_the_capacity() -> None:
    margins = [queue_margin(c) for c in range(1, 41)]

    assert margins[:4] == [2, 2, 2, 2]
    assert queue_margin(8) == 4
    assert margins == sorted(margins)
    assert all(concurrency_for_capacity(c) == c + queue_margin(c) for c in range(1, 41))
    with pytest.raises(ValueError, match="at least 1"):
        queue_margin(0)


def test_capacity_keeps_a_margin_of_requests_waiting_in_the_accounts_queue(
    tmp_path: Path,
) -> None:
    # Jobs last about 0.5 s: long enough for the queue to fill behind the account's 2 slots.
    with Simulator(SimulatorConfig(time_scale=0.002, capacity=2, seed=3)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(
            run_args(kling_manifest(tmp_path, 10), "--capacity", "2"), env=env, cwd=tmp_path
        )

        assert done.returncode == 0, done.stderr
        assert sim.stats.peak_active == concurrency_for_capacity(2) == 4  # 2 running, 2 queued
        assert sim.stats.submissions == 10
        assert sim.stats.duplicate_submissions == 0
        assert len(output_files(tmp_path / "out")) == 10


def test_capacity_with_concurrency_is_refused_in_one_line_before_anything_runs(
    tmp_path: Path,
) -> None:
    with Simulator(SimulatorConfig(time_scale=0.002, capacity=2)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(
            run_args(kling_manifest(tmp_path, 3), "--capacity", "2", "-c", "3"),
            env=env,
            cwd=tmp_path,
        )

        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            "genbatch: error: give --capacity or --concurrency, not both: "
            "--capacity 2 means --concurrency 4"
        ]
        assert "Traceback" not in done.stderr
        assert sim.stats.submissions == 0
        assert not (tmp_path / "ledger.db").exists()
