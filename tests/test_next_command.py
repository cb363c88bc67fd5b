"""The command a run suggests next (``genbatch: next: ...``, ``run_finished``'s ``next``) repeats
the options the user gave, never a ledger password; reports cut short by a closed pipe exit 141.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from conftest import MakeSimulator
from genbatch.simulator import Simulator

from support import (
    cli_env,
    genbatch,
    kill,
    kling_manifest,
    run_args,
    start_genbatch,
    status,
    wait_until,
)

DEAD_API = "http://127.0.0.1:9"
"""Nothing listens there: a command that forgot ``--api-base`` fails against it."""


def _next_line(stderr: str) -> str:
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("genbatch: next: "), stderr
    return last.removeprefix("genbatch: next: ")


def _run_next(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    words = shlex.split(command)
    assert words[0] == "genbatch"
    return genbatch(words[1:], env=env, cwd=cwd)


def _finished(stdout: str) -> dict[str, object]:
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events[-1]["event"] == "run_finished", stdout
    finished: dict[str, object] = events[-1]
    return finished


def test_the_next_command_repeats_every_run_option_given(
    tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(fail_rate=1.0)
    env = cli_env(sim, tmp_path / "not-this.db", RUNCOMFY_API_BASE=DEAD_API)
    manifest = kling_manifest(tmp_path, 3)
    ledger = tmp_path / "custom ledger.db"
    given = [
        "--concurrency",
        "2",
        "--budget",
        "100",
        "--api-base",
        sim.base_url,
        "--ledger",
        str(ledger),
        "--max-failures",
        "off",
        "--poll-interval",
        "0.01",
        "--resubmit-unknown",
        "--json",
    ]

    first = genbatch(["run", "sweep.yaml", *given], env=env, cwd=tmp_path)

    assert first.returncode == 1, first.stderr
    expected = shlex.join(
        [
            "genbatch",
            "retry",
            "sweep.yaml",
            "--failed",
            # A stable order; --resubmit-unknown is one-shot: it may pay twice, never repeated.
            *("--ledger", str(ledger), "--api-base", sim.base_url, "--concurrency", "2"),
            *("--budget", "100", "--max-failures", "off", "--poll-interval", "0.01", "--json"),
        ]
    )
    assert _next_line(first.stderr) == expected
    assert _finished(first.stdout)["next"] == expected
    submitted = sim.stats.submissions
    assert submitted == 3 and manifest.exists()

    again = _run_next(expected, env, tmp_path)

    # The suggested command runs as is: the same simulator, the same ledger, the same options.
    assert again.returncode == 1, again.stderr
    assert sim.stats.submissions == 2 * submitted
    assert _next_line(again.stderr) == expected
    assert not (tmp_path / "not-this.db").exists()


def test_the_next_command_names_only_what_was_given(tmp_path: Path, simulator: Simulator) -> None:
    env = cli_env(simulator, tmp_path / "ledger.db")
    kling_manifest(tmp_path, 2)

    done = genbatch(["run", "sweep.yaml", "--budget", "0.1"], env=env, cwd=tmp_path)

    assert done.returncode == 5, done.stderr
    # The budget the run stopped at is replaced, not repeated; the ledger came from the
    # environment, which the next command reads too.
    assert _next_line(done.stderr) == "genbatch run sweep.yaml --budget USD"


@pytest.mark.parametrize("where", ["before @", "in the query"])
def test_a_ledger_password_is_never_printed(
    tmp_path: Path, make_simulator: MakeSimulator, postgres_url: str, where: str
) -> None:
    secret = "PgPw1234secret"
    given = make_url(postgres_url)
    given = (
        given.set(password=secret)
        if where == "before @"
        else given.update_query_dict({"password": secret})
    )
    url = given.render_as_string(hide_password=False)
    sim = make_simulator(fail_rate=1.0)
    env = cli_env(sim, tmp_path / "unused.db")
    kling_manifest(tmp_path, 2)
    args = ["--ledger", url, "--poll-interval", "0.01", "--max-failures", "off"]

    first = genbatch(["run", "sweep.yaml", *args, "--json"], env=env, cwd=tmp_path)
    second = genbatch(["run", "sweep.yaml", *args], env=env, cwd=tmp_path)

    assert first.returncode == 1, first.stderr
    assert second.returncode == 1, second.stderr
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert secret not in output
    command = _next_line(second.stderr)
    assert "PGPASSWORD" in second.stderr.strip().splitlines()[-2]
    assert "to run them again: genbatch retry sweep.yaml --failed --ledger" in second.stderr
    # The command still works where the server needs no password (or PGPASSWORD gives it).
    assert _run_next(command, env, tmp_path).returncode == 1
    assert sim.stats.submissions == 4  # the second `run` left the failed jobs alone


def _closed_pipe_run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """``genbatch ARGS`` with its stdout a pipe nobody reads any more (``... | head -1``)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "genbatch", *args],
            env=env,
            cwd=cwd,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


def test_status_and_runs_cut_short_by_a_closed_pipe_exit_141_in_silence(
    tmp_path: Path, simulator: Simulator
) -> None:
    env = cli_env(simulator, tmp_path / "ledger.db")
    kling_manifest(tmp_path, 1)
    assert (
        genbatch(["run", "sweep.yaml", "--poll-interval", "0.01"], env=env, cwd=tmp_path).returncode
        == 0
    )

    for args in (["status", "sweep.yaml"], ["status"], ["runs"]):
        code, stderr = _closed_pipe_run(args, env, tmp_path)

        # Not 1, which says "some jobs are not done" to a script; and no word on stderr: the
        # reader has what it wanted, as after `git log | head -1`.
        assert (code, stderr) == (141, ""), args


def test_the_status_table_is_titled_by_what_it_shows(tmp_path: Path, simulator: Simulator) -> None:
    env = cli_env(simulator, tmp_path / "ledger.db")
    kling_manifest(tmp_path, 1)
    assert (
        genbatch(["run", "sweep.yaml", "--poll-interval", "0.01"], env=env, cwd=tmp_path).returncode
        == 0
    )

    shown = genbatch(["status"], env=env, cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[0].strip() == "jobs per state"


def test_jobs_cancelled_by_genbatch_cancel_are_no_warning_in_the_run_they_leave(
    tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    # Capacity 1 and long generations: one job runs, two wait in the remote queue.
    sim = make_simulator(time_scale=0.1, capacity=1, seed=25)
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 6)
    runner = start_genbatch(run_args(manifest, "-c", "3"), env=env, cwd=tmp_path)
    wait_until(
        lambda: sum(status(env, tmp_path)["counts"][s] for s in ("queued", "running")) == 3,
        what="three submits recorded as accepted",
    )

    assert genbatch(["cancel", str(manifest)], env=env, cwd=tmp_path).returncode == 0
    polls = sim.stats.calls["result"]
    # The run polls its jobs and finds two of them cancelled in the ledger already.
    wait_until(lambda: sim.stats.calls["result"] >= polls + 12, what="the run to poll")
    _, _, stderr = kill(runner, signal.SIGINT)

    assert "lets go of it" not in stderr
    assert "cannot" not in stderr
    assert len(re.findall(r"\bcancelled +#\d", stderr)) == 2, stderr


def test_a_second_ctrl_c_exits_at_once_with_the_command_that_resumes(
    tmp_path: Path, simulator: Simulator
) -> None:
    env = cli_env(simulator, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 3)
    simulator.inject(route="submit", fault="slow", delay=30)  # created, its answer 30 s late
    args = run_args(manifest, "-c", "1", "--budget", "100")
    process = start_genbatch(args, env=env, cwd=tmp_path)
    assert process.stderr is not None
    wait_until(lambda: len(simulator.records) == 1, what="the first submit")

    process.send_signal(signal.SIGINT)  # waits for the submit's answer...
    for line in process.stderr:
        if "interrupted: recording submissions in flight" in line:
            break
    code, _, stderr = kill(process, signal.SIGINT)  # ...unless told twice

    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert "exited at once" in stderr
    # The options given are carried, as in any other `next:` line; the job whose answer never
    # came is `unknown` for that run, not sent again.
    assert shlex.split(_next_line(stderr)) == [
        "genbatch",
        "run",
        str(manifest),
        "--concurrency",
        "1",
        "--budget",
        "100",
        "--poll-interval",
        "0.01",
    ]
    resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert status(env, tmp_path)["counts"]["unknown"] == 1, resumed.stderr
    assert len(simulator.records) == 3  # the two pending jobs; the unknown one not again
