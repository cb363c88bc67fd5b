"""Creating and upgrading the ledger's schema, on SQLite and PostgreSQL alike.

A ledger records its schema version in ``genbatch_meta``. Opening a ledger creates the schema
when the database is empty, upgrades it step by step when older, and refuses a database that has
tables but is not a genbatch ledger, or that a newer genbatch wrote: never a silent fresh start.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select
from sqlmodel import SQLModel

from genbatch.errors import LedgerError
from genbatch.ledger import tables
from genbatch.ledger.tables import SCHEMA_VERSION, MetaRow

META = MetaRow.__table__  # type: ignore[attr-defined]  # set by SQLModel

# MIGRATIONS[n] upgrades a ledger from version n to n + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


def ensure_schema(engine: Engine, *, display: str) -> None:
    """Create or upgrade the schema of the ledger behind ``engine``."""
    with engine.begin() as conn:
        names = set(inspect(conn).get_table_names())
        if not names:
            _create(conn)
            return
        if META.name not in names:
            raise LedgerError(f"{display} is a database but not a genbatch ledger "
                              f"(it has tables {', '.join(sorted(names)[:5])}); refusing to use it")
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise LedgerError(f"the ledger {display} was written by a newer genbatch "
                              f"(schema {version}, this one knows {SCHEMA_VERSION}): "
                              "upgrade genbatch")
        for step in range(version, SCHEMA_VERSION):
            MIGRATIONS[step](conn)
            _set_version(conn, step + 1)


def _create(conn: Connection) -> None:
    # SQLModel.metadata knows the tables because ``tables`` is imported above.
    assert tables.SCHEMA_VERSION == SCHEMA_VERSION
    SQLModel.metadata.create_all(conn)
    conn.execute(META.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))


def _version(conn: Connection) -> int:
    value = conn.execute(select(META.c.value).where(META.c.key == "schema_version")).scalar()
    return int(value) if value is not None else 0


def _set_version(conn: Connection, version: int) -> None:
    conn.execute(META.update().where(META.c.key == "schema_version").values(value=str(version)))
