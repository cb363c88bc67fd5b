"""Faults and failures, end to end: what is retried, what is not, and when a run stops early."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from genbatch.ledger import Ledger, resolve_location
from genbatch.simulator import Simulator, SimulatorConfig
from genbatch.simulator.config import FaultConfig

from support import (
    cli_env,
    genbatch,
    kling_manifest,
    output_files,
    run_args,
    start_genbatch,
    status,
    wait_until,
)

FAST = 0.0005


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=FAST, capacity=8, seed=21)) as simulator:
        yield simulator


def attempts_of(ledger_path: Path, run: str) -> list[list[str]]:
    """Each job's attempt outcomes, read through the public ledger API."""
    ledger = Ledger.open(resolve_location(str(ledger_path)))
    try:
        info = ledger.find_run(run)
        assert info is not None
        items = ledger.job_outputs(run_id=info.id, in_manifest_only=True)
        return [[a.outcome for a in ledger.attempts(item.job.id)] for item in items]
    finally:
        ledger.close()


def recorded_request_ids(ledger_path: Path, run: str) -> set[str | None]:
    """The request id each job of ``run`` holds, read through the public ledger API."""
    ledger = Ledger.open(resolve_location(str(ledger_path)))
    try:
        info = ledger.find_run(run)
        assert info is not None
        items = ledger.job_outputs(run_id=info.id, in_manifest_only=True)
        return {item.job.request_id for item in items}
    finally:
        ledger.close()


def test_a_failed_generation_is_retried_up_to_max_attempts_each_attempt_recorded(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 2, extra="max_attempts: 2\n")
    sim.inject(
        route="submit", fault="fail", count=1, error={"code": "nsfw", "message": "content policy"}
    )

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert sorted(attempts_of(tmp_path / "ledger.db", "sweep")) == [
        ["failed", "succeeded"],
        ["succeeded"],
    ]
    assert sim.stats.submissions == 3


def test_a_generation_failing_every_attempt_ends_failed_with_the_servers_error(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 1, extra="max_attempts: 2\n")
    sim.inject(
        route="submit",
        fault="fail",
        count=2,
        error=[{"errorCode": "E42", "error": "the model crashed", "debugInfo": "x"}],
    )

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 1
    assert "the model crashed (E42)" in done.stderr
    assert status(env, tmp_path)["counts"]["failed"] == 1


def test_jobs_failing_the_same_way_stop_the_run_early(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(time_scale=FAST, fail_rate=1.0, seed=22)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 30)

        done = genbatch(run_args(manifest, "-c", "1", "--max-failures", "3"), env=env, cwd=tmp_path)

        assert done.returncode == 6
        assert "3 jobs in a row failed the same way" in done.stderr
        assert sim.stats.submissions == 3
        assert status(env, tmp_path)["counts"]["pending"] == 27
        retry = f"genbatch retry {manifest} --failed"
        assert f"genbatch: next: {retry}" in done.stderr

        # Run again as is: the failed jobs are left alone, and the run says how to retry them.
        again = genbatch(
            run_args(manifest, "-c", "1", "--max-failures", "3"), env=env, cwd=tmp_path
        )
        assert again.returncode == 6, again.stderr
        assert (
            f"3 job(s) failed in an earlier run and are not run again; to run them again: {retry}"
            in again.stderr
        )
        assert sim.stats.submissions == 6


def test_a_failure_percentage_stops_the_run_too(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(time_scale=FAST, fail_rate=0.9, seed=23)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(
            run_args(kling_manifest(tmp_path, 60), "-c", "2", "--max-failures", "50%"),
            env=env,
            cwd=tmp_path,
        )

        assert done.returncode == 6
        assert "of the last 20 jobs failed" in done.stderr
        assert sim.stats.submissions < 30


def test_lost_answers_in_a_row_stop_submitting_instead_of_piling_up_unknown_jobs(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    sim.inject(route="submit", fault="lost_answer", count=10)

    done = genbatch(run_args(kling_manifest(tmp_path, 10), "-c", "1"), env=env, cwd=tmp_path)

    assert done.returncode == 7
    assert "3 submits in a row got no answer" in done.stderr
    counts = status(env, tmp_path)["counts"]
    assert (counts["unknown"], counts["pending"]) == (3, 7)


def test_a_malformed_submit_answer_holding_the_request_id_is_followed_and_polls_retried(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    sim.inject(route="submit", fault="malformed", count=1)  # a 200 cut in half: the id is whole
    sim.inject(route="result", fault="malformed", count=3)

    done = genbatch(run_args(kling_manifest(tmp_path, 3), "-c", "1"), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert status(env, tmp_path)["counts"]["done"] == 3
    assert sim.stats.submissions == 3 and sim.stats.duplicate_submissions == 0
    assert recorded_request_ids(tmp_path / "ledger.db", "sweep") == set(sim.records)


# The simulator's submit answer is compact JSON with the id (a UUID) first: keeping this many
# bytes cuts off the id's closing quote, and nothing else of it.
ID_ENDS = len('{"request_id":"') + 36


@pytest.mark.parametrize("keep", [None, ID_ENDS + 1])
def test_a_submit_answer_cut_after_the_request_id_keeps_it_and_the_job_is_done(
    tmp_path: Path, sim: Simulator, keep: int | None
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    sim.inject(route="submit", fault="partial", **({} if keep is None else {"keep": keep}))

    done = genbatch(run_args(kling_manifest(tmp_path, 2)), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert status(env, tmp_path)["counts"]["done"] == 2
    assert sim.stats.faults["partial"] == 1
    assert sim.stats.submissions == 2 and sim.stats.duplicate_submissions == 0
    assert recorded_request_ids(tmp_path / "ledger.db", "sweep") == set(sim.records)


@pytest.mark.parametrize("keep", [10, ID_ENDS])
def test_a_submit_answer_cut_before_the_request_id_ends_makes_the_job_unknown(
    tmp_path: Path, sim: Simulator, keep: int
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    sim.inject(route="submit", fault="partial", keep=keep)

    done = genbatch(run_args(kling_manifest(tmp_path, 2), "-c", "1"), env=env, cwd=tmp_path)

    assert done.returncode == 1
    counts = status(env, tmp_path)["counts"]
    assert (counts["unknown"], counts["done"]) == (1, 1)
    assert sim.stats.submissions == 2 and sim.stats.duplicate_submissions == 0


def test_html_error_pages_and_429s_without_retry_after_are_waited_out(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    for fault in ("bad_gateway", "unavailable", "rate_limit_bare", "server_error"):
        sim.inject(route="result", fault=fault, count=2)

    done = genbatch(run_args(kling_manifest(tmp_path, 3)), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert sum(sim.stats.faults.values()) == 8
    assert sim.stats.duplicate_submissions == 0


def test_retry_reruns_only_the_failed_jobs_and_keeps_the_successes(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 4)
    sim.inject(route="submit", fault="fail", count=1)
    first = genbatch(run_args(manifest, "-c", "1"), env=env, cwd=tmp_path)
    assert first.returncode == 1

    again = genbatch(
        ["retry", str(manifest), "--failed", "--poll-interval", "0.01"], env=env, cwd=tmp_path
    )

    assert again.returncode == 0, again.stderr
    assert "1 job(s) to run again" in again.stderr
    assert sim.stats.submissions == 5
    assert len(output_files(tmp_path / "out")) == 4


def in_flight(counts: dict[str, int]) -> int:
    return counts["queued"] + counts["running"]


def test_cancel_cancels_queued_requests_reports_running_ones_and_stops_the_run(
    tmp_path: Path,
) -> None:
    # Capacity 1 and long generations: one job runs, the others wait in the remote queue.
    with Simulator(SimulatorConfig(time_scale=0.1, capacity=1, seed=25)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 6)
        runner = start_genbatch(run_args(manifest, "-c", "3"), env=env, cwd=tmp_path)
        wait_until(
            lambda: in_flight(status(env, tmp_path)["counts"]) == 3,
            what="three submits recorded as accepted",
        )

        cancelled = genbatch(["cancel", str(manifest)], env=env, cwd=tmp_path)

        assert cancelled.returncode == 0, cancelled.stderr
        assert "cancelled 2 queued request(s)" in cancelled.stdout
        assert "1 request(s) were already running" in cancelled.stdout
        runner.kill()  # the running clip takes 24 s here; the stop request is what matters
        runner.communicate()
        counts = status(env, tmp_path)["counts"]
        assert counts["cancelled"] == 2
        assert counts["pending"] == 3
        assert sim.stats.cancellations == 2


@contextmanager
def three_submits_in_flight(
    tmp_path: Path, *, answered_after: float, seed: int
) -> Iterator[tuple[Simulator, dict[str, str], Path]]:
    """A run of six jobs, three at a time, whose submits are answered ``answered_after``
    seconds late, caught with three jobs `submitting` (capacity 1: one will run, two queue)."""
    faults = FaultConfig(slow=1.0, slow_seconds=answered_after, routes=frozenset({"submit"}))
    with Simulator(SimulatorConfig(time_scale=0.1, capacity=1, seed=seed, faults=faults)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 6)
        runner = start_genbatch(run_args(manifest, "-c", "3"), env=env, cwd=tmp_path)
        try:
            wait_until(
                lambda: status(env, tmp_path)["counts"]["submitting"] == 3,
                what="three submits in flight",
            )
            yield sim, env, manifest
        finally:
            runner.kill()
            runner.communicate()


def test_cancel_also_cancels_the_requests_whose_submit_was_in_flight_when_it_was_asked(
    tmp_path: Path,
) -> None:
    # Every submit's answer takes 3 s: their requests exist remotely and are recorded only
    # after the stop.
    with three_submits_in_flight(tmp_path, answered_after=3.0, seed=27) as (sim, env, manifest):
        cancelled = genbatch(["cancel", str(manifest)], env=env, cwd=tmp_path)

        assert cancelled.returncode == 0, cancelled.stderr
        assert "cancelled 2 queued request(s)" in cancelled.stdout
        assert "1 request(s) were already running" in cancelled.stdout
        assert sim.stats.cancellations == 2
        assert sim.stats.submissions == 3


def test_cancel_says_how_many_submits_had_no_answer_when_it_stopped_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Submits answered 4 s late, and cancel waits 0.5 s for them: their requests may still be
    # queued and billed, and the user is told to cancel again.
    import anyio

    from genbatch import cancel
    from genbatch.client import RunComfyClient

    monkeypatch.setattr(cancel, "SUBMITS_SETTLE_SECONDS", 0.5)
    with three_submits_in_flight(tmp_path, answered_after=4.0, seed=28) as (sim, _env, _path):
        ledger = Ledger.open(resolve_location(str(tmp_path / "ledger.db")))
        try:
            run = ledger.runs()[0]

            async def go() -> cancel.CancelReport:
                async with RunComfyClient(base_url=sim.base_url, token=sim.token) as client:
                    return await cancel.cancel_run(ledger, client, run)

            report = anyio.run(go)
        finally:
            ledger.close()

    assert report.unanswered == 3
    assert report.cancelled == []


def test_a_running_process_stops_submitting_when_cancel_is_requested(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(time_scale=0.01, capacity=2, seed=26)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 20)
        runner = start_genbatch(run_args(manifest, "-c", "2", "--json"), env=env, cwd=tmp_path)
        wait_until(lambda: sim.stats.submissions >= 2, what="the run to start")

        genbatch(["cancel", str(manifest)], env=env, cwd=tmp_path)
        stdout, stderr = runner.communicate(timeout=60)

        notices = [json.loads(line) for line in stdout.splitlines()]
        assert any("stop requested" in (n.get("message") or "") for n in notices)
        assert "stop requested" in stderr
        assert sim.stats.submissions < 20
        assert runner.returncode == 1
