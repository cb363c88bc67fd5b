"""The ledger's tables. Every job, every submission attempt and every output file is a row.

Declared in SQLAlchemy Core, the one way the ledger runs SQL: the same statements on SQLite and
PostgreSQL, and no ORM or pydantic to import before a command can read the ledger (about 0.2 s
of every `genbatch status`). ``genbatch.ledger_models`` declares the same tables as SQLModel
classes for queries of your own. Times are UTC. JSON values (inputs, variables, errors) are
stored as text so that SQLite and PostgreSQL hold exactly the same thing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 8
"""1: runs, jobs, attempts, outputs; each later version is told by its step in
``migrations.MIGRATIONS``."""

METADATA = MetaData()


def utcnow() -> datetime:
    """The current time, in UTC, timezone-aware."""
    return datetime.now(UTC)


WHEN = DateTime(timezone=True)


def _column(name: str, *kind: Any, null: bool = False, **options: Any) -> Column[Any]:
    """A column NOT NULL unless ``null``: most are, and the exceptions should stand out."""
    return Column(name, *kind, nullable=null, **options)


# Facts about the ledger itself: its schema version, who created it.
META = Table(
    "genbatch_meta",
    METADATA,
    _column("key", String, primary_key=True),
    _column("value", String),
)

# One run: the jobs of one manifest, kept across resumes and edits of that manifest.
RUNS = Table(
    "runs",
    METADATA,
    _column("id", Integer, primary_key=True),
    _column("name", String, unique=True),
    _column("manifest_path", String),
    _column("created_at", WHEN),
    _column("updated_at", WHEN),
    _column("stop_reason", Text, null=True),
    # Set by `genbatch cancel`: the process driving the run stops submitting.
    _column("stop_requested", Text, null=True),
    # What the run's jobs were last synced from (see `Ledger.sync_run`); NULL: sync again.
    _column("jobs_fingerprint", Text, null=True),
)

# One job of a run, with its current state.
JOBS = Table(
    "jobs",
    METADATA,
    _column("id", Integer, primary_key=True),
    _column("run_id", Integer, ForeignKey("runs.id")),
    _column("key", String),
    _column("ordinal", Integer),
    _column("block", String),
    _column("model_id", String),
    _column("inputs_json", Text),
    _column("variables_json", Text),
    _column("repeat_index", Integer, default=0),
    _column("file_stem", String),
    _column("output_dir", Text),
    _column("in_manifest", Boolean, default=True),
    _column("state", String),
    _column("request_id", String, null=True),
    # Submissions accepted or possibly accepted (not those refused with 429).
    _column("attempts", Integer, default=0),
    # Estimated cost of one generation of this job; NULL when its model has no known price.
    _column("cost_usd", Float, null=True),
    _column("error", Text, null=True),
    _column("created_at", WHEN),
    _column("updated_at", WHEN),
    _column("finished_at", WHEN, null=True),
    # The worker that claimed or last took over the job (and, once done, finished it).
    _column("worker", String, null=True),
    # Until when `worker` holds the job (database clock). Past: the worker is gone and any other
    # takes the job over. NULL: nobody drives it now; the next worker to start adopts it.
    _column("lease_until", WHEN, null=True),
    # When the job became done, as a rank: one more than the highest rank when it did. On
    # SQLite (one writer at a time) ranks follow commit order, so "done after rank N" is exact.
    _column("done_seq", Integer, null=True),
    UniqueConstraint("run_id", "key", name="uq_jobs_run_key"),
    # Claims read it in order (run, pending, ordinal); the columns after ordinal let claims,
    # `status` and the spend count a run's jobs from the index alone (per state, reused, per
    # worker, cost): a million-job run has too many rows to read them.
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
    # The preflight before every run: the same job in other runs (by its content, the key) and
    # who owns an output file name.
    Index("ix_jobs_key", "key"),
    Index("ix_jobs_output_file", "output_dir", "file_stem"),
    # A run's exit appends to metadata.jsonl the jobs done since it was last written.
    Index("ix_jobs_done_seq", "done_seq"),
)

# One submission of a job: from the committed intent to the final remote outcome.
ATTEMPTS = Table(
    "attempts",
    METADATA,
    _column("id", Integer, primary_key=True),
    _column("job_id", Integer, ForeignKey("jobs.id")),
    _column("number", Integer),
    _column("request_id", String, null=True),
    # sending, accepted, refused, unknown, succeeded, failed, cancelled, expired.
    _column("outcome", String, default="sending"),
    _column("remote_status", String, null=True),
    _column("error", Text, null=True),
    _column("intent_at", WHEN),
    _column("accepted_at", WHEN, null=True),
    _column("finished_at", WHEN, null=True),
    # A success's `finished_at - created_at` as the API reported them; NULL when unknown or when
    # the request was seen waiting in the remote queue (`genbatch.polling` reads these).
    _column("generation_seconds", Float, null=True),
    Index("ix_attempts_job", "job_id"),
)

# One output file of a job: its URL, and once downloaded, where it is and its sum.
OUTPUTS = Table(
    "outputs",
    METADATA,
    _column("id", Integer, primary_key=True),
    _column("job_id", Integer, ForeignKey("jobs.id")),
    _column("attempt_id", Integer, ForeignKey("attempts.id")),
    _column("position", Integer),
    _column("url", Text),
    _column("path", Text, null=True),
    _column("size", Integer, null=True),
    _column("sha256", String, null=True),
    _column("downloaded_at", WHEN, null=True),
    # The machine whose worker wrote the file (outputs may sit on shared storage).
    _column("host", String, null=True),
    UniqueConstraint("job_id", "position", name="uq_outputs_job_position"),
)

# One genbatch process driving a run; its heartbeat proves it alive to the others.
WORKERS = Table(
    "workers",
    METADATA,
    # host:pid:random: unique even when a pid is reused.
    _column("id", String, primary_key=True),
    _column("run_id", Integer, ForeignKey("runs.id")),
    _column("host", String),
    _column("pid", Integer),
    # The worker's own cap on requests in flight.
    _column("concurrency", Integer),
    _column("lease_seconds", Float),
    _column("started_at", WHEN),
    _column("heartbeat_at", WHEN),
    _column("stopped_at", WHEN, null=True),
    Index("ix_workers_run", "run_id"),
)

# One model as RunComfy's catalog endpoint (GET /v1/models/{model_id}) described it.
CATALOG_MODELS = Table(
    "catalog_models",
    METADATA,
    _column("model_id", String, primary_key=True),
    # The entry as the endpoint answered it, JSON.
    _column("document", Text),
    _column("fetched_at", WHEN),
    # Kept so that plans work offline and a resumed run checks its jobs against the schema it
    # started with. Only `genbatch models refresh` replaces an entry.
)

# A person's rating of one output file (`genbatch review`).
RATINGS = Table(
    "ratings",
    METADATA,
    # Keyed by the job's content (its key) and the file's position, never by a row id: a re-run,
    # a resume or an edited manifest gives the job new rows but the same key, so the rating stays.
    _column("job_key", String, primary_key=True),
    _column("position", Integer, primary_key=True),
    # kept, rejected or NULL (not decided).
    _column("verdict", String, null=True),
    # 1 to 5, or NULL.
    _column("stars", Integer, null=True),
    _column("note", Text, null=True),
    _column("rated_at", WHEN),
    # PostgreSQL: current_user; SQLite: the OS user, or NULL when it cannot be told.
    _column("rated_by", String, null=True),
)
