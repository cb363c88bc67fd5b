"""The SQLite ledger file: created whole, refused when damaged, trusted once closed cleanly.

A new ledger is written beside its name and linked into place, so that an empty file is never
left under it; an existing one is refused when it is empty or shorter than its own header says,
and checked with SQLite's ``quick_check`` unless genbatch closed it cleanly and nothing wrote it
since (a mark beside it: ``-closed``), or a genbatch run holding it checked it when it opened it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genbatch.errors import LedgerError

if TYPE_CHECKING:
    from genbatch.ledger.engine import LedgerLocation


def prepare_sqlite_file(location: LedgerLocation) -> None:
    """Check the ledger file at ``location`` before it is opened (or create it, where it may
    be created); ``LedgerError`` when it is damaged, or missing where it may not be created."""
    path = location.sqlite_path
    assert path is not None  # a SQLite location
    if path.exists():
        refuse_damaged_sqlite_file(path)
        # A genbatch run holding the ledger checked it when it opened it: a `status` (or any
        # command) during that run need not read the whole file again, every time.
        if not closed_cleanly(path) and not driven_by_another_process(path):
            refuse_failed_quick_check(path)
        _forget_clean_close(path)  # open from now on: a crash must not look clean
        return
    if not location.may_create:
        raise location.missing()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _create_sqlite_file(path)
    except OSError as exc:
        raise LedgerError(f"cannot create the ledger {path}: {exc.strerror}") from None


def _create_sqlite_file(path: Path) -> None:
    """Make ``path`` a valid, empty SQLite database, mode 0600, without ever leaving an empty
    file under its name: an empty ledger file is refused as damaged (see below), so a new one
    is written beside it and linked into place, which also never replaces a file that another
    process created meanwhile."""
    new = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.new")
    # Created by us with 0600: prompts and request ids are nobody else's business.
    os.close(os.open(new, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    try:
        with contextlib.closing(sqlite3.connect(new)) as conn:
            # Switching to WAL writes the database header: the file is a database from now on.
            conn.execute("PRAGMA journal_mode=WAL")
        _link_into_place(new, path)
    finally:
        with contextlib.suppress(OSError):
            new.unlink()


def _link_into_place(new: Path, path: Path) -> None:
    try:
        os.link(new, path)
    except FileExistsError:
        return  # another process created the ledger first: it is the one to use
    except OSError:
        # A filesystem without hard links: an exclusive create, then the bytes. Another process
        # opening the ledger within that instant would find it empty and refuse it (safely).
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(new.read_bytes())


SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_HEADER_SIZE = 100


def refuse_damaged_sqlite_file(path: Path) -> None:
    """Raise ``LedgerError`` when the ledger file ``path`` is empty or shorter than its own
    header says: a new ledger taken for it would submit (and pay for) every job again.

    Anything else that is not a database is left for SQLite to refuse ("file is not a
    database"). A truncation hidden by a write-ahead log that is not yet checkpointed is left
    to SQLite too: the database is then rebuilt from that log.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            header = handle.read(SQLITE_HEADER_SIZE)
    except OSError as exc:
        raise LedgerError(f"cannot read the ledger {path}: {exc.strerror}") from None
    if size == 0:
        raise LedgerError(
            f"the ledger {path} is empty (0 bytes): it is damaged, not new; refusing to start "
            "afresh over it (that would submit every job again): restore it from a backup, "
            "or remove it if no run was ever recorded in it"
        )
    expected = _size_in_header(header)
    if expected is not None and size < expected and not _has_wal_frames(path):
        raise LedgerError(
            f"the ledger {path} is truncated ({size} bytes where its header announces "
            f"{expected}): refusing to use it; restore it from a backup"
        )


def _size_in_header(header: bytes) -> int | None:
    """The database size a SQLite header announces, when it is trustworthy (None otherwise)."""
    if len(header) < SQLITE_HEADER_SIZE or not header.startswith(SQLITE_MAGIC):
        return None
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # SQLite itself trusts the page count only when the change counter matches the
    # "version valid for" number (an older SQLite may have changed the file without it).
    if pages == 0 or header[24:28] != header[92:96]:
        return None
    return page_size * pages


def _has_wal_frames(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    try:
        return wal.stat().st_size > 0
    except OSError:
        return False


CLEAN_CLOSE_SUFFIX = "-closed"
"""Beside ``ledger.db``, ``ledger.db-closed`` describes the file as genbatch last closed it."""
CLOCK_TICK_WAIT_SECONDS = 0.05
"""How long closing a ledger waits for the filesystem's clock to pass the file's last write
(one tick: 1-10 ms on ext4, xfs, btrfs, tmpfs). On a coarser clock the mark holds no
fingerprint and the next open checks the ledger."""


def closed_cleanly(path: Path) -> bool:
    """Whether the SQLite ledger ``path`` is, as far as its size, inode and mtime tell, the file
    genbatch closed cleanly last: no write-ahead log left, nothing written since."""
    if _has_wal_frames(path):
        return False
    try:
        mark = json.loads(_clean_close_path(path).read_text(encoding="utf-8"))
        now = _fingerprint(path)
        return bool(now == mark["file"] and now["mtime_ns"] < mark["clock_ns"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


RUN_LOCK_SUFFIX = ".lock"
"""Beside ``ledger.db``, ``ledger.db.lock``: flocked by the process driving its runs
(``Ledger.exclusive``)."""


def driven_by_another_process(path: Path) -> bool:
    """Whether a live process holds the run lock of the SQLite ledger ``path`` (it opened the
    ledger, integrity check included, before taking the lock)."""
    try:
        fd = os.open(path.with_name(path.name + RUN_LOCK_SUFFIX), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False  # no lock file: no run ever drove it
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # releases the shared lock, if taken
    return False


def refuse_failed_quick_check(path: Path) -> None:
    """Raise ``LedgerError`` unless SQLite's ``PRAGMA quick_check`` finds ``path`` sound.

    A damaged page read later would fail the run halfway, or worse, be taken for a missing job
    and submitted (paid) again: it is refused before anything is sent.
    """
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5.0)) as conn:
            rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            return  # in use: the engine's own connection says so, with its usual message
        problem = str(exc)
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    else:
        problem = "" if rows == [("ok",)] else str(rows[0][0]) if rows else "no answer"
    if problem:
        raise LedgerError(
            f"the ledger {path} is corrupt (SQLite's quick_check: {problem[:200]}): refusing "
            "to use it; restore it from a backup"
        )


def mark_closed_cleanly(path: Path) -> None:
    """Record that genbatch closed ``path`` cleanly (best effort: without the mark, the next
    open checks the ledger, nothing worse).

    The mark holds the file's size, inode and mtime, taken once the filesystem's own clock (the
    mtime it gives the mark file) is past that mtime: any later write to the ledger then gets a
    later mtime and is seen. A write within the tick of the last one could otherwise keep the
    mtime unchanged (git's "racy" case).
    """
    if _has_wal_frames(path) or driven_by_another_process(path):
        # Another process still has it open: its own close will mark it. (A command run during
        # a run did not check the file when it opened it, so it cannot vouch for it either.)
        return
    mark_path = _clean_close_path(path)
    deadline = time.monotonic() + CLOCK_TICK_WAIT_SECONDS
    with contextlib.suppress(OSError):
        while True:
            clock_ns = _write_mark(mark_path, {})  # no fingerprint yet: not a clean mark
            file = _fingerprint(path)
            if file["mtime_ns"] < clock_ns:
                _write_mark(mark_path, {"file": file, "clock_ns": clock_ns})
                return
            if time.monotonic() > deadline:
                return  # a coarse clock: the mark holds no fingerprint, the next open checks
            time.sleep(0.001)


def _write_mark(mark_path: Path, mark: dict[str, Any]) -> int:
    """Write ``mark`` to ``mark_path``; return the mtime the filesystem gave it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    fd = os.open(mark_path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(mark, out)
        out.flush()
        return os.fstat(out.fileno()).st_mtime_ns


def _forget_clean_close(path: Path) -> None:
    with contextlib.suppress(OSError):
        _clean_close_path(path).unlink(missing_ok=True)


def _clean_close_path(path: Path) -> Path:
    return path.with_name(path.name + CLEAN_CLOSE_SUFFIX)


def _fingerprint(path: Path) -> dict[str, int]:
    info = path.stat()
    return {"size": info.st_size, "ino": info.st_ino, "mtime_ns": info.st_mtime_ns}
