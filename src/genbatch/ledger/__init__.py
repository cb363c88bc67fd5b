"""The ledger: the durable record of runs, jobs, attempts and output files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
    "open_ledger_for",
    "resolve_location",
]


@contextmanager
def open_ledger_for(
    given: str | None, *, manifest: str | Path | None = None, may_create: bool = False
) -> Iterator[Ledger]:
    """Open the ledger named by ``--ledger`` / ``$GENBATCH_LEDGER``, else the one found from
    ``manifest``'s folder (or the working directory), then close it.

    Only a run may create a ledger (``may_create``): a reading command pointed where there is
    none gets a ``LedgerError`` naming where it looked.
    """
    folder = None if manifest is None else Path(manifest).resolve().parent
    ledger = Ledger.open(resolve_location(given, manifest_dir=folder, may_create=may_create))
    try:
        yield ledger
    finally:
        ledger.close()
