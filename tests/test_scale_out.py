"""Several `genbatch run` processes share one run through a PostgreSQL ledger (issue #7).

Each test starts real worker processes of the CLI against one simulator and one PostgreSQL
schema, and checks the promises: no job submitted twice, the manifest's concurrency and budget
held by the run as a whole, and the jobs of a worker killed with SIGKILL finished by the others
once its lease has expired, by re-attaching to its requests.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genbatch.ledger import Ledger, resolve_location
from genbatch.simulator import Simulator, SimulatorConfig
from genbatch.states import JobState

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
    status_json,
    wait_until,
)

pytestmark = pytest.mark.postgres

LEASE_SECONDS = "1.0"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # A Kling clip takes about 0.5 s: long enough for several workers to overlap.
    with Simulator(SimulatorConfig(time_scale=0.002, capacity=16, seed=7)) as simulator:
        yield simulator


def workers_env(sim: Simulator, postgres_url: str) -> dict[str, str]:
    return cli_env(sim, postgres_url, GENBATCH_LEASE_SECONDS=LEASE_SECONDS)  # type: ignore[arg-type]


def start_workers(
    count: int, args: list[str], env: dict[str, str], cwd: Path
) -> list[subprocess.Popen[str]]:
    return [start_genbatch(args, env=env, cwd=cwd) for _ in range(count)]


def finish(workers: list[subprocess.Popen[str]], timeout: float = 90) -> list[tuple[int, str]]:
    """Wait for every worker; each one's exit code and stderr."""
    results = []
    for worker in workers:
        _, stderr = worker.communicate(timeout=timeout)
        results.append((worker.returncode, stderr))
    return results


def workers_of(env: dict[str, str], cwd: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = status_json(env, cwd)["workers"]
    return found


def test_several_workers_share_a_run_and_never_submit_a_job_twice(
    tmp_path: Path, sim: Simulator, postgres_url: str
) -> None:
    manifest = kling_manifest(tmp_path, 24)
    env = workers_env(sim, postgres_url)

    results = finish(start_workers(3, run_args(manifest, "-c", "3"), env, tmp_path))

    assert [code for code, _ in results] == [0, 0, 0], [err for _, err in results]
    assert sim.stats.submissions == 24
    assert sim.stats.duplicate_submissions == 0
    files = [f for f in output_files(tmp_path / "out") if f.suffix == ".mp4"]
    served = {o.sha256 for info in sim.records.list() for o in info.outputs}
    assert len(files) == 24 and {sha256_of(f) for f in files} == served
    report = status_json(env, tmp_path)
    assert report["counts"]["done"] == 24
    assert len(report["workers"]) == 3
    assert {w["status"] for w in report["workers"]} == {"stopped"}
    assert sum(w["jobs_done"] for w in report["workers"]) == 24
    table = genbatch(["status"], env=env, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "workers" in table.stdout
    assert all(w["id"] in table.stdout for w in report["workers"])


def test_the_ledger_records_which_host_wrote_each_file(
    tmp_path: Path, sim: Simulator, postgres_url: str
) -> None:
    manifest = kling_manifest(tmp_path, 4)
    env = workers_env(sim, postgres_url)

    results = finish(start_workers(2, run_args(manifest, "-c", "2"), env, tmp_path))

    assert [code for code, _ in results] == [0, 0]
    hosts = {w["host"] for w in workers_of(env, tmp_path)}
    ledger = Ledger.open(resolve_location(postgres_url))
    try:
        written = [o for item in ledger.job_outputs() for o in item.outputs]
    finally:
        ledger.close()
    assert len(written) == 4
    assert {o.host for o in written} <= hosts and None not in {o.host for o in written}


def test_the_manifests_concurrency_holds_for_the_run_as_a_whole(
    tmp_path: Path, sim: Simulator, postgres_url: str
) -> None:
    manifest = kling_manifest(tmp_path, 20, extra="concurrency: 3\n")
    env = workers_env(sim, postgres_url)

    results = finish(start_workers(4, run_args(manifest, "-c", "3"), env, tmp_path))

    assert [code for code, _ in results] == [0, 0, 0, 0], [err for _, err in results]
    assert sim.stats.submissions == 20 and sim.stats.duplicate_submissions == 0
    assert 2 <= sim.stats.peak_active <= 3


def test_the_budget_holds_for_the_run_as_a_whole(
    tmp_path: Path, sim: Simulator, postgres_url: str
) -> None:
    # A 5 s Kling clip with audio costs $0.70: $3.00 pays for four of the twelve.
    manifest = kling_manifest(tmp_path, 12, extra="budget_usd: 3.0\n")
    env = workers_env(sim, postgres_url)

    results = finish(start_workers(3, run_args(manifest, "-c", "4"), env, tmp_path))

    assert all(code in (0, 5) for code, _ in results), [err for _, err in results]
    assert any("budget reached" in err for _, err in results)
    assert sim.stats.submissions == 4 and sim.stats.duplicate_submissions == 0
    assert sim.stats.billed_usd <= 3.0 + 1e-9
    assert status(env, tmp_path)["counts"]["done"] == 4


def test_a_killed_workers_jobs_are_finished_by_another_after_its_lease_expires(
    tmp_path: Path, postgres_url: str
) -> None:
    # Clips of about 5 s: the victim's requests are still running when it dies.
    with Simulator(SimulatorConfig(time_scale=0.02, capacity=16, seed=3)) as sim:
        manifest = kling_manifest(tmp_path, 8)
        env = workers_env(sim, postgres_url)
        victim = start_genbatch(run_args(manifest, "-c", "4"), env=env, cwd=tmp_path)
        # Its first four requests accepted (none left `submitting`), it waits for a free slot.
        wait_until(
            lambda: _accepted_in_flight(postgres_url) == 4,
            timeout=60,
            what="the victim to hold four accepted requests",
        )
        survivor = start_genbatch(run_args(manifest, "-c", "4"), env=env, cwd=tmp_path)
        wait_until(lambda: _workers(postgres_url) == 2, timeout=60, what="a second worker")

        kill(victim)
        [(code, stderr)] = finish([survivor])

        assert code == 0, stderr
        assert "took over" in stderr and "re-attached, not resubmitted" in stderr
        assert sim.stats.submissions == 8
        assert sim.stats.duplicate_submissions == 0
        report = status_json(env, tmp_path)
        assert report["counts"]["done"] == 8
        by_status = {w["status"]: w for w in report["workers"]}
        assert set(by_status) == {"lost", "stopped"}
        # Every job done once, by one worker or the other: on a busy box the survivor may start
        # after the victim finished its first requests (the ones it held when killed are the
        # survivor's, re-attached).
        assert by_status["stopped"]["jobs_done"] + by_status["lost"]["jobs_done"] == 8
        assert by_status["stopped"]["jobs_done"] >= 4


def test_a_worker_frozen_past_its_lease_lets_go_of_the_jobs_taken_over_when_it_wakes(
    tmp_path: Path, postgres_url: str
) -> None:
    # Clips of about 5 s: the frozen worker's requests are still running when it is stopped.
    with Simulator(SimulatorConfig(time_scale=0.02, capacity=16, seed=5)) as sim:
        manifest = kling_manifest(tmp_path, 8)
        env = workers_env(sim, postgres_url)
        frozen = start_genbatch(run_args(manifest, "-c", "4"), env=env, cwd=tmp_path)
        wait_until(
            lambda: _accepted_in_flight(postgres_url) == 4,
            timeout=60,
            what="the first worker to hold four accepted requests",
        )
        frozen.send_signal(signal.SIGSTOP)
        survivor = start_genbatch(run_args(manifest, "-c", "4"), env=env, cwd=tmp_path)
        try:
            wait_until(
                lambda: _taken_over(postgres_url, frozen.pid),
                timeout=60,
                what="the second worker to take the frozen worker's jobs over",
            )
        finally:
            frozen.send_signal(signal.SIGCONT)  # its polls and answers now arrive late
        (frozen_code, frozen_err), (code, stderr) = finish([frozen, survivor])

        assert code == 0, stderr
        assert frozen_code == 0, frozen_err
        assert "this worker lets go of it" in frozen_err
        assert sim.stats.submissions == 8 and sim.stats.duplicate_submissions == 0
        assert status(env, tmp_path)["counts"]["done"] == 8
        files = output_files(tmp_path / "out")
        assert len(files) == 8
        served = {out.sha256 for info in sim.records.list() for out in info.outputs}
        assert {sha256_of(f) for f in files} <= served
        assert not list((tmp_path / "out").glob(".*.part"))


def _taken_over(url: str, pid: int) -> bool:
    """The worker of process ``pid`` holds no job in flight any more."""
    ledger = _read_ledger(url)
    try:
        workers = [w for run in ledger.runs() for w in ledger.workers(run.id)]
    finally:
        ledger.close()
    return any(w.pid == pid for w in workers) and all(
        w.jobs_held == 0 for w in workers if w.pid == pid
    )


def _read_ledger(url: str) -> Ledger:
    return Ledger.open(resolve_location(url))


def _accepted_in_flight(url: str) -> int:
    ledger = _read_ledger(url)
    try:
        runs = ledger.runs()
        if not runs:
            return 0
        counts = ledger.counts(runs[0].id)
    finally:
        ledger.close()
    if counts[JobState.SUBMITTING]:
        return 0
    return counts[JobState.QUEUED] + counts[JobState.RUNNING]


def _workers(url: str) -> int:
    ledger = _read_ledger(url)
    try:
        return sum(len(ledger.workers(run.id)) for run in ledger.runs())
    finally:
        ledger.close()
