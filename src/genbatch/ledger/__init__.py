"""The ledger: the durable record of runs, jobs, attempts and output files."""

from __future__ import annotations

from genbatch.ledger.engine import LedgerLocation, resolve_location
from genbatch.ledger.ledger import Ledger
from genbatch.ledger.records import (
    AttemptRecord,
    CachedModel,
    JobOutputs,
    JobRecord,
    OutputRecord,
    RunInfo,
    StoredFile,
    SyncReport,
    Takeover,
    WorkerInfo,
    WorkerStart,
)

__all__ = [
    "AttemptRecord",
    "CachedModel",
    "JobOutputs",
    "JobRecord",
    "Ledger",
    "LedgerLocation",
    "OutputRecord",
    "RunInfo",
    "StoredFile",
    "SyncReport",
    "Takeover",
    "WorkerInfo",
    "WorkerStart",
    "open_ledger",
    "resolve_location",
]


def open_ledger(given: str | None = None) -> Ledger:
    """Open the ledger named by ``given`` (a path or URL), ``$GENBATCH_LEDGER`` or the default."""
    return Ledger.open(resolve_location(given))
