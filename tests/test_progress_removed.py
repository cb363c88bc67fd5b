"""Progress that stays true: jobs removed from the manifest while in flight, downloads, the spend.

A run resumed after its manifest was edited re-attaches the jobs it removed that were in flight
(they are paid for, their files are kept): they count apart, never in the manifest's progress.
Downloads are not requests in flight, and the spend in a progress report is the run's at that
moment. Through the CLI against the simulator, and the tracker and the log through their own
interfaces.
"""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import pytest

from genbatch.events import Event, JobEvent, RunGauge, RunProgress
from genbatch.progress import ProgressTracker
from genbatch.simulator import Simulator, SimulatorConfig
from genbatch.states import JobState
from genbatch.ui import LineLog, describe_progress

from support import (
    cli_env,
    genbatch,
    kill,
    kling_manifest,
    output_files,
    run_args,
    start_genbatch,
    status,
    wait_until,
)


def move(key: str, previous: JobState, state: JobState, spent_usd: float | None = None) -> JobEvent:
    return JobEvent(key=key, ordinal=int(key), state=state, previous=previous, spent_usd=spent_usd)


def removed(key: str, previous: JobState, state: JobState) -> JobEvent:
    return JobEvent(key=key, ordinal=int(key), state=state, previous=previous, in_manifest=False)


# -- the tracker and the log, through their own interfaces -----------------------------------


def test_jobs_no_longer_in_the_manifest_count_apart_from_its_progress() -> None:
    seen: list[Event] = []
    track = ProgressTracker(seen.append, {JobState.PENDING: 2})
    for key in ("7", "8", "9"):  # re-attached, announced as they are
        track(removed(key, JobState.RUNNING, JobState.RUNNING))
    assert track.progress().removed_finishing == 3

    for key in ("7", "8"):
        track(removed(key, JobState.RUNNING, JobState.FETCHING))
        track(removed(key, JobState.FETCHING, JobState.DONE))
    track(removed("9", JobState.RUNNING, JobState.PENDING))  # to retry: never claimed again
    progress = track.progress()

    assert (progress.total, progress.done, progress.in_flight) == (2, 0, 0)
    assert progress.counts == {JobState.PENDING: 2}
    assert progress.removed_finishing == 0
    assert progress.eta_seconds is None  # nothing of the manifest has ended: no basis yet
    assert all(p.done <= p.total for p in seen if isinstance(p, RunProgress))


def test_a_job_downloading_its_files_is_not_a_request_in_flight() -> None:
    track = ProgressTracker(lambda _: None, {JobState.RUNNING: 3, JobState.PENDING: 1})
    track(move("1", JobState.RUNNING, JobState.FETCHING))

    progress = track.progress()

    assert progress.in_flight == 2
    assert progress.counts[JobState.FETCHING] == 1
    assert "fetching 1 · in flight 2/" in describe_progress(progress)


def test_the_spend_reported_is_the_latest_known_not_the_last_gauge() -> None:
    track = ProgressTracker(lambda _: None, {JobState.PENDING: 2})
    track(RunGauge(in_flight=0, limit=2, max_limit=2, backoff_seconds=0.0, spent_usd=0.0))
    track(move("0", JobState.PENDING, JobState.SUBMITTING, spent_usd=0.7))
    track(move("1", JobState.PENDING, JobState.SUBMITTING, spent_usd=1.4))

    assert track.progress().spent_usd == 1.4


def test_the_log_names_a_removed_job_by_its_key_and_the_progress_line_counts_it_apart() -> None:
    stream = io.StringIO()
    log = LineLog(stream)
    track = ProgressTracker(log, {JobState.PENDING: 2})

    track(removed("5", JobState.RUNNING, JobState.RUNNING))
    track(move("0", JobState.PENDING, JobState.SUBMITTING))
    track(move("1", JobState.PENDING, JobState.SUBMITTING))
    log(track.progress())

    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("running    removed 5")
    assert "#5" not in stream.getvalue()
    assert "progress 0/2 done · in flight 2/1 · removed jobs finishing 1" in lines[-1]


# -- through the CLI ------------------------------------------------------------------------


def test_a_resume_after_jobs_in_flight_were_removed_keeps_the_manifests_progress_true(
    tmp_path: Path,
) -> None:
    with Simulator(SimulatorConfig(time_scale=0.01, capacity=8, seed=41)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 20, extra="inputs:\n  duration: 5\n")
        process = start_genbatch(run_args(manifest, "-c", "6"), env=env, cwd=tmp_path)
        wait_until(lambda: status(env, tmp_path)["counts"]["running"] >= 3, what="jobs in flight")
        code, _, stderr = kill(process, signal.SIGTERM)
        assert code == 130, stderr
        attached = sum(
            status(env, tmp_path)["counts"][s] for s in ("queued", "running", "fetching")
        )
        assert attached >= 3
        listed = genbatch(["runs", "--json"], env=env, cwd=tmp_path)
        assert "interrupted" in json.loads(listed.stdout)[0]["stop_reason"]

        # Two new jobs (another duration): every job of the first manifest is removed.
        kling_manifest(tmp_path, 2, extra="inputs:\n  duration: 10\n")
        again = genbatch(run_args(manifest, "-c", "6", "--json"), env=env, cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    for report in progress:
        assert report["total"] == 2
        assert 0 <= report["done"] <= 2 and 0 <= report["in_flight"] <= report["limit"]
        assert report["eta_seconds"] is None or report["eta_seconds"] >= 0
    assert progress[-1]["done"] == 2 and progress[-1]["removed_finishing"] == 0
    jobs = [e for e in events if e["event"] == "job"]
    gone = [e for e in jobs if not e["in_manifest"]]
    assert len({e["key"] for e in gone}) == attached
    assert all(e["index"] is None for e in gone)
    assert sorted({e["index"] for e in jobs if e["in_manifest"]}) == [0, 1]
    notices = [e["message"] for e in events if e["event"] == "notice"]
    assert any(
        f"{attached} job(s) no longer in the manifest are still finishing" in n for n in notices
    )
    # The removed jobs' files are kept beside the new ones.
    assert len(output_files(tmp_path / "out")) >= attached + 2
    finished = events[-1]
    assert finished["event"] == "run_finished" and finished["stop_reason"] is None
    assert progress[-1]["spent_usd"] == pytest.approx(finished["spent_usd"])
    # The run's spend is what the account paid, the removed jobs' included (they count in the
    # budget too): not the new manifest's alone.
    assert finished["spent_usd"] == pytest.approx(sim.stats.billed_usd)


def test_the_spend_in_a_short_runs_progress_is_the_runs_at_that_moment(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(time_scale=0.001, capacity=8, seed=42)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(
            run_args(kling_manifest(tmp_path, 8), "-c", "4", "--json"), env=env, cwd=tmp_path
        )

    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    progress = [e for e in events if e["event"] == "progress"]
    # Every report after the first submits counts them: none says ~$0.00 with jobs done.
    assert all(p["spent_usd"] > 0 for p in progress if p["done"])
    assert progress[-1]["spent_usd"] == pytest.approx(events[-1]["spent_usd"])
    assert events[-1]["spent_usd"] > 0


def test_a_resume_counts_the_submits_a_crash_left_unknown_out_of_the_requests_in_flight(
    tmp_path: Path,
) -> None:
    with Simulator(SimulatorConfig(time_scale=0.001, capacity=8, seed=45)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 4)
        sim.inject(route="submit", fault="slow", count=2, delay=5.0)
        process = start_genbatch(run_args(manifest, "-c", "2"), env=env, cwd=tmp_path)
        wait_until(
            lambda: status(env, tmp_path)["counts"]["submitting"] == 2, what="two submits out"
        )
        kill(process)  # SIGKILL: both are left `submitting`

        resumed = genbatch(run_args(manifest, "-c", "2", "--json"), env=env, cwd=tmp_path)

    assert resumed.returncode == 1, resumed.stderr
    events = [json.loads(line) for line in resumed.stdout.splitlines()]
    caught = [e for e in events if e["event"] == "job" and e["previous"] == "submitting"]
    assert [e["state"] for e in caught][:2] == ["unknown", "unknown"]
    progress = [e for e in events if e["event"] == "progress"]
    assert all(p["in_flight"] <= p["limit"] for p in progress[1:])
    assert progress[-1]["counts"] == {"done": 2, "unknown": 2}
    assert progress[-1]["in_flight"] == 0


def test_a_removed_jobs_warnings_name_it_removed_not_by_a_number_of_the_new_manifest(
    tmp_path: Path,
) -> None:
    with Simulator(SimulatorConfig(time_scale=0.01, capacity=8, seed=43)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 6, extra="inputs:\n  duration: 5\n")
        process = start_genbatch(run_args(manifest, "-c", "3"), env=env, cwd=tmp_path)
        wait_until(lambda: status(env, tmp_path)["counts"]["running"] >= 2, what="jobs in flight")
        assert kill(process, signal.SIGTERM)[0] == 130
        # Every old job removed; every file refused (too large), each with its warning.
        kling_manifest(tmp_path, 1, extra="max_file_size: 10\ninputs:\n  duration: 10\n")
        again = genbatch(run_args(manifest, "-c", "3", "--json"), env=env, cwd=tmp_path)

    events = [json.loads(line) for line in again.stdout.splitlines()]
    removed = {e["key"] for e in events if e["event"] == "job" and not e["in_manifest"]}
    failed = [
        e["message"]
        for e in events
        if e["event"] == "notice" and "change max_file_size" in e["message"]
    ]
    assert removed and failed, again.stderr
    for message in failed:
        label, key = message.split(":")[0].split()
        assert label == ("removed" if key in removed else "#0"), message
    assert any(m.startswith("removed ") for m in failed), failed
