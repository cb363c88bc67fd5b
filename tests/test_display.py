"""What a person (or a script) sees of a run: the live display, the line log, JSON events."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from genbatch.batch import run_manifest
from genbatch.progress import ProgressTracker
from genbatch.runner import RunOptions
from genbatch.simulator import Simulator, SimulatorConfig
from genbatch.states import JobState
from genbatch.throttle import Slots
from genbatch.ui import LiveDisplay

from support import cli_env, genbatch, kling_manifest, run_args


def test_the_live_display_shows_progress_counts_in_flight_spend_and_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    manifest = kling_manifest(tmp_path, 4)
    with Simulator(SimulatorConfig(time_scale=0.0005, seed=51)) as sim:
        sim.inject(route="submit", fault="fail", count=1)
        counts = {state: 0 for state in JobState} | {JobState.PENDING: 4}
        monkeypatch.setenv("RUNCOMFY_API_BASE", sim.base_url)
        monkeypatch.setenv("RUNCOMFY_TOKEN", sim.token)
        with LiveDisplay(counts, console=console) as display:
            summary = run_manifest(
                manifest,
                ledger=str(tmp_path / "ledger.db"),
                options=RunOptions(handle_signals=False, gauge_interval=0.01),
                events=ProgressTracker(display, counts, every=0.0),
            )

    shown = screen.getvalue()
    assert summary.counts[JobState.DONE] == 3
    assert "4/4" in shown
    assert "done 3" in shown and "failed 1" in shown
    assert "in flight" in shown and "spent ~$" in shown
    assert "recent problems" in shown
    assert "ETA --:--" in shown  # before the first job ended
    last_frame = shown.rsplit("genbatch", 1)[-1]
    assert "ETA 0:00" in last_frame and "in flight 0/" in last_frame  # how the run ended


def test_json_events_carry_job_states_and_the_runs_vital_signs(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(time_scale=0.01, seed=52)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(
            ["run", str(kling_manifest(tmp_path, 3)), "--json", "--poll-interval", "0.02"],
            env=env,
            cwd=tmp_path,
        )

    events = [json.loads(line) for line in done.stdout.splitlines()]
    gauges = [e for e in events if e["event"] == "gauge"]
    assert gauges
    assert all(0 <= g["in_flight"] <= g["limit"] <= g["max_limit"] for g in gauges)
    assert gauges[-1]["spent_usd"] > 0
    jobs = [e for e in events if e["event"] == "job"]
    assert {(e["previous"], e["state"]) for e in jobs} >= {
        ("pending", "submitting"),
        ("fetching", "done"),
    }


def test_a_run_with_nothing_left_to_do_reports_nothing_in_flight(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(time_scale=0.0005, seed=54)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 2)
        assert genbatch(run_args(manifest), env=env, cwd=tmp_path).returncode == 0
        again = genbatch(["run", str(manifest), "--json"], env=env, cwd=tmp_path)

    gauges = [e for e in map(json.loads, again.stdout.splitlines()) if e["event"] == "gauge"]
    assert gauges
    assert {g["in_flight"] for g in gauges} == {0}


def test_the_line_log_is_used_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(time_scale=0.0005, seed=53)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        done = genbatch(
            ["run", str(kling_manifest(tmp_path, 2)), "--poll-interval", "0.01"],
            env=env,
            cwd=tmp_path,
        )

    lines = done.stderr.splitlines()
    assert sum(line.split()[1:2] == ["done"] for line in lines) == 2  # a line per job done
    assert any("progress 2/2 done" in line for line in lines)
    assert "\x1b[" not in done.stderr  # no terminal escapes in a log


def test_rate_limiting_cuts_the_concurrency_once_per_burst_and_it_grows_back() -> None:
    async def scenario() -> list[int]:
        slots = Slots(8)
        seen = [slots.limit]
        slots.on_rate_limited()
        slots.on_rate_limited()  # the same burst: no second cut
        seen.append(slots.limit)
        for _ in range(6 + 7):
            slots.on_accepted()
        seen.append(slots.limit)
        return seen

    assert anyio.run(scenario) == [8, 6, 8]
