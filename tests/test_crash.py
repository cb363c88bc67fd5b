"""Crash safety: a run killed at any point resumes to completion without paying twice.

Each test starts the real CLI in a subprocess, kills it at a chosen moment (SIGKILL: no cleanup
at all), runs the same command again, and checks the promises: every file present and equal to
the bytes the simulator served, no job submitted twice except those reported ``unknown``.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch.simulator import Simulator, SimulatorConfig

from support import (
    cli_env,
    genbatch,
    kill,
    kling_manifest,
    output_files,
    run_args,
    sha256_of,
    start_genbatch,
    status,
    wait_until,
)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=0.0005, capacity=8, seed=11)) as simulator:
        yield simulator


def assert_complete_and_verified(sim: Simulator, out: Path, jobs: int) -> None:
    files = output_files(out)
    assert len(files) == jobs
    served = {o.sha256 for info in sim.records.list() for o in info.outputs}
    assert {sha256_of(f) for f in files} <= served
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


def test_killed_while_waiting_to_submit_resumes_without_duplicates(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 4)
    sim.inject(route="submit", fault="rate_limit", count=1, retry_after=60)
    process = start_genbatch(run_args(manifest, "-c", "1"), env=env, cwd=tmp_path)
    wait_until(lambda: sim.stats.faults["rate_limit"] == 1, what="the 429")
    # The refused job is back to pending and the run waits out Retry-After: nothing in flight.
    wait_until(lambda: status(env, tmp_path)["counts"]["pending"] == 4, what="pending again")

    kill(process)
    resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    assert sim.stats.submissions == 4
    assert sim.stats.duplicate_submissions == 0
    assert_complete_and_verified(sim, tmp_path / "out", 4)


def test_killed_between_submit_and_record_the_job_is_unknown_not_resubmitted(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 3)
    # The server creates the request, then holds its answer: the client is killed meanwhile.
    sim.inject(route="submit", fault="slow", count=1, delay=30)
    process = start_genbatch(run_args(manifest, "-c", "1"), env=env, cwd=tmp_path)
    wait_until(lambda: sim.stats.submissions == 1, what="the first request to exist")

    kill(process)
    resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert resumed.returncode == 1  # one job is unknown: the user must decide
    counts = status(env, tmp_path)["counts"]
    assert (counts["done"], counts["unknown"]) == (2, 1)
    assert sim.stats.submissions == 3
    assert sim.stats.duplicate_submissions == 0
    assert "unknown" in resumed.stderr


def test_killed_while_polling_reattaches_to_every_request(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(time_scale=0.02, capacity=8, seed=12)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 5)
        process = start_genbatch(run_args(manifest), env=env, cwd=tmp_path)
        # Polling, not submitting: every answer recorded (a kill before that is the
        # between-submit-and-record case, tested above), and polls under way.
        wait_until(
            lambda: (
                sim.stats.submissions == 5
                and sim.stats.calls["result"] > 5
                and status(env, tmp_path)["counts"]["submitting"] == 0
            ),
            what="every job to be submitted, recorded and polled",
        )

        kill(process)
        assert status(env, tmp_path)["counts"]["done"] < 5
        resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)

        assert resumed.returncode == 0, resumed.stderr
        assert sim.stats.submissions == 5
        assert sim.stats.duplicate_submissions == 0
        assert_complete_and_verified(sim, tmp_path / "out", 5)


def test_killed_mid_download_fetches_again_and_verifies(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 2)
    sim.inject(route="file", fault="slow", count=1, delay=30)
    process = start_genbatch(run_args(manifest, "-c", "1"), env=env, cwd=tmp_path)
    wait_until(
        lambda: (
            any(p.name.endswith(".part") for p in (tmp_path / "out").glob(".*"))
            if (tmp_path / "out").exists()
            else False
        ),
        what="a partial download",
    )
    # The first job's slot is free once its download starts, so the second may be mid-submit
    # (a kill then rightly leaves it `unknown`): kill once its answer is recorded.
    wait_until(
        lambda: status(env, tmp_path)["counts"]["submitting"] == 0,
        what="the second submit's answer recorded",
    )

    kill(process)
    assert status(env, tmp_path)["counts"]["fetching"] >= 1
    resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    assert sim.stats.submissions == 2
    assert_complete_and_verified(sim, tmp_path / "out", 2)


# SIGHUP: the terminal (or the tmux session) the run was started from was closed.
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP], ids=["SIGINT", "SIGHUP"])
def test_an_interrupt_records_what_is_in_flight_exits_130_and_never_duplicates(
    tmp_path: Path, sim: Simulator, sig: signal.Signals
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 4)
    sim.inject(route="submit", fault="slow", count=1, delay=1.0)
    process = start_genbatch(run_args(manifest, "-c", "2"), env=env, cwd=tmp_path)
    wait_until(lambda: sim.stats.submissions >= 1, what="a submit in flight")

    code, _, stderr = kill(process, sig)

    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert status(env, tmp_path)["counts"]["unknown"] == 0
    resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert sim.stats.duplicate_submissions == 0
    assert_complete_and_verified(sim, tmp_path / "out", 4)


def test_sigterm_is_an_interruption_like_ctrl_c(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(time_scale=0.02, seed=13)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 3)
        process = start_genbatch(run_args(manifest), env=env, cwd=tmp_path)
        wait_until(lambda: sim.stats.submissions == 3, what="every job submitted")

        code, _, stderr = kill(process, signal.SIGTERM)

        assert code == 130, stderr
        resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert sim.stats.submissions == 3


def test_a_second_run_on_the_same_ledger_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    # Generations of minutes: the first run is still running when the second starts, however
    # slow the box (a loaded one started the second after the first had ended).
    with Simulator(SimulatorConfig(time_scale=1.0, seed=14)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 2)
        first = start_genbatch(run_args(manifest), env=env, cwd=tmp_path)
        wait_until(lambda: sim.stats.submissions >= 1, what="the first run to start")

        second = genbatch(run_args(manifest), env=env, cwd=tmp_path)

        assert second.returncode == 4, second.stderr
        assert "another genbatch" in second.stderr
        assert kill(first, signal.SIGINT)[0] == 130
        assert sim.stats.duplicate_submissions == 0
