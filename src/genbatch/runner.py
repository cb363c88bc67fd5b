"""The scheduler: drives a run's jobs through the API under a concurrency limit, resumably.

One anyio task group holds a submitter (claims pending jobs while a slot is free) and one task
per job in flight (submit → poll → download). Every state change is a move of the lifecycle
table (``genbatch.lifecycle``), committed to the ledger (``AsyncLedger``), and awaited, before
the side effect that depends on it:

* the intent to submit (``submitting``) before the POST;
* the request id the moment the answer arrives (the POST and this record are shielded from
  cancellation together, so Ctrl-C never loses an answer that arrived);
* the output URLs before any download; ``done`` only after every file is verified and renamed.

A submit whose answer was lost is never retried: the job becomes ``unknown``. A generation that
succeeded is never submitted again: whatever stops its download, the job stays ``fetching`` and
the next run fetches its files. A move the ledger refuses (``TransitionRefused``: a cancel or a
takeover got there first) makes this worker let go of the job.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import NoReturn, Unpack
from urllib.parse import urlsplit

import anyio
from anyio.abc import TaskGroup, TaskStatus

from genbatch.backoff import Backoff
from genbatch.catalog import find_model
from genbatch.client import RemoteResult, RunComfyClient, describe_remote_error
from genbatch.clock import SYSTEM_CLOCK, Clock
from genbatch.downloads import DEFAULT_MAX_FILE_SIZE, Downloader, HostPolicy
from genbatch.errors import (
    ApiError,
    ApiUnreachable,
    BudgetReached,
    Disposition,
    DownloadError,
    FailureStreak,
    FileTooLarge,
    GatewayError,
    HostNotAllowed,
    LedgerError,
    ModelNotFound,
    OutputClosed,
    OutputError,
    RateLimited,
    RequestForbidden,
    RequestGone,
    RunStopped,
    StopRequested,
    TransitionRefused,
    TransportError,
)
from genbatch.events import (
    Event,
    EventSink,
    JobEvent,
    NoticeLevel,
    RunGauge,
    RunNotice,
    ignore_events,
    job_label,
)
from genbatch.failures import MAX_CONSECUTIVE_UNKNOWN, FailureLimit, FailureWatch
from genbatch.filenames import output_stem, sanitize_file_stem
from genbatch.ledger import JobRecord, Ledger, OutputRecord, RunInfo, StoredFile, WorkerStart
from genbatch.ledger.async_ledger import AsyncLedger
from genbatch.ledger.records import MoveDetails
from genbatch.lifecycle import Move
from genbatch.polling import HISTORY_SIZE, GenerationTimes, PollPolicy, generation_seconds
from genbatch.states import (
    BUDGET_STATES,
    REMOTE_ACTIVE_STATES,
    REMOTE_CANCELLED,
    REMOTE_FAILED,
    REMOTE_SUCCEEDED,
    REMOTE_WAITING,
    JobState,
    RemoteStatus,
)
from genbatch.throttle import RateGate, Slots
from genbatch.workers import DEFAULT_LEASE_SECONDS, WorkerIdentity

MAX_CLAIM_BATCH = 16
"""Jobs claimed in one durable commit at most: a crash leaves few intents to turn ``unknown``."""
CLAIM_GATHER_SECONDS = 0.05
"""How long a free slot may wait for others to free up, so that one claim covers them all."""
FOLLOWED_STATES = frozenset({JobState.QUEUED, JobState.RUNNING})
INTERRUPTED = "interrupted (Ctrl-C, SIGTERM or SIGHUP); run again to resume"
"""The stop reason recorded for a run stopped by a signal."""
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Signals that stop a run as Ctrl-C does (SIGHUP: its terminal was closed)."""


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How a run behaves; the CLI and the manifest fill these in."""

    concurrency: int = 4
    max_attempts: int = 1
    """Generations per job: a failed generation is submitted again until this many."""
    resubmit_unknown: bool = False
    poll: PollPolicy = field(default_factory=PollPolicy)
    ledger_history: bool = True
    """Time first polls from the generation times of earlier runs in the ledger, and record this
    run's there (off with ``--simulate``: its scaled times would mislead a real run)."""
    backoff: Backoff = field(default_factory=Backoff)
    download_concurrency: int = 8
    allowed_hosts: tuple[str, ...] = ()
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    handle_signals: bool = True
    resume_command: str | None = None
    """The command that resumes this run, said when a second Ctrl-C exits at once (a run
    that leaves that way prints no summary, so this is its ``next:`` line)."""
    max_failures: FailureLimit = field(default_factory=FailureLimit)
    budget_usd: float | None = None
    """Stop submitting before the run's estimated spending would pass this."""
    gauge_interval: float = 1.0
    """How often to report the run's vital signs (``RunGauge`` events)."""
    run_concurrency: int | None = None
    """Requests in flight for the whole run, every worker together (the manifest's
    ``concurrency``); ``concurrency`` caps this worker's own share."""
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    """How long this worker's hold on a job outlives its last heartbeat; then another worker
    takes the job over."""
    idle_interval: float = 0.2
    """How often a worker with nothing to claim looks again while other workers share the run
    (they may free run-wide capacity, hand jobs back to pending, or die)."""


GATEWAY_PATIENCE = 10
"""Polls of one job in a row answered by something that is not the API (``GatewayError``)
before that job is left for the next run (with the backoff between them, about 4 minutes)."""


@dataclass(kw_only=True)
class RunSummary:
    """How a run ended."""

    counts: dict[JobState, int]
    stop_reason: str | None = None
    stop_error: Exception | None = None
    interrupted: bool = False

    @property
    def all_done(self) -> bool:
        """True when every job of the manifest is done."""
        counted = any(self.counts.values())  # all zero: the ledger failed at the end of the run
        return counted and all(n == 0 for state, n in self.counts.items() if state != JobState.DONE)


class Runner:
    """Runs one run of the ledger to completion (or until stopped)."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        client: RunComfyClient,
        run: RunInfo,
        options: RunOptions,
        events: EventSink = ignore_events,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._client = client
        self._run = run
        self._options = options
        self._emit_to = events
        self._clock = clock
        self._slots = Slots(options.concurrency)
        self._gate = RateGate(clock)
        self._downloads = anyio.CapacityLimiter(options.download_concurrency)
        self._downloader = Downloader(
            client,
            hosts=HostPolicy(
                api_host=(urlsplit(client.base_url).hostname or "").lower(),
                extra_hosts=options.allowed_hosts,
            ),
            max_bytes=options.max_file_size,
        )
        self._history = GenerationTimes()
        self._history_read: dict[str, anyio.Event] = {}
        """The models whose generation times were read from the ledger (or are being read)."""
        self._stop_submitting = False
        self._stop_error: Exception | None = None
        self._interrupted = False
        self._output_closed = False
        self._active = 0
        self._reserved = 0
        """Slots the submitter holds for jobs it is about to claim."""
        self._job_ended = anyio.Event()
        self._tg: TaskGroup | None = None
        self._store = AsyncLedger(ledger)
        self._consecutive_429 = 0
        self._consecutive_unknown = 0
        self._unreachable = 0
        """API calls in a row that got no answer at all (see ``_on_unreachable``)."""
        self._polled_ours = False
        """A poll of this process got a request's status: the token sees the run's requests."""
        self._failures = FailureWatch(options.max_failures)
        self._spent = 0.0
        self._worker = WorkerIdentity.of_this_process()

    async def run(self) -> RunSummary:
        """Drive the run until every job is settled, the run is stopped, or interrupted."""
        start = await self._start_worker()
        if not self._options.handle_signals:
            return await self._drive_run(start)
        async with anyio.create_task_group() as listening:
            # Listening before the first claim and until the worker has stopped: a Ctrl-C lets
            # every submit in flight record its answer (none is left `submitting`), a second one
            # leaves at once. Apart from the run's tasks: their cancel does not reach it.
            await listening.start(self._watch_signals)
            try:
                summary = await self._drive_run(start)
            finally:
                listening.cancel_scope.cancel()
        return summary

    async def _drive_run(self, start: WorkerStart) -> RunSummary:
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                # Leases are renewed whoever drives the run (the CLI or the Python API).
                tg.start_soon(self._keep_leases)
                tg.start_soon(self._report_gauges)
                self._adopt(start.takeover.attached)
                await self._submit_pending()
                tg.cancel_scope.cancel()  # only the watchers can still be running
        finally:
            stop_reason = None if self._stop_error is None else str(self._stop_error)
            if stop_reason is None and self._interrupted:
                stop_reason = INTERRUPTED  # `genbatch runs` and `status` say why it stopped
            with anyio.CancelScope(shield=True):
                counts = await self._stop_worker(stop_reason)
        return RunSummary(
            counts=counts,
            stop_reason=stop_reason,
            stop_error=self._stop_error,
            interrupted=self._interrupted,
        )

    async def _stop_worker(self, stop_reason: str | None) -> dict[JobState, int]:
        """The leases end now rather than when they expire (other workers take over); the
        run's counts. A ledger failing here leaves the run's outcome as it was, its error
        added, and its counts all zero (unknown to this process)."""
        try:
            return await self._store.stop_worker(
                self._run.id, self._worker.id, stop_reason=stop_reason
            )
        except LedgerError as exc:
            self._stop(exc, cancel_all=False)
            return dict.fromkeys(JobState, 0)

    async def _start_worker(self) -> WorkerStart:
        options = self._options
        start = await self._store.start_worker(
            self._run.id,
            self._worker,
            concurrency=options.concurrency,
            lease_seconds=options.lease_seconds,
            resubmit_unknown=options.resubmit_unknown,
        )
        self._spent = start.spent_usd
        self._announce_unknown(
            start.takeover.interrupted,
            "were interrupted while submitting and are now `unknown`: they may exist remotely "
            "(see --resubmit-unknown)",
        )
        if start.resubmitted:
            self._notice(
                "warning", f"resubmitting {len(start.resubmitted)} unknown job(s) as asked"
            )
            for job in start.resubmitted:
                unknown = replace(job, state=JobState.UNKNOWN)
                self._emit(self._event(unknown, job, message="to be submitted again, as asked"))
        return start

    def _announce_unknown(self, jobs: list[JobRecord], what: str) -> None:
        """The ledger turned these ``submitting`` jobs ``unknown`` as they were taken over:
        a warning that says ``what`` of them, then each one's move."""
        if jobs:
            self._notice("warning", f"{len(jobs)} job(s) {what}")
        for job in jobs:
            unknown = replace(job, state=JobState.UNKNOWN)
            self._emit(self._event(job, unknown, message="interrupted while submitting"))

    def _adopt(self, jobs: list[JobRecord]) -> None:
        """Drive jobs already in flight (re-attached after a crash or taken over). Those the
        manifest no longer has are paid for: finished too, and announced apart."""
        removed = [job for job in jobs if not job.in_manifest]
        if removed:
            self._notice(
                "info",
                f"{len(removed)} job(s) no longer in the manifest are still finishing: their "
                "files are kept (they count in none of the run's progress)",
            )
        for job in jobs:
            holds_slot = job.state in REMOTE_ACTIVE_STATES
            if holds_slot:
                self._slots.occupy()
            self._start(job, holds_slot=holds_slot)
            if not job.in_manifest:
                self._emit(self._event(job, job, message="no longer in the manifest: finishing"))

    # -- the submitter ------------------------------------------------------------------------

    async def _submit_pending(self) -> None:
        while True:
            if self._stop_submitting:
                while self._active:
                    await self._job_ended.wait()
                return
            await self._slots.acquire()
            self._reserved = 1
            await self._gate.wait()
            await self._gather_slots()
            # A job ending while the ledger is consulted (it may put a job back to pending)
            # must not be missed by _idle below.
            job_ended = self._job_ended
            # Shielded: claimed jobs are committed `submitting`; each must be started (its POST
            # is shielded too), or a resume would take them for interrupted submits.
            with anyio.CancelScope(shield=True):
                jobs = [] if self._stop_submitting else await self._claim(1 + self._free_slots())
                self._reserved = 0
                for job in jobs:
                    self._start(job, holds_slot=True)
            if jobs:
                continue
            self._slots.release()
            if self._active == 0 and (
                self._stop_submitting
                or not await self._store.work_may_come(self._run.id, self._worker.id)
            ):
                return
            await self._idle(job_ended)

    async def _gather_slots(self) -> None:
        """Wait a moment for more slots while jobs are in flight: a claim is a durable commit
        (an fsync on SQLite) whatever its size, so claiming slots one by one as jobs end would
        pay it for each. An eighth of the limit free is enough; nothing waits when nothing is
        in flight, and the wait is short beside any generation."""
        enough = min(MAX_CLAIM_BATCH, self._slots.limit // 8)
        with anyio.move_on_after(CLAIM_GATHER_SECONDS):
            while self._active and 1 + self._free_slots() < enough:
                await self._slots.changed()

    def _free_slots(self) -> int:
        # Slots free beside the one just acquired, taken at once so that their claims share
        # one durable commit.
        return max(0, min(self._slots.limit - self._slots.in_use, MAX_CLAIM_BATCH - 1))

    async def _claim(self, count: int) -> list[JobRecord]:
        """Claim up to ``count`` jobs; the first slot is held already, the others are taken."""
        self._slots.occupy(count - 1)
        self._reserved = count
        try:
            jobs = await self._store.claim_jobs(
                self._run.id,
                count,
                worker=self._worker.id,
                budget_usd=self._options.budget_usd,
                run_limit=self._options.run_concurrency,
                lease_seconds=self._options.lease_seconds,
            )
        except (BudgetReached, StopRequested, LedgerError) as exc:
            self._stop(exc, cancel_all=isinstance(exc, LedgerError))
            jobs = []
        self._slots.release(count - max(1, len(jobs)))
        return jobs

    async def _idle(self, job_ended: anyio.Event) -> None:
        """Wait for one of this worker's jobs to end (``job_ended`` is already set if one did);
        with other workers (or nothing of ours in flight), for at most ``idle_interval``: the
        change may come from elsewhere."""
        elsewhere = self._store.shared or self._active == 0
        with anyio.move_on_after(self._options.idle_interval if elsewhere else None):
            await job_ended.wait()

    def _start(self, job: JobRecord, *, holds_slot: bool) -> None:
        assert self._tg is not None
        # Started before it is announced: a claimed job must be driven, whatever the event
        # sink (a user's callback, in the Python API) does with the announcement.
        self._active += 1
        self._tg.start_soon(self._drive, job, holds_slot)
        if job.state == JobState.SUBMITTING:
            self._spent += job.cost_usd or 0.0
            self._emit(self._event(replace(job, state=JobState.PENDING), job))

    async def _drive(self, job: JobRecord, holds_slot: bool) -> None:
        try:
            reattached = job.state != JobState.SUBMITTING
            if not reattached:
                job = await self._submit(job)
            if job.state in FOLLOWED_STATES:
                job = await self._follow(job, poll_now=reattached)
            if job.state == JobState.FETCHING:
                # Backpressure: a finished job keeps its slot until a download slot is free, so
                # submits wait while downloads lag (outputs expire; a backlog would only grow).
                async with self._downloads:
                    if holds_slot:
                        holds_slot = False
                        self._slots.release()
                    await self._fetch(job)
        except TransitionRefused as exc:
            self._let_go(job, exc)
        except LedgerError as exc:  # a full disk, a lost database: nothing more can be recorded
            self._stop(exc, cancel_all=True)
        except Exception as exc:  # one job's bug must not stop the others
            await self._give_up_for_now(job, f"internal error: {exc!r}")
            self._notice(
                "error",
                f"{job_label(job)}: internal error, the job stays "
                f"{job.state.value} and is resumable: {exc!r}",
            )
        finally:
            if holds_slot:
                self._slots.release()
            self._active -= 1
            self._job_ended.set()
            self._job_ended = anyio.Event()

    # -- one job: submit ----------------------------------------------------------------------

    async def _submit(self, job: JobRecord) -> JobRecord:
        # Shielded: once the POST is on its way, its answer is awaited and recorded even if the
        # run is interrupted, so a Ctrl-C never turns an accepted request into an unknown one.
        with anyio.CancelScope(shield=True):
            try:
                submission = await self._client.submit(job.model_id, job.inputs)
            except ApiError as exc:
                return await self._submit_failed(job, exc)
            job = await self._move(job, Move.ACCEPT, request_id=submission.request_id)
        self._consecutive_429 = 0
        self._consecutive_unknown = 0
        self._unreachable = 0
        self._slots.on_accepted()
        return job

    async def _submit_failed(self, job: JobRecord, exc: ApiError) -> JobRecord:
        message = str(exc)
        disposition = exc.submit_disposition()
        if disposition is Disposition.RETRY_LATER:
            if isinstance(exc, RateLimited):
                self._on_rate_limited(exc)
                # Fewer jobs in flight means fewer submits; polls adapt their own pace, so a
                # 429 on a poll only holds calls back.
                self._slots.on_rate_limited()
                message = f"rate limited: {message}"
            else:
                self._on_unreachable(exc)
            return await self._move(job, Move.REFUSE, error=message)
        if disposition is Disposition.UNKNOWN:
            job = await self._move(
                job, Move.LOSE_ANSWER, error=f"answer to the submit was lost: {message}"
            )
            self._on_submit_unknown(message)
            return job
        if disposition in (Disposition.STOP_SUBMITTING, Disposition.STOP_RUN):
            # Stopped first: the run stops even if this job was taken from us meanwhile.
            self._stop(exc, cancel_all=disposition is Disposition.STOP_RUN)
            return await self._move(job, Move.REFUSE, error=message)
        code = "" if exc.error_code is None else f" {exc.error_code}"
        self._count_failure(f"{type(exc).__name__}{code}")
        job = await self._move(job, Move.REJECT, error=message)
        if isinstance(exc, ModelNotFound):
            count = await self._store.fail_pending_of_model(self._run.id, job.model_id, message)
            self._notice(
                "error",
                f"the API does not know the model {job.model_id}: "
                f"{count + 1} job(s) of it failed without being sent",
            )
        return job

    def _on_submit_unknown(self, message: str) -> None:
        # Each lost answer may be a job paid twice later: pause, and stop if it goes on.
        self._consecutive_unknown += 1
        self._gate.block_for(self._options.backoff.delay(self._consecutive_unknown), "no answer")
        if self._consecutive_unknown >= MAX_CONSECUTIVE_UNKNOWN:
            self._stop(
                ApiUnreachable(
                    f"{self._consecutive_unknown} submits in a row got no answer (latest: "
                    f"{message}); stopping so the API outage does not pile up unknown jobs"
                ),
                cancel_all=False,
            )

    def _count_failure(self, kind: str) -> None:
        reason = self._failures.failed(kind)
        if reason:
            self._stop(
                FailureStreak(
                    f"stopping early: {reason}; fix the cause, then run the failed jobs again "
                    "with `genbatch retry MANIFEST --failed` (see --max-failures)"
                ),
                cancel_all=False,
            )

    def _on_rate_limited(self, exc: RateLimited) -> None:
        self._consecutive_429 += 1
        wait = exc.retry_after
        if wait is None:
            wait = self._options.backoff.delay(self._consecutive_429)
        self._gate.block_for(wait, "rate limited")

    def _on_unreachable(self, exc: ApiError) -> None:
        """No answer at all (connection refused, reset, timed out): hold every call back, twice
        as long each time (``Backoff``, capped), and stop after the run's patience. A call sent
        before the hold began fails in the same outage: it does not count again."""
        if self._gate.remaining > 0:
            return
        self._unreachable += 1
        patience = self._options.max_failures.unreachable_patience
        if patience is not None and self._unreachable >= patience:
            self._stop(
                ApiUnreachable(
                    f"the API could not be reached {self._unreachable} times in a row (latest: "
                    f"{exc}); nothing is lost: run again to resume once it answers "
                    "(patience: --max-failures)"
                ),
                cancel_all=True,  # every job in flight has its request id: a resume re-attaches
            )
            return
        wait = self._options.backoff.delay(self._unreachable)
        self._gate.block_for(wait, "API unreachable")
        limit = f" of {patience}" if patience is not None else ""
        self._notice(
            "warning",
            f"the API cannot be reached ({exc}), {self._unreachable}{limit} times in a row: "
            f"waiting {wait:.1f}s before the next call",
        )

    # -- one job: follow ------------------------------------------------------------------------

    async def _follow(self, job: JobRecord, *, poll_now: bool) -> JobRecord:
        assert job.request_id is not None
        clock, policy = self._clock, self._options.poll
        accepted = clock.now()
        seen_queued = False
        delay = 0.0 if poll_now else await self._first_poll_delay(job.model_id)
        failures = strange = 0
        while job.state in FOLLOWED_STATES:
            await clock.sleep(delay)
            await self._gate.wait()
            sent = clock.now()
            try:
                result = await self._client.result(job.request_id)
            except ApiError as exc:
                failures += 1
                strange = strange + 1 if isinstance(exc, GatewayError) else 0
                if strange >= GATEWAY_PATIENCE:
                    return await self._leave(
                        job,
                        f"polling: {strange} answers in a row that are not the API's own "
                        f"(latest: {exc})",
                    )
                if isinstance(exc, RequestForbidden) and self._polled_ours:
                    # The token sees this run's other requests: this one alone is another
                    # account's (submitted under an earlier token). Stopping every run at it
                    # would leave it in the way for good.
                    return await self._leave(job, f"polling: {exc}")
                job = await self._poll_failed(job, exc)
                # The gate already holds rate-limited calls back.
                delay = (
                    0.0 if isinstance(exc, RateLimited) else self._options.backoff.delay(failures)
                )
                continue
            failures = 0
            self._unreachable = 0
            self._polled_ours = True
            # A queued job's gaps grow from acceptance like any other's (its wait costs few
            # calls); its time is partly the queue's, so it is not taken as the model's.
            seen_queued = seen_queued or result.status == RemoteStatus.IN_QUEUE
            job = await self._on_result(job, result, seen_queued=seen_queued)
            # The gap runs from this poll's sending: the answer's round trip and its record
            # are not added to it (they would add to every job's detection delay).
            delay = max(0.0, policy.next_delay(sent - accepted) - (clock.now() - sent))
        return job

    async def _first_poll_delay(self, model_id: str) -> float:
        """When to first poll a fresh submit of ``model_id``: from the model's generation
        times, read from the ledger once per model and process, then learnt as jobs end."""
        read = self._history_read.get(model_id)
        if read is None:
            read = self._history_read[model_id] = anyio.Event()
            try:
                if self._options.ledger_history:
                    earlier = await self._store.generation_times(model_id, HISTORY_SIZE)
                    for seconds in reversed(earlier):  # oldest first: the newest are kept
                        self._history.add(model_id, seconds)
            except LedgerError as exc:  # only a read: poll as a first run would
                self._notice("warning", f"earlier generation times not read: {exc}")
            finally:
                read.set()
        await read.wait()
        return self._options.poll.first_delay(self._history, model_id)

    async def _leave(self, job: JobRecord, why: str) -> JobRecord:
        """Stop following a job whose polls keep getting answers that end nothing while other
        jobs' polls succeed (a request the API forgot without saying so in its words, one of
        another account): it stays as it is, request id kept, for the next run, which polls it
        again; this one neither polls it forever nor stops for it."""
        message = f"{why}; left as it is, request id kept: the next run polls it again"
        await self._give_up_for_now(job, message)
        self._notice("warning", f"{job_label(job)}: {message}")
        return job

    async def _poll_failed(self, job: JobRecord, exc: ApiError) -> JobRecord:
        """The job after a failed poll: unchanged when the poll is to be repeated."""
        disposition = exc.on_poll
        if disposition is Disposition.RETRY_LATER:
            if isinstance(exc, RateLimited):
                self._on_rate_limited(exc)
            else:
                if isinstance(exc, TransportError | GatewayError):
                    self._on_unreachable(exc)
                await self._store.note_error(job, f"polling: {exc}")
            return job
        if disposition is Disposition.EXPIRE:
            job = await self._move(job, Move.EXPIRE, error=str(exc))
            self._count_failure("expired")
            return job
        if disposition is Disposition.STOP_RUN:
            self._stop(exc, cancel_all=True)
            return job
        return await self._move(job, Move.FAIL, error=str(exc))

    async def _on_result(
        self, job: JobRecord, result: RemoteResult, *, seen_queued: bool
    ) -> JobRecord:
        status = result.status
        if status in REMOTE_WAITING:
            move = Move.QUEUE if status == RemoteStatus.IN_QUEUE else Move.START
            if move.transition.target != job.state:
                job = await self._move(job, move, remote_status=status)
            return job
        if status in REMOTE_SUCCEEDED and result.output_urls:
            self._failures.succeeded()
            # A time spent partly in the remote queue says little of the model's speed.
            took = (
                None if seen_queued else generation_seconds(result.created_at, result.finished_at)
            )
            if took is not None:
                self._history.add(job.model_id, took)
            return await self._move(
                job,
                Move.SUCCEED,
                urls=result.output_urls,
                remote_status=status,
                generation_seconds=took if self._options.ledger_history else None,
            )
        if status in REMOTE_CANCELLED:
            return await self._move(
                job, Move.CANCELLED, error="cancelled remotely", remote_status=status
            )
        if status in REMOTE_FAILED or status in REMOTE_SUCCEEDED:
            return await self._generation_failed(job, result)
        return job  # a status this version does not know: keep polling

    async def _generation_failed(self, job: JobRecord, result: RemoteResult) -> JobRecord:
        error = (
            describe_remote_error(result.error)
            if result.error is not None
            else "the generation finished without any output"
        )
        # Messages of failed generations vary (ids, prompts): the kind is the failure itself.
        self._count_failure("generation failed")
        if job.attempts < self._options.max_attempts and not self._stop_submitting:
            return await self._move(
                job,
                Move.RETRY_GENERATION,
                error=error,
                message=f"generation failed (attempt {job.attempts}), retrying: {error}",
            )
        return await self._move(job, Move.FAIL, error=error)

    # -- one job: fetch -------------------------------------------------------------------------

    async def _fetch(self, job: JobRecord) -> None:
        # A job that just succeeded carries its outputs; a re-attached one reads them.
        outputs = list(job.outputs) or await self._store.outputs(job.id)
        missing = [o for o in outputs if o.sha256 is None or not _still_there(o)]
        stored: list[StoredFile] = []
        for output in missing:
            file = await self._fetch_one(job, output, count=len(outputs))
            if file is None:
                return
            if output is not missing[-1]:  # recorded now: a resume does not fetch it again
                await self._store.record_files([file])
            else:
                stored.append(file)
        # The last file is recorded with the move to done: one commit.
        await self._move(job, Move.FINISH, files=stored)

    async def _fetch_one(
        self, job: JobRecord, output: OutputRecord, *, count: int
    ) -> StoredFile | None:
        """The output downloaded, verified and in place; None when the job stops here."""
        stem = output_stem(job.file_stem, output.position, count)
        spec = find_model(job.model_id)
        try:
            file = await self._downloader.fetch(
                output.url,
                directory=Path(job.output_dir),
                stem=stem,
                default_extension=spec.output.extension if spec else ".bin",
                # A file its host says is missing expires the job only if the API says so.
                check_request=(
                    None if job.request_id is None else partial(self._client.result, job.request_id)
                ),
            )
        except RequestGone as exc:
            await self._move(job, Move.EXPIRE, error=f"output file missing, request gone: {exc}")
            return None
        except (HostNotAllowed, FileTooLarge) as exc:
            await self._keep_paid(job, exc)
            return None
        except OutputError as exc:
            await self._give_up_for_now(job, str(exc))
            self._stop(exc, cancel_all=True)
            return None
        except (DownloadError, ApiError) as exc:
            await self._give_up_for_now(job, f"download failed, will retry on resume: {exc}")
            self._notice("warning", f"{job_label(job)}: download failed: {exc}")
            return None
        if file.path.stem != sanitize_file_stem(stem):
            self._notice(
                "warning",
                f"{job_label(job)}: {file.path.parent / stem}{file.path.suffix} holds "
                "other bytes (an earlier file, another job's, or yours): kept; saved as "
                f"{file.path.name}",
            )
        return StoredFile(
            output_id=output.id,
            path=str(file.path),
            size=file.size,
            sha256=file.sha256,
            host=self._worker.host,
        )

    async def _keep_paid(self, job: JobRecord, exc: DownloadError) -> None:
        """A file refused by this run's settings: the generation is paid and its request id and
        URLs kept; once the setting allows it, the next run fetches it, submitting nothing."""
        setting = "allowed_hosts" if isinstance(exc, HostNotAllowed) else "max_file_size"
        message = (
            f"{exc}; the generation succeeded and is kept: change {setting} in the manifest and "
            "run again to fetch it (nothing is submitted again)"
        )
        await self._give_up_for_now(job, message)
        self._notice("error", f"{job_label(job)}: {message}")
        self._count_failure(type(exc).__name__)

    # -- run-level ------------------------------------------------------------------------------

    def _stop(self, exc: Exception, *, cancel_all: bool) -> None:
        if self._stop_error is None:
            self._stop_error = exc
            # A cancel or the budget is a stop asked for, not a failure.
            level: NoticeLevel = "warning" if isinstance(exc, RunStopped) else "error"
            self._notice(level, f"stopping the run: {exc}")
        elif isinstance(exc, LedgerError) and exc is not self._stop_error:
            # Already stopping (a budget, a cancel...): a ledger failing meanwhile still matters.
            self._notice("error", f"while stopping: {exc}")
        self._stop_submitting = True
        if cancel_all and self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _give_up_for_now(self, job: JobRecord, error: str) -> None:
        """Record why, and stop driving the job: it stays where it is, and the next worker to
        start adopts it. Other running workers would only fail on it the same way (and waiting
        for each other's stuck jobs, never finish)."""
        with anyio.CancelScope(shield=True):
            try:
                await self._store.note_error(job, error)
                await self._store.park_job(job, self._worker.id)
            except LedgerError as exc:
                self._notice("warning", f"{job_label(job)}: {exc}")

    async def _keep_leases(self) -> None:
        """Heartbeat: renew this worker's leases, and take over the jobs of workers gone."""
        while True:
            await anyio.sleep(self._options.lease_seconds / 3)
            try:
                await self._store.heartbeat(
                    self._run.id, self._worker.id, lease_seconds=self._options.lease_seconds
                )
                if self._store.shared and not self._stop_submitting:
                    await self._take_over_orphans()
            except LedgerError as exc:
                self._notice("warning", f"could not renew this worker's leases: {exc}")

    async def _take_over_orphans(self) -> None:
        takeover = await self._store.take_over(
            self._run.id, self._worker.id, lease_seconds=self._options.lease_seconds
        )
        self._announce_unknown(
            takeover.interrupted,
            "of a worker that is gone were caught submitting and are now `unknown`: they may "
            "exist remotely",
        )
        if takeover.attached:
            self._notice(
                "info",
                f"took over {len(takeover.attached)} job(s) in flight from a worker that is "
                "gone (re-attached, not resubmitted)",
            )
        self._adopt(takeover.attached)

    async def _report_gauges(self) -> None:
        while True:
            # Slots held for a claim in progress are not requests in flight.
            self._emit(
                RunGauge(
                    in_flight=self._slots.in_use - self._reserved,
                    limit=self._slots.limit,
                    max_limit=self._slots.max_limit,
                    backoff_seconds=self._gate.remaining,
                    backoff_reason=self._gate.reason,
                    spent_usd=round(self._spent, 6),
                )
            )
            await anyio.sleep(self._options.gauge_interval)

    async def _watch_signals(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        with anyio.open_signal_receiver(*STOP_SIGNALS) as received:
            task_status.started()
            async for _signum in received:
                if self._interrupted:
                    self._exit_at_once()
                self._interrupted = True
                self._stop_submitting = True
                self._notice(
                    "warning",
                    "interrupted: recording submissions in flight, then exiting (press Ctrl-C "
                    "again to exit at once); run again to resume",
                )
                assert self._tg is not None
                self._tg.cancel_scope.cancel()

    def _exit_at_once(self) -> NoReturn:
        """A second signal: leave now. Every commit is atomic; nothing is corrupted."""
        self._say_exiting_at_once()
        os._exit(130)

    def _say_exiting_at_once(self) -> None:
        """The last words of a run that leaves without its summary: what became of the jobs in
        flight, and what to run next (past the live display's frame, its cursor shown again:
        the display is not closed on this way out)."""
        terminal = sys.stderr.isatty()
        words = (
            ("\r\n" if terminal else "")
            + "genbatch: exited at once: jobs whose submit had no answer yet become `unknown` "
            "(never sent again unless you say so), the others resume\n"
        )
        if self._options.resume_command:
            words += f"genbatch: next: {self._options.resume_command}\n"
        if terminal:
            words += "\x1b[?25h"
        with contextlib.suppress(OSError):  # stderr gone too: the exit code is what is left
            os.write(2, words.encode())

    async def _move(
        self,
        job: JobRecord,
        move: Move,
        *,
        message: str | None = None,
        **details: Unpack[MoveDetails],
    ) -> JobRecord:
        """Make ``move`` in the ledger, then announce it (``message``, else the error). Should the
        ledger fail (``LedgerError``) to record what only the API knows (a request id, output
        URLs), each is printed on stderr before the error goes on (``print_unrecorded``), so a
        full disk never loses a paid request."""
        try:
            moved = await self._store.move(job, move, worker=self._worker.id, **details)
        except TransitionRefused:
            raise  # recorded by whoever moved the job first
        except Exception:  # a LedgerError, or a failure of the pool or the driver's own
            print_unrecorded(job, details.get("request_id"), details.get("urls", ()))
            raise
        self._account(job, moved.state)
        if moved.state != job.state:
            self._emit(self._event(job, moved, message=message or details.get("error")))
        return moved

    def _account(self, job: JobRecord, state: JobState) -> None:
        """The run's spend as ``job`` moves to ``state`` (a job the manifest no longer has
        included: it is paid for, and counts in the budget; ``Ledger.spend``)."""
        if (job.state in BUDGET_STATES) != (state in BUDGET_STATES):
            sign = 1.0 if state in BUDGET_STATES else -1.0
            self._spent += sign * (job.cost_usd or 0.0)

    def _let_go(self, job: JobRecord, refused: TransitionRefused) -> None:
        """Stop driving a job another process moved first. Found cancelled, it is what
        `genbatch cancel` does (or another worker that saw the cancellation): announced as the
        job's move, not a warning."""
        if refused.found is not JobState.CANCELLED:
            which = f"#{job.ordinal}" if job.in_manifest else "removed"
            self._notice("warning", f"{which} {refused}: this worker lets go of it")
            return
        cancelled = replace(job, state=JobState.CANCELLED)
        self._account(job, cancelled.state)
        message = "recorded by `genbatch cancel` or another worker"
        self._emit(self._event(job, cancelled, message=message))

    def _event(self, job: JobRecord, moved: JobRecord, *, message: str | None = None) -> JobEvent:
        """``job`` moved to ``moved``'s state, the run's spend as it is now."""
        return JobEvent(
            key=job.key,
            ordinal=job.ordinal,
            state=moved.state,
            previous=job.state,
            request_id=moved.request_id or job.request_id,
            message=message,
            in_manifest=job.in_manifest,
            spent_usd=round(self._spent, 6),
        )

    def _notice(self, level: NoticeLevel, message: str) -> None:
        self._emit(RunNotice(level=level, message=message))

    def _emit(self, event: Event) -> None:
        if self._output_closed:
            return
        try:
            self._emit_to(event)
        except OSError as exc:
            self._on_output_closed(exc)

    def _on_output_closed(self, exc: OSError) -> None:
        """Nobody sees the run any more (``genbatch run --json | head``, a terminal gone): stop
        it as an interruption would. Submits in flight still record their answers (shielded),
        so nothing is left ``submitting`` and nothing is lost; the run resumes."""
        self._output_closed = True
        reason = exc.strerror or type(exc).__name__
        self._stop(
            OutputClosed(
                f"the output was closed ({reason}): stopped submitting, jobs in flight recorded; "
                "run again to resume"
            ),
            cancel_all=True,
        )


def print_unrecorded(job: JobRecord, new_request_id: str | None, urls: Sequence[str]) -> None:
    """The last resort for what the API answered and the ledger could not take: one line each
    on stderr, ``genbatch: unrecorded request_id=ID job=KEY`` (a request id just given) and
    ``genbatch: unrecorded output_url=URL request_id=ID job=KEY`` (the key last: it may hold
    spaces)."""
    request_id = new_request_id or job.request_id
    lines = (
        [f"genbatch: unrecorded request_id={request_id} job={job.key}"] if new_request_id else []
    )
    lines += [
        f"genbatch: unrecorded output_url={url} request_id={request_id} job={job.key}"
        for url in urls
    ]
    if lines:
        with contextlib.suppress(OSError):  # stderr is gone too: nothing is left to tell
            print("\n".join(lines), file=sys.stderr, flush=True)


def _still_there(output: OutputRecord) -> bool:
    """The file recorded for ``output`` is where it was put, at the size it had (a file put
    back or replaced by hand is fetched again: a file never replaces one with other bytes)."""
    try:
        return output.path is not None and Path(output.path).stat().st_size == output.size
    except OSError:
        return False
