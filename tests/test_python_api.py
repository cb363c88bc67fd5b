"""The Python API a script or a notebook uses: load a manifest, run it, read what it produced.

A notebook differs from a script in one way that matters: its kernel runs an asyncio loop, and
every cell runs inside it. ``asyncio.run(cell())`` below is that situation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

import genbatch
from genbatch.catalog import Price
from genbatch.client import RunComfyClient
from genbatch.events import Event, JobEvent
from genbatch.pricing import PriceTable, fetch_api_prices
from genbatch.simulator import Simulator, SimulatorConfig

from support import KLING, kling_manifest

MakeSimulator = Callable[..., Simulator]


def test_a_script_loads_runs_and_reads_the_results_without_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = kling_manifest(tmp_path, 3)

    manifest = genbatch.load_manifest(path)
    summary = genbatch.run_manifest(path, simulate=True)
    rows = genbatch.results(path, simulate=True)  # the rehearsal's: kept apart from real runs

    assert manifest.job_count == 3
    assert summary.all_done and summary.counts[genbatch.JobState.DONE] == 3
    assert len(rows) == 3
    assert {row["prompt"] for row in rows} == {f"clip number {i}" for i in range(3)}
    assert all((tmp_path / "out" / "simulated" / row["file_name"]).is_file() for row in rows)
    assert all(len(row["sha256"]) == 64 and row["request_id"] for row in rows)
    with pytest.raises(genbatch.GenbatchError, match="no ledger"):
        genbatch.results(path)  # nothing real ran


def test_a_bad_manifest_raises_one_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "model: kling/kling-2-6/pro/text-to-video\nprompts: [a]\ninputs: {duration: 7}\n"
    )

    with pytest.raises(genbatch.ManifestError, match=r"bad.yaml:3: duration: 7 is not one of"):
        genbatch.run_manifest(path, simulate=True)


def test_prices_are_read_from_the_apis_catalog_endpoint_when_it_answers() -> None:
    async def ask(sim: Simulator) -> dict[str, Price]:
        async with RunComfyClient(base_url=sim.base_url, token=sim.token) as client:
            return await fetch_api_prices(client, [KLING, "acme/not-in-the-catalog"])

    with Simulator(SimulatorConfig()) as sim:
        prices = anyio.run(ask, sim)
        calls = sim.stats.calls["catalog"]

    assert set(prices) == {KLING}
    assert prices[KLING].base_price_usd == 0.07 and prices[KLING].price_unit == "second"
    assert calls == 2
    table = PriceTable(
        manifest={KLING: Price(base_price_usd=0.5, price_unit="request")}, api=prices
    )
    assert table.cost(KLING, {"prompt": "x"}) == 0.5  # the manifest wins over the API


def test_run_manifest_completes_when_called_inside_a_running_event_loop_as_in_a_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = kling_manifest(tmp_path, 3)

    async def cell() -> genbatch.RunSummary:
        # RunOptions() watches signals by default: only the main thread may, so the run's
        # thread must not try.
        return genbatch.run_manifest(path, simulate=True, options=genbatch.RunOptions())

    summary = asyncio.run(cell())

    assert summary.all_done and summary.counts[genbatch.JobState.DONE] == 3
    rows = genbatch.results(path, simulate=True)
    out = tmp_path / "out" / "simulated"
    assert len(rows) == 3 and all((out / row["file_name"]).is_file() for row in rows)


def test_arun_manifest_runs_in_the_callers_loop_beside_its_other_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = kling_manifest(tmp_path, 3)
    event_threads: set[int] = set()

    def note(event: Event) -> None:
        event_threads.add(threading.get_ident())

    async def cell() -> tuple[genbatch.RunSummary, int]:
        ticks = 0
        run = asyncio.ensure_future(genbatch.arun_manifest(path, simulate=True, events=note))
        while not run.done():
            ticks += 1
            await asyncio.sleep(0)
        return run.result(), ticks

    summary, ticks = asyncio.run(cell())

    assert summary.all_done and summary.counts[genbatch.JobState.DONE] == 3
    assert ticks > 0  # the loop went on serving its other task while the run was in flight
    assert event_threads == {threading.get_ident()}
    assert len(list((tmp_path / "out" / "simulated").glob("*.mp4"))) == 3
    assert (tmp_path / "out" / "simulated" / "metadata.jsonl").is_file()


def test_arun_manifest_under_anyio_runs_against_a_simulator_and_prices_from_its_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator()
    monkeypatch.setenv("RUNCOMFY_TOKEN", sim.token)
    path, ledger = kling_manifest(tmp_path, 4), str(tmp_path / "ledger.db")
    run = partial(
        genbatch.arun_manifest,
        path,
        ledger=ledger,
        api_base=sim.base_url,
        options=genbatch.RunOptions(handle_signals=False),
    )

    summary = anyio.run(run)

    assert summary.all_done and summary.counts[genbatch.JobState.DONE] == 4
    assert sim.stats.submissions == 4 and sim.stats.files_served == 4
    assert sim.stats.calls["catalog"] == 1  # one model in the manifest, priced once
    rows = genbatch.results(path, ledger=ledger)
    assert {row["request_id"] for row in rows} == set(sim.records)


def test_arun_manifest_refuses_a_bad_manifest_with_the_same_manifest_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "model: kling/kling-2-6/pro/text-to-video\nprompts: [a]\ninputs: {duration: 7}\n"
    )

    with pytest.raises(genbatch.ManifestError, match=r"bad.yaml:3: duration: 7 is not one of"):
        asyncio.run(genbatch.arun_manifest(path, ledger=str(tmp_path / "l.db"), simulate=True))


@pytest.mark.postgres
def test_a_start_whose_transaction_postgresql_ended_runs_its_steps_once_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str, simulator: Simulator
) -> None:
    # A restart of the database (or an administrator) ends the session while the manifest is
    # synced: nothing was sent yet and the sync was rolled back, so the start does it again.
    import psycopg
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    monkeypatch.chdir(tmp_path)
    path = kling_manifest(tmp_path, 2)
    ended = threading.Event()

    def end_the_session_during_the_sync(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO runs") and not ended.is_set():
            ended.set()
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                pid = cursor.connection.info.backend_pid
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    event.listen(Engine, "before_cursor_execute", end_the_session_during_the_sync)
    try:
        monkeypatch.setenv("RUNCOMFY_TOKEN", simulator.token)
        summary = genbatch.run_manifest(path, api_base=simulator.base_url, ledger=postgres_url)
    finally:
        event.remove(Engine, "before_cursor_execute", end_the_session_during_the_sync)

    assert ended.is_set()
    assert summary.all_done and summary.counts[genbatch.JobState.DONE] == 2


def test_a_ledger_failing_at_the_runs_end_keeps_its_outcome_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The disk fails the worker's exit (its leases ended, the counts read): the jobs are done
    # and their files in place, and the run still ends with a summary, exit 4, no traceback.
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.exc import OperationalError
    from typer.testing import CliRunner

    from genbatch.batch import exit_code_for
    from genbatch.cli import _register_commands, app
    from genbatch.errors import LedgerError

    monkeypatch.chdir(tmp_path)
    path = kling_manifest(tmp_path, 2)

    def fail_the_exit(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.startswith("UPDATE workers") and "stopped_at" in statement:
            raise OperationalError(statement, params, sqlite3.OperationalError("disk I/O error"))

    event.listen(Engine, "before_cursor_execute", fail_the_exit)
    try:
        summary = genbatch.run_manifest(path, simulate=True)
        _register_commands()
        through_the_cli = CliRunner().invoke(app, ["run", str(path), "--simulate"])
    finally:
        event.remove(Engine, "before_cursor_execute", fail_the_exit)

    assert isinstance(summary.stop_error, LedgerError)
    assert "disk I/O error" in str(summary.stop_error)
    assert not summary.all_done
    assert exit_code_for(summary) == 4
    assert through_the_cli.exit_code == 4, through_the_cli.output
    assert "Traceback" not in through_the_cli.output
    assert len(genbatch.results(path, simulate=True)) == 2  # done, files recorded


@pytest.mark.postgres
def test_a_rehearsal_is_never_kept_in_a_shared_postgresql_ledger(
    tmp_path: Path, postgres_url: str
) -> None:
    with pytest.raises(genbatch.GenbatchError, match="--simulate keeps a rehearsal in a SQLite"):
        genbatch.run_manifest(kling_manifest(tmp_path, 1), simulate=True, ledger=postgres_url)


def test_a_foreign_metadata_file_appearing_during_a_run_warns_and_the_summary_is_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, simulator: Simulator
) -> None:
    monkeypatch.setenv("RUNCOMFY_TOKEN", simulator.token)
    path = kling_manifest(tmp_path, 2)
    foreign = tmp_path / "out" / "metadata.jsonl"

    def drop_a_file_of_the_users(event: Event) -> None:
        if isinstance(event, JobEvent) and event.state is genbatch.JobState.DONE:
            foreign.write_text('{"mine": true}\n')  # the user's own, mid-run

    with pytest.warns(UserWarning, match="metadata.jsonl not updated"):
        summary = genbatch.run_manifest(
            path,
            api_base=simulator.base_url,
            ledger=str(tmp_path / "ledger.db"),
            events=drop_a_file_of_the_users,
        )

    assert summary.all_done
    assert foreign.read_text() == '{"mine": true}\n'  # left as the user wrote it
