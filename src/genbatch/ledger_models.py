"""The ledger's tables as SQLModel classes: typed rows for queries of your own.

    from sqlmodel import select
    from genbatch.ledger_models import Job, Output, read_session

    with read_session("sweep.yaml") as session:    # the ledger that manifest's runs use
        failed = session.exec(select(Job).where(Job.state == "failed")).all()
        for job in failed:
            print(job.key, job.error)

The session only reads (SQLite's ``query_only``, a read-only PostgreSQL transaction): the ledger
is genbatch's record of what was paid for, and a write of yours could make it lie. Reading
while a run is going is safe. genbatch itself runs SQLAlchemy Core statements on the tables of
``genbatch.ledger.tables``; these classes declare the same columns (a test keeps them equal),
on a metadata of their own, so importing this module costs the commands nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import Column, DateTime, Text, text
from sqlmodel import Field, MetaData, Session, SQLModel


class LedgerModel(SQLModel):
    """The base of the classes below: their own metadata, apart from any of yours."""

    metadata = MetaData()


def _when(nullable: bool = True) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


def _text(nullable: bool = True) -> Column[str]:
    return Column(Text, nullable=nullable)


class Run(LedgerModel, table=True):
    """One run: the jobs of one manifest (named by its ``name:``, else its file's stem)."""

    __tablename__ = "runs"

    id: int = Field(primary_key=True)
    name: str = Field(unique=True)
    manifest_path: str
    created_at: datetime = Field(sa_column=_when(nullable=False))
    updated_at: datetime = Field(sa_column=_when(nullable=False))
    stop_reason: str | None = Field(default=None, sa_column=_text())
    stop_requested: str | None = Field(default=None, sa_column=_text())
    jobs_fingerprint: str | None = Field(default=None, sa_column=_text())


class Job(LedgerModel, table=True):
    """One job of a run: its content (model, inputs, repeat), its state and request id."""

    __tablename__ = "jobs"

    id: int = Field(primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    key: str
    """The job's content hash: the same job in any run, under any manifest name."""
    ordinal: int
    block: str
    model_id: str
    inputs_json: str = Field(sa_column=_text(nullable=False))
    variables_json: str = Field(sa_column=_text(nullable=False))
    repeat_index: int = 0
    file_stem: str
    output_dir: str = Field(sa_column=_text(nullable=False))
    in_manifest: bool = True
    state: str
    """pending, submitting, queued, running, downloading, done, failed, cancelled, unknown."""
    request_id: str | None = None
    attempts: int = 0
    cost_usd: float | None = None
    error: str | None = Field(default=None, sa_column=_text())
    created_at: datetime = Field(sa_column=_when(nullable=False))
    updated_at: datetime = Field(sa_column=_when(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_when())
    worker: str | None = None
    lease_until: datetime | None = Field(default=None, sa_column=_when())
    done_seq: int | None = None


class Attempt(LedgerModel, table=True):
    """One submission of a job, from the intent committed before sending to its outcome."""

    __tablename__ = "attempts"

    id: int = Field(primary_key=True)
    job_id: int = Field(foreign_key="jobs.id")
    number: int
    request_id: str | None = None
    outcome: str = "sending"
    remote_status: str | None = None
    error: str | None = Field(default=None, sa_column=_text())
    intent_at: datetime = Field(sa_column=_when(nullable=False))
    accepted_at: datetime | None = Field(default=None, sa_column=_when())
    finished_at: datetime | None = Field(default=None, sa_column=_when())
    generation_seconds: float | None = None


class Output(LedgerModel, table=True):
    """One output file of a job: its URL and, once downloaded, its path, size and sha256."""

    __tablename__ = "outputs"

    id: int = Field(primary_key=True)
    job_id: int = Field(foreign_key="jobs.id")
    attempt_id: int = Field(foreign_key="attempts.id")
    position: int
    url: str = Field(sa_column=_text(nullable=False))
    path: str | None = Field(default=None, sa_column=_text())
    size: int | None = None
    sha256: str | None = None
    downloaded_at: datetime | None = Field(default=None, sa_column=_when())
    host: str | None = None


class Rating(LedgerModel, table=True):
    """A person's rating of one output file (``genbatch review``), keyed by the job's content."""

    __tablename__ = "ratings"

    job_key: str = Field(primary_key=True)
    position: int = Field(primary_key=True)
    verdict: str | None = None
    stars: int | None = None
    note: str | None = Field(default=None, sa_column=_text())
    rated_at: datetime = Field(sa_column=_when(nullable=False))
    rated_by: str | None = None


@contextmanager
def read_session(
    manifest: str | Path | None = None, *, ledger: str | None = None, simulate: bool = False
) -> Iterator[Session]:
    """A read-only SQLModel session on the ledger ``genbatch`` would use for ``manifest`` (the
    nearest ``.genbatch/`` from its folder up), or on ``ledger`` (a path or a PostgreSQL URL,
    as ``--ledger`` takes); with ``simulate``, on the rehearsals' ledger beside it.
    ``LedgerError`` when there is none, or it is damaged or newer."""
    from genbatch.ledger import open_ledger_for

    opened = open_ledger_for(ledger, manifest=manifest, rehearsal=simulate)
    with opened as store, store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA query_only = ON")
        else:
            # Every transaction of this connection, a rollback's next one too; and one left
            # idle while the user's code works is not ended (the ledger's own are, at 5 s).
            conn.execute(text("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"))
            conn.execute(text("SET idle_in_transaction_session_timeout = 0"))
        conn.commit()
        with Session(bind=conn) as session:
            yield session
