"""The ledger: the durable record of every run, job, submission attempt and output file.

Every method is one transaction (or joins the one open in its thread: ``grouped``, or a method
calling others), committed before it returns, so the caller can perform the side effect that
depends on it (a POST, a rename) knowing the record survives a crash. SQL is written
with SQLAlchemy Core over the tables of ``tables``: the same statements run on SQLite and PostgreSQL
(a claim's ``FOR UPDATE SKIP LOCKED`` is PostgreSQL's alone; SQLite has one writer). A job's state
changes only through ``try_move`` and the bulk moves beside it, each a move of the lifecycle
table (``genbatch.lifecycle``) applied by the one guarded statement ``statements.transition``.
The event loop calls the ledger through ``AsyncLedger``, which decides where they run (a thread;
SQLite's non-durable batches on the loop).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any, Concatenate, ParamSpec, TypeVar, Unpack

from sqlalchemy import (
    Connection,
    Engine,
    RootTransaction,
    Select,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement

from genbatch.errors import (
    BudgetReached,
    CommitInDoubt,
    LedgerError,
    StopRequested,
    TransactionEnded,
    TransitionRefused,
)
from genbatch.jobs import JobSpec, canonical_json
from genbatch.ledger import catalog_cache, history, leases, metadata_marks
from genbatch.ledger import statements as sql
from genbatch.ledger.engine import BUSY_SECONDS, LedgerLocation, create_ledger_engine
from genbatch.ledger.metadata_marks import save_marks
from genbatch.ledger.migrations import ensure_schema
from genbatch.ledger.ratings import (
    any_rating,
    count_ratings,
    rating_of_row,
    read_ratings,
    store_rating,
)
from genbatch.ledger.records import (
    AttemptRecord,
    JobOutputs,
    JobRecord,
    MoveDetails,
    OutputRecord,
    RunInfo,
    StoredFile,
    SyncReport,
    Takeover,
    WorkerStart,
    from_row,
)
from genbatch.ledger.sqlite_file import RUN_LOCK_SUFFIX
from genbatch.ledger.tables import ATTEMPTS, JOBS, META, OUTPUTS, RATINGS, RUNS, utcnow
from genbatch.lifecycle import Actor, AttemptOutcome, Move
from genbatch.ratings import Rating
from genbatch.states import ATTACHED_STATES, BUDGET_STATES, SPENDING_STATES, JobState
from genbatch.workers import WorkerIdentity

P = ParamSpec("P")
T = TypeVar("T")

SYNC_BATCH = 5000
STREAM_CHUNK = 1000
INSERT_BATCH = 10000
"""New jobs written per statement while syncing: 20,000 held 8 MB of rows at the peak of a big
manifest's start; 10,000 inserts as fast (200,000 jobs in 6.5 s either way)."""


def _in_transaction(
    function: Callable[Concatenate[Connection, P], T],
) -> Callable[Concatenate[Ledger, P], T]:
    """A ``Ledger`` method: ``function`` run in the ledger's transaction (one of its own, or
    the one open in this thread)."""

    def method(self: Ledger, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._transaction(function.__name__) as conn:
            return function(conn, *args, **kwargs)

    method.__doc__ = function.__doc__
    return method


class Ledger:
    """The durable record of runs. Open with ``Ledger.open(location)``."""

    def __init__(self, engine: Engine, location: LedgerLocation) -> None:
        self.engine = engine
        self.location = location
        self.shared = location.sqlite_path is None
        """Several processes may drive its runs at once (PostgreSQL)."""
        self._open = threading.local()
        """``conn``: the connection of the transaction open in this thread (``_transaction``)."""
        dbapi = engine.dialect.loaded_dbapi  # errors of the bulk insert run on its cursor
        self._driver_error: type[Exception] = dbapi.Error
        self._driver_integrity_error: type[Exception] = dbapi.IntegrityError

    @classmethod
    def open(cls, location: LedgerLocation) -> Ledger:
        """Open (creating if needed) the ledger at ``location``; refuses a corrupt one."""
        engine = create_ledger_engine(location)
        ledger = cls(engine, location)
        try:
            with ledger._errors("open"):
                ensure_schema(engine, location)
        except BaseException:
            engine.dispose()  # a refused ledger leaves no connection behind
            raise
        return ledger

    def close(self) -> None:
        """Release every connection."""
        self.engine.dispose()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the right to drive runs of this ledger (one process at a time for SQLite).

        Two processes driving one SQLite ledger would re-attach to the same requests and each
        take the other's ``submitting`` jobs for interrupted ones. PostgreSQL ledgers share work
        through row locks instead.
        """
        path = self.location.sqlite_path
        if path is None:
            yield
            return
        fd = os.open(path.with_name(path.name + RUN_LOCK_SUFFIX), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(fd)
                raise LedgerError(
                    f"another genbatch process{holder} is running on the ledger "
                    f"{self.location.display}; wait for it or stop it, or give this run a "
                    "ledger of its own with --ledger PATH"
                ) from None
            # Who holds it, for the message above (the lock itself is the flock, not this text).
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    # -- runs ---------------------------------------------------------------------------------

    def _ensure_run(self, conn: Connection, name: str, manifest_path: str) -> RunInfo:
        now = utcnow()
        current = dict(manifest_path=manifest_path, updated_at=now, stop_reason=None)
        # Workers starting together all insert it: every insert but the first updates it.
        upsert = (
            sql.insert_on_conflict(conn, RUNS)
            .values(name=name, created_at=now, **current)
            .on_conflict_do_update(index_elements=["name"], set_=current)
            .returning(*RUNS.c)
        )
        return from_row(RunInfo, conn.execute(upsert).one())

    def find_run(self, name: str) -> RunInfo | None:
        """The run called ``name``, or None."""
        with self._transaction("find_run") as conn:
            row = conn.execute(select(RUNS).where(RUNS.c.name == name)).first()
        return from_row(RunInfo, row) if row else None

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        with self._transaction("runs") as conn:
            rows = conn.execute(select(RUNS).order_by(RUNS.c.id)).all()
        return [from_row(RunInfo, r) for r in rows]

    def request_stop(self, run_id: int, reason: str) -> None:
        """Make every claim of the run fail from now on, until the next run starts."""
        with self._transaction("request_stop") as conn:
            _update_run(conn, run_id, stop_requested=reason)

    # -- syncing a manifest ---------------------------------------------------------------------

    def sync_run(
        self,
        name: str,
        manifest_path: str,
        specs: Iterable[JobSpec],
        *,
        cost: Callable[[JobSpec], float | None] | None = None,
        fingerprint: str | None = None,
    ) -> tuple[RunInfo, SyncReport]:
        """The run called ``name`` (created if new), its jobs made those of ``specs``, in one
        transaction: ``specs`` raising halfway (a manifest found bad as it is expanded) leaves
        the ledger as it was.

        New jobs are inserted; known ones (same key) keep their state, request ids and files, so
        an edited manifest runs only its new jobs; removed ones are retired, kept in the ledger
        (they may be paid for). ``cost`` estimates each job's cost; pending jobs get the current
        estimate.

        ``fingerprint`` digests everything ``specs`` and ``cost`` depend on. When the run's
        jobs were last synced from the same one, and no job went back to pending since,
        ``specs`` is not even iterated: a real sync would change nothing.
        """
        with self._transaction("sync_jobs") as conn:
            run = self._ensure_run(conn, name, manifest_path)
            leases.lock_run(conn, run.id)  # workers starting together sync one after the other
            synced = conn.execute(
                select(RUNS.c.jobs_fingerprint).where(RUNS.c.id == run.id)
            ).scalar()
            if fingerprint is not None and synced == fingerprint:
                counts = _counts(conn, run.id)
                return run, SyncReport(total=sum(counts.values()), counts=counts, unchanged=True)
            report = _sync(conn, run.id, specs, cost)
            _update_run(conn, run.id, jobs_fingerprint=fingerprint)
            return run, report

    # -- claiming -------------------------------------------------------------------------------

    def claim_jobs(
        self,
        run_id: int,
        count: int,
        *,
        worker: str | None = None,
        budget_usd: float | None = None,
        run_limit: int | None = None,
        lease_seconds: float | None = None,
    ) -> list[JobRecord]:
        """Take up to ``count`` pending jobs, in manifest order, and commit the intent to submit
        them (``submitting``) in one durable commit, before any POST.

        Stops at the run-wide limit (``run_limit`` jobs in flight remotely, every worker
        together) and at the budget: raises ``BudgetReached`` when not even the first job fits,
        and ``StopRequested`` once ``request_stop`` was called (in the same transaction: no
        claim slips past a cancel). With ``lease_seconds`` the jobs are leased to ``worker``.
        A crash after the commit leaves them ``submitting``, which a resume (or another worker)
        turns into ``unknown``.
        """
        now = utcnow()
        run_wide = budget_usd is not None or run_limit is not None
        with self._transaction("claim_jobs", durable=True) as conn:
            stop = leases.lock_run(conn, run_id, exclusive=run_wide)
            if stop:
                raise StopRequested(f"stop requested: {stop}")
            lease = None if lease_seconds is None else leases.lease_time(conn, lease_seconds)
            claim = sql.claim_in_one_statement(
                run_id,
                count,
                run_limit=run_limit,
                budget_usd=budget_usd,
                worker=worker,
                lease=lease,
                now=now,
            )
            rows = conn.execute(claim).all()
            if not rows and budget_usd is not None:
                _check_budget(conn, run_id, budget_usd)
            rows = sorted(rows, key=lambda row: row.ordinal)
            attempts = _new_attempts(conn, rows, now)
            # Read inside: a damaged row rolls the claim back, no job is left `submitting`.
            return [_job_record(row, attempt_id=attempts[row.id]) for row in rows]

    # -- moving a job through its lifecycle -----------------------------------------------------

    def try_move(
        self,
        job: JobRecord,
        move: Move,
        *,
        actor: Actor = Actor.RUNNER,
        worker: str | None = None,
        **details: Unpack[MoveDetails],
    ) -> JobRecord | None:
        """Make ``move`` (the one guarded write of a job's state): the job takes the move's
        target state only if it is in one of its source states and, for the runner's moves of
        a job in flight, still held by ``worker``. Returns the job as it is now, or None when
        nothing matched (nothing was changed, but the request id of an ACCEPT, which is kept
        on the attempt whatever happens: a request id is never lost). ``details``: what the
        move records beside the state (``MoveDetails``).
        """
        if actor not in move.transition.actors:
            raise ValueError(f"{actor} may not make the move {move.name}")
        checks_holder = move.needs_holder(actor)
        if worker is None and checks_holder:
            raise ValueError(f"the move {move.name} of a job in flight needs its worker")
        now = utcnow()
        request_id = details.get("request_id")
        statement = sql.job_move(
            move, checks_holder=checks_holder, sets_request=request_id is not None
        )
        # A statement ignores the values it does not bind (``b_worker`` when it checks no holder).
        params = dict(
            b_job=job.id,
            b_now=now,
            b_error=details.get("error"),
            b_worker=worker,
            b_request=request_id,
        )
        with self._transaction(move.name.lower()) as conn:
            # The job's row first, then its attempt's: the order a takeover locks them in, so two
            # workers at once never deadlock (PostgreSQL would abort one of them).
            row = conn.execute(statement, params).first()
            if row is not None or move is Move.ACCEPT:  # an answer's request id is never lost
                _record_attempt(conn, job.attempt_id, move, now, details)
            if row is None:
                return None
            if move.transition.target is JobState.PENDING:
                _back_to_pending(conn, job.run_id)
            urls = details.get("urls", ())
            outputs = self._record_urls(conn, job, urls) if move is Move.SUCCEED else ()
            _store_files(conn, details.get("files", ()))
        changed = dict(row._mapping, state=JobState(row.state))  # the columns ``sql.MOVED``
        return replace(job, **changed, outputs=outputs)

    def refusal(self, job: JobRecord, move: Move) -> TransitionRefused:
        """The error for ``move`` of ``job`` having matched nothing: says where the job is now."""
        query = select(JOBS.c.state, JOBS.c.worker).where(JOBS.c.id == job.id)
        with self._transaction("refusal") as conn:
            found = conn.execute(query).first()
        state = JobState(found.state) if found else None
        return TransitionRefused(
            job_key=job.key, move=move.name, found=state, holder=found.worker if found else None
        )

    def fail_pending_of_model(self, run_id: int, model_id: str, error: str) -> int:
        """Fail every pending job of ``model_id`` at once (the API does not know that model)."""
        where = (JOBS.c.run_id == run_id, JOBS.c.model_id == model_id)
        with self._transaction("fail_pending_of_model") as conn:
            moved = conn.execute(
                sql.transition(Move.FAIL_MODEL, *where, now=utcnow(), error=error)
            ).all()
        return len(moved)

    def reset_to_pending(self, run_id: int, states: Iterable[JobState]) -> list[JobRecord]:
        """Put the run's jobs in ``states`` back to pending (an explicit user decision); the
        jobs moved."""
        wanted = [s.value for s in states]
        where = (JOBS.c.run_id == run_id, JOBS.c.state.in_(wanted), JOBS.c.in_manifest.is_(True))
        with self._transaction("reset_to_pending") as conn:
            _keep_spend_of(conn, run_id, where)
            moved = conn.execute(sql.transition(Move.RESET, *where, now=utcnow())).all()
            _back_to_pending(conn, run_id)
        return [_job_record(row) for row in moved]

    def note_error(self, job: JobRecord, error: str) -> None:
        """Remember the last error of a job, leaving its state as it is."""
        with self._transaction("note_error") as conn:
            conn.execute(
                update(JOBS).where(JOBS.c.id == job.id).values(error=error, updated_at=utcnow())
            )

    def _record_urls(
        self, conn: Connection, job: JobRecord, urls: Sequence[str]
    ) -> tuple[OutputRecord, ...]:
        """The job's outputs, one per URL, replacing an earlier attempt's (a first attempt has
        none: SUCCEED is guarded, so no job succeeds twice in one attempt)."""
        if job.attempts > 1:
            conn.execute(sql.FORGET_OUTPUTS, {"b_job": job.id})
        # One row at a time: a job has one output or a few, and a single-row insert returns its
        # id more cheaply than a batch of them.
        return tuple(
            OutputRecord(
                id=conn.execute(
                    sql.NEW_OUTPUT,
                    {"job_id": job.id, "attempt_id": job.attempt_id, "position": i, "url": url},
                ).scalar_one(),
                job_id=job.id,
                position=i,
                url=url,
            )
            for i, url in enumerate(urls)
        )

    # -- outputs --------------------------------------------------------------------------------

    def outputs(self, job_id: int) -> list[OutputRecord]:
        """The output files of a job, in output order."""
        with self._transaction("outputs") as conn:
            rows = conn.execute(sql.OUTPUTS_OF_JOB, {"b_job": job_id}).all()
        return [from_row(OutputRecord, r) for r in rows]

    def record_files(self, files: Sequence[StoredFile]) -> None:
        """Output files are on disk, verified, under their final names."""
        with self._transaction("record_files") as conn:
            _store_files(conn, files)

    # -- resuming -------------------------------------------------------------------------------

    def attached_jobs(self, run_id: int) -> list[JobRecord]:
        """Jobs with a request id whose outputs are not here yet: re-attach, never resubmit."""
        with self._transaction("attached_jobs") as conn:
            rows = conn.execute(
                select(JOBS)
                .where(
                    JOBS.c.run_id == run_id, JOBS.c.state.in_([s.value for s in ATTACHED_STATES])
                )
                .order_by(JOBS.c.ordinal)
            ).all()
            attempts = _current_attempts(conn, [r.id for r in rows])
            return [_job_record(r, attempt_id=attempts.get(r.id)) for r in rows]

    # -- workers and leases (see leases.py) ----------------------------------------------------

    register_worker = _in_transaction(leases.register)
    heartbeat = _in_transaction(leases.renew)
    park_job = _in_transaction(leases.park)
    release_worker = _in_transaction(leases.release)
    others_in_flight = _in_transaction(leases.others_in_flight)
    workers = _in_transaction(leases.workers)

    def start_worker(
        self,
        run_id: int,
        worker: WorkerIdentity,
        *,
        concurrency: int,
        lease_seconds: float,
        resubmit_unknown: bool = False,
    ) -> WorkerStart:
        """A worker (this process) starts driving the run, in one transaction: an earlier stop
        request is forgotten (unless workers it stops still hold jobs: ``leases.stopping``), the
        worker registered, the jobs left in flight by a crash (or by workers that are gone)
        adopted, and with ``resubmit_unknown`` the ``unknown`` jobs put back to pending."""
        with self._transaction("start_worker") as conn:
            if not leases.stopping(conn, run_id):
                _update_run(conn, run_id, stop_requested=None)
            self.register_worker(
                run_id, worker, concurrency=concurrency, lease_seconds=lease_seconds
            )
            takeover = self.take_over(run_id, worker.id, lease_seconds=lease_seconds, starting=True)
            resubmitted = (
                self.reset_to_pending(run_id, [JobState.UNKNOWN]) if resubmit_unknown else []
            )
            spend = self.spend(run_id)
        spent = sum(spend[state] for state in BUDGET_STATES)
        return WorkerStart(spent_usd=spent, takeover=takeover, resubmitted=resubmitted)

    def stop_worker(
        self, run_id: int, worker_id: str, *, stop_reason: str | None
    ) -> dict[JobState, int]:
        """The worker exits: its leases end now (running workers take its jobs over at once),
        why the run stopped early is recorded (``stop_reason``, if any); the run's counts."""
        with self._transaction("stop_worker") as conn:
            self.release_worker(run_id, worker_id)
            if stop_reason:
                _update_run(conn, run_id, stop_reason=stop_reason, updated_at=utcnow())
            return self.counts(run_id)

    def take_over(
        self, run_id: int, worker_id: str, *, lease_seconds: float, starting: bool = False
    ) -> Takeover:
        """Adopt the jobs in flight of workers that are gone (their lease ended).

        Jobs with a request id are leased to ``worker_id`` and returned to be re-attached,
        never resubmitted; jobs caught ``submitting`` become ``unknown``. ``starting``: also
        adopt jobs nobody drives (a resume); on SQLite, every job in flight (the file lock of
        ``exclusive()`` proves no other process drives any).
        """
        with self._transaction("take_over") as conn:
            rows, interrupted = leases.take_over(
                conn, run_id, worker_id, lease_seconds=lease_seconds, starting=starting
            )
            attempts = _current_attempts(conn, [r.id for r in rows])
        with self._errors("take_over"):
            attached = [_job_record(r, attempt_id=attempts.get(r.id)) for r in rows]
            caught = [_job_record(r) for r in interrupted]
        return Takeover(attached=attached, interrupted=caught)

    def work_may_come(self, run_id: int, worker_id: str) -> bool:
        """Jobs are pending (back after a 429 or a failed generation, or not claimable yet under
        the run-wide limit), or other workers hold jobs in flight (they may hand them back, or
        die and leave them to be taken over)."""
        with self._transaction("work_may_come"):
            if self.counts(run_id)[JobState.PENDING] > 0:
                return True
            return self.shared and self.others_in_flight(run_id, worker_id) > 0

    # -- reading --------------------------------------------------------------------------------

    def counts(self, run_id: int) -> dict[JobState, int]:
        """Number of jobs of the run (of the current manifest) per state (every state present,
        zeros included)."""
        with self._transaction("counts") as conn:
            return _counts(conn, run_id)

    def spend(self, run_id: int) -> dict[JobState, float]:
        """Estimated cost of the run's jobs per state: those of the current manifest, and
        those it no longer has that were possibly paid for (what the budget counts too);
        ``unknown`` also holds what jobs put back to pending since had possibly cost."""
        paid = JOBS.c.state.in_([s.value for s in BUDGET_STATES])
        with self._transaction("spend") as conn:
            found = _per_state(
                conn, run_id, func.coalesce(func.sum(JOBS.c.cost_usd), 0.0), also=paid
            )
            before_reset = conn.execute(sql.spent_before_reset(run_id)).scalar_one()
        spend = {state: float(found.get(state, 0.0)) for state in JobState}
        spend[JobState.UNKNOWN] += float(before_reset)
        return spend

    def unpriced_pending(self, run_id: int) -> int:
        """Pending jobs whose model has no known price (a budget cannot account for them)."""
        with self._transaction("unpriced_pending") as conn:
            return _count(conn, *sql.pending(run_id), JOBS.c.cost_usd.is_(None))

    def states_by_key(self, run_id: int) -> dict[str, JobState]:
        """The state of every job of the run (retired ones included), by key."""
        with self._transaction("states_by_key") as conn:
            rows = conn.execute(select(JOBS.c.key, JOBS.c.state).where(JOBS.c.run_id == run_id))
            return {key: JobState(state) for key, state in rows}

    def attempts(self, job_id: int) -> list[AttemptRecord]:
        """Every submission attempt of a job, oldest first."""
        with self._transaction("attempts") as conn:
            rows = conn.execute(
                select(ATTEMPTS)
                .where(ATTEMPTS.c.job_id == job_id)
                .order_by(ATTEMPTS.c.number, ATTEMPTS.c.id)
            ).all()
        return [from_row(AttemptRecord, r) for r in rows]

    def job_outputs(
        self,
        *,
        run_id: int | None = None,
        in_manifest_only: bool = False,
        job_id: int | None = None,
    ) -> list[JobOutputs]:
        """Jobs with their output files and the attempt behind them, in run and manifest order.

        One query (jobs, outputs, attempts and runs joined), so exports and galleries of large
        runs do not issue a query per job. Every filter left at None matches everything.
        """
        with self.stream_job_outputs(
            run_id=run_id, in_manifest_only=in_manifest_only, job_id=job_id
        ) as items:
            return list(items)

    @contextmanager
    def stream_job_outputs(
        self,
        *,
        run_id: int | None = None,
        output_dirs: Sequence[str] | None = None,
        states: Iterable[JobState] | None = None,
        in_manifest_only: bool = False,
        job_id: int | None = None,
        done_ranks: tuple[int, int] | None = None,
    ) -> Iterator[Iterator[JobOutputs]]:
        """``job_outputs`` one job at a time, fetched in chunks: memory stays flat however
        many jobs the run has (metadata.jsonl of a million-job run). Iterate inside the
        ``with``: the read transaction lasts as long as it. ``done_ranks=(after, through)``:
        only jobs whose done rank is above ``after`` and at most ``through``.

        On PostgreSQL the consumer may take its time between two items (copy a large file,
        write to a slow pipe): the transaction is read-only, so it holds no row lock, and is
        spared the limit on idle transactions (``engine.STALLED_TRANSACTION_SECONDS``). A
        ledger call inside the ``with`` joins it, and one that writes is refused."""
        query = _job_outputs_query()
        if done_ranks is not None:
            query = query.where(*_done_within(done_ranks))
        if run_id is not None:
            query = query.where(JOBS.c.run_id == run_id)
        if output_dirs is not None:
            query = query.where(JOBS.c.output_dir.in_(list(output_dirs)))
        if states is not None:
            query = query.where(JOBS.c.state.in_([s.value for s in states]))
        if in_manifest_only:
            query = query.where(JOBS.c.in_manifest.is_(True))
        if job_id is not None:
            query = query.where(JOBS.c.id == job_id)
        own = getattr(self._open, "conn", None) is None  # else joined: not ours to change
        with self._transaction("job_outputs") as conn:
            if own and self.shared:
                conn.execute(READ_ONLY)
                conn.execute(NO_IDLE_LIMIT)
            rows = conn.execute(query, execution_options={"yield_per": STREAM_CHUNK})
            try:
                yield _group_job_outputs(rows)
            finally:
                rows.close()  # PostgreSQL's cursor, left open by a consumer that stopped early

    def output_dirs(self, run_ids: int | Sequence[int] | None = None) -> list[str]:
        """The output directories of the jobs of a run, of several, or of every run (None)."""
        with self._transaction("output_dirs") as conn:
            if run_ids is None:
                return sorted(conn.execute(select(JOBS.c.output_dir).distinct()).scalars())
            wanted = [run_ids] if isinstance(run_ids, int) else list(run_ids)
            return sorted({d for run_id in wanted for d in _run_output_dirs(conn, run_id)})

    def same_jobs_elsewhere(self, run_id: int) -> list[tuple[JobRecord, JobRecord]]:
        """Pending jobs of the run whose content (model, inputs, repeat: the key) another run of
        the ledger has already sent (a request id, an unknown submit) or done: pairs of (this
        run's job, the other run's)."""
        here, other = JOBS.alias("here"), JOBS.alias("other")
        query = (
            select(here, *_labelled(other, "o_"))
            .join(other, (other.c.key == here.c.key) & (other.c.run_id != here.c.run_id))
            .where(
                here.c.run_id == run_id,
                here.c.state == JobState.PENDING.value,
                here.c.in_manifest.is_(True),
                other.c.state.in_([s.value for s in SPENDING_STATES]),
            )
            .order_by(here.c.ordinal, other.c.id)
        )
        return self._job_pairs("same_jobs_elsewhere", query)

    def reused(self, run_id: int) -> int:
        """Jobs of the run done with the files of the same job in another run (never sent)."""
        done = (JOBS.c.run_id == run_id, JOBS.c.state == JobState.DONE.value)
        with self._transaction("reused") as conn:
            return _count(conn, *done, JOBS.c.attempts == 0)

    def output_clashes(self, run_id: int) -> list[tuple[JobRecord, JobRecord]]:
        """Jobs of the run that will write files (not done) named as the files of a done job
        with other content (any run, retired ones included): pairs of (this run's job, the
        job that owns the name)."""
        here, owner = JOBS.alias("here"), JOBS.alias("owner")
        query = (
            select(here, *_labelled(owner, "o_"))
            .join(owner, _same_file_name(here, owner) & (owner.c.key != here.c.key))
            .where(
                here.c.run_id == run_id,
                here.c.state != JobState.DONE.value,
                here.c.in_manifest.is_(True),
                owner.c.state == JobState.DONE.value,
            )
            .order_by(here.c.ordinal)
        )
        with self._transaction("output_clashes") as conn:
            # A ledger where no job was ever done (a first run) has no file to clash with; the
            # query would still probe the file-name index once per job (6 s for a million).
            if conn.execute(sql.highest_done_rank()).scalar() == 0:
                return []
            return self._job_pairs("output_clashes", query)

    def _job_pairs(self, what: str, query: Select[Any]) -> list[tuple[JobRecord, JobRecord]]:
        """The pairs of jobs ``query`` selects: the first's columns, then the other's (``o_``)."""
        with self._transaction(what) as conn:
            rows = conn.execute(query).all()
            return [(_job_record(row), _job_record(_unprefixed(row, "o_"))) for row in rows]

    def reuse(self, job: JobRecord, source: JobRecord, paths: Sequence[str]) -> None:
        """``job`` is done with the files of ``source`` (the same job, done in another run),
        already in place at ``paths`` (one per output of ``source``, in order): nothing is
        submitted, and nothing is counted as spent twice (the job costs nothing here)."""
        note = f"the files of the same job done in run {source.run_id} (nothing submitted)"
        with self._transaction("reuse") as conn:
            if self.try_move(job, Move.REUSE, error=note, request_id=source.request_id) is None:
                raise self.refusal(job, Move.REUSE)
            conn.execute(update(JOBS).where(JOBS.c.id == job.id).values(cost_usd=0.0))
            originals = conn.execute(sql.OUTPUTS_OF_JOB, {"b_job": source.id}).all()
            now = utcnow()
            copies: list[dict[str, Any]] = []
            for original, path in zip(originals, paths, strict=True):
                columns = original._asdict()
                del columns["id"]  # the copy gets an id of its own
                copies.append({**columns, "job_id": job.id, "path": path, "downloaded_at": now})
            conn.execute(insert(OUTPUTS), copies)

    def shared_output_paths(self, output_dirs: Sequence[str]) -> set[str]:
        """Paths recorded for more than one output of done jobs in ``output_dirs`` (two runs
        that wrote the same file name): usually none."""
        query = (
            select(OUTPUTS.c.path)
            .join(JOBS, JOBS.c.id == OUTPUTS.c.job_id)
            .where(
                JOBS.c.output_dir.in_(list(output_dirs)),
                JOBS.c.state == JobState.DONE,
                OUTPUTS.c.path.is_not(None),
            )
            .group_by(OUTPUTS.c.path)
            .having(func.count() > 1)
        )
        with self._transaction("shared_output_paths") as conn:
            return set(conn.execute(query).scalars())

    def renames_done_files(self, directory: str, done_ranks: tuple[int, int]) -> bool:
        """True when a job of ``directory`` done within ``done_ranks`` has the file name of
        another done job (two runs writing one name): the older row must then go."""
        other = JOBS.alias("other")
        query = (
            select(JOBS.c.id)
            .join(other, _same_file_name(JOBS, other) & (other.c.id != JOBS.c.id))
            .where(
                JOBS.c.output_dir == directory,
                *_done_within(done_ranks),
                other.c.state == JobState.DONE.value,
            )
            .limit(1)
        )
        with self._transaction("renames_done_files") as conn:
            return conn.execute(query).first() is not None

    # -- metadata.jsonl marks -------------------------------------------------------------------

    metadata_watermark = _in_transaction(metadata_marks.watermark)
    metadata_marks = _in_transaction(metadata_marks.read_marks)
    save_metadata_marks = _in_transaction(save_marks)

    def find_jobs(
        self,
        *,
        key_prefix: str | None = None,
        ordinal: int | None = None,
        run_id: int | None = None,
        limit: int = 10,
    ) -> list[JobRecord]:
        """Jobs (retired ones included) whose key starts with ``key_prefix`` or at ``ordinal``,
        in one run or in all; at most ``limit``."""
        query = select(JOBS)
        if key_prefix is not None:
            query = query.where(JOBS.c.key.startswith(key_prefix, autoescape=True))
        if ordinal is not None:
            query = query.where(JOBS.c.ordinal == ordinal, JOBS.c.in_manifest.is_(True))
        if run_id is not None:
            query = query.where(JOBS.c.run_id == run_id)
        query = query.order_by(JOBS.c.run_id, JOBS.c.ordinal).limit(limit)
        with self._transaction("find_jobs") as conn:
            return [_job_record(r) for r in conn.execute(query)]

    # -- models: generation times (genbatch.polling), the API's catalog cached -------------------

    generation_times = _in_transaction(history.recent_generation_times)

    cached_models = _in_transaction(catalog_cache.cached_models)
    cache_models = _in_transaction(catalog_cache.store_models)

    # -- ratings (genbatch review) ---------------------------------------------------------------

    rate = _in_transaction(store_rating)
    ratings = _in_transaction(read_ratings)
    rated = _in_transaction(any_rating)
    rating_counts = _in_transaction(count_ratings)

    # -- plumbing -------------------------------------------------------------------------------

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """One transaction for every ledger call this thread makes inside, committed at the end.

        Several jobs' writes then share one commit (on SQLite, one write to the WAL). A call's
        changes are committed only when the group ends, so its caller must not act on them
        before (``AsyncLedger`` resumes callers after the commit). A call raising makes the whole
        group roll back. Durable calls (claims) cannot join a group.
        """
        with self._transaction("grouped"):
            yield

    @contextmanager
    def _transaction(self, what: str, *, durable: bool = False) -> Iterator[Connection]:
        """The transaction open in this thread (a method called by another, or in ``grouped``),
        else one of its own, committed when the block ends."""
        joined: Connection | None = getattr(self._open, "conn", None)
        if joined is not None:
            if durable:
                raise RuntimeError(f"{what}: a durable commit cannot join a transaction")
            with self._errors(what):
                yield joined
            return
        with self._errors(what), self.engine.connect() as conn:
            durable_sqlite = durable and not self.shared
            if durable_sqlite:
                _set_synchronous(conn, "FULL")
            self._open.conn = conn
            try:
                with conn.begin() as transaction:
                    try:
                        yield conn
                    except BaseException:
                        _roll_back(transaction)
                        raise
                    self._commit(conn, transaction)
            finally:
                self._open.conn = None
                if durable_sqlite:
                    _set_synchronous(conn, "NORMAL")

    def _commit(self, conn: Connection, transaction: RootTransaction) -> None:
        """Commit. A connection lost meanwhile leaves the outcome unknown: the database may
        have written the transaction before its answer was lost, and running it again would
        then do it twice (a claim would hold more jobs; a move be refused by its own first try).
        So PostgreSQL is asked what became of the transaction: aborted (the session was ended
        first, for example while this process was frozen) makes it ``TransactionEnded``, safe
        to run again; anything else is ``CommitInDoubt``."""
        txid = conn.execute(TRANSACTION_ID).scalar() if self.shared else None
        try:
            transaction.commit()
        except DBAPIError as exc:
            reason = exc.orig if exc.orig is not None else exc
            if not (self.shared and exc.connection_invalidated) or _ended_idle(reason):
                raise  # not a lost connection of PostgreSQL's: ``_errors`` says what it is
            if txid is None or self._aborted(txid):  # None: it wrote nothing
                raise TransactionEnded(_describe(self.location, reason)) from None
            raise CommitInDoubt(
                f"{_describe(self.location, reason)}: the connection was lost during a commit, "
                "which may or may not have been written; run genbatch again to resume"
            ) from None

    def _aborted(self, txid: int) -> bool:
        """Whether PostgreSQL says the transaction ``txid`` was rolled back (False when it
        cannot say: the database out of reach again, say)."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(TRANSACTION_STATUS, {"txid": txid}).scalar() == "aborted"
        except Exception:  # any failure to ask (the pool's timeout too) leaves it in doubt
            return False

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except _DamagedRow as exc:
            raise LedgerError(
                f"the ledger {self.location.display} has a damaged row: {exc}; "
                "restore the ledger from a backup, or correct that row"
            ) from None
        except (DBAPIError, self._driver_error) as exc:
            # The bulk insert runs on the driver's cursor: its errors come unwrapped.
            cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
            if isinstance(cause, self._driver_integrity_error):
                problem = f"{what}: inconsistent data: {_first_line(cause)}"
                raise LedgerError(f"ledger {self.location.display}: {problem}") from None
            # PostgreSQL closes the session it ends; the client may read the closed socket
            # before, or instead of, the reason (25P03). Before the commit (``_commit`` judges
            # a lost commit), either way nothing of the transaction was written.
            lost = isinstance(exc, DBAPIError) and exc.connection_invalidated
            if lost or _ended_idle(cause):
                raise TransactionEnded(_describe(self.location, cause)) from None
            raise LedgerError(_describe(self.location, cause)) from None


def _roll_back(transaction: RootTransaction) -> None:
    """Roll back after the block raised. A rollback that finds the connection lost changes
    nothing (the server dropped the transaction with its session) and must not hide the block's
    error: a manifest found bad at the end of a long sync, say."""
    try:
        if transaction.is_active:
            transaction.rollback()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise


def _update_run(conn: Connection, run_id: int, **values: Any) -> None:
    conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(**values))


def _keep_spend_of(conn: Connection, run_id: int, where: tuple[Any, ...]) -> None:
    """Before jobs go back to pending: what those that were possibly paid for had cost joins
    the run's spend kept apart (``statements.spent_before_reset``)."""
    paid = conn.execute(
        select(func.coalesce(func.sum(JOBS.c.cost_usd), 0.0)).where(
            *where, JOBS.c.state.in_([s.value for s in BUDGET_STATES])
        )
    ).scalar_one()
    if not paid:
        return
    total = float(conn.execute(sql.spent_before_reset(run_id)).scalar_one()) + float(paid)
    key, value = sql.spent_before_reset_key(run_id), repr(total)
    upsert = sql.insert_on_conflict(conn, META).values(key=key, value=value)
    conn.execute(upsert.on_conflict_do_update(index_elements=[META.c.key], set_={"value": value}))


def _check_budget(conn: Connection, run_id: int, budget_usd: float) -> None:
    """Raise ``BudgetReached`` when the run's next pending job would cross the budget."""
    spent = float(conn.execute(sql.spent(run_id)).scalar_one())
    following = conn.execute(sql.pending_in_order(run_id, 1)).first()
    if following is None:
        return
    cost = float(following.cost_usd or 0.0)
    if spent + cost <= budget_usd + 1e-9:
        return
    jobs_and_cost = select(func.count(), func.coalesce(func.sum(JOBS.c.cost_usd), 0.0))
    left = conn.execute(jobs_and_cost.where(*sql.pending(run_id))).one()
    raise BudgetReached(
        f"budget reached: ${spent:,.2f} of ${budget_usd:,.2f} spent or committed; the "
        f"next job costs ${cost:,.2f}; {left[0]} job(s) left to run "
        f"(about ${float(left[1]):,.2f}): raise budget_usd or --budget to go on"
    )


def _new_attempts(conn: Connection, rows: Sequence[Any], now: datetime) -> dict[int, int]:
    """One attempt per claimed job, its intent recorded: attempt ids by job id."""
    if not rows:
        return {}
    values = [
        {
            "job_id": row.id,
            "number": row.attempts,
            "outcome": AttemptOutcome.SENDING.value,
            "intent_at": now,
        }
        for row in rows
    ]
    inserted = conn.execute(insert(ATTEMPTS).returning(ATTEMPTS.c.job_id, ATTEMPTS.c.id), values)
    return {job_id: attempt_id for job_id, attempt_id in inserted}


def _record_attempt(
    conn: Connection, attempt_id: int | None, move: Move, now: datetime, details: MoveDetails
) -> None:
    """What ``move`` says of the job's current attempt: an ACCEPT's request id, an outcome and
    its error, the remote status, the generation time."""
    outcome = move.transition.attempt
    values: dict[str, Any] = {
        "remote_status": details.get("remote_status"),
        "generation_seconds": details.get("generation_seconds"),
    }
    if move is Move.ACCEPT:
        values.update(request_id=details.get("request_id"), outcome=outcome, accepted_at=now)
    elif outcome is not None:
        values.update(outcome=outcome, finished_at=now, error=details.get("error"))
    values = {column: value for column, value in values.items() if value is not None}
    if attempt_id is not None and values:
        params = {f"b_{column}": value for column, value in values.items()}
        conn.execute(sql.row_update(ATTEMPTS, *values), {"b_id": attempt_id, **params})


def _store_files(conn: Connection, files: Sequence[StoredFile]) -> None:
    if files:
        now = utcnow()
        columns = ("path", "size", "sha256", "host")  # each a field of StoredFile too
        rows = [
            {
                "b_id": f.output_id,
                "b_downloaded_at": now,
                **{f"b_{c}": getattr(f, c) for c in columns},
            }
            for f in files
        ]
        conn.execute(sql.row_update(OUTPUTS, *columns, "downloaded_at"), rows)


def _set_synchronous(conn: Connection, level: str) -> None:
    # Issued on the driver connection, outside SQLAlchemy's transaction bookkeeping: a pragma
    # must run between transactions.
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA synchronous={level}")


def _first_line(error: BaseException | None) -> str:
    lines = str(error).strip().splitlines()  # PostgreSQL adds DETAIL and HINT lines
    return lines[0] if lines else type(error).__name__


def _lock_holder(fd: int) -> str:
    """`` (pid 1234 on host)`` from the lock file's text, or nothing when unreadable."""
    try:
        pid, host = os.pread(fd, 200, 0).decode().split()
    except (OSError, UnicodeDecodeError, ValueError):
        return ""
    return f" (pid {pid} on {host})"


IDLE_IN_TRANSACTION_TIMEOUT = "25P03"
"""PostgreSQL's SQLSTATE for a session ended by ``idle_in_transaction_session_timeout``."""
TRANSACTION_ID = text("SELECT txid_current_if_assigned()")
"""The open transaction's id on PostgreSQL (NULL until it writes; ``txid_*``: PostgreSQL 10+)."""
TRANSACTION_STATUS = text("SELECT txid_status(:txid)")
KEEP_BUSY = text("SELECT 1")
"""A statement that does nothing but tell PostgreSQL its transaction is not stalled."""
READ_ONLY = text("SET TRANSACTION READ ONLY")
NO_IDLE_LIMIT = text("SET LOCAL idle_in_transaction_session_timeout = 0")
"""For the open transaction only: PostgreSQL lets it sit idle (it must be read-only)."""


def _ended_idle(error: BaseException) -> bool:
    return getattr(error, "sqlstate", None) == IDLE_IN_TRANSACTION_TIMEOUT


def _describe(location: LedgerLocation, error: BaseException) -> str:
    reason = _first_line(error)
    if "locked" in reason:
        return (
            f"the ledger {location.display} is locked by another process "
            f"(another genbatch run?): {reason}"
        )
    if "not a database" in reason or "malformed" in reason:
        return f"the ledger {location.display} is corrupt or not a ledger: {reason}"
    return f"ledger {location.display}: {reason}"


def _sync(
    conn: Connection,
    run_id: int,
    specs: Iterable[JobSpec],
    cost: Callable[[JobSpec], float | None] | None,
) -> SyncReport:
    price = cost or (lambda _spec: None)
    # A known job's columns, by key, as unpacked into ``existing`` below.
    kept = ("id", "ordinal", "in_manifest", "state", "cost_usd", "output_dir", "file_stem")
    query = select(JOBS.c.key, *[JOBS.c[name] for name in kept]).where(JOBS.c.run_id == run_id)
    # Read in chunks: each fetch keeps the transaction busy (``_kept_busy``) while the rows of
    # a large run are turned into this dict (1.5 to 3 s for 200,000 jobs).
    rows = conn.execute(query, execution_options={"yield_per": SYNC_BATCH})
    known = {row[0]: row[1:] for row in rows}
    found: set[str] = set()  # the known keys the manifest still has
    moved: list[dict[str, Any]] = []
    reordered_done = False  # a done job's row in metadata.jsonl changes (its index)
    inserter = _JobInserter(conn, run_id, utcnow())
    total = 0
    for spec in _kept_busy(conn, specs):
        total += 1
        existing = known.get(spec.key)
        if existing is None:
            inserter.add(spec, price(spec))
            continue
        found.add(spec.key)
        job_id, ordinal, in_manifest, state, old_cost, old_dir, old_stem = existing
        new_cost = price(spec) if state == JobState.PENDING else old_cost
        # A job whose files are not all here yet writes them where the manifest says now (its
        # folder fixed after a failed run, say); a done job keeps the files it has.
        place = (old_dir, old_stem) if state == JobState.DONE else (spec.output_dir, spec.file_stem)
        if (
            ordinal != spec.ordinal
            or not in_manifest
            or new_cost != old_cost
            or place != (old_dir, old_stem)
        ):
            reordered_done = reordered_done or (state == JobState.DONE and ordinal != spec.ordinal)
            moved.append(
                {
                    "b_id": job_id,
                    "b_ordinal": spec.ordinal,
                    "b_in_manifest": True,
                    "b_cost_usd": new_cost,
                    "b_output_dir": place[0],
                    "b_file_stem": place[1],
                }
            )
            if len(moved) >= SYNC_BATCH:  # SQLAlchemy prepares a batch whole before sending it
                _apply_moves(conn, moved)
                moved = []
    inserter.flush()
    _apply_moves(conn, moved)
    if reordered_done:
        metadata_marks.bump_generation(conn)
    _retire_missing(conn, known, found)
    return SyncReport(total=total, new=total - len(found), counts=_counts(conn, run_id))


def _kept_busy(conn: Connection, specs: Iterable[JobSpec]) -> Iterator[JobSpec]:
    """``specs``, with PostgreSQL sent a statement at least every ``BUSY_SECONDS`` while Python
    works inside the transaction (the sync's walk of a manifest), which the database would
    otherwise end as stalled (``engine.STALLED_TRANSACTION_SECONDS``). A process frozen in the
    walk stops sending, so its transaction still ends, and the run row it holds is freed."""
    postgresql = conn.dialect.name == "postgresql"
    due = time.monotonic() + BUSY_SECONDS
    for spec in specs:
        if postgresql and time.monotonic() >= due:
            conn.execute(KEEP_BUSY)
            due = time.monotonic() + BUSY_SECONDS
        yield spec


class _JobInserter:
    """Inserts new jobs in batches through the driver's ``executemany`` and one prepared INSERT.

    SQLAlchemy's own executemany builds and processes a dict per row, which for a million jobs
    took longer than expanding them. Values are bound as SQLAlchemy binds them (its type
    processors: a SQLite DATETIME is text), so rows read back exactly as before.
    """

    def __init__(self, conn: Connection, run_id: int, now: datetime) -> None:
        self.conn = conn
        dialect = conn.dialect
        self.processors = [
            (i, p)
            for i, p in enumerate(_bind_processors(dialect, _NEW_JOB_VARYING))
            if p is not None
        ]
        self.constants = tuple(
            p(value) if p else value
            for p, value in zip(
                _bind_processors(dialect, _NEW_JOB_CONSTANT),
                (run_id, True, JobState.PENDING.value, 0, now, now),
                strict=True,
            )
        )
        marker = "?" if dialect.paramstyle == "qmark" else "%s"
        columns = (*_NEW_JOB_VARYING, *_NEW_JOB_CONSTANT)
        self.sql = (
            f"INSERT INTO {JOBS.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join([marker] * len(columns))})"
        )
        self.rows: list[tuple[Any, ...]] = []

    def add(self, spec: JobSpec, cost: float | None) -> None:
        """Insert ``spec`` (in the next batch)."""
        inputs_json = spec.inputs_json
        if inputs_json is None:
            inputs_json = canonical_json(spec.inputs)
        variables_json = spec.variables_json
        if variables_json is None:
            variables_json = canonical_json(spec.variables)
        row = [
            spec.key,
            spec.ordinal,
            spec.block,
            spec.model_id,
            inputs_json,
            variables_json,
            spec.repeat_index,
            spec.file_stem,
            spec.output_dir,
            cost,
        ]
        for index, process in self.processors:
            row[index] = process(row[index])
        self.rows.append((*row, *self.constants))
        if len(self.rows) >= INSERT_BATCH:
            self.flush()

    def flush(self) -> None:
        """Send the rows added since the last flush."""
        if self.rows:
            self.conn.exec_driver_sql(self.sql, self.rows)
            self.rows = []


# The columns of a new job: those from its JobSpec (and cost), then those the same for all.
_NEW_JOB_VARYING = (
    "key",
    "ordinal",
    "block",
    "model_id",
    "inputs_json",
    "variables_json",
    "repeat_index",
    "file_stem",
    "output_dir",
    "cost_usd",
)
_NEW_JOB_CONSTANT = ("run_id", "in_manifest", "state", "attempts", "created_at", "updated_at")


def _bind_processors(dialect: Any, names: Sequence[str]) -> list[Callable[[Any], Any] | None]:
    return [JOBS.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names]


def _back_to_pending(conn: Connection, run_id: int) -> None:
    """A job of the run is pending again: the next start syncs for real.

    A sync gives pending jobs the current cost estimate and keeps the others' (what they were
    submitted at). A job that was not pending at the last sync and is pending again may carry
    an estimate from older prices, which only a real sync refreshes.
    """
    # Only the first one writes: the others find it NULL (and, on PostgreSQL, lock nothing).
    conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.jobs_fingerprint.is_not(None))
        .values(jobs_fingerprint=None)
    )


def _apply_moves(conn: Connection, moved: list[dict[str, Any]]) -> None:
    if moved:
        columns = ("ordinal", "in_manifest", "cost_usd", "output_dir", "file_stem")
        conn.execute(sql.row_update(JOBS, *columns), moved)


def _retire_missing(conn: Connection, known: dict[str, tuple[Any, ...]], found: set[str]) -> None:
    gone = [row[0] for key, row in known.items() if row[2] and key not in found]
    for start in range(0, len(gone), SYNC_BATCH):
        conn.execute(
            update(JOBS)
            .where(JOBS.c.id.in_(gone[start : start + SYNC_BATCH]))
            .values(in_manifest=False)
        )


def _run_output_dirs(conn: Connection, run_id: int) -> Iterator[str]:
    # One index seek per folder (ix_jobs_run_dir): a DISTINCT read every job of the run, 0.4 s
    # at each end of a run of a million jobs.
    query = select(func.min(JOBS.c.output_dir)).where(
        JOBS.c.run_id == run_id, JOBS.c.output_dir > bindparam("b_after")
    )
    found = conn.execute(query, {"b_after": ""}).scalar()
    while found is not None:
        yield found
        found = conn.execute(query, {"b_after": found}).scalar()


def _counts(conn: Connection, run_id: int) -> dict[JobState, int]:
    found = _per_state(conn, run_id, func.count())
    return {state: int(found.get(state, 0)) for state in JobState}


def _per_state(
    conn: Connection, run_id: int, total: Any, also: ColumnElement[bool] | None = None
) -> dict[str, Any]:
    """The aggregate ``total`` of the run's jobs of the current manifest (and of those it no
    longer has that match ``also``), by state."""
    kept = JOBS.c.in_manifest.is_(True)
    query = select(JOBS.c.state, total).where(
        JOBS.c.run_id == run_id, kept if also is None else or_(kept, also)
    )
    return {state: value for state, value in conn.execute(query.group_by(JOBS.c.state))}


def _count(conn: Connection, *where: Any) -> int:
    return int(conn.execute(select(func.count()).where(*where)).scalar_one())


def _current_attempts(conn: Connection, job_ids: list[int]) -> dict[int, int]:
    found: dict[int, int] = {}
    for start in range(0, len(job_ids), SYNC_BATCH):
        chunk = job_ids[start : start + SYNC_BATCH]
        latest = (
            select(ATTEMPTS.c.job_id, func.max(ATTEMPTS.c.id))
            .where(ATTEMPTS.c.job_id.in_(chunk))
            .group_by(ATTEMPTS.c.job_id)
        )
        found.update({job_id: attempt_id for job_id, attempt_id in conn.execute(latest)})
    return found


def _job_record(row: Any, *, attempt_id: int | None = None) -> JobRecord:
    return from_row(
        JobRecord,
        row,
        inputs=_json_column(row, "inputs_json"),
        variables=_json_column(row, "variables_json"),
        state=JobState(row.state),
        attempt_id=attempt_id,
    )


class _DamagedRow(Exception):
    """A row whose value genbatch cannot have written (``Ledger._errors`` names the ledger)."""


def _json_column(row: Any, column: str) -> Any:
    """The JSON value of ``column`` in a job's row; ``_DamagedRow`` when it is not JSON."""
    try:
        return json.loads(getattr(row, column))
    except (TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError; NULL a TypeError
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise _DamagedRow(f"job {row.key}: {column} is not JSON ({reason})") from None


def _same_file_name(job: Any, other: Any) -> Any:
    """``other``'s files are named as ``job``'s (two aliases of the jobs table): a condition."""
    return (other.c.output_dir == job.c.output_dir) & (other.c.file_stem == job.c.file_stem)


def _done_within(done_ranks: tuple[int, int]) -> tuple[ColumnElement[bool], ...]:
    """Jobs whose done rank is above the first of ``done_ranks`` and at most the second."""
    after, through = done_ranks
    return (JOBS.c.done_seq > after, JOBS.c.done_seq <= through)


def _labelled(table: Any, prefix: str) -> list[Any]:
    return [column.label(f"{prefix}{column.name}") for column in table.c]


def _unprefixed(row: Any, prefix: str) -> SimpleNamespace:
    """The columns of ``row`` labelled ``prefix...`` (``_labelled``), under their own names."""
    columns = row._mapping.items()
    return SimpleNamespace(
        **{name.removeprefix(prefix): value for name, value in columns if name.startswith(prefix)}
    )


def _job_outputs_query() -> Any:
    # The attempt shown is the one that produced the outputs, else the job's latest one.
    latest = (
        select(func.max(ATTEMPTS.c.id))
        .where(ATTEMPTS.c.job_id == JOBS.c.id)
        .correlate(JOBS)
        .scalar_subquery()
    )
    joined = (
        JOBS.join(RUNS, RUNS.c.id == JOBS.c.run_id)
        .outerjoin(OUTPUTS, OUTPUTS.c.job_id == JOBS.c.id)
        .outerjoin(ATTEMPTS, ATTEMPTS.c.id == func.coalesce(OUTPUTS.c.attempt_id, latest))
        .outerjoin(
            RATINGS, (RATINGS.c.job_key == JOBS.c.key) & (RATINGS.c.position == OUTPUTS.c.position)
        )
    )
    return (
        select(
            JOBS,
            RUNS.c.name.label("r_name"),
            *_labelled(OUTPUTS, "o_"),
            *_labelled(ATTEMPTS, "a_"),
            *_labelled(RATINGS, "g_"),
        )
        .select_from(joined)
        .order_by(JOBS.c.run_id, JOBS.c.ordinal, JOBS.c.id, OUTPUTS.c.position)
    )


def _group_job_outputs(rows: Iterable[Any]) -> Iterator[JobOutputs]:
    # Rows come ordered by job: a job's rows are complete when the next job's first row arrives.
    outputs: list[OutputRecord] = []
    rated: dict[int, Rating] = {}
    last = None
    for row in rows:
        if last is not None and row.id != last.id:
            yield _job_outputs(last, tuple(outputs), rated)
            outputs, rated = [], {}
        if row.g_job_key is not None:
            rated[row.o_position] = rating_of_row(row, "g_")
        if row.o_id is not None:
            outputs.append(from_row(OutputRecord, row, "o_"))
        last = row
    if last is not None:
        yield _job_outputs(last, tuple(outputs), rated)


def _job_outputs(
    row: Any, outputs: tuple[OutputRecord, ...], rated: dict[int, Rating]
) -> JobOutputs:
    attempt = None if row.a_id is None else from_row(AttemptRecord, row, "a_")
    return JobOutputs(
        job=_job_record(row),
        run_name=row.r_name,
        outputs=outputs,
        attempt=attempt,
        in_manifest=bool(row.in_manifest),
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        ratings=rated,
    )
