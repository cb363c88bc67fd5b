"""The polling policy: when a job is polled first, how the gaps grow, what it learns.

First the policy on its own (pure functions of numbers: no clock, no API), then through the CLI
against the simulator. The whole-process figures (calls per job, detection delays against fixed
polling) are measured in benchmarks/bench_polling.py.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from genbatch.ledger import Ledger, resolve_location
from genbatch.polling import GenerationTimes, PollPolicy, generation_seconds
from genbatch.simulator import Simulator, SimulatorConfig
from genbatch.states import JobState

from support import KLING, cli_env, genbatch, kling_manifest, run_args


def poll_times(policy: PollPolicy, history: GenerationTimes, until: float) -> list[float]:
    """When a job of KLING is polled (seconds after its submit's answer) while unfinished."""
    times = [policy.first_delay(history, KLING)]
    while times[-1] < until:
        times.append(times[-1] + policy.next_delay(times[-1]))
    return times


def noticed(times: list[float], finished: float) -> float:
    return next(t for t in times if t >= finished)


def history_of(*seconds: float) -> GenerationTimes:
    history = GenerationTimes()
    for value in seconds:
        history.add(KLING, value)
    return history


def test_without_history_a_job_is_first_polled_after_an_eighth_of_the_interval() -> None:
    assert PollPolicy(interval=2.0).first_delay(GenerationTimes(), KLING) == 0.25
    assert PollPolicy(interval=2.0, first_poll=1.5).first_delay(GenerationTimes(), KLING) == 1.5


def test_with_history_the_first_poll_aims_at_the_models_fast_generations() -> None:
    history = history_of(*range(100, 200))  # the 10th percentile is 109.9 s

    assert PollPolicy().first_delay(history, KLING) == pytest.approx(0.9 * 109.9)
    assert PollPolicy().first_delay(history, "another/model") == 0.25


def test_a_model_that_finishes_at_once_is_polled_at_once() -> None:
    assert PollPolicy().first_delay(history_of(0.0, 0.0, 0.01), KLING) == 0.0


def test_gaps_are_the_interval_then_a_tenth_of_the_jobs_age_then_capped() -> None:
    policy = PollPolicy(interval=2.0, max_interval=30.0)

    assert policy.next_delay(1.0) == 2.0
    assert policy.next_delay(100.0) == pytest.approx(10.0)
    assert policy.next_delay(3600.0) == 30.0
    assert PollPolicy(interval=60.0).next_delay(3600.0) == 60.0  # a longer interval wins


@pytest.mark.parametrize("history", [(), (20.0, 25.0, 30.0), (200.0, 240.0, 300.0)])
def test_a_job_is_noticed_at_most_a_tenth_of_its_time_or_one_interval_late(
    history: tuple[float, ...],
) -> None:
    policy = PollPolicy()
    times = poll_times(policy, history_of(*history), until=4000.0)
    earliest = times[0]
    for finished in (earliest + i * 0.37 for i in range(1, 8000)):
        late = noticed(times, finished) - finished
        assert late <= max(policy.growth * finished, policy.interval) + 1e-9


def test_polls_grow_with_the_logarithm_of_the_generation_time() -> None:
    # No history: 0.25 s, then every 2 s until 10% of the age passes 2 s (20 s), then 10% more
    # each time until the gap reaches 30 s (at 300 s), then every 30 s.
    times = poll_times(PollPolicy(), GenerationTimes(), until=3600.0)

    five_minutes = len([t for t in times if t <= 300.0])
    assert five_minutes <= 11 + math.ceil(math.log(300 / 20) / math.log(1.1)) + 1
    assert len(times) - five_minutes <= math.ceil(3300 / 30) + 1


def test_a_job_waiting_in_the_queue_costs_no_more_than_fixed_polling() -> None:
    # The gaps grow from the submit, whatever the job is doing: waiting in the remote queue
    # costs no more polls than the official client's fixed 2 s polling (one per 2 s).
    for waited in (5.0, 60.0, 600.0):
        polls = len([t for t in poll_times(PollPolicy(), GenerationTimes(), waited) if t < waited])
        assert polls <= 1 + math.ceil(waited / 2.0)


def test_history_with_a_tighter_schedule_needs_fewer_polls() -> None:
    # Generations of 20 to 50 s: 30 earlier ones in the ledger.
    earlier = [20.0 + i for i in range(31)]
    first = poll_times(PollPolicy(), GenerationTimes(), until=35.0)
    informed = poll_times(PollPolicy(), history_of(*earlier), until=35.0)

    assert len(informed) * 2 < len(first)


def test_the_history_keeps_the_most_recent_times_of_each_model() -> None:
    history = GenerationTimes(size=3)
    for seconds in (1.0, 2.0, 100.0, 200.0, 300.0):
        history.add(KLING, seconds)

    assert history.quantile(KLING, 0.0) == 100.0
    assert history.quantile(KLING, 1.0) == 300.0
    assert history.quantile(KLING, 0.5) == 200.0
    assert history.quantile("another/model", 0.5) is None


def test_scaling_a_policy_scales_its_times_not_its_fractions() -> None:
    scaled = PollPolicy(interval=2.0, max_interval=30.0).scaled(0.1)

    assert (scaled.interval, scaled.max_interval) == pytest.approx((0.2, 3.0))
    assert scaled.first_delay(GenerationTimes(), KLING) == pytest.approx(0.025)
    assert (scaled.growth, scaled.quantile, scaled.margin) == (0.10, 0.10, 0.9)


@pytest.mark.parametrize(
    ("created", "finished", "seconds"),
    [
        ("2026-11-27T10:00:00.000000+00:00", "2026-11-27T10:04:01.500000+00:00", 241.5),
        ("2026-11-27T10:00:00Z", "2026-11-27T11:00:00+01:00", 0.0),
        ("2026-11-27T10:00:00+00:00", None, None),
        (None, "2026-11-27T10:00:00+00:00", None),
        ("yesterday", "2026-11-27T10:00:00+00:00", None),
        ("2026-11-27T10:00:00", "2026-11-27T10:00:01+00:00", None),  # naive against aware
        ("2026-11-27T10:00:05+00:00", "2026-11-27T10:00:00+00:00", None),  # finished first
    ],
)
def test_a_generation_time_is_read_from_the_apis_own_timestamps(
    created: str | None, finished: str | None, seconds: float | None
) -> None:
    assert generation_seconds(created, finished) == seconds


# -- through the CLI, against the simulator ----------------------------------------------------


def polls(sim: Simulator) -> int:
    return sim.stats.calls["result"] + sim.stats.calls["status"]


def test_a_second_run_of_a_model_polls_less_than_the_first(tmp_path: Path) -> None:
    # 240 s clips scaled to about 0.7 s. The first run knows nothing of the model: it polls
    # early and often; the second reads the first's generation times from the ledger.
    with Simulator(SimulatorConfig(time_scale=0.003, capacity=20, seed=11)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        first = genbatch(
            run_args(kling_manifest(tmp_path, 6, name="first.yaml", prefix="first")),
            env=env,
            cwd=tmp_path,
        )
        first_polls = polls(sim)
        second = genbatch(
            run_args(kling_manifest(tmp_path, 6, name="second.yaml", prefix="second")),
            env=env,
            cwd=tmp_path,
        )
        second_polls = polls(sim) - first_polls

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert sim.stats.submissions == 12
    assert second_polls * 2 < first_polls


def test_a_generation_seen_waiting_in_the_queue_is_not_taken_for_the_models_speed(
    tmp_path: Path,
) -> None:
    # One remote slot, three jobs at once: the second and third wait in the remote queue.
    with Simulator(SimulatorConfig(time_scale=0.002, capacity=1, seed=12)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(run_args(kling_manifest(tmp_path, 3)), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    ledger = Ledger.open(resolve_location(str(tmp_path / "ledger.db")))
    try:
        recorded = ledger.generation_times(KLING, 10)
    finally:
        ledger.close()
    (info,) = [i for i in sim.records.list() if i.started_at == i.created_at]
    assert recorded == [pytest.approx((info.finished_at - info.created_at).total_seconds())]


def test_a_rehearsal_with_simulate_leaves_no_generation_times_for_a_real_run(
    tmp_path: Path,
) -> None:
    manifest = kling_manifest(tmp_path, 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCOMFY_", "GENBATCH_"))}
    done = genbatch(["run", str(manifest), "--simulate"], env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    # (It keeps its own ledger beside the real one, too: the real one is not even made.)
    assert not (tmp_path / ".genbatch" / "ledger.db").exists()
    ledger = Ledger.open(resolve_location(str(tmp_path / ".genbatch" / "ledger.simulated.db")))
    try:
        assert ledger.counts(ledger.runs()[0].id)[JobState.DONE] == 2
        assert ledger.generation_times(KLING, 10) == []
    finally:
        ledger.close()
