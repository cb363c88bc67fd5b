"""Value objects the ledger hands out: plain, immutable, detached from any database session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from genbatch.states import JobState


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


@dataclass(frozen=True, kw_only=True)
class OutputRecord:
    """One output file of a job."""

    id: int
    job_id: int
    position: int
    url: str
    path: str | None
    size: int | None
    sha256: str | None


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
    new: int
    changed_order: int
    retired: int
    counts: dict[JobState, int] = field(default_factory=dict)
    """Jobs of the manifest per state, after the sync."""


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
