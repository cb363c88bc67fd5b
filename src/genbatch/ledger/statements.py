"""The statements every job of a run goes through, built once and named.

A statement rebuilt on each call with ``.values(...)`` makes SQLAlchemy compute its cache key
every time: measured 192 µs per UPDATE, against 75 µs for one built once with ``bindparam``
(figure 6 of docs/benchmarks.md). These run a few times per job, so ``PerJobStatements``
compiles them once per dialect and runs them on the driver's cursor (``driver.py``); the rarer
statements are built where they are used. Values are bound by name, prefixed ``b_`` (an UPDATE
cannot bind a parameter under the name of a column it sets).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import DateTime, Interval, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Dialect

from genbatch.ledger.driver import DriverStatement
from genbatch.ledger.tables import AttemptRow, JobRow, OutputRow
from genbatch.states import JobState

JOBS = JobRow.__table__  # type: ignore[attr-defined]  # SQLModel sets __table__ at class creation
ATTEMPTS = AttemptRow.__table__  # type: ignore[attr-defined]  # idem
OUTPUTS = OutputRow.__table__  # type: ignore[attr-defined]  # idem


def _job(name: str = "b_job") -> Any:
    return JOBS.c.id == bindparam(name)


def _attempt() -> Any:
    return ATTEMPTS.c.id == bindparam("b_attempt")


# -- claiming -------------------------------------------------------------------------------

NEXT_PENDING = (
    select(JOBS.c.id)
    .where(
        JOBS.c.run_id == bindparam("b_run"),
        JOBS.c.state == JobState.PENDING.value,
        JOBS.c.in_manifest.is_(True),
    )
    .order_by(JOBS.c.ordinal)
    .limit(1)
)
"""The run's next pending job, in manifest order."""

NEXT_PENDING_SKIP_LOCKED = NEXT_PENDING.with_for_update(skip_locked=True)
"""The same, for workers claiming at once: each skips the rows the others have locked."""


class ClaimedRow(NamedTuple):
    """What a claim returns: the columns of a ``JobRecord``, none that a driver would hand back
    unconverted (a SQLite DATETIME is text, a boolean an integer). Read by attribute, as
    SQLAlchemy's rows are."""

    id: int
    run_id: int
    key: str
    ordinal: int
    block: str
    model_id: str
    inputs_json: str
    variables_json: str
    repeat_index: int
    file_stem: str
    output_dir: str
    state: str
    request_id: str | None
    attempts: int
    error: str | None
    cost_usd: float | None


def _claim(lease_until: Any) -> Any:
    return (
        update(JOBS)
        .where(_job())
        .values(
            state=JobState.SUBMITTING.value,
            attempts=JOBS.c.attempts + 1,
            error=None,
            request_id=None,
            worker=bindparam("b_worker"),
            updated_at=bindparam("b_now"),
            lease_until=lease_until,
        )
        .returning(*(JOBS.c[name] for name in ClaimedRow._fields))
    )


CLAIM_LOCAL_CLOCK = _claim(bindparam("b_lease", type_=DateTime(timezone=True)))
"""The intent to submit (SQLite): ``b_lease`` is when the lease ends, or None."""

CLAIM_DATABASE_CLOCK = _claim(func.now() + bindparam("b_lease", type_=Interval()))
"""The intent to submit (PostgreSQL): ``b_lease`` is the lease's length, counted on the
database's clock (a NULL length leaves the job unleased)."""

NEW_ATTEMPT = (
    insert(ATTEMPTS)
    .values(
        job_id=bindparam("b_job"),
        number=bindparam("b_number"),
        outcome="sending",
        intent_at=bindparam("b_now"),
    )
    .returning(ATTEMPTS.c.id)
)

# -- following a request --------------------------------------------------------------------

ATTEMPT_ACCEPTED = (
    update(ATTEMPTS)
    .where(_attempt())
    .values(request_id=bindparam("b_request"), outcome="accepted", accepted_at=bindparam("b_now"))
)

JOB_QUEUED = (
    update(JOBS)
    .where(_job())
    .values(
        state=JobState.QUEUED.value,
        request_id=bindparam("b_request"),
        updated_at=bindparam("b_now"),
    )
)

ATTEMPT_REMOTE_STATUS = (
    update(ATTEMPTS).where(_attempt()).values(remote_status=bindparam("b_status"))
)

JOB_STATE = (
    update(JOBS).where(_job()).values(state=bindparam("b_state"), updated_at=bindparam("b_now"))
)
"""A move that changes nothing else (queued ⇄ running, → fetching)."""

ATTEMPT_SUCCEEDED = (
    update(ATTEMPTS)
    .where(_attempt())
    .values(outcome="succeeded", remote_status="succeeded", finished_at=bindparam("b_now"))
)

# -- outputs --------------------------------------------------------------------------------

FORGET_OUTPUTS = delete(OUTPUTS).where(OUTPUTS.c.job_id == bindparam("b_job"))
"""An earlier attempt's URLs, replaced by the succeeding attempt's."""

NEW_OUTPUT = (
    insert(OUTPUTS)
    .values(
        job_id=bindparam("b_job"),
        attempt_id=bindparam("b_attempt"),
        position=bindparam("b_position"),
        url=bindparam("b_url"),
    )
    .returning(OUTPUTS.c.id)
)

OUTPUTS_OF_JOB = (
    select(OUTPUTS).where(OUTPUTS.c.job_id == bindparam("b_job")).order_by(OUTPUTS.c.position)
)

FILE_STORED = (
    update(OUTPUTS)
    .where(OUTPUTS.c.id == bindparam("b_output"))
    .values(
        path=bindparam("b_path"),
        size=bindparam("b_size"),
        sha256=bindparam("b_sha256"),
        downloaded_at=bindparam("b_now"),
        host=bindparam("b_host"),
    )
)

JOB_DONE = (
    update(JOBS)
    .where(_job())
    .values(
        state=JobState.DONE.value,
        error=None,
        updated_at=bindparam("b_now"),
        finished_at=bindparam("b_now"),
    )
)


class PerJobStatements:
    """The statements above that every job goes through, compiled for one ledger's dialect."""

    def __init__(self, dialect: Dialect, *, shared: bool) -> None:
        def compiled(statement: Any) -> DriverStatement:
            return DriverStatement(statement, dialect)

        self.next_pending = compiled(NEXT_PENDING_SKIP_LOCKED if shared else NEXT_PENDING)
        self.claim = compiled(CLAIM_DATABASE_CLOCK if shared else CLAIM_LOCAL_CLOCK)
        self.new_attempt = compiled(NEW_ATTEMPT)
        self.attempt_accepted = compiled(ATTEMPT_ACCEPTED)
        self.job_queued = compiled(JOB_QUEUED)
        self.attempt_remote_status = compiled(ATTEMPT_REMOTE_STATUS)
        self.job_state = compiled(JOB_STATE)
        self.attempt_succeeded = compiled(ATTEMPT_SUCCEEDED)
        self.forget_outputs = compiled(FORGET_OUTPUTS)
        self.new_output = compiled(NEW_OUTPUT)
        self.file_stored = compiled(FILE_STORED)
        self.job_done = compiled(JOB_DONE)
