"""The ledger's tables. Every job, every submission attempt and every output file is a row.

Times are UTC. JSON values (inputs, variables, errors) are stored as text so that SQLite and
PostgreSQL hold exactly the same thing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class _Table(SQLModel):
    # The classes only declare tables (the ledger runs Core statements on them): pydantic's
    # validators are never used, so they are not built.
    model_config = {"defer_build": True}


SCHEMA_VERSION = 8
"""1: runs, jobs, attempts, outputs; each later version is told by its step in
``migrations.MIGRATIONS``."""


def utcnow() -> datetime:
    """The current time, in UTC, timezone-aware."""
    return datetime.now(UTC)


def _when(nullable: bool = True) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class MetaRow(_Table, table=True):
    """Facts about the ledger itself: its schema version, who created it."""

    __tablename__ = "genbatch_meta"

    key: str = Field(primary_key=True)
    value: str


class RunRow(_Table, table=True):
    """One run: the jobs of one manifest, kept across resumes and edits of that manifest."""

    __tablename__ = "runs"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    manifest_path: str
    created_at: datetime = Field(sa_column=_when(nullable=False))
    updated_at: datetime = Field(sa_column=_when(nullable=False))
    stop_reason: str | None = Field(default=None, sa_column=Column(Text))
    stop_requested: str | None = Field(default=None, sa_column=Column(Text))
    """Set by ``genbatch cancel``: the process driving the run stops submitting."""
    jobs_fingerprint: str | None = Field(default=None, sa_column=Column(Text))
    """What the run's jobs were last synced from (see ``Ledger.sync_run``); NULL: sync again."""


class JobRow(_Table, table=True):
    """One job of a run, with its current state."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("run_id", "key", name="uq_jobs_run_key"),
        # Claims read it in order (run, pending, ordinal); the columns after ordinal let claims,
        # `status` and the spend count a run's jobs from the index alone (per state, reused,
        # per worker, cost): a million-job run has too many rows to read them.
        Index(
            "ix_jobs_run_state",
            "run_id",
            "state",
            "ordinal",
            "in_manifest",
            "attempts",
            "worker",
            "cost_usd",
        ),
        Index("ix_jobs_run_dir", "run_id", "output_dir"),
        Index("ix_jobs_request_id", "request_id"),
        # The preflight before every run: the same job in other runs (by its content, the key)
        # and who owns an output file name.
        Index("ix_jobs_key", "key"),
        Index("ix_jobs_output_file", "output_dir", "file_stem"),
        # A run's exit appends to metadata.jsonl the jobs done since it was last written.
        Index("ix_jobs_done_seq", "done_seq"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="runs.id")
    key: str
    ordinal: int
    block: str
    model_id: str
    inputs_json: str = Field(sa_column=Column(Text, nullable=False))
    variables_json: str = Field(sa_column=Column(Text, nullable=False))
    repeat_index: int = 0
    file_stem: str
    output_dir: str = Field(sa_column=Column(Text, nullable=False))
    in_manifest: bool = True
    state: str
    request_id: str | None = None
    attempts: int = 0
    """Submissions accepted or possibly accepted (not those refused with 429)."""
    cost_usd: float | None = None
    """Estimated cost of one generation of this job; None when its model has no known price."""
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=_when(nullable=False))
    updated_at: datetime = Field(sa_column=_when(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_when())
    worker: str | None = None
    """The worker that claimed or last took over the job (and, once done, finished it)."""
    lease_until: datetime | None = Field(default=None, sa_column=_when())
    """Until when ``worker`` holds the job (database clock). Past: the worker is gone and any
    other takes the job over. NULL: nobody drives it now; the next worker to start adopts it."""
    done_seq: int | None = None
    """When the job became done, as a rank: one more than the highest rank when it did. On
    SQLite (one writer at a time) ranks follow commit order, so "done after rank N" is exact."""


class AttemptRow(_Table, table=True):
    """One submission of a job: from the committed intent to the final remote outcome."""

    __tablename__ = "attempts"
    __table_args__ = (Index("ix_attempts_job", "job_id"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id")
    number: int
    request_id: str | None = None
    outcome: str = "sending"
    """sending, accepted, refused, unknown, succeeded, failed, cancelled, expired."""
    remote_status: str | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    intent_at: datetime = Field(sa_column=_when(nullable=False))
    accepted_at: datetime | None = Field(default=None, sa_column=_when())
    finished_at: datetime | None = Field(default=None, sa_column=_when())
    generation_seconds: float | None = None
    """A success's ``finished_at - created_at`` as the API reported them; NULL when unknown or
    when the request was seen waiting in the remote queue (``genbatch.polling`` reads these)."""


class OutputRow(_Table, table=True):
    """One output file of a job: its URL, and once downloaded, where it is and its checksum."""

    __tablename__ = "outputs"
    __table_args__ = (UniqueConstraint("job_id", "position", name="uq_outputs_job_position"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="jobs.id")
    attempt_id: int = Field(foreign_key="attempts.id")
    position: int
    url: str = Field(sa_column=Column(Text, nullable=False))
    path: str | None = Field(default=None, sa_column=Column(Text))
    size: int | None = None
    sha256: str | None = None
    downloaded_at: datetime | None = Field(default=None, sa_column=_when())
    host: str | None = None
    """The machine whose worker wrote the file (outputs may sit on shared storage)."""


class WorkerRow(_Table, table=True):
    """One genbatch process driving a run; its heartbeat proves it alive to the others."""

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_run", "run_id"),)

    id: str = Field(primary_key=True)
    """``host:pid:random``: unique even when a pid is reused."""
    run_id: int = Field(foreign_key="runs.id")
    host: str
    pid: int
    concurrency: int
    """The worker's own cap on requests in flight."""
    lease_seconds: float
    started_at: datetime = Field(sa_column=_when(nullable=False))
    heartbeat_at: datetime = Field(sa_column=_when(nullable=False))
    stopped_at: datetime | None = Field(default=None, sa_column=_when())


class CatalogModelRow(_Table, table=True):
    """One model as RunComfy's catalog endpoint (``GET /v1/models/{model_id}``) described it,
    kept so that plans work offline and a resumed run checks its jobs against the schema it
    started with. Only ``genbatch models refresh`` replaces an entry."""

    __tablename__ = "catalog_models"

    model_id: str = Field(primary_key=True)
    document: str = Field(sa_column=Column(Text, nullable=False))
    """The entry as the endpoint answered it, JSON."""
    fetched_at: datetime = Field(sa_column=_when(nullable=False))


class RatingRow(_Table, table=True):
    """A person's rating of one output file (``genbatch review``).

    Keyed by the job's content (its key) and the file's position, never by a row id: a re-run,
    a resume or an edited manifest gives the job new rows but the same key, so the rating stays.
    """

    __tablename__ = "ratings"

    job_key: str = Field(primary_key=True)
    position: int = Field(primary_key=True)
    verdict: str | None = None
    """``kept``, ``rejected`` or NULL (not decided)."""
    stars: int | None = None
    """1 to 5, or NULL."""
    note: str | None = Field(default=None, sa_column=Column(Text))
    rated_at: datetime = Field(sa_column=_when(nullable=False))
    rated_by: str | None = None
    """PostgreSQL: ``current_user``; SQLite: the OS user, or NULL when it cannot be told."""


# The tables as SQLAlchemy Core sees them, for the statements: one name each, typed.
META = SQLModel.metadata.tables[MetaRow.__tablename__]
RUNS = SQLModel.metadata.tables[RunRow.__tablename__]
JOBS = SQLModel.metadata.tables[JobRow.__tablename__]
ATTEMPTS = SQLModel.metadata.tables[AttemptRow.__tablename__]
OUTPUTS = SQLModel.metadata.tables[OutputRow.__tablename__]
WORKERS = SQLModel.metadata.tables[WorkerRow.__tablename__]
CATALOG_MODELS = SQLModel.metadata.tables[CatalogModelRow.__tablename__]
RATINGS = SQLModel.metadata.tables[RatingRow.__tablename__]
