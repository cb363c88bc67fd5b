"""Where the ledger lives: finding it, resolving ``--ledger``, connecting to it.

The default ledger is found the way git finds its repository: the nearest ``.genbatch/`` folder
in the manifest's folder or above it. So a manifest resolves to the same ledger from whatever
working directory it is run, and a run never starts a second ledger (and pays again) because
it was started from another folder.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from genbatch.errors import LedgerError, UsageError
from genbatch.ledger.sqlite_file import mark_closed_cleanly, prepare_sqlite_file

LEDGER_DIR = ".genbatch"
LEDGER_FILE = "ledger.db"
DEFAULT_LEDGER = Path(LEDGER_DIR) / LEDGER_FILE
LEDGER_ENV = "GENBATCH_LEDGER"


@dataclass(frozen=True, kw_only=True)
class LedgerLocation:
    """A resolved ledger: a SQLite file or a PostgreSQL URL (shown without its password)."""

    url: str
    display: str
    sqlite_path: Path | None = None
    may_create: bool = True
    """Whether opening it may create it where there is none (False for the commands that
    only read: they say there is no ledger instead)."""
    searched_from: Path | None = None
    """The folder the search for ``.genbatch/`` started in; None when the ledger was named."""

    def missing(self) -> LedgerError:
        """The error for a ledger that does not exist where it was looked for."""
        found_no_folder = self.sqlite_path is not None and not self.sqlite_path.parent.is_dir()
        if self.searched_from is not None and found_no_folder:
            return LedgerError(
                f"no ledger: no {LEDGER_DIR}/ in {self.searched_from} or any folder above it "
                "(`genbatch run MANIFEST` creates one beside the manifest)"
            )
        return LedgerError(f"no ledger at {self.display} (`genbatch run MANIFEST` creates it)")


def discover_ledger(start: Path) -> Path:
    """The default ledger file for a manifest in the folder ``start``.

    ``.genbatch/ledger.db`` of the nearest folder, from ``start`` up to the filesystem root,
    that has a ``.genbatch/`` folder; else ``start/.genbatch/ledger.db`` (which does not exist
    yet: ``genbatch run`` creates it). Symbolic links are resolved first, so two paths to one
    folder find one ledger.
    """
    folder = start.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / LEDGER_DIR).is_dir():
            return candidate / DEFAULT_LEDGER
    return folder / DEFAULT_LEDGER


def resolve_location(
    given: str | None,
    *,
    cwd: Path | None = None,
    manifest_dir: Path | None = None,
    may_create: bool = True,
) -> LedgerLocation:
    """The ledger named by ``--ledger``, else ``$GENBATCH_LEDGER``, else the one
    ``discover_ledger`` finds from ``manifest_dir`` (default: the working directory ``cwd``).

    A relative path given by name is relative to ``cwd`` (default: the working directory).
    """
    base = cwd or Path.cwd()
    text = given or os.environ.get(LEDGER_ENV)
    if not text:
        start = base if manifest_dir is None else base / manifest_dir
        path = discover_ledger(start)
        return _sqlite_location(path, may_create=may_create, searched_from=start)
    if text.startswith(("postgresql:", "postgres:", "postgresql+")):
        return _postgres_location(text, may_create=may_create)
    if "://" in text and not text.startswith("sqlite:"):
        raise UsageError(
            f"--ledger: {text.split('://')[0]}:// is not supported; "
            "give a file path or a postgresql:// URL"
        )
    path_text = text.removeprefix("sqlite:///") if text.startswith("sqlite:") else text
    path = Path(path_text).expanduser()
    return _sqlite_location(base / path, may_create=may_create)


def _sqlite_location(
    path: Path, *, may_create: bool, searched_from: Path | None = None
) -> LedgerLocation:
    return LedgerLocation(
        url=f"sqlite:///{path}",
        display=str(path),
        sqlite_path=path,
        may_create=may_create,
        searched_from=searched_from,
    )


def _postgres_location(text: str, *, may_create: bool) -> LedgerLocation:
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise UsageError(f"--ledger: not a valid PostgreSQL URL: {exc}") from None
    url = url.set(drivername="postgresql+psycopg")
    # A password may also come as ?password=...: hide_password masks only the one before @.
    shown = url.difference_update_query(["password"])
    return LedgerLocation(
        url=url.render_as_string(hide_password=False),
        display=shown.render_as_string(hide_password=True),
        may_create=may_create,
    )


WAL_SWITCH_SECONDS = 5.0
"""How long opening a new SQLite ledger keeps trying to switch it to WAL (as busy_timeout)."""


def create_ledger_engine(location: LedgerLocation) -> Engine:
    """An engine for ``location``; a new SQLite file is created readable by its owner only.

    An existing SQLite file is checked first: an empty (0-byte) or truncated file is refused,
    never taken for a new ledger. Where ``location.may_create`` is False, a missing file is
    refused too, and ``ensure_schema`` refuses to create the schema in an empty database.
    """
    if location.sqlite_path is not None:
        prepare_sqlite_file(location)
        engine = create_engine(location.url, connect_args={"timeout": 5.0})
        event.listen(engine, "connect", _sqlite_pragmas)
        path = location.sqlite_path
        event.listen(engine, "engine_disposed", lambda _engine: mark_closed_cleanly(path))
        return engine
    try:
        engine = create_engine(location.url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    except ModuleNotFoundError:
        raise UsageError(
            "PostgreSQL ledgers need psycopg: pip install 'genbatch[postgres]'"
        ) from None
    event.listen(engine, "connect", _postgres_session)
    _quiet_secondary_driver_errors()
    return engine


STALLED_TRANSACTION_SECONDS = 5
"""How long PostgreSQL lets a transaction of ours sit idle before ending it.

genbatch never waits for anything but the database inside a transaction (the HTTP calls come
after the commit), so a transaction idle this long belongs to a process that is frozen
(SIGSTOP, a suspended VM, a stalled host). Its row locks would otherwise hold every other
worker up (the takeover of its jobs, its run's limit) for as long as it stays frozen. The
frozen process, when it wakes, finds its transaction rolled back (``TransactionEnded``) and
runs it again, where the guarded moves refuse what others did meanwhile.

Two kinds of transaction do work in Python while they are open, and so must not idle this long:
the sync of a manifest (``Ledger.sync_run``) sends the database a statement at least every
``BUSY_SECONDS`` while it walks the jobs, and the read-only transactions that stream rows to a
consumer (``Ledger.stream_job_outputs``) lift the limit for themselves: they hold no row lock.
"""

BUSY_SECONDS = 1.0
"""How long a sync walking a manifest may go without sending the database a statement: well
under ``STALLED_TRANSACTION_SECONDS``, so a pause of the process (a garbage collection, a loaded
host) does not end a transaction that is working."""


def _postgres_session(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute(
            f"SET idle_in_transaction_session_timeout = '{STALLED_TRANSACTION_SECONDS}s'"
        )
    dbapi_connection.commit()


def _not_secondary(record: logging.LogRecord) -> bool:
    """Drops psycopg's "error ignored ..." warnings: another error is on its way up already."""
    return not str(record.msg).startswith("error ignored")


def _quiet_secondary_driver_errors() -> None:
    """Keep psycopg from printing a second line when a connection is lost.

    A session that ends in the middle of an ``executemany`` (run in pipeline mode) fails it
    with the lost connection, which ``Ledger`` reports as one error; psycopg then also logs
    that ending the pipeline failed ("error ignored terminating <psycopg.Pipeline [BAD]>"),
    and with no logging configured Python prints that warning on stderr.
    """
    driver_logger = logging.getLogger("psycopg")
    if _not_secondary not in driver_logger.filters:
        driver_logger.addFilter(_not_secondary)


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL: readers (genbatch status) never block the runner. synchronous=NORMAL survives any
        # crash of the process; the intent to submit is additionally made durable against power
        # loss by a checkpointed FULL commit (see Ledger.claim_jobs).
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def _set_wal(cursor: sqlite3.Cursor) -> None:
    # Switching a new database to WAL needs it to itself for a moment, and SQLite answers
    # "database is locked" at once, without its busy handler, when another connection is doing
    # the same (processes opening a new ledger together): try again for as long as
    # busy_timeout would have waited.
    deadline = time.monotonic() + WAL_SWITCH_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
