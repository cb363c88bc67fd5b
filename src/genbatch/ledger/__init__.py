"""The ledger: the durable record of runs, jobs, attempts and output files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from genbatch.errors import UsageError
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
    "REHEARSAL_SUFFIX",
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
    "rehearsal_location",
    "resolve_location",
]


REHEARSAL_SUFFIX = ".simulated.db"
"""A ``--simulate`` rehearsal's ledger file ends so (see ``rehearsal_location``)."""


@contextmanager
def open_ledger_for(
    given: str | None,
    *,
    manifest: str | Path | None = None,
    may_create: bool = False,
    rehearsal: bool = False,
) -> Iterator[Ledger]:
    """Open the ledger named by ``--ledger`` / ``$GENBATCH_LEDGER``, else the one found from
    ``manifest``'s folder (or the working directory), then close it; with ``rehearsal``, the
    file beside it that keeps ``--simulate`` runs.

    Only a run may create a ledger (``may_create``): a reading command pointed where there is
    none gets a ``LedgerError`` naming where it looked.
    """
    folder = None if manifest is None else Path(manifest).resolve().parent
    location = resolve_location(given, manifest_dir=folder, may_create=may_create)
    ledger = Ledger.open(rehearsal_location(location) if rehearsal else location)
    try:
        yield ledger
    finally:
        ledger.close()


def rehearsal_location(location: LedgerLocation) -> LedgerLocation:
    """Where a ``--simulate`` rehearsal keeps its records: a file beside the ledger
    (``ledger.simulated.db`` beside ``ledger.db``), so that a real run never takes its
    placeholder files for generations, nor a rehearsal a real run's jobs for its own."""
    path = location.sqlite_path
    if path is None:
        raise UsageError(
            "--simulate keeps a rehearsal in a SQLite file beside the ledger, never in a "
            "shared PostgreSQL ledger: leave out --ledger and GENBATCH_LEDGER, or give a file"
        )
    if not path.name.endswith(REHEARSAL_SUFFIX):
        path = path.with_name(path.stem + REHEARSAL_SUFFIX)
    return replace(location, url=f"sqlite:///{path}", display=str(path), sqlite_path=path)
