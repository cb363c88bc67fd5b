"""The ledger read with SQLModel classes (`genbatch.ledger_models`): typed rows for a user's own
queries, the same columns as the tables genbatch writes, and a session that cannot write."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Column, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InternalError, OperationalError
from sqlalchemy.schema import CreateColumn
from sqlmodel import func, select

import genbatch
from genbatch.errors import LedgerError
from genbatch.ledger import tables
from genbatch.ledger.engine import STALLED_TRANSACTION_SECONDS
from genbatch.ledger_models import Attempt, Job, Output, Rating, Run, read_session
from genbatch.simulator import Simulator, SimulatorConfig

from support import kling_manifest, sha256_of

CLASSES_AND_TABLES = [
    (Run, tables.RUNS),
    (Job, tables.JOBS),
    (Attempt, tables.ATTEMPTS),
    (Output, tables.OUTPUTS),
    (Rating, tables.RATINGS),
]


def _column_ddl(column: Column[object]) -> dict[str, str]:
    return {
        name: str(CreateColumn(column).compile(dialect=dialect))
        for name, dialect in (("sqlite", sqlite.dialect()), ("postgresql", postgresql.dialect()))
    }


def _described(table: Table) -> dict[str, object]:
    return {
        column.name: (
            _column_ddl(column),
            column.primary_key,
            sorted(key.target_fullname for key in column.foreign_keys),
        )
        for column in table.columns
    }


@pytest.mark.parametrize(("model", "table"), CLASSES_AND_TABLES, ids=lambda x: str(x))
def test_each_class_declares_the_columns_of_the_table_genbatch_writes(
    model: type, table: Table
) -> None:
    declared = model.__table__  # type: ignore[attr-defined]

    assert declared.name == table.name
    assert _described(declared) == _described(table)


def test_a_script_reads_a_runs_jobs_and_files_as_typed_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "project").mkdir()
    path = kling_manifest(tmp_path / "project", 3)
    monkeypatch.chdir(tmp_path / "project")
    assert genbatch.run_manifest(path, simulate=True).all_done
    monkeypatch.chdir(tmp_path)  # elsewhere: the ledger is found from the manifest's folder

    with read_session(path, simulate=True) as session:  # the rehearsal's ledger
        run = session.exec(select(Run)).one()
        jobs = session.exec(select(Job).where(Job.run_id == run.id)).all()
        files = session.exec(select(Output).join(Job).where(Job.state == "done")).all()
        tries = session.exec(select(func.count()).select_from(Attempt)).one()

    assert run.name == path.stem
    assert sorted(job.state for job in jobs) == ["done"] * 3
    assert all(job.request_id and job.finished_at is not None for job in jobs)
    assert tries == 3
    assert len(files) == 3
    assert all(sha256_of(Path(file.path or "")) == file.sha256 for file in files)


def test_the_session_cannot_write_to_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = kling_manifest(tmp_path, 2)
    monkeypatch.chdir(tmp_path)
    genbatch.run_manifest(path, simulate=True)

    with read_session(path, simulate=True) as session:
        job = session.exec(select(Job)).first()
        assert job is not None
        job.state = "pending"
        session.add(job)
        with pytest.raises(OperationalError, match="readonly"):
            session.commit()

    with read_session(path, simulate=True) as session:
        assert session.exec(select(Job.state)).all() == ["done", "done"]


def test_the_session_cannot_write_to_a_postgresql_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    path = kling_manifest(tmp_path, 1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENBATCH_LEDGER", postgres_url)
    with Simulator(SimulatorConfig(time_scale=0.001)) as simulator:
        monkeypatch.setenv("RUNCOMFY_TOKEN", simulator.token)
        genbatch.run_manifest(path, api_base=simulator.base_url)

    with read_session(ledger=postgres_url) as session:
        job = session.exec(select(Job)).one()
        job.state = "pending"
        session.add(job)
        with pytest.raises(InternalError, match="read-only transaction"):
            session.commit()
        session.rollback()  # what a script does next: the next transaction is read-only too
        job = session.exec(select(Job)).one()
        job.state = "pending"
        session.add(job)
        with pytest.raises(InternalError, match="read-only transaction"):
            session.commit()
        session.rollback()
        time.sleep(STALLED_TRANSACTION_SECONDS + 1)  # a pause inside the block ends nothing
        assert session.exec(select(Job.state)).all() == ["done"]

    with read_session(path) as session:
        assert session.exec(select(Job.state)).all() == ["done"]


def test_a_manifest_without_a_ledger_says_where_it_looked(tmp_path: Path) -> None:
    path = kling_manifest(tmp_path, 1)

    with pytest.raises(LedgerError, match="no ledger"), read_session(path):
        pass
