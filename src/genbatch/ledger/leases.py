"""Workers and leases: how several genbatch processes share one run without stepping on each other.

A worker claims a job with a lease (``jobs.worker``, ``jobs.lease_until``) and its heartbeat
renews every lease it holds. A lease past its end means its worker is gone: another worker takes
the job over, re-attaching to its request id (never resubmitting it), or, for a job caught
``submitting``, marking it ``unknown`` (its POST may have landed). A NULL lease means nobody
drives the job now (its worker gave up on it this time, say a download failed): the next worker to
start adopts it, as a resume does.

Times come from the database's clock on PostgreSQL, so workers on machines whose clocks disagree
still agree on when a lease ends; a SQLite ledger lives on one machine, whose clock is the clock.
These are statements on a connection: ``Ledger`` wraps each use in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from genbatch.ledger import statements as sql
from genbatch.ledger.records import JobRecord, WorkerInfo, from_row
from genbatch.ledger.tables import ATTEMPTS, JOBS, RUNS, WORKERS, utcnow
from genbatch.lifecycle import AttemptOutcome, Move
from genbatch.states import LEASED_STATES, JobState
from genbatch.workers import WorkerIdentity

LEASED = [s.value for s in LEASED_STATES]
INTERRUPTED = "interrupted while submitting: the request may or may not exist remotely"


def lease_time(conn: Connection, seconds_from_now: float = 0.0) -> Any:
    """Now plus ``seconds_from_now`` as leases measure it: a SQL expression of the database's
    clock on PostgreSQL, the local time on SQLite."""
    delta = timedelta(seconds=seconds_from_now)
    if conn.dialect.name == "sqlite":
        return utcnow() + delta
    return func.now() + delta if seconds_from_now else func.now()


def aware(value: datetime) -> datetime:
    """``value`` with a timezone: SQLite hands UTC times back naive."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def lock_run(conn: Connection, run_id: int, *, exclusive: bool = True) -> str | None:
    """The run's pending stop request (``genbatch cancel``), if any; ``exclusive`` also
    serializes the rest of the transaction with every other claim or sync of the run.

    The run-wide limit and the budget are checks over all of the run's jobs: two workers that
    checked at once could both pass and together cross them. Call it first in the transaction.
    """
    if conn.dialect.name == "sqlite":
        # pysqlite opens its transaction only at the first write, after our reads; IMMEDIATE
        # takes SQLite's single write lock before them instead.
        driver = conn.connection.driver_connection
        if driver is not None and not driver.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    query = select(RUNS.c.stop_requested).where(RUNS.c.id == run_id)
    if exclusive and conn.dialect.name != "sqlite":
        query = query.with_for_update()
    return conn.execute(query).scalar()


def register(
    conn: Connection, run_id: int, worker: WorkerIdentity, *, concurrency: int, lease_seconds: float
) -> None:
    """Record a new worker of the run."""
    conn.execute(
        insert(WORKERS).values(
            id=worker.id,
            run_id=run_id,
            host=worker.host,
            pid=worker.pid,
            concurrency=concurrency,
            lease_seconds=lease_seconds,
            started_at=lease_time(conn),
            heartbeat_at=lease_time(conn),
        )
    )


def renew(conn: Connection, run_id: int, worker_id: str, *, lease_seconds: float) -> int:
    """Heartbeat: extend every lease the worker still holds; the number of jobs held."""
    conn.execute(
        update(WORKERS).where(WORKERS.c.id == worker_id).values(heartbeat_at=lease_time(conn))
    )
    result = conn.execute(
        update(JOBS)
        .where(*_leased(run_id), JOBS.c.worker == worker_id)
        .values(lease_until=lease_time(conn, lease_seconds))
    )
    return int(result.rowcount)


def release(conn: Connection, run_id: int, worker_id: str) -> None:
    """The worker exits: its leases end now, so running workers take its jobs over at once."""
    conn.execute(
        update(WORKERS)
        .where(WORKERS.c.id == worker_id)
        .values(stopped_at=lease_time(conn), heartbeat_at=lease_time(conn))
    )
    held = (*_leased(run_id), JOBS.c.worker == worker_id)
    conn.execute(update(JOBS).where(*held).values(lease_until=lease_time(conn)))


def park(conn: Connection, job: JobRecord, worker_id: str) -> None:
    """The worker gives up on the job for now (a download failed...): not taken over by
    running workers, adopted by the next one to start."""
    conn.execute(
        update(JOBS).where(JOBS.c.id == job.id, JOBS.c.worker == worker_id).values(lease_until=None)
    )


def stopping(conn: Connection, run_id: int) -> bool:
    """The run has a stop request that live workers have not all acted on: some hold leases
    that have not ended. Such a worker learns of the stop only at its next claim (when a slot
    frees), so a worker starting now must not forget the request for it: it stops too. SQLite
    has one process at a time: whatever leases a crashed one left, nobody is stopping."""
    # Exclusive: a cancel committed between this read and the clear below would be lost.
    if conn.dialect.name == "sqlite" or not lock_run(conn, run_id):
        return False
    live = select(func.count()).where(*_leased(run_id), JOBS.c.lease_until > lease_time(conn))
    return int(conn.execute(live).scalar_one()) > 0


def others_in_flight(conn: Connection, run_id: int, worker_id: str) -> int:
    """Jobs in flight held by other workers: alive (they may still go back to pending) or gone
    (to be taken over once their lease ends)."""
    others = select(func.count()).where(*_leased(run_id), JOBS.c.worker != worker_id)
    return int(conn.execute(others).scalar_one())


def take_over(
    conn: Connection, run_id: int, worker_id: str, *, lease_seconds: float, starting: bool
) -> tuple[list[Any], list[Any]]:
    """``Ledger.take_over``: the rows re-attached to ``worker_id``, and those of the jobs caught
    ``submitting`` that became ``unknown`` (as they were)."""
    query = select(JOBS).where(JOBS.c.run_id == run_id, JOBS.c.state.in_(LEASED))
    expired = JOBS.c.lease_until <= lease_time(conn)
    if not starting:
        query = query.where(expired, JOBS.c.worker != worker_id)
    elif conn.dialect.name != "sqlite":
        query = query.where(expired | JOBS.c.lease_until.is_(None))
    # Two workers looking at once each take different jobs; a renewing owner keeps its own.
    rows = conn.execute(query.order_by(JOBS.c.ordinal).with_for_update(skip_locked=True)).all()
    interrupted = [r for r in rows if r.state == JobState.SUBMITTING]
    attached = [r for r in rows if r.state != JobState.SUBMITTING]
    _mark_unknown(conn, [r.id for r in interrupted])
    if attached:
        conn.execute(
            update(JOBS)
            .where(JOBS.c.id.in_([r.id for r in attached]))
            .values(worker=worker_id, lease_until=lease_time(conn, lease_seconds))
        )
    return attached, interrupted


def _mark_unknown(conn: Connection, job_ids: Sequence[int]) -> None:
    if not job_ids:
        return
    now = utcnow()
    conn.execute(
        update(ATTEMPTS)
        .where(ATTEMPTS.c.job_id.in_(job_ids), ATTEMPTS.c.outcome == AttemptOutcome.SENDING)
        .values(outcome=AttemptOutcome.UNKNOWN.value, error=INTERRUPTED, finished_at=now)
    )
    # The lease is left as it was (expired): an `unknown` job holds no slot, and should the
    # answer of its frozen worker arrive after all (ACCEPT from `unknown`), the job is queued
    # under that lease, renewed by that worker's heartbeat or taken over once it has lapsed.
    interrupt = sql.transition(Move.INTERRUPT, JOBS.c.id.in_(job_ids), now=now, error=INTERRUPTED)
    conn.execute(interrupt).all()


def workers(conn: Connection, run_id: int) -> list[WorkerInfo]:
    """Every worker the run has had, newest first, with its leases and jobs done."""
    as_of = utcnow()
    if conn.dialect.name != "sqlite":
        as_of = aware(conn.execute(select(func.now())).scalar_one())
    rows = conn.execute(
        select(WORKERS).where(WORKERS.c.run_id == run_id).order_by(WORKERS.c.started_at.desc())
    ).all()
    per_worker = select(JOBS.c.worker, func.count()).group_by(JOBS.c.worker)
    leased = per_worker.add_columns(func.max(JOBS.c.lease_until)).where(*_leased(run_id))
    held = {worker: (count, until) for worker, count, until in conn.execute(leased)}
    finished = per_worker.where(JOBS.c.run_id == run_id, JOBS.c.state == JobState.DONE)
    done: dict[str, int] = {worker: count for worker, count in conn.execute(finished)}
    return [_worker_info(r, held.get(r.id, (0, None)), int(done.get(r.id, 0)), as_of) for r in rows]


def _worker_info(
    row: Any, held: tuple[int, datetime | None], done: int, as_of: datetime
) -> WorkerInfo:
    count, until = held
    return from_row(
        WorkerInfo,
        row,
        started_at=aware(row.started_at),
        heartbeat_at=aware(row.heartbeat_at),
        stopped_at=aware(row.stopped_at) if row.stopped_at else None,
        jobs_held=int(count),
        lease_until=aware(until) if until else None,
        jobs_done=done,
        as_of=as_of,
    )


def _leased(run_id: int) -> tuple[Any, ...]:
    """The run's jobs in flight that a worker holds (a NULL lease: nobody drives the job)."""
    return (JOBS.c.run_id == run_id, JOBS.c.state.in_(LEASED), JOBS.c.lease_until.is_not(None))
