"""Fatal paths: whatever ends a run (its output closed, its ledger full, the API gone, a signal
at start-up, hostile input), it ends with one line, a documented exit code, and every request
id it received either recorded or printed."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch.simulator import Simulator, SimulatorConfig

from support import (
    cli_env,
    genbatch,
    kill,
    kling_manifest,
    mounted_tmpfs,
    run_args,
    start_genbatch,
    status,
    wait_until,
)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=0.002, capacity=8, seed=41)) as simulator:
        yield simulator


def _nothing_lost(
    env: dict[str, str], cwd: Path, sim: Simulator, manifest: Path, jobs: int
) -> None:
    """No job left submitting or unknown, and a resume finishes the run with no job sent twice."""
    counts = status(env, cwd)["counts"]
    assert counts["submitting"] == 0 and counts["unknown"] == 0, counts
    resumed = genbatch(run_args(manifest), env=env, cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr
    assert sim.stats.submissions == jobs


def test_a_json_log_whose_reader_leaves_early_ends_the_run_cleanly_with_exit_141(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 12)
    process = start_genbatch(run_args(manifest, "--json", "-c", "3"), env=env, cwd=tmp_path)
    assert process.stdout is not None and process.stderr is not None

    process.stdout.readline()
    process.stdout.close()  # the reader leaves, as `genbatch run --json | head -1` does
    with process:
        stderr = process.stderr.read()
    code = process.wait(timeout=60)

    assert code == 141, stderr
    assert "Traceback" not in stderr
    assert "the output was closed" in stderr
    _nothing_lost(env, tmp_path, sim, manifest, 12)


def test_a_line_log_on_a_stderr_closed_early_ends_the_run_cleanly_with_exit_141(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 12)
    process = start_genbatch(run_args(manifest, "-c", "3"), env=env, cwd=tmp_path)
    assert process.stdout is not None and process.stderr is not None

    process.stderr.readline()
    process.stderr.close()
    with process:
        stdout = process.stdout.read()
    code = process.wait(timeout=60)

    assert code == 141
    assert stdout == ""
    _nothing_lost(env, tmp_path, sim, manifest, 12)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for the ledger, mounted for the test (needs root; skipped elsewhere)."""
    with mounted_tmpfs(tmp_path / "disk", "1m") as disk:
        yield disk


def _fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; returns the filler file (remove it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (b"\0" * 65536, b"\0" * 4096, b"\0"):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk)
    finally:
        os.close(fd)
    return filler


def test_a_ledger_disk_full_when_a_request_id_arrives_prints_it_and_exits_4(
    tmp_path: Path, sim: Simulator, tiny_disk: Path
) -> None:
    env = cli_env(sim, tiny_disk / "ledger.db")
    manifest = kling_manifest(tmp_path, 2)
    sim.inject(route="submit", fault="slow", delay=1.5)  # the request is created, its answer late
    process = start_genbatch(run_args(manifest, "-c", "1"), env=env, cwd=tmp_path)
    wait_until(lambda: len(sim.records) == 1, what="the first submit")

    filler = _fill(tiny_disk)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 4, stderr
    assert "Traceback" not in stderr
    [request_id] = sim.records
    assert any(
        line.startswith(f"genbatch: unrecorded request_id={request_id} job=")
        for line in stderr.splitlines()
    ), stderr
    assert len(sim.records) == 1  # nothing was submitted once the ledger could not record
    filler.unlink()
    resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert resumed.returncode == 1, resumed.stderr  # the job caught submitting is `unknown`
    assert status(env, tmp_path)["counts"]["unknown"] == 1


def test_a_ledger_disk_full_when_output_urls_arrive_prints_them_and_exits_4(
    tmp_path: Path, tiny_disk: Path
) -> None:
    with Simulator(SimulatorConfig(time_scale=0.02, capacity=8, seed=43)) as slow_sim:
        env = cli_env(slow_sim, tiny_disk / "ledger.db")
        manifest = kling_manifest(tmp_path, 1)
        process = start_genbatch(run_args(manifest), env=env, cwd=tmp_path)
        wait_until(lambda: status(env, tmp_path)["counts"]["running"] == 1, what="the job running")

        filler = _fill(tiny_disk)
        _, stderr = process.communicate(timeout=60)

        assert process.returncode == 4, stderr
        assert "Traceback" not in stderr
        [request_id] = slow_sim.records
        urls = [o.url for o in slow_sim.records[request_id].outputs]
        assert urls
        for url in urls:
            assert f"genbatch: unrecorded output_url={url} request_id={request_id} job=" in stderr
        filler.unlink()
        resumed = genbatch(run_args(manifest), env=env, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr  # re-attached, fetched, not resubmitted
        assert "(0 new, 0 done, 0 to submit, 1 re-attached)" in resumed.stderr
        assert len(slow_sim.records) == 1


def test_an_api_that_stops_answering_is_retried_with_growing_waits_then_the_run_stops_resumably(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 12)
    args = run_args(manifest, "-c", "1", "--max-failures", "4")
    process = start_genbatch(args, env=env, cwd=tmp_path)
    wait_until(lambda: status(env, tmp_path)["counts"]["done"] >= 2, what="two jobs done")

    sim.stop()  # connection refused from now on
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        sim.start()

    assert process.returncode == 7, stderr
    assert "Traceback" not in stderr
    waits = [float(w) for w in re.findall(r"cannot be reached .* waiting ([0-9.]+)s", stderr)]
    assert len(waits) == 3 and waits == sorted(waits), stderr  # backing off, longer each time
    assert "genbatch: stopped: the API could not be reached 4 times in a row" in stderr
    _nothing_lost(env, tmp_path, sim, manifest, 12)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_a_large_manifest_loads_exits_130_in_one_line(
    tmp_path: Path, sim: Simulator, sig: int
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 100_000)  # seconds to load and sync
    started = time.monotonic()
    assert genbatch(["--version"], env=env, cwd=tmp_path).returncode == 0
    start_up = time.monotonic() - started  # Python and genbatch's imports, on this machine
    process = start_genbatch(run_args(manifest, "--max-jobs", "100000"), env=env, cwd=tmp_path)
    time.sleep(2 * start_up)

    code, _, stderr = kill(process, sig)

    assert code == 130, stderr
    assert stderr.strip().splitlines()[-1] == "genbatch: error: interrupted"
    assert "Traceback" not in stderr
    assert sim.stats.submissions == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_while_the_command_itself_loads_exits_130_in_one_line(
    tmp_path: Path, sim: Simulator, sig: int
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 1)
    started = time.monotonic()
    assert genbatch(["--version"], env=env, cwd=tmp_path).returncode == 0
    start_up = time.monotonic() - started  # Python and the command line's own load, here
    process = start_genbatch(run_args(manifest), env=env, cwd=tmp_path)
    # By then the handler is set and the command line loaded; `run` is loading what it runs
    # with (the ledger, SQLAlchemy, httpx...), which takes longer than all that.
    time.sleep(max(0.2, start_up))

    code, _, stderr = kill(process, sig)

    assert code == 130, stderr
    assert stderr.strip().splitlines()[-1] == "genbatch: error: interrupted"
    assert "Traceback" not in stderr
    assert sim.stats.submissions == 0


def _one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The single error line of a command that failed with ``code``."""
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("genbatch: error:")]
    return line


@pytest.mark.parametrize(
    "nesting",
    [
        "prompts: " + "[" * 500 + "]" * 500,
        'prompts: ["a"]\noutput:\n' + "".join(" " * (i + 1) + "k:\n" for i in range(500)),
    ],
    ids=["flow", "block"],
)
def test_yaml_nested_500_deep_is_one_line_exit_2(
    tmp_path: Path, sim: Simulator, nesting: str
) -> None:
    manifest = tmp_path / "deep.yaml"
    manifest.write_text(f"model: kling/kling-2-6/pro/text-to-video\n{nesting}\n")

    done = genbatch(run_args(manifest), env=cli_env(sim, tmp_path / "l.db"), cwd=tmp_path)

    line = _one_line_error(done, 2)
    assert "deep.yaml:" in line and "nest more than 100 levels deep" in line
    assert sim.stats.submissions == 0


def test_a_surrogate_escape_in_a_prompt_is_one_line_exit_2_naming_file_line_and_field(
    tmp_path: Path, sim: Simulator
) -> None:
    manifest = tmp_path / "smile.yaml"
    manifest.write_text(
        "model: kling/kling-2-6/pro/text-to-video\n"
        'prompts:\n  - "ok"\n  - "\\ud83d\\ude00 a smile"\n'
    )

    done = genbatch(run_args(manifest), env=cli_env(sim, tmp_path / "l.db"), cwd=tmp_path)

    line = _one_line_error(done, 2)
    assert "smile.yaml:4: prompts[1]: the escape \\ud83d\\ude00 is a UTF-16 surrogate" in line
    assert "\\U0001F600" in line
    assert sim.stats.submissions == 0


def _ledger_sql(ledger: Path, statement: str) -> None:
    with sqlite3.connect(ledger) as conn:
        conn.execute(statement)


def test_a_bad_schema_version_in_the_ledger_is_one_line_exit_4(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 2)
    assert genbatch(run_args(manifest), env=env, cwd=tmp_path).returncode == 0
    _ledger_sql(
        tmp_path / "ledger.db",
        "UPDATE genbatch_meta SET value = 'three' WHERE key = 'schema_version'",
    )

    for args in (run_args(manifest), ["status"]):
        line = _one_line_error(genbatch(args, env=env, cwd=tmp_path), 4)
        assert "ledger.db records schema_version 'three'" in line


def test_a_job_row_holding_corrupt_json_is_one_line_exit_4_and_leaves_no_job_claimed(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 3)
    stopped = genbatch(run_args(manifest, "--budget", "0"), env=env, cwd=tmp_path)
    assert stopped.returncode == 5, stopped.stderr  # synced, nothing submitted
    _ledger_sql(tmp_path / "ledger.db", "UPDATE jobs SET inputs_json = 'not json'")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr
    [line] = [ln for ln in done.stderr.splitlines() if ln.startswith("genbatch: stopped:")]
    assert "has a damaged row: job " in line and "inputs_json is not JSON" in line
    assert sim.stats.submissions == 0
    assert status(env, tmp_path)["counts"]["pending"] == 3  # the claim was rolled back


def test_an_api_base_on_a_closed_port_is_shown_as_unreachable_then_the_run_stops(
    tmp_path: Path, sim: Simulator
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    env = cli_env(sim, tmp_path / "ledger.db", RUNCOMFY_API_BASE=closed)
    manifest = kling_manifest(tmp_path, 2)

    done = genbatch(run_args(manifest, "--json", "--max-failures", "5"), env=env, cwd=tmp_path)

    assert done.returncode == 7, done.stderr
    assert "Traceback" not in done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    reasons = {e["backoff_reason"] for e in events if e["event"] == "gauge"}
    assert "API unreachable" in reasons  # the display says why calls are held back
    assert "the API could not be reached 5 times in a row" in done.stderr
    assert status(env, tmp_path)["counts"]["pending"] == 2  # nothing sent, all resumable
