"""Where the ledger lives: resolving ``--ledger``, creating the SQLite file safely, pragmas."""

from __future__ import annotations

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

DEFAULT_LEDGER = Path(".genbatch") / "ledger.db"
LEDGER_ENV = "GENBATCH_LEDGER"


@dataclass(frozen=True, kw_only=True)
class LedgerLocation:
    """A resolved ledger: a SQLite file or a PostgreSQL URL (shown without its password)."""

    url: str
    display: str
    sqlite_path: Path | None = None

    @property
    def is_sqlite(self) -> bool:
        """True for a SQLite file ledger."""
        return self.sqlite_path is not None


def resolve_location(given: str | None, *, cwd: Path | None = None) -> LedgerLocation:
    """The ledger named by ``--ledger``, else ``$GENBATCH_LEDGER``, else the default file."""
    text = given or os.environ.get(LEDGER_ENV) or str(DEFAULT_LEDGER)
    if text.startswith(("postgresql:", "postgres:", "postgresql+")):
        return _postgres_location(text)
    if "://" in text and not text.startswith("sqlite:"):
        raise UsageError(
            f"--ledger: {text.split('://')[0]}:// is not supported; "
            "give a file path or a postgresql:// URL"
        )
    path_text = text.removeprefix("sqlite:///") if text.startswith("sqlite:") else text
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    return LedgerLocation(url=f"sqlite:///{path}", display=str(path), sqlite_path=path)


def _postgres_location(text: str) -> LedgerLocation:
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise UsageError(f"--ledger: not a valid PostgreSQL URL: {exc}") from None
    url = url.set(drivername="postgresql+psycopg")
    return LedgerLocation(
        url=url.render_as_string(hide_password=False),
        display=url.render_as_string(hide_password=True),
    )


WAL_SWITCH_SECONDS = 5.0
"""How long opening a new SQLite ledger keeps trying to switch it to WAL (as busy_timeout)."""


def create_ledger_engine(location: LedgerLocation) -> Engine:
    """An engine for ``location``; a new SQLite file is created readable by its owner only."""
    if location.sqlite_path is not None:
        _prepare_sqlite_file(location.sqlite_path)
        engine = create_engine(location.url, connect_args={"timeout": 5.0})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(location.url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    except ModuleNotFoundError:
        raise UsageError(
            "PostgreSQL ledgers need psycopg: pip install 'genbatch[postgres]'"
        ) from None


def _prepare_sqlite_file(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create it ourselves with 0600: prompts and request ids are nobody else's business.
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
    except OSError as exc:
        raise LedgerError(f"cannot create the ledger {path}: {exc.strerror}") from None


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
