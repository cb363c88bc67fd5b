"""Value objects the ledger hands out: plain, immutable, detached from any database session."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypedDict, TypeVar

from genbatch.ledger.tables import ATTEMPTS, JOBS, OUTPUTS, RUNS, WORKERS
from genbatch.ratings import Rating
from genbatch.states import JobState

R = TypeVar("R")


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """One run of the ledger."""

    id: int
    name: str
    manifest_path: str
    created_at: datetime
    updated_at: datetime
    stop_reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    """One job as the ledger knows it now."""

    id: int
    run_id: int
    key: str
    ordinal: int
    block: str
    model_id: str
    inputs: dict[str, Any]
    variables: dict[str, Any]
    repeat_index: int
    file_stem: str
    output_dir: str
    state: JobState
    request_id: str | None
    attempts: int
    error: str | None
    attempt_id: int | None = None
    """The attempt being driven (set by claim and for re-attached jobs)."""
    cost_usd: float | None = None
    """Estimated cost of one generation; None when the model has no known price."""
    outputs: tuple[OutputRecord, ...] = ()
    """The outputs recorded by the move that returned this record (``SUCCEED``: its URLs, none
    downloaded yet); empty otherwise, ``Ledger.outputs`` reads them."""
    in_manifest: bool = True
    """False once the manifest no longer has the job (retired by a sync; it may be paid for)."""


@dataclass(frozen=True, kw_only=True)
class OutputRecord:
    """One output file of a job."""

    id: int
    job_id: int
    position: int
    url: str
    path: str | None = None
    """Where the file is, once downloaded and verified (with its size and checksum)."""
    size: int | None = None
    sha256: str | None = None
    host: str | None = None
    """The machine whose worker wrote the file."""


@dataclass(frozen=True, kw_only=True)
class StoredFile:
    """An output file on disk, verified, under its final name: what the ledger records of it."""

    output_id: int
    path: str
    size: int
    sha256: str
    host: str | None = None
    """The machine whose worker wrote it."""


class MoveDetails(TypedDict, total=False):
    """What a move of a job records beside its new state (``Ledger.try_move``)."""

    error: str | None
    """The job's (and its attempt's) error."""
    request_id: str | None
    """ACCEPT's answer."""
    remote_status: str | None
    """What the API reported."""
    urls: Sequence[str]
    """SUCCEED's output URLs, recorded before any download."""
    files: Sequence[StoredFile]
    """Output files put in place, recorded with the move (FINISH and the job's last file: one
    commit)."""
    generation_seconds: float | None
    """SUCCEED's generation time as the API reported it (``genbatch.ledger.history``)."""


@dataclass(frozen=True, kw_only=True)
class AttemptRecord:
    """One submission attempt of a job."""

    id: int
    number: int
    request_id: str | None
    outcome: str
    remote_status: str | None
    error: str | None
    intent_at: datetime
    accepted_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class SyncReport:
    """What syncing a manifest's jobs into the ledger found."""

    total: int
    new: int = 0
    counts: dict[JobState, int] = field(default_factory=dict)
    """Jobs of the manifest per state, after the sync."""
    unchanged: bool = False
    """The jobs were already synced from the same fingerprint: nothing was expanded."""


@dataclass(frozen=True, kw_only=True)
class JobOutputs:
    """A job with its output files and the attempt behind them: what export and gallery show."""

    job: JobRecord
    run_name: str
    outputs: tuple[OutputRecord, ...]
    attempt: AttemptRecord | None
    """The attempt that produced the outputs; for a job without outputs, its latest attempt."""
    in_manifest: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    ratings: dict[int, Rating] = field(default_factory=dict)
    """The ratings of its output files, by position (``genbatch review``)."""


@dataclass(frozen=True, kw_only=True)
class WorkerInfo:
    """One worker (genbatch process) of a run, as ``genbatch status`` shows it."""

    id: str
    run_id: int
    host: str
    pid: int
    concurrency: int
    lease_seconds: float
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    jobs_held: int
    """Jobs in flight this worker holds a lease on."""
    lease_until: datetime | None
    """The latest lease it holds (None when it holds none)."""
    jobs_done: int
    """Jobs this worker finished (downloaded and verified)."""
    as_of: datetime
    """The ledger's clock when this was read: ages and rates are relative to it."""

    @property
    def status(self) -> str:
        """``stopped`` (exited), ``running`` (heartbeat fresh) or ``lost`` (silent past its
        lease: killed, or cut off from the ledger; its jobs go to the others)."""
        if self.stopped_at is not None:
            return "stopped"
        silent = (self.as_of - self.heartbeat_at).total_seconds()
        return "running" if silent <= self.lease_seconds else "lost"

    @property
    def lease_left(self) -> float | None:
        """Seconds until its latest lease expires (negative: expired), None without leases."""
        if self.lease_until is None:
            return None
        return (self.lease_until - self.as_of).total_seconds()

    @property
    def done_per_minute(self) -> float:
        """Throughput: jobs done per minute over the worker's life so far."""
        end = self.stopped_at or (self.heartbeat_at if self.status == "lost" else self.as_of)
        minutes = max((end - self.started_at).total_seconds(), 1.0) / 60.0
        return self.jobs_done / minutes


@dataclass(frozen=True, kw_only=True)
class Takeover:
    """What a worker adopted from workers that are gone."""

    attached: list[JobRecord] = field(default_factory=list)
    """Jobs with a request id: re-attached (polled, fetched), never resubmitted."""
    interrupted: list[JobRecord] = field(default_factory=list)
    """Jobs caught ``submitting``, as they were: their POST may have landed, so they became
    ``unknown``."""


@dataclass(frozen=True, kw_only=True)
class WorkerStart:
    """What a worker found when it started driving a run (``Ledger.start_worker``)."""

    spent_usd: float
    """The run's estimated spending so far: paid, being paid, or possibly paid."""
    takeover: Takeover
    """The jobs in flight it adopted, and those left submitting that became ``unknown``."""
    resubmitted: list[JobRecord] = field(default_factory=list)
    """``unknown`` jobs put back to pending, as asked."""


@dataclass(frozen=True, kw_only=True)
class CachedModel:
    """A catalog entry of the API (``GET /v1/models/{model_id}``) as the ledger keeps it."""

    model_id: str
    document: dict[str, Any] = field(repr=False)
    """The entry as the endpoint answered it."""
    fetched_at: datetime


def from_row(cls: type[R], row: Any, prefix: str = "", **given: Any) -> R:
    """The record ``cls`` held by a row of its table: each field from the column of its name
    (labelled ``prefix`` + name in a join), but those ``given``."""
    found = {name: getattr(row, prefix + name) for name in _COLUMNS[cls] if name not in given}
    return cls(**found, **given)


_COLUMNS: dict[type[Any], list[str]] = {
    cls: [f.name for f in fields(cls) if f.name in table.c]
    for cls, table in (
        (RunInfo, RUNS),
        (JobRecord, JOBS),
        (AttemptRecord, ATTEMPTS),
        (OutputRecord, OUTPUTS),
        (WorkerInfo, WORKERS),
    )
}
"""The fields of each record that are columns of its table."""
