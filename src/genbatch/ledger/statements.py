"""The ledger's statements, named, in SQLAlchemy Core.

``transition`` builds the only statement that writes ``jobs.state``: a move of the lifecycle
table (``genbatch.lifecycle``) guarded by the move's source states. Per-job statements are built
once with ``bindparam`` so SQLAlchemy compiles each once; values are bound by name, prefixed
``b_`` (an UPDATE cannot bind a parameter under the name of a column it sets).
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Delete,
    Float,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    update,
)

from genbatch.ledger.tables import JOBS, META, OUTPUTS
from genbatch.lifecycle import Move
from genbatch.states import BUDGET_STATES, REMOTE_ACTIVE_STATES, TERMINAL_STATES, JobState

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert


def insert_on_conflict(conn: Connection, table: Table) -> PostgresqlInsert | SqliteInsert:
    """An ``INSERT`` into ``table`` that takes an ``ON CONFLICT`` clause, in ``conn``'s dialect
    (SQLite and PostgreSQL spell it alike; SQLAlchemy has a construct for each). Each dialect's
    module is loaded when first used: a command reading a SQLite ledger (``genbatch status``)
    does not wait for PostgreSQL's."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


MOVED = (JOBS.c.state, JOBS.c.request_id, JOBS.c.attempts, JOBS.c.error)
"""The columns a move of one job can change, all that ``job_move`` returns: the rest of the
job's record is the caller's already (reading back its JSON inputs cost more than the move)."""


def transition(
    move: Move,
    *where: ColumnElement[bool],
    now: Any,
    returning: tuple[ColumnElement[Any], ...] = tuple(JOBS.c),
    **values: Any,
) -> Update:
    """The guarded write of ``move``: jobs matching ``where`` that are still in one of the
    move's source states take its target state (and the columns the move implies), returning
    ``returning`` of their new rows (every column unless told). ``values`` sets more columns (a
    request id, an error, a lease)."""
    t = move.transition
    changes: dict[str, Any] = {"state": t.target.value, "updated_at": now}
    if t.forgets_request:
        changes["request_id"] = None
    if t.refunds_attempt:
        changes["attempts"] = JOBS.c.attempts - 1
    if t.target in TERMINAL_STATES:
        changes["finished_at"] = now
    if t.target is JobState.DONE:
        changes["error"] = None
        changes["done_seq"] = next_done_rank()
    changes.update(values)
    sources = sorted(state.value for state in t.sources)
    return (
        update(JOBS)
        .where(JOBS.c.state.in_(sources), *where)
        .values(**changes)
        .returning(*returning)
    )


def highest_done_rank(jobs: Any = JOBS) -> Any:
    """The highest ``done_seq`` given so far, 0 when no job was ever done (an index lookup)."""
    return select(func.coalesce(func.max(jobs.c.done_seq), 0))


def next_done_rank() -> Any:
    """One more than the highest ``done_seq``: the rank of a job done now."""
    earlier = JOBS.alias("earlier")  # an alias, or it would correlate with the updated row
    return highest_done_rank(earlier).scalar_subquery() + 1


@functools.cache
def job_move(move: Move, *, checks_holder: bool, sets_request: bool) -> Update:
    """``transition`` of the job ``b_job``, built once per shape (a statement built on each call
    costs more than running it): ``b_now``, ``b_error``; ``b_worker`` must hold the job when
    ``checks_holder`` (a worker that lost it to a takeover holds it no more); ``b_request`` is
    its request id when ``sets_request``. It returns the ``MOVED`` columns."""
    where = [JOBS.c.id == bindparam("b_job")]
    if checks_holder:
        where.append(JOBS.c.worker == bindparam("b_worker"))
    values: dict[str, Any] = {"error": bindparam("b_error")}
    if sets_request:
        values["request_id"] = bindparam("b_request")
    return transition(move, *where, now=bindparam("b_now"), returning=MOVED, **values)


def pending(run: Any) -> tuple[ColumnElement[bool], ...]:
    """What selects the run's pending jobs (of the current manifest)."""
    state = JobState.PENDING.value
    return (JOBS.c.run_id == run, JOBS.c.state == state, JOBS.c.in_manifest.is_(True))


def pending_in_order(run: Any, count: Any) -> Select[Any]:
    """The run's next ``count`` pending jobs, in manifest order, with their estimated cost."""
    query = select(JOBS.c.id, JOBS.c.ordinal, JOBS.c.cost_usd).where(*pending(run))
    return query.order_by(JOBS.c.ordinal).limit(count)


def remote_active(run: Any) -> Select[Any]:
    """How many of the run's jobs hold a slot of its remote concurrency. Jobs nobody drives
    (NULL lease) are not counted: no one would free them."""
    return select(func.count()).where(
        JOBS.c.run_id == run,
        JOBS.c.state.in_([s.value for s in REMOTE_ACTIVE_STATES]),
        JOBS.c.lease_until.is_not(None),
    )


def spent(run: int) -> Select[Any]:
    """The estimated cost of the run's jobs that are paid, being paid, or possibly paid, and
    of the attempts of jobs put back to pending since that were (``spent_before_reset``)."""
    jobs = select(func.coalesce(func.sum(JOBS.c.cost_usd), 0.0)).where(
        JOBS.c.run_id == run, JOBS.c.state.in_([s.value for s in BUDGET_STATES])
    )
    return select(jobs.scalar_subquery() + spent_before_reset(run).scalar_subquery())


def spent_before_reset(run: int) -> Select[Any]:
    """What the jobs the user put back to pending had possibly cost when they were (an
    ``unknown`` submit, an ``expired`` request: billed most likely). Their state no longer
    says it, so the run keeps the sum apart, in ``genbatch_meta``."""
    value = func.coalesce(func.sum(cast(META.c.value, Float)), 0.0)
    return select(value).where(META.c.key == spent_before_reset_key(run))


def spent_before_reset_key(run: int) -> str:
    return f"spent_before_reset:{run}"


def claim_in_one_statement(
    run_id: int,
    count: int,
    *,
    run_limit: int | None,
    budget_usd: float | None,
    worker: str | None,
    lease: Any,
    now: datetime,
) -> Update:
    """Pick up to ``count`` pending jobs (on PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite has
    one writer), keep those that fit under the run-wide limit and the budget (either None:
    none), and mark them ``submitting`` with this worker's lease, returning them.

    The caller locks the run row first (``lock_run``) when a limit or a budget must hold across
    workers: this statement's snapshot is taken when it starts, so counts it read after waiting
    for another worker's claim would be stale.
    """
    picked = (
        pending_in_order(run_id, count).with_for_update(skip_locked=True, of=JOBS).cte("picked")
    )
    in_order = picked.c.ordinal
    ranked = select(
        picked.c.id,
        func.row_number().over(order_by=in_order).label("position"),
        func.sum(func.coalesce(picked.c.cost_usd, 0.0)).over(order_by=in_order).label("cumulative"),
    ).cte("ranked")
    fitting = select(ranked.c.id)
    if run_limit is not None:
        fitting = fitting.where(
            ranked.c.position <= run_limit - remote_active(run_id).scalar_subquery()
        )
    if budget_usd is not None:
        fitting = fitting.where(
            spent(run_id).scalar_subquery() + ranked.c.cumulative <= budget_usd + 1e-9
        )
    return transition(
        Move.CLAIM,
        JOBS.c.id.in_(fitting),
        JOBS.c.in_manifest.is_(True),
        now=now,
        attempts=JOBS.c.attempts + 1,
        error=None,
        request_id=None,
        worker=worker,
        lease_until=lease,
    )


# -- rows ---------------------------------------------------------------------------------------


@functools.cache
def row_update(table: Table, *columns: str) -> Update:
    """Set ``columns`` of the row ``b_id`` of ``table``, each to the value bound as
    ``b_<column>`` (an attempt's outcome, a file put in place, a job's place in a re-synced
    manifest)."""
    values: dict[str, Any] = {column: bindparam(f"b_{column}") for column in columns}
    return update(table).where(table.c.id == bindparam("b_id")).values(**values)


# -- outputs ------------------------------------------------------------------------------------

FORGET_OUTPUTS: Delete = delete(OUTPUTS).where(OUTPUTS.c.job_id == bindparam("b_job"))
"""An earlier attempt's URLs, replaced by the succeeding attempt's."""

NEW_OUTPUT: Insert = insert(OUTPUTS).returning(OUTPUTS.c.id)
"""One output URL of a job (its columns given by name), returning its id."""

OUTPUTS_OF_JOB: Select[Any] = (
    select(OUTPUTS).where(OUTPUTS.c.job_id == bindparam("b_job")).order_by(OUTPUTS.c.position)
)
