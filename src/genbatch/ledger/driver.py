"""The per-job statements, run on the database driver's own cursor.

SQLAlchemy's execution path costs 25 to 90 µs per statement even for one built once (a cache
lookup, a dictionary of parameters processed one by one, a result object set up); the driver's
cursor runs the same SQL in about 8 µs on SQLite. Every job goes through about ten of these
statements, so they are compiled once per dialect from their SQLAlchemy form in
``statements.py`` (still the place to read them) and executed here with positional (SQLite) or
named (psycopg) parameters. Values are bound by SQLAlchemy's own type processors (a SQLite
DATETIME is text), so rows read back exactly as before. A driver error is an instance of the
DBAPI module's ``Error``; ``Ledger._errors`` translates it as it does SQLAlchemy's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class DriverStatement:
    """One statement compiled for ``dialect``, executed on the DBAPI cursor of a connection."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)  # a DML or SELECT statement
        self.sql = compiled.string
        # Values fixed in the statement itself (``state='done'``), bound like the others.
        self._constants = {
            name: bind.effective_value
            for bind, name in compiled.bind_names.items()
            if not bind.required
        }
        self._processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self._processors[name] = process
        self._order = tuple(compiled.positiontup or ()) if dialect.positional else None

    def __repr__(self) -> str:
        return f"DriverStatement({self.sql!r})"

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        """``values`` (by bind name) and the constants, processed, in the driver's paramstyle."""
        bound = {**self._constants, **values}
        for name, process in self._processors.items():
            bound[name] = process(bound[name])
        if self._order is None:
            return bound
        return tuple(bound[name] for name in self._order)

    def run(self, conn: Connection, values: Mapping[str, Any]) -> int:
        """Execute; the number of rows changed."""
        cursor = _cursor(conn)
        try:
            cursor.execute(self.sql, self.parameters(values))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def one(self, conn: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Execute; the first row it returns (None when it returns none)."""
        cursor = _cursor(conn)
        try:
            cursor.execute(self.sql, self.parameters(values))
            row = cursor.fetchone()
            return None if row is None else tuple(row)
        finally:
            cursor.close()


def _cursor(conn: Connection) -> Any:
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None  # a connection in use is never detached
    return dbapi_connection.cursor()
