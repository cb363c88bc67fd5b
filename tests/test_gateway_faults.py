"""404s and 403s that are not the API's word: a gateway's page on a poll, a CDN missing a file.

Only the API's own error codes change a job: 404001 (the request is gone) expires it, 403001
(a request of another account) stops the run as a refused token does. Any other 403, 404 or
410 (an HTML page, another code) is a passing fault: polled or downloaded again, never a state
change, never a second submit. End to end: the CLI against the simulator over loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from genbatch.catalog import find_model
from genbatch.lifecycle import Actor, Move
from genbatch.simulator import Simulator, SimulatorConfig
from genbatch.states import JobState

from support import (
    KLING,
    cli_env,
    genbatch,
    kling_manifest,
    output_files,
    run_args,
    sha256_of,
    start_genbatch,
    status,
    wait_until,
)

FAST = 0.0005


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=FAST, capacity=8, seed=404)) as simulator:
        yield simulator


def in_flight(counts: dict[str, int]) -> int:
    return counts["queued"] + counts["running"]


def assert_files_are_the_simulators(sim: Simulator, out: Path) -> None:
    """Every output on disk is, byte for byte, a file the simulator produced."""
    produced = {o.sha256 for r in sim.records.list() for o in r.outputs}
    on_disk = output_files(out)
    assert on_disk and {sha256_of(p) for p in on_disk} <= produced
    assert len(on_disk) == len(produced)


# -- polls --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["not_found_page", "forbidden_page", "no_route", "echo_auth"])
def test_a_poll_answered_by_a_gateway_is_polled_again_and_every_job_ends_done(
    tmp_path: Path, sim: Simulator, fault: str
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    sim.inject(route="result", fault=fault)

    done = genbatch(run_args(kling_manifest(tmp_path, 3)), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert sim.stats.faults[fault] == 1
    assert "not an error the API gives for this call" in done.stderr
    counts = status(env, tmp_path)["counts"]
    assert (counts["done"], counts["expired"], counts["failed"]) == (3, 0, 0)
    assert (sim.stats.submissions, sim.stats.duplicate_submissions) == (3, 0)
    assert_files_are_the_simulators(sim, tmp_path / "out")


def test_gateway_pages_that_never_end_stop_the_run_after_its_patience_and_a_resume_finishes(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 2)
    sim.inject(route="result", fault="not_found_page", count=1000)

    stopped = genbatch(run_args(manifest, "--max-failures", "3"), env=env, cwd=tmp_path)

    assert stopped.returncode == 7, stopped.stderr
    assert "could not be reached 3 times in a row" in stopped.stderr
    counts = status(env, tmp_path)["counts"]
    assert (in_flight(counts), counts["expired"], counts["failed"]) == (2, 0, 0)

    sim.clear_faults()
    resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    assert status(env, tmp_path)["counts"]["done"] == 2
    assert (sim.stats.submissions, sim.stats.duplicate_submissions) == (2, 0)


def test_a_request_the_api_itself_says_is_gone_still_expires(tmp_path: Path) -> None:
    # Records vanish the moment they finish: every poll after that is the API's own 404001.
    with Simulator(SimulatorConfig(time_scale=FAST, expire_after=0.0, seed=405)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 2)

        done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

        assert done.returncode == 1
        assert "404001" in done.stderr
        assert status(env, tmp_path)["counts"]["expired"] == 2
        assert f"genbatch: next: genbatch retry {manifest} --expired" in done.stderr
        assert sim.stats.submissions == 2


def test_a_request_of_another_account_stops_the_run_with_exit_3_and_keeps_every_request(
    tmp_path: Path, sim: Simulator
) -> None:
    # One job: no poll of the run has been answered yet when the 403001 comes, so the token
    # itself is in doubt (with two, the other's answer may come first: see the test below).
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 1)
    sim.inject(route="result", fault="other_account")

    stopped = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert stopped.returncode == 3, stopped.stderr
    assert "belongs to another account" in stopped.stderr
    assert "RUNCOMFY_TOKEN" in stopped.stderr
    counts = status(env, tmp_path)["counts"]
    assert (counts["failed"], counts["expired"], in_flight(counts)) == (0, 0, 1)

    resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert resumed.returncode == 0, resumed.stderr
    assert status(env, tmp_path)["counts"]["done"] == 1
    assert sim.stats.submissions == 1


# -- output files -------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["not_found_page", "forbidden_page"])
def test_a_file_its_host_misses_once_is_downloaded_again_and_kept_intact(
    tmp_path: Path, sim: Simulator, fault: str
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    sim.inject(route="file", fault=fault)

    done = genbatch(run_args(kling_manifest(tmp_path, 1)), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert sim.stats.faults[fault] == 1
    assert status(env, tmp_path)["counts"]["done"] == 1
    assert sim.stats.submissions == 1
    assert_files_are_the_simulators(sim, tmp_path / "out")


def test_a_file_its_host_keeps_missing_stays_fetching_and_a_later_run_fetches_it(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 1)
    sim.inject(route="file", fault="not_found_page", count=5)

    first = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert first.returncode == 1, first.stderr
    assert "the file host answered HTTP 404" in first.stderr
    counts = status(env, tmp_path)["counts"]
    assert (counts["fetching"], counts["expired"]) == (1, 0)
    assert f"genbatch: next: genbatch run {manifest}" in first.stderr

    again = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert status(env, tmp_path)["counts"]["done"] == 1
    assert sim.stats.submissions == 1
    assert_files_are_the_simulators(sim, tmp_path / "out")


def test_a_file_missing_because_its_request_expired_expires_the_job(tmp_path: Path) -> None:
    # The record (and its files) vanish half a second after the generation; the poll sees the
    # success first, then the download fails for a while (5xx) until the files are gone.
    with Simulator(SimulatorConfig(time_scale=FAST, expire_after=0.5, seed=406)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        sim.inject(route="file", fault="server_error", count=3)

        done = genbatch(run_args(kling_manifest(tmp_path, 1)), env=env, cwd=tmp_path)

        assert done.returncode == 1
        assert "output file missing, request gone" in done.stderr
        assert status(env, tmp_path)["counts"]["expired"] == 1
        assert sim.stats.submissions == 1


# -- cancel ---------------------------------------------------------------------------------------


def test_cancel_answered_by_a_gateways_404_expires_nothing(tmp_path: Path) -> None:
    # Capacity 1 and long generations: one job runs, the others wait in the remote queue.
    with Simulator(SimulatorConfig(time_scale=0.1, capacity=1, seed=407)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 3)
        runner = start_genbatch(run_args(manifest, "-c", "3"), env=env, cwd=tmp_path)
        wait_until(lambda: in_flight(status(env, tmp_path)["counts"]) == 3, what="3 in flight")
        runner.kill()  # nothing moves the jobs but the cancel from now on
        runner.communicate()
        sim.inject(route="cancel", fault="not_found_page", count=3)

        cancelled = genbatch(["cancel", str(manifest)], env=env, cwd=tmp_path)

        assert cancelled.returncode == 1
        assert cancelled.stdout.count("could not cancel: HTTP 404 (an HTML error page)") == 3
        counts = status(env, tmp_path)["counts"]
        assert (in_flight(counts), counts["expired"]) == (3, 0)


def test_cancel_told_of_another_accounts_request_stops_in_one_line_with_exit_3(
    tmp_path: Path,
) -> None:
    with Simulator(SimulatorConfig(time_scale=0.1, capacity=1, seed=408)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 2)
        runner = start_genbatch(run_args(manifest, "-c", "2"), env=env, cwd=tmp_path)
        wait_until(lambda: in_flight(status(env, tmp_path)["counts"]) == 2, what="2 in flight")
        runner.kill()
        runner.communicate()
        sim.inject(route="cancel", fault="other_account", count=2)

        cancelled = genbatch(["cancel", str(manifest)], env=env, cwd=tmp_path)

        assert cancelled.returncode == 3
        assert "Traceback" not in cancelled.stderr
        (line,) = cancelled.stderr.strip().splitlines()
        assert "belongs to another account" in line
        assert in_flight(status(env, tmp_path)["counts"]) == 2


def test_a_cancel_told_gone_never_expires_a_job_whose_files_are_downloading() -> None:
    assert not Move.EXPIRE_ON_CANCEL.allows(JobState.FETCHING, Actor.CANCEL)
    assert Move.EXPIRE_ON_CANCEL.allows(JobState.QUEUED, Actor.CANCEL)
    assert not any(Move.EXPIRE.allows(state, Actor.CANCEL) for state in JobState)


# -- the simulator's faults -----------------------------------------------------------------------


def test_the_simulator_answers_gateway_faults_as_a_gateway_would(sim: Simulator) -> None:
    sim.inject(route="status", fault="not_found_page")
    sim.inject(route="status", fault="forbidden_page")
    sim.inject(route="result", fault="no_route")
    sim.inject(route="cancel", fault="other_account")
    sim.inject(route="file", fault="not_found_page")
    with httpx.Client(base_url=sim.base_url, headers=sim.headers, timeout=10) as client:
        request_id = client.post(f"/v1/models/{KLING}", json={"prompt": "x"}).json()["request_id"]
        page = client.get(f"/v1/requests/{request_id}/status")
        forbidden = client.get(f"/v1/requests/{request_id}/status")
        no_route = client.get(f"/v1/requests/{request_id}/result")
        other = client.post(f"/v1/requests/{request_id}/cancel")
        file = client.get(f"/files/{request_id}/output-0.mp4")

    assert (page.status_code, page.headers["content-type"][:9]) == (404, "text/html")
    assert (forbidden.status_code, forbidden.headers["content-type"][:9]) == (403, "text/html")
    assert (no_route.status_code, no_route.json()["error_code"]) == (404, 404000)
    assert (other.status_code, other.json()["error_code"]) == (403, 403001)
    assert (file.status_code, file.headers["content-type"][:9]) == (404, "text/html")
    assert sim.stats.faults_total == 5
    assert sim.stats.cancellations == 0  # nothing happened behind the gateway
    with pytest.raises(ValueError, match="only applies"):
        sim.inject(route="file", fault="other_account")
    with pytest.raises(ValueError, match="only applies"):
        sim.inject(route="submit", fault="other_account")


# -- the budget -----------------------------------------------------------------------------------


def test_expired_jobs_count_against_the_budget(tmp_path: Path) -> None:
    # Every request is forgotten as it finishes: each job expires, most likely after being billed.
    with Simulator(SimulatorConfig(time_scale=FAST, expire_after=0.0, seed=409)) as sim:
        clip = find_model(KLING)
        assert clip is not None
        cost = clip.cost_usd({"prompt": "x"})
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 4, extra=f"budget_usd: {2.5 * cost}\n")

        stopped = genbatch(run_args(manifest, "-c", "1"), env=env, cwd=tmp_path)

        assert stopped.returncode == 5, stopped.stderr
        assert "budget reached" in stopped.stderr
        counts = status(env, tmp_path)["counts"]
        assert (counts["expired"], counts["pending"]) == (2, 2)
        assert sim.stats.submissions == 2
        assert f"estimated spend ${2 * cost:,.2f}" in stopped.stderr


def test_a_job_whose_polls_keep_getting_pages_is_left_for_the_next_run_not_polled_forever(
    tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run's own patience is off: only the job's own patience (GATEWAY_PATIENCE) ends it.
    import genbatch
    from genbatch.backoff import Backoff
    from genbatch.failures import FailureLimit
    from genbatch.runner import GATEWAY_PATIENCE, RunOptions

    monkeypatch.setenv("RUNCOMFY_TOKEN", sim.token)
    manifest = kling_manifest(tmp_path, 1)
    ledger = str(tmp_path / "ledger.db")
    sim.inject(route="result", fault="not_found_page", count=1000)
    options = RunOptions(
        handle_signals=False,
        backoff=Backoff(base=0.001, cap=0.001),
        max_failures=FailureLimit.parse("off"),
    )

    left = genbatch.run_manifest(manifest, ledger=ledger, api_base=sim.base_url, options=options)

    assert not left.all_done and left.stop_error is None
    assert sim.stats.faults["not_found_page"] >= GATEWAY_PATIENCE
    env = cli_env(sim, tmp_path / "ledger.db")
    assert in_flight(status(env, tmp_path)["counts"]) == 1  # its request id kept
    sim.clear_faults()
    resumed = genbatch.run_manifest(manifest, ledger=ledger, api_base=sim.base_url, options=options)
    assert resumed.all_done
    assert (sim.stats.submissions, sim.stats.duplicate_submissions) == (1, 0)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"error_code": 500002, "error_message": "busy"}),  # a code the contract lacks
        (200, {"error_code": 400001, "error_message": "model not found"}),  # not a poll's
        (400, {"error_code": 400003, "error_message": "?"}),
    ],
)
def test_a_poll_answered_with_a_code_the_contract_does_not_give_it_is_asked_again(
    status: int, body: dict[str, object]
) -> None:
    # Only the API's own words end a paid job (a result's failed status, 404001, 403001).
    import anyio

    from genbatch.client import RunComfyClient
    from genbatch.errors import Disposition, GatewayError

    def api(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    async def poll() -> None:
        async with RunComfyClient(
            base_url="https://model-api.runcomfy.net", token="t", transport=httpx.MockTransport(api)
        ) as client:
            await client.result("req-1")

    with pytest.raises(GatewayError) as raised:
        anyio.run(poll)
    assert raised.value.on_poll is Disposition.RETRY_LATER


def test_one_request_of_another_account_among_the_runs_own_is_left_and_the_run_goes_on(
    tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The token has seen the run's first request: a 403001 for the second says that one alone
    # is another account's. Stopping every run at it would leave it in the way for good.
    import genbatch
    from genbatch.events import Event, JobEvent
    from genbatch.runner import RunOptions

    monkeypatch.setenv("RUNCOMFY_TOKEN", sim.token)
    manifest = kling_manifest(tmp_path, 2)
    ledger = str(tmp_path / "ledger.db")

    def after_the_first_is_done(event: Event) -> None:
        if isinstance(event, JobEvent) and event.state is JobState.DONE:
            sim.inject(route="result", fault="other_account", count=1)

    options = RunOptions(handle_signals=False)
    left = genbatch.run_manifest(
        manifest,
        ledger=ledger,
        api_base=sim.base_url,
        concurrency=1,
        options=options,
        events=after_the_first_is_done,
    )

    assert left.stop_error is None and not left.all_done
    assert left.counts[JobState.DONE] == 1 and sim.stats.faults["other_account"] == 1
    resumed = genbatch.run_manifest(manifest, ledger=ledger, api_base=sim.base_url, options=options)
    assert resumed.all_done
    assert (sim.stats.submissions, sim.stats.duplicate_submissions) == (2, 0)
