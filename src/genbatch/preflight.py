"""Checks made before a run sends its first request: a problem found here costs nothing.

Found after the first submit, the same problem costs the generations already paid for: a run
whose output folder cannot be created would submit, generate and bill its jobs, then stop at
the first download.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path

from genbatch.errors import (
    ForeignMetadata,
    LedgerError,
    OutputError,
    UsageError,
)
from genbatch.export import METADATA_FILE
from genbatch.file_commits import sha256_of
from genbatch.filenames import output_stem, sanitize_file_stem
from genbatch.ledger import JobRecord, Ledger, RunInfo, resolve_location
from genbatch.ledger.engine import DEFAULT_LEDGER
from genbatch.ledger_registry import ASKED_JOBS, earlier_ledger, run_recorded
from genbatch.manifest import Manifest
from genbatch.metadata_guard import foreign_metadata
from genbatch.states import JobState

PROBE_PREFIX = ".genbatch-probe-"

# Jobs that may still write files: every state but done.
_UNFINISHED = tuple(state for state in JobState if state is not JobState.DONE)


def check_manifest_folders(manifest: Manifest) -> None:
    """Every output folder of ``manifest`` exists or can be created, and takes a file."""
    check_output_dirs(block.output_dir for block in manifest.blocks)


def check_run_folders(ledger: Ledger, run: RunInfo, manifest: Manifest) -> None:
    """The same for the folders recorded for the run's unfinished jobs, where they differ from
    the manifest's (a job keeps the folder of the sync that created it); then
    ``check_metadata_files`` for every folder of the run."""
    known = {block.output_dir for block in manifest.blocks}
    folders = ledger.output_dirs(run.id)
    stored = [d for d in folders if d not in known]
    check_output_dirs(d for d in stored if _has_unfinished_jobs(ledger, run, d))
    check_metadata_files(ledger, folders)


def check_metadata_files(ledger: Ledger, folders: Sequence[str]) -> None:
    """``ForeignMetadata`` (exit 4) when a folder the run writes ``metadata.jsonl`` in holds one
    genbatch did not write (``metadata_guard``): the run's exit would have to replace it, or
    leave the run's files undescribed. Refused here, nothing is paid for yet."""
    foreign = foreign_metadata(ledger, folders)
    if not foreign:
        return
    folder, why = next(iter(foreign.items()))
    raise ForeignMetadata(
        f"preflight: {Path(folder) / METADATA_FILE} is not one genbatch wrote ({why}), and "
        f"genbatch keeps its own {METADATA_FILE} in each output folder: move or rename that "
        "file, or set another output dir; no job was submitted"
    )


def check_run_owner(ledger: Ledger, manifest: Manifest) -> None:
    """Refuse to sync ``manifest`` into a run another manifest file still drives
    (``refuse_other_owner``)."""
    run = ledger.find_run(manifest.name)
    if run is not None:
        refuse_other_owner(run, manifest.path)


def refuse_other_owner(run: RunInfo, manifest: Path) -> None:
    """``UsageError`` when ``run`` is the run of another manifest file that still exists.

    A run is named by the manifest's ``name:``, else its file's stem: two ``sweep.yaml`` in
    folders under one ``.genbatch/`` would be one run, each sync retiring the other's jobs, and
    `cancel`, `status` or `export` of one would act on both. The run's recorded manifest gone
    (moved, renamed) or holding the same bytes (a copy of the project), this one is its own.
    """
    other = Path(run.manifest_path)
    if other == manifest:
        return
    try:
        if other.samefile(manifest) or other.read_bytes() == manifest.read_bytes():
            return
    except OSError:
        return  # gone from there: this is where the manifest is now
    raise UsageError(
        f"the run '{run.name}' of this ledger belongs to {other}, another manifest that still "
        f"exists: give {manifest.name} a `name:` of its own (or run {other.name} there)"
    )


def check_earlier_default_ledger(
    manifest: Manifest, given: str | None, *, rehearsal: bool = False
) -> None:
    """Refuse to start a new ledger for ``manifest`` while the working directory's ledger
    already has the manifest's run.

    Before ledgers were found from the manifest's folder, the default ledger was
    ``.genbatch/ledger.db`` in the working directory. A run started from a folder that is not
    above the manifest then made a ledger there; starting a new one beside the manifest now
    would submit (and pay for) that run's jobs again.
    """
    location = resolve_location(given, manifest_dir=manifest.path.parent)
    new = location.sqlite_path
    if rehearsal or location.searched_from is None or new is None:
        return  # a rehearsal pays nothing; a ledger named is the user's choice
    if new.exists():
        # Moved into another project (an unreadable ledger's own checks report it later).
        if run_recorded(new, manifest.name) is False:
            _refuse_jobs_recorded_elsewhere(manifest, new)
        return
    earlier = Path.cwd() / DEFAULT_LEDGER
    # (A ledger that cannot be read has no run to go on with.)
    if earlier.is_file() and run_recorded(earlier, manifest.name):
        raise LedgerError(
            f"the ledger {earlier} in the working directory has a run '{manifest.name}', but "
            f"the ledger of {manifest.path.name} is now found from its folder ({new}, not "
            f"created yet): to go on with that run, move {earlier.parent} into "
            f"{new.parent.parent}, or pass --ledger {earlier}"
        )
    _refuse_jobs_recorded_elsewhere(manifest, new)


def _refuse_jobs_recorded_elsewhere(manifest: Manifest, found: Path) -> None:
    """A manifest moved or copied out of its project's folder: its jobs were paid for in a
    ledger that is no longer found from here, and ``found`` has no run of it (ledger_registry)."""
    keys = (job.key for job in islice(manifest.jobs(), ASKED_JOBS))
    elsewhere = earlier_ledger(keys, besides=found)
    if elsewhere is not None:
        raise LedgerError(
            f"{elsewhere.jobs} of the first {ASKED_JOBS} jobs of {manifest.path.name} were paid "
            f"for already, recorded in the ledger {elsewhere.path}, which is not found from its "
            f"folder: a run in {found} would submit and pay for them again. To go on with "
            f"them, pass --ledger {elsewhere.path}, or move the manifest back; to run them anew "
            f"on purpose, pass --ledger {found}"
        )


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


def reuse_or_refuse(ledger: Ledger, run: RunInfo) -> int:
    """Jobs of ``run`` that another run of the ledger already sent are never sent again: done
    there, their files are reused (``reuse``, returns how many); sent but not done there (a
    request in flight, an unknown submit), the run is refused until that run settles them.
    Then no job that will write may take the file name of a done job with other content."""
    names = {other.id: other.name for other in ledger.runs()}
    # Alone in its ledger, the run has no job another run sent: the search (an index lookup
    # per pending job, 20-30 ms at 800 jobs) is spared.
    elsewhere = ledger.same_jobs_elsewhere(run.id) if len(names) > 1 else []
    handled: set[int] = set()
    reused = 0
    for job, other in _done_first(elsewhere):
        if job.id in handled:
            continue
        handled.add(job.id)
        where = f"run '{names.get(other.run_id, other.run_id)}'"
        if other.state is not JobState.DONE:
            raise UsageError(
                f"job #{job.ordinal} ({job.key[:16]}) is the same job (model, inputs, repeat) "
                f"as one of {where}, {other.state.value} there (request "
                f"{other.request_id or 'unknown'}): sending it again would pay twice; run that "
                "manifest first to settle it, or give this job another repeat index"
            )
        paths = _place_files(ledger, job, other)
        if paths is not None:
            ledger.reuse(job, other, paths)
            reused += 1
    _refuse_clashes(ledger.output_clashes(run.id), names)
    return reused


def _done_first(pairs: list[tuple[JobRecord, JobRecord]]) -> list[tuple[JobRecord, JobRecord]]:
    # A job done elsewhere is reused even if another run also holds a request for it.
    return sorted(pairs, key=lambda pair: (pair[0].ordinal, pair[1].state is not JobState.DONE))


def _refuse_clashes(clashes: list[tuple[JobRecord, JobRecord]], names: dict[int, str]) -> None:
    if not clashes:
        return
    job, owner = clashes[0]
    raise UsageError(
        f"job #{job.ordinal} ({job.key[:16]}) would write {Path(job.output_dir) / job.file_stem}"
        f".*, the file of a done job with other inputs (run '{names.get(owner.run_id)}', "
        f"#{owner.ordinal}, {owner.key[:16]}); {len(clashes)} job(s) clash like this: put "
        "{key} or the swept variables in the output name template, or another output dir"
    )


def _place_files(ledger: Ledger, job: JobRecord, source: JobRecord) -> list[str] | None:
    """The files of ``source`` where ``job`` wants them (hard-linked, else copied and
    verified); None when one is gone from disk or no longer the file recorded (the job is
    then generated again)."""
    outputs = ledger.outputs(source.id)
    if not outputs or not all(_intact(o.path, o.sha256) for o in outputs):
        return None
    paths = []
    for output in outputs:
        original = Path(str(output.path))
        stem = output_stem(job.file_stem, output.position, len(outputs))
        target = Path(job.output_dir) / f"{sanitize_file_stem(stem)}{original.suffix}"
        if target != original:
            _link_or_copy(original, target, output.sha256)
        paths.append(str(target))
    return paths


def _intact(path: str | None, sha256: str | None) -> bool:
    """The file recorded at ``path`` is there, with the bytes recorded (``sha256``)."""
    if path is None or sha256 is None or not Path(path).is_file():
        return False
    return sha256_of(Path(path)) == sha256


def _link_or_copy(original: Path, target: Path, sha256: str | None) -> None:
    """``original`` at ``target`` too; never over another file."""
    if target.exists():
        if sha256 is not None and sha256_of(target) == sha256:
            return
        raise UsageError(f"{target} exists and is not the file of the job that would reuse it")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(original, target)
        return
    except OSError:
        pass  # another file system, or no hard links there: a verified copy
    part = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    try:
        shutil.copyfile(original, part)
        if sha256 is not None and sha256_of(part) != sha256:
            raise OutputError(f"{original} does not match its recorded sha256: not reused")
        os.replace(part, target)
    except OSError as exc:
        raise OutputError(f"cannot copy {original} to {target}: {exc.strerror}") from None
    finally:
        part.unlink(missing_ok=True)
