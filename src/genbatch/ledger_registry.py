"""The ledgers genbatch found or made beside this user's manifests, so that a manifest moved or
copied out of its project's folder is not run afresh, and paid for again, in a new ledger.

The ledger of a manifest is the nearest ``.genbatch/`` from its folder up (as git finds its
repository). Moved elsewhere, the manifest finds none, and its run would start a new ledger: every
job new. Before a run makes such a ledger, the ledgers it has used before are asked whether they
hold any of its jobs (a job is its content: the same model, inputs and repeat index give the same
key anywhere); if one does, the run stops and names it. Only ledgers found beside manifests are
listed here: one named with ``--ledger`` or ``GENBATCH_LEDGER`` is the user's own choice.

The list is ``$XDG_STATE_HOME/genbatch/ledgers.json`` (``~/.local/state/genbatch/ledgers.json``
by default). Reading or writing it never stops a run: a home that cannot be written only loses
this protection.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from genbatch.states import BUDGET_STATES

ASKED_JOBS = 200
"""Job keys of the manifest looked up in each earlier ledger (its first ones: enough to tell a
manifest that ran there from one that did not)."""


@dataclass(frozen=True, kw_only=True)
class EarlierLedger:
    """A ledger that already holds some of a manifest's jobs."""

    path: Path
    jobs: int
    """How many of the keys asked about it holds as paid for, or possibly."""


def registry_file() -> Path:
    """Where the list of ledgers is kept."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "genbatch" / "ledgers.json"


def known_ledgers() -> list[Path]:
    """The ledgers listed that still exist."""
    return [path for path in map(Path, _listed() or []) if path.is_file()]


def _listed() -> list[str] | None:
    """The list as written (None when it cannot be read as one: never written over then)."""
    try:
        listed = json.loads(registry_file().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        return None
    if not isinstance(listed, list):
        return None
    return [item for item in listed if isinstance(item, str)]


def remember(ledger: Path) -> None:
    """List ``ledger`` (best effort: a run never fails for it). Under a lock, so runs starting
    at once all get listed; a list that cannot be read is left as it is."""
    path = str(ledger.resolve())
    target = registry_file()
    with contextlib.suppress(OSError):
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.with_name(target.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            listed = _listed()
            if listed is None or path in listed:
                return
            handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump([*listed, path], out, indent=0)
            os.replace(temporary, target)


def earlier_ledger(keys: Iterable[str], *, besides: Path) -> EarlierLedger | None:
    """The first listed ledger (other than ``besides``) holding any of ``keys`` as a job paid
    for there, or possibly."""
    wanted = list(keys)[:ASKED_JOBS]
    if not wanted:
        return None
    skipped = besides.resolve()
    for ledger in known_ledgers():
        if ledger.resolve() == skipped:
            continue
        found = _jobs_held(ledger, wanted)
        if found:
            return EarlierLedger(path=ledger, jobs=found)
    return None


def run_recorded(ledger: Path, name: str) -> bool | None:
    """Whether the SQLite ledger file has a run ``name``; None when it cannot be read."""
    found = _count(ledger, "SELECT count(*) FROM runs WHERE name = ?", [name])
    return None if found is None else found > 0


def _jobs_held(ledger: Path, keys: list[str]) -> int:
    """How many of ``keys`` the ledger file holds as jobs paid for, or possibly (0 when it
    cannot be read)."""
    marks = ",".join("?" * len(keys))
    paid = ",".join(f"'{state.value}'" for state in sorted(BUDGET_STATES))
    query = f"SELECT count(*) FROM jobs WHERE key IN ({marks}) AND state IN ({paid})"
    return _count(ledger, query, keys) or 0


def _count(ledger: Path, query: str, values: list[str]) -> int | None:
    """A count read from another ledger file, read-only with the standard library (a check
    before a run, which neither migrates nor locks that ledger); None when it cannot be read."""
    try:
        with contextlib.closing(sqlite3.connect(f"{ledger.as_uri()}?mode=ro", uri=True)) as db:
            return int(db.execute(query, values).fetchone()[0])
    except sqlite3.Error:
        return None
