"""Progress reports and the ETA: what an overnight log and a script read as the run goes.

The tracker is driven through its own interface (events in, events out) on a hand-set clock; the
CLI tests read the plain log and the ``--json`` events of real runs against the simulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch.events import Event, JobEvent, RunGauge, RunProgress, RunStarted
from genbatch.progress import RECENT_JOBS, ProgressTracker, format_eta
from genbatch.simulator import Simulator, SimulatorConfig
from genbatch.states import JobState

from support import cli_env, genbatch, kling_manifest, run_args


@pytest.fixture
def sim() -> Iterator[Simulator]:
    # A Kling clip takes about 0.24 s: ten of them two at a time give a log worth reading.
    with Simulator(SimulatorConfig(time_scale=0.001, capacity=8, seed=31)) as simulator:
        yield simulator


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def job(key: str, previous: JobState, state: JobState) -> JobEvent:
    return JobEvent(key=key, ordinal=int(key), state=state, previous=previous)


def gauge(in_flight: int, limit: int = 2) -> RunGauge:
    return RunGauge(
        in_flight=in_flight, limit=limit, max_limit=limit, backoff_seconds=0.0, spent_usd=1.5
    )


def submit_and_finish(track: ProgressTracker, clock: Clock, key: str, seconds: float) -> None:
    track(job(key, JobState.PENDING, JobState.SUBMITTING))
    track(job(key, JobState.SUBMITTING, JobState.QUEUED))
    clock.now += seconds
    track(job(key, JobState.QUEUED, JobState.DONE))


def started(*, jobs: int, new: int, to_submit: int) -> RunStarted:
    return RunStarted(
        run="r",
        jobs=jobs,
        new=new,
        done=0,
        to_submit=to_submit,
        reattached=0,
        concurrency=2,
        ledger="l",
        api="a",
    )


def first_progress(events: list[dict[str, object]]) -> dict[str, object]:
    return next(e for e in events if e["event"] == "progress")


def reports(seen: list[Event]) -> list[RunProgress]:
    return [e for e in seen if isinstance(e, RunProgress)]


def test_every_event_is_passed_on_and_a_report_comes_at_each_tenth_of_the_jobs() -> None:
    seen: list[Event] = []
    clock = Clock()
    track = ProgressTracker(seen.append, {JobState.PENDING: 20}, clock=clock)

    for i in range(4):
        submit_and_finish(track, clock, str(i), 1.0)

    assert len([e for e in seen if isinstance(e, JobEvent)]) == 12
    assert [(p.done, p.total) for p in reports(seen)] == [(2, 20), (4, 20)]


def test_a_report_comes_every_30_seconds_with_the_gauges_even_when_nothing_settles() -> None:
    seen: list[Event] = []
    clock = Clock()
    track = ProgressTracker(seen.append, {JobState.PENDING: 100}, clock=clock)
    track(job("1", JobState.PENDING, JobState.SUBMITTING))

    for _ in range(65):
        clock.now += 1.0
        track(gauge(in_flight=1))

    (first, second) = reports(seen)
    assert (first.in_flight, first.limit, first.spent_usd) == (1, 2, 1.5)
    assert first.counts == {JobState.PENDING: 99, JobState.SUBMITTING: 1}
    assert second.eta_seconds is None  # nothing has finished: no basis for an ETA yet


def test_the_eta_is_the_jobs_left_times_the_typical_job_over_the_jobs_run_at_once() -> None:
    seen: list[Event] = []
    clock = Clock()
    track = ProgressTracker(seen.append, {JobState.PENDING: 10}, clock=clock)
    track(gauge(in_flight=0, limit=2))
    assert track.progress().eta_seconds is None

    submit_and_finish(track, clock, "1", 60.0)
    submit_and_finish(track, clock, "2", 100.0)
    submit_and_finish(track, clock, "3", 80.0)

    # 7 jobs left, a job takes 80 s (the median), 2 at once.
    assert track.progress().eta_seconds == 7 * 80.0 / 2


def test_the_typical_job_is_the_median_of_the_latest_jobs_only() -> None:
    # A long run holds a bounded number of durations, and its ETA follows its current speed.
    clock = Clock()
    track = ProgressTracker(lambda _: None, {JobState.PENDING: 3 * RECENT_JOBS}, clock=clock)
    track(gauge(in_flight=0, limit=1))
    for index in range(RECENT_JOBS):
        submit_and_finish(track, clock, str(index), 100.0)
    for index in range(RECENT_JOBS):
        submit_and_finish(track, clock, str(RECENT_JOBS + index), 10.0)

    assert track.progress().eta_seconds == RECENT_JOBS * 10.0


def test_jobs_reattached_after_a_resume_do_not_count_in_the_eta() -> None:
    seen: list[Event] = []
    clock = Clock()
    track = ProgressTracker(seen.append, {JobState.PENDING: 3, JobState.RUNNING: 1}, clock=clock)

    clock.now += 0.5
    track(job("9", JobState.RUNNING, JobState.DONE))  # seen for half a second of its life

    assert track.progress().eta_seconds is None
    assert format_eta(track.progress().eta_seconds) == "--:--"


def test_before_any_job_ends_the_eta_comes_from_earlier_runs_then_from_this_one() -> None:
    seen: list[Event] = []
    clock = Clock()
    track = ProgressTracker(seen.append, {JobState.PENDING: 4}, expected_seconds=30.0, clock=clock)
    track(started(jobs=4, new=4, to_submit=4))
    assert not reports(seen)  # the runner's start may still move jobs...
    track(gauge(in_flight=0, limit=2))
    assert reports(seen)[0].eta_seconds == 4 * 30.0 / 2  # ...reported with its first gauge

    submit_and_finish(track, clock, "1", 10.0)

    assert track.progress().eta_seconds == 3 * 10.0 / 2


def test_the_first_report_counts_the_jobs_the_runners_start_moved() -> None:
    # A resume after a kill -9: two jobs were caught submitting, one unknown is resubmitted.
    seen: list[Event] = []
    track = ProgressTracker(
        seen.append,
        {JobState.PENDING: 1, JobState.SUBMITTING: 2, JobState.UNKNOWN: 1},
        clock=Clock(),
    )
    track(started(jobs=4, new=0, to_submit=1))
    track(job("1", JobState.SUBMITTING, JobState.UNKNOWN))
    track(job("2", JobState.SUBMITTING, JobState.UNKNOWN))
    track(job("3", JobState.UNKNOWN, JobState.PENDING))
    track(gauge(in_flight=0, limit=2))

    [first] = reports(seen)
    assert first.counts == {JobState.PENDING: 2, JobState.UNKNOWN: 2}
    assert (first.in_flight, first.total) == (0, 4)


def test_eta_formats() -> None:
    assert [format_eta(s) for s in (0.0, 59.6, 250.0, 3900.0)] == [
        "0:00",
        "1:00",
        "4:10",
        "1:05:00",
    ]


# -- through the CLI ------------------------------------------------------------------------


def test_the_plain_log_shows_progress_with_counts_and_eta(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")

    done = genbatch(run_args(kling_manifest(tmp_path, 10), "-c", "2"), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if " progress " in line]
    assert len(lines) >= 5  # at each tenth of the ten jobs at least every other one
    assert "progress 10/10 done" in lines[-1] and "ETA 0:00" in lines[-1]
    assert "in flight" in lines[0] and "ETA " in lines[0]


def test_json_events_start_with_run_started_and_end_with_run_finished(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 4)

    done = genbatch(run_args(manifest, "-c", "2", "--json"), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    first, last = events[0], events[-1]
    assert first["event"] == "run_started"
    assert (first["jobs"], first["new"], first["to_submit"], first["reattached"]) == (4, 4, 4, 0)
    assert str(tmp_path / "ledger.db") in first["ledger"]
    assert last["event"] == "run_finished"
    assert (last["counts"], last["exit_code"], last["next"]) == ({"done": 4}, 0, None)
    progress = [e for e in events if e["event"] == "progress"]
    assert progress and progress[-1]["done"] == 4 and progress[-1]["eta_seconds"] == 0
    assert first_progress(events)["eta_seconds"] is None  # no history

    kling_manifest(tmp_path, 8)  # four more jobs of the same model
    again = genbatch(run_args(manifest, "-c", "2", "--json"), env=env, cwd=tmp_path)
    events = [json.loads(line) for line in again.stdout.splitlines()]
    # Before any of the four ends, the ETA comes from the generation times of the first run.
    assert first_progress(events)["eta_seconds"] > 0


def test_a_budget_stop_exits_5_and_says_the_exact_command_to_go_on(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 3)

    stopped = genbatch(run_args(manifest, "--budget", "0", "--json"), env=env, cwd=tmp_path)

    assert stopped.returncode == 5, stopped.stderr
    finished = json.loads(stopped.stdout.splitlines()[-1])
    assert finished["event"] == "run_finished" and finished["exit_code"] == 5
    # The options given are repeated (run_args gives --poll-interval), the budget asked anew.
    command = f"genbatch run {manifest} --budget USD --poll-interval 0.01 --json"
    assert finished["next"] == command
    assert f"genbatch: next: {command}" in stopped.stderr


def test_no_report_shows_the_runners_start_half_done() -> None:
    # The start's moves come one event at a time: a tenth crossed on the way is no reason to
    # report a state the ledger never held (one job unknown, the other still submitting).
    seen: list[Event] = []
    track = ProgressTracker(
        seen.append, {JobState.SUBMITTING: 2, JobState.PENDING: 8}, clock=Clock()
    )
    track(started(jobs=10, new=0, to_submit=8))
    track(job("1", JobState.SUBMITTING, JobState.UNKNOWN))
    track(job("2", JobState.SUBMITTING, JobState.UNKNOWN))
    track(gauge(in_flight=0, limit=2))

    [first] = reports(seen)
    assert first.counts == {JobState.PENDING: 8, JobState.UNKNOWN: 2}
