"""Which runs a reading command is about: a manifest's, every run, or the latest one."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from genbatch.errors import UsageError

if TYPE_CHECKING:
    from genbatch.ledger import Ledger, RunInfo


@contextmanager
def reading_ledger(given: str | None, manifest: Path | None) -> Iterator[Ledger]:
    """The ledger a reading command reads: the one named, else the one found from
    ``manifest``'s folder (or the working directory). Never created: where there is none,
    ``LedgerError`` says where it looked. A manifest that cannot be read says so first."""
    from genbatch.ledger import open_ledger_for

    if manifest is not None and not manifest.is_file():
        from genbatch.manifest.top_level import run_name_of

        run_name_of(manifest)  # raises the manifest's own one-line error
    with open_ledger_for(given, manifest=manifest) as store:
        yield store


def run_of_manifest(store: Ledger, manifest: Path) -> RunInfo:
    """The run of ``manifest``; a usage error when the ledger has none yet. Only the
    manifest's name is read: its jobs are the ledger's to tell."""
    from genbatch.manifest.top_level import run_name_of

    name = run_name_of(manifest)
    run = store.find_run(name)
    if run is None:
        raise UsageError(f"the ledger has no run '{name}' yet: `genbatch run {manifest}` starts it")
    from genbatch.preflight import refuse_other_owner

    refuse_other_owner(run, manifest.resolve())  # not another manifest's run of the same name
    return run


def runs_for(store: Ledger, manifest: Path | None) -> list[RunInfo]:
    """The run of ``manifest``, or every run of the ledger when it is None."""
    return store.runs() if manifest is None else [run_of_manifest(store, manifest)]


def one_run(store: Ledger, manifest: Path | None) -> RunInfo:
    """The run of ``manifest``, else the run updated last (named on stderr when there are
    several, so the choice is never silent)."""
    if manifest is not None:
        return run_of_manifest(store, manifest)
    runs = store.runs()
    if not runs:
        raise UsageError(f"the ledger {store.location.display} has no runs yet")
    latest = max(runs, key=lambda run: (run.updated_at, run.id))
    if len(runs) > 1:
        print(
            f"genbatch: run '{latest.name}' (updated last; give a manifest for another)",
            file=sys.stderr,
        )
    return latest
