"""Checks made before a run sends its first request: a problem found here costs nothing.

Found after the first submit, the same problem costs the generations already paid for: a run
whose output folder cannot be created would submit, generate and bill its jobs, then stop at
the first download.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from genbatch.errors import GenbatchError, LedgerError, OutputError
from genbatch.ledger import Ledger, RunInfo, resolve_location
from genbatch.ledger.engine import DEFAULT_LEDGER
from genbatch.manifest import Manifest
from genbatch.states import JobState

PROBE_PREFIX = ".genbatch-probe-"

# Jobs that may still write files: every state but done.
_UNFINISHED = tuple(state for state in JobState if state is not JobState.DONE)


def check_manifest_folders(manifest: Manifest) -> None:
    """Every output folder of ``manifest`` exists or can be created, and takes a file."""
    check_output_dirs(block.output_dir for block in manifest.blocks)


def check_run_folders(ledger: Ledger, run: RunInfo, manifest: Manifest) -> None:
    """The same for the folders recorded for the run's unfinished jobs, where they differ from
    the manifest's (a job keeps the folder of the sync that created it)."""
    known = {block.output_dir for block in manifest.blocks}
    stored = [d for d in ledger.output_dirs(run.id) if d not in known]
    check_output_dirs(d for d in stored if _has_unfinished_jobs(ledger, run, d))


def check_earlier_default_ledger(manifest: Manifest, given: str | None) -> None:
    """Refuse to start a new ledger for ``manifest`` while the working directory's ledger
    already has the manifest's run.

    Before ledgers were found from the manifest's folder, the default ledger was
    ``.genbatch/ledger.db`` in the working directory. A run started from a folder that is not
    above the manifest then made a ledger there; starting a new one beside the manifest now
    would submit (and pay for) that run's jobs again.
    """
    location = resolve_location(given, manifest_dir=manifest.path.parent)
    new = location.sqlite_path
    if location.searched_from is None or new is None or new.exists():
        return
    earlier = Path.cwd() / DEFAULT_LEDGER
    if earlier.is_file() and _has_run(earlier, manifest.name):
        raise LedgerError(
            f"the ledger {earlier} in the working directory has a run '{manifest.name}', but "
            f"the ledger of {manifest.path.name} is now found from its folder ({new}, not "
            f"created yet): to go on with that run, move {earlier.parent} into "
            f"{new.parent.parent}, or pass --ledger {earlier}"
        )


def _has_run(path: Path, name: str) -> bool:
    try:
        store = Ledger.open(resolve_location(str(path), may_create=False))
    except GenbatchError:
        return False  # a ledger that cannot be opened has no run to go on with
    try:
        return store.find_run(name) is not None
    finally:
        store.close()


def check_output_dirs(directories: Iterable[str | Path]) -> None:
    """Create each folder if needed, then write and remove a probe file in it.

    Raises ``OutputError`` (exit 4) naming the first folder that fails, and why.
    """
    for directory in sorted({Path(d) for d in directories}):
        _check_writable(directory)


def _has_unfinished_jobs(ledger: Ledger, run: RunInfo, directory: str) -> bool:
    # One row is enough to know: the stream stops there instead of reading every job.
    with ledger.stream_job_outputs(
        run_id=run.id, output_dirs=[directory], states=_UNFINISHED, in_manifest_only=True
    ) as items:
        return next(items, None) is not None


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"preflight: cannot create the output directory {directory}: "
            f"{_reason(exc, directory)}; no job was submitted"
        ) from None
    probe = directory / f"{PROBE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            # Bytes, not only a name: a folder can take a new entry and still refuse data.
            os.write(fd, b"genbatch preflight\n")
        finally:
            os.close(fd)
    except OSError as exc:
        raise OutputError(
            f"preflight: cannot write in the output directory {directory}: "
            f"{_reason(exc, directory)}; no job was submitted"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _reason(exc: OSError, directory: Path) -> str:
    blocker = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        return f"{blocker} is a file, not a folder"
    return exc.strerror or type(exc).__name__
