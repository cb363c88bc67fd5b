"""Creating and upgrading the ledger's schema, on SQLite and PostgreSQL alike.

A ledger records its schema version in ``genbatch_meta``. Opening a ledger creates the schema
when the database is empty, upgrades it step by step when older, and refuses a database that has
tables but is not a genbatch ledger, or that a newer genbatch wrote: never a silent fresh start.
A reading command opens with creation forbidden (``LedgerLocation.may_create``): an empty
database is then "no ledger here", not a new one.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text

from genbatch.errors import LedgerError
from genbatch.ledger.engine import LedgerLocation
from genbatch.ledger.tables import (
    CATALOG_MODELS,
    META,
    METADATA,
    RATINGS,
    SCHEMA_VERSION,
    WORKERS,
)

# Any constant will do: it names the lock every genbatch takes while creating or upgrading.
SCHEMA_LOCK_KEY = 0x67656E62  # "genb"


def _v1_to_v2(conn: Connection) -> None:
    """Several workers per run: the workers table, and which host wrote each output file."""
    WORKERS.create(conn)
    conn.execute(text("ALTER TABLE outputs ADD COLUMN host VARCHAR"))


def _v2_to_v3(conn: Connection) -> None:
    """Resumes that skip the sync: what each run's jobs were last synced from (NULL: unknown)."""
    conn.execute(text("ALTER TABLE runs ADD COLUMN jobs_fingerprint TEXT"))


def _v3_to_v4(conn: Connection) -> None:
    """Polls from history: each success's generation time as the API reported it (NULL before)."""
    conn.execute(text("ALTER TABLE attempts ADD COLUMN generation_seconds FLOAT"))


def _v4_to_v5(conn: Connection) -> None:
    """Schemas and prices from the API's catalog, cached: an empty table (nothing fetched yet)."""
    CATALOG_MODELS.create(conn)


def _v5_to_v6(conn: Connection) -> None:
    """The same job in other runs and the owner of an output file name, found by indexes: the
    preflight's checks joined every pending job with every job of the ledger (a resume of
    100,000 jobs took minutes to its first submit)."""
    conn.execute(text("CREATE INDEX ix_jobs_key ON jobs (key)"))
    conn.execute(text("CREATE INDEX ix_jobs_output_file ON jobs (output_dir, file_stem)"))


def _v6_to_v7(conn: Connection) -> None:
    """metadata.jsonl appended to at a run's exit rather than rewritten: the order in which jobs
    became done (jobs done before get their id as rank, below any rank given later); a run's
    counts, spend and folders read from indexes (a million-job run's exit read every row)."""
    conn.execute(text("ALTER TABLE jobs ADD COLUMN done_seq INTEGER"))
    conn.execute(text("UPDATE jobs SET done_seq = id WHERE state = 'done'"))
    conn.execute(text("CREATE INDEX ix_jobs_done_seq ON jobs (done_seq)"))
    # `status` of a 100,000-job ledger read every row for its counts: now the index has them.
    conn.execute(text("DROP INDEX ix_jobs_run_state_ordinal"))
    conn.execute(
        text(
            "CREATE INDEX ix_jobs_run_state ON jobs "
            "(run_id, state, ordinal, in_manifest, attempts, worker, cost_usd)"
        )
    )
    conn.execute(text("CREATE INDEX ix_jobs_run_dir ON jobs (run_id, output_dir)"))


def _v7_to_v8(conn: Connection) -> None:
    """Ratings of output files (``genbatch review``): an empty table (nothing rated yet)."""
    RATINGS.create(conn)


# MIGRATIONS[n] upgrades a ledger from version n to n + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
    5: _v5_to_v6,
    6: _v6_to_v7,
    7: _v7_to_v8,
}


def ensure_schema(engine: Engine, location: LedgerLocation) -> None:
    """Create or upgrade the schema of the ledger at ``location``, behind ``engine``."""
    display = location.display
    with engine.begin() as conn:
        _one_at_a_time(conn)
        names = set(inspect(conn).get_table_names())
        if not names:
            if not location.may_create:
                raise LedgerError(
                    f"no ledger in {display} yet (`genbatch run MANIFEST` creates it)"
                )
            _create(conn)
            return
        if META.name not in names:
            raise LedgerError(
                f"{display} is a database but not a genbatch ledger "
                f"(it has tables {', '.join(sorted(names)[:5])}); refusing to use it"
            )
        version = _version(conn, display)
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"the ledger {display} was written by a newer genbatch "
                f"(schema {version}, this one knows {SCHEMA_VERSION}): "
                "upgrade genbatch"
            )
        for step in range(version, SCHEMA_VERSION):
            MIGRATIONS[step](conn)
            _set_version(conn, step + 1)


def _one_at_a_time(conn: Connection) -> None:
    # Processes starting together: one creates or upgrades, the others then find it done.
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
    else:
        # pysqlite runs DDL outside any transaction unless one is opened explicitly; IMMEDIATE
        # takes the write lock now, so a second process waits instead of racing.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _create(conn: Connection) -> None:
    METADATA.create_all(conn)
    conn.execute(META.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))


def _version(conn: Connection, display: str) -> int:
    value = conn.execute(select(META.c.value).where(META.c.key == "schema_version")).scalar()
    version = int(value) if isinstance(value, str) and value.strip().isdigit() else None
    if version is None or version < 1:
        raise LedgerError(
            f"the ledger {display} records schema_version {value!r}, which no genbatch wrote: "
            "it was edited or is damaged; restore it from a backup"
        )
    return version


def _set_version(conn: Connection, version: int) -> None:
    conn.execute(META.update().where(META.c.key == "schema_version").values(value=str(version)))
