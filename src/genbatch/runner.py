"""The scheduler: drives a run's jobs through the API under a concurrency limit, resumably.

One anyio task group holds a submitter (claims pending jobs while a slot is free) and one task
per job in flight (submit → poll → download). While the run goes, the ledger is called through
``OffLoop``: commits that wait for the disk or the network (claims; everything on PostgreSQL)
run in a worker thread, not on the event loop, and the per-job writes made together share one
commit. Every state change is committed to the ledger, and awaited, before the side effect
that depends on it:

* the intent to submit (``submitting``) before the POST;
* the request id the moment the answer arrives (the POST and this record are shielded from
  cancellation together, so Ctrl-C never loses an answer that arrived);
* the output URLs before any download; ``done`` only after every file is verified and renamed.

A submit whose answer was lost is never retried: the job becomes ``unknown``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
from anyio.abc import TaskGroup

from genbatch.catalog import find_model
from genbatch.client import RemoteResult, RunComfyClient
from genbatch.downloads import DEFAULT_MAX_FILE_SIZE, Downloader, HostPolicy
from genbatch.errors import (
    ApiError,
    AuthError,
    BadAnswer,
    BalanceExhausted,
    BudgetReached,
    DownloadError,
    FailureStreak,
    FileTooLarge,
    HostNotAllowed,
    LedgerError,
    ModelNotFound,
    OutputError,
    RateLimited,
    RequestGone,
    ServerError,
    StopRequested,
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
)
from genbatch.failures import MAX_CONSECUTIVE_UNKNOWN, FailureLimit, FailureWatch
from genbatch.ledger import JobRecord, Ledger, OutputRecord, RunInfo
from genbatch.ledger.offloop import OffLoop
from genbatch.polling import DurationHistory, PollPolicy, next_poll_delay
from genbatch.retry import Backoff
from genbatch.states import REMOTE_ACTIVE_STATES, SPENDING_STATES, JobState
from genbatch.throttle import RateGate, Slots
from genbatch.workers import DEFAULT_LEASE_SECONDS, WorkerIdentity

MAX_CLAIM_BATCH = 16
CLAIM_GATHER_SECONDS = 0.05
"""How long a free slot may wait for others to free up, so that one claim covers them all."""
SUCCEEDED = frozenset({"succeeded", "completed"})
FAILED = frozenset({"failed", "error"})
CANCELLED = frozenset({"cancelled", "canceled"})


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How a run behaves; the CLI and the manifest fill these in."""

    concurrency: int = 4
    max_attempts: int = 1
    """Generations per job: a failed generation is submitted again until this many."""
    resubmit_unknown: bool = False
    poll: PollPolicy = field(default_factory=PollPolicy)
    backoff: Backoff = field(default_factory=Backoff)
    download_concurrency: int = 8
    allowed_hosts: tuple[str, ...] = ()
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    handle_signals: bool = True
    worker: str | None = None
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


@dataclass(kw_only=True)
class RunSummary:
    """How a run ended."""

    counts: dict[JobState, int]
    stop_reason: str | None = None
    stop_error: Exception | None = None
    interrupted: bool = False
    recovered_unknown: int = 0

    @property
    def all_done(self) -> bool:
        """True when every job of the manifest is done."""
        return all(n == 0 for state, n in self.counts.items() if state != JobState.DONE)


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
    ) -> None:
        self._ledger = ledger
        # SQLite's non-durable commits never wait for the disk: grouped writes run on the loop.
        self._off_loop = OffLoop(ledger.grouped, groups_on_loop=ledger.is_sqlite)
        self._client = client
        self._run = run
        self._options = options
        self._emit_to = events
        self._slots = Slots(options.concurrency)
        self._gate = RateGate()
        self._downloads = anyio.CapacityLimiter(options.download_concurrency)
        self._downloader = Downloader(
            client,
            hosts=HostPolicy(
                api_host=(urlsplit(client.base_url).hostname or "").lower(),
                extra_hosts=options.allowed_hosts,
            ),
            max_bytes=options.max_file_size,
        )
        self._history = DurationHistory()
        self._outputs_recorded: dict[int, list[OutputRecord]] = {}
        """Outputs of jobs that just succeeded, by job id: what _fetch would read back."""
        self._rng = random.Random()
        self._stop_submitting = False
        self._stop_reason: str | None = None
        self._stop_error: Exception | None = None
        self._interrupted = False
        self._active = 0
        self._reserved = 0
        """Slots the submitter holds for jobs it is about to claim."""
        self._job_ended = anyio.Event()
        self._tg: TaskGroup | None = None
        self._consecutive_429 = 0
        self._consecutive_unknown = 0
        self._failures = FailureWatch(options.max_failures)
        self._spent = 0.0
        self._worker = WorkerIdentity.of_this_process(options.worker)

    async def run(self) -> RunSummary:
        """Drive the run until every job is settled, the run is stopped, or interrupted."""
        recovered, attached = self._prepare()
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if self._options.handle_signals:
                    tg.start_soon(self._watch_signals)
                # Leases are renewed whoever drives the run (the CLI or the Python API).
                tg.start_soon(self._keep_leases)
                tg.start_soon(self._report_gauges)
                self._adopt(attached)
                await self._submit_pending()
                tg.cancel_scope.cancel()  # only the watchers can still be running
        finally:
            self._leave()
        if self._stop_reason:
            self._ledger.set_stop_reason(self._run.id, self._stop_reason)
        return RunSummary(
            counts=self._ledger.counts(self._run.id),
            stop_reason=self._stop_reason,
            stop_error=self._stop_error,
            interrupted=self._interrupted,
            recovered_unknown=recovered,
        )

    def _prepare(self) -> tuple[int, list[JobRecord]]:
        self._ledger.clear_stop_request(self._run.id)
        spend = self._ledger.spend(self._run.id)
        self._spent = sum(spend[state] for state in SPENDING_STATES)
        me, options = self._worker, self._options
        self._ledger.register_worker(
            self._run.id,
            me.id,
            host=me.host,
            pid=me.pid,
            concurrency=options.concurrency,
            lease_seconds=options.lease_seconds,
        )
        # Jobs left in flight by a crash (or by workers that are gone): re-attached, and those
        # caught submitting become unknown.
        takeover = self._ledger.take_over(
            self._run.id, me.id, lease_seconds=options.lease_seconds, starting=True
        )
        recovered = takeover.unknown
        if recovered:
            self._notice(
                "warning",
                f"{recovered} job(s) were interrupted while submitting and "
                "are now `unknown`: they may exist remotely (see --resubmit-unknown)",
            )
        if self._options.resubmit_unknown:
            count = self._ledger.reset_to_pending(self._run.id, [JobState.UNKNOWN])
            if count:
                self._notice("warning", f"resubmitting {count} unknown job(s) as asked")
        return recovered, takeover.attached

    def _adopt(self, jobs: list[JobRecord]) -> None:
        """Drive jobs already in flight (re-attached after a crash or taken over)."""
        for job in jobs:
            holds_slot = job.state in REMOTE_ACTIVE_STATES
            if holds_slot:
                self._slots.occupy()
            self._start(job, holds_slot=holds_slot)

    def _leave(self) -> None:
        # The leases end now rather than when they expire: running workers take over at once.
        try:
            self._ledger.release_worker(self._run.id, self._worker.id)
        except LedgerError as exc:
            self._notice(
                "warning",
                f"could not release this worker's leases (other workers "
                f"take its jobs over once they expire): {exc}",
            )

    # -- the submitter ------------------------------------------------------------------------

    async def _submit_pending(self) -> None:
        while True:
            if self._stop_submitting:
                await self._wait_for_active_jobs()
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
            if self._active == 0 and not await self._run_unsettled():
                return
            await self._idle(job_ended)

    async def _gather_slots(self) -> None:
        """Wait a moment for more slots while jobs are in flight: a claim is a durable commit
        (on SQLite about 0.9 ms of CPU whatever its size, the fsync included), so claiming
        slots one by one as jobs end would pay that for each. An eighth of the limit free is
        enough. The wait is short beside any generation, and nothing waits when nothing is in
        flight."""
        enough = min(MAX_CLAIM_BATCH, self._slots.limit // 8)
        with anyio.move_on_after(CLAIM_GATHER_SECONDS):
            while self._active and 1 + self._free_slots() < enough:
                await self._slots.changed()

    def _free_slots(self) -> int:
        # Slots free beside the one just acquired, taken at once so that their claims share
        # one durable commit; capped so a crash leaves few intents to turn `unknown`.
        return max(0, min(self._slots.limit - self._slots.in_use, MAX_CLAIM_BATCH - 1))

    async def _claim(self, count: int) -> list[JobRecord]:
        """Claim up to ``count`` jobs; the first slot is held already, the others are taken."""
        for _ in range(count - 1):
            self._slots.occupy()
        self._reserved = count
        try:
            jobs = await self._off_loop(
                self._ledger.claim_jobs,
                self._run.id,
                count,
                worker=self._worker.id,
                budget_usd=self._options.budget_usd,
                run_limit=self._options.run_concurrency,
                lease_seconds=self._options.lease_seconds,
            )
        except (BudgetReached, StopRequested) as exc:
            self._stop(exc, cancel_all=False)
            jobs = []
        for _ in range(count - max(1, len(jobs))):
            self._slots.release()
        return jobs

    async def _run_unsettled(self) -> bool:
        """Work may still come: pending jobs (back after a 429 or a failed generation, or not
        claimable yet under the run-wide limit) or jobs other workers hold (they may hand them
        back, or die and leave them to be taken over)."""
        if self._stop_submitting:
            return False
        if (await self._off_loop(self._ledger.counts, self._run.id))[JobState.PENDING] > 0:
            return True
        return (
            self._ledger.shared
            and await self._off_loop(self._ledger.others_in_flight, self._run.id, self._worker.id)
            > 0
        )

    async def _idle(self, job_ended: anyio.Event) -> None:
        """Wait for one of this worker's jobs to end (``job_ended`` is already set if one did);
        with other workers (or nothing of ours in flight), for at most ``idle_interval``: the
        change may come from elsewhere."""
        if self._ledger.shared or self._active == 0:
            with anyio.move_on_after(self._options.idle_interval):
                await job_ended.wait()
        else:
            await job_ended.wait()

    async def _wait_for_active_jobs(self) -> None:
        while self._active:
            await self._job_ended.wait()

    def _start(self, job: JobRecord, *, holds_slot: bool) -> None:
        assert self._tg is not None
        if job.state == JobState.SUBMITTING:
            self._spent += job.cost_usd or 0.0
            self._emit(
                JobEvent(
                    key=job.key, ordinal=job.ordinal, state=job.state, previous=JobState.PENDING
                )
            )
        self._active += 1
        self._tg.start_soon(self._drive, job, holds_slot)

    async def _drive(self, job: JobRecord, holds_slot: bool) -> None:
        try:
            reattached = job.state != JobState.SUBMITTING
            if not reattached:
                job = await self._submit(job)
            if job.state in (JobState.QUEUED, JobState.RUNNING):
                job = await self._follow(job, poll_now=reattached)
            if job.state == JobState.FETCHING:
                # Backpressure: a finished job keeps its slot until a download slot is free, so
                # submits wait while downloads lag (outputs expire; a backlog would only grow).
                async with self._downloads:
                    if holds_slot:
                        holds_slot = False
                        self._slots.release()
                    await self._fetch(job)
        except Exception as exc:  # one job's bug must not stop the others
            await self._off_loop(self._ledger.record_job_error, job, f"internal error: {exc!r}")
            await self._park(job)
            self._notice(
                "error",
                f"#{job.ordinal} {job.key}: internal error, the job stays "
                f"{job.state.value} and is resumable: {exc!r}",
            )
        finally:
            self._outputs_recorded.pop(job.id, None)  # a job that stopped before its download
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
            await self._off_loop.grouped(self._ledger.record_accepted, job, submission.request_id)
        self._consecutive_429 = 0
        self._consecutive_unknown = 0
        self._slots.on_accepted()
        return self._settle(_with(job, request_id=submission.request_id), JobState.QUEUED, None)

    async def _submit_failed(self, job: JobRecord, exc: ApiError) -> JobRecord:
        message = str(exc)
        ledger = self._ledger
        if isinstance(exc, RateLimited):
            self._on_rate_limited(exc, submitting=True)
            await self._off_loop(ledger.record_refused, job, message, final=False)
            return self._settle(job, JobState.PENDING, f"rate limited: {message}")
        if isinstance(exc, TransportError) and not exc.request_sent:
            self._gate.block_for(self._options.backoff.delay(1, self._rng))
            await self._off_loop(ledger.record_refused, job, message, final=False)
            return self._settle(job, JobState.PENDING, message)
        if isinstance(exc, TransportError | ServerError | BadAnswer):
            await self._off_loop(ledger.record_submit_unknown, job, message)
            self._on_submit_unknown(message)
            return self._settle(job, JobState.UNKNOWN, f"answer to the submit was lost: {message}")
        if isinstance(exc, AuthError | BalanceExhausted):
            await self._off_loop(ledger.record_refused, job, message, final=False)
            self._stop(exc, cancel_all=isinstance(exc, AuthError))
            return self._settle(job, JobState.PENDING, None)
        await self._off_loop(ledger.record_refused, job, message, final=True)
        job = self._settle(job, JobState.FAILED, message)
        if isinstance(exc, ModelNotFound):
            await self._fail_model(job.model_id, message)
        self._count_failure(
            type(exc).__name__
            if exc.error_code is None
            else f"{type(exc).__name__} {exc.error_code}"
        )
        return job

    def _on_submit_unknown(self, message: str) -> None:
        # Each lost answer may be a job paid twice later: pause, and stop if it goes on.
        self._consecutive_unknown += 1
        self._gate.block_for(self._options.backoff.delay(self._consecutive_unknown, self._rng))
        if self._consecutive_unknown >= MAX_CONSECUTIVE_UNKNOWN:
            self._stop(
                FailureStreak(
                    f"{self._consecutive_unknown} submits in a row got no answer (latest: "
                    f"{message}); stopping so the API outage does not pile up unknown jobs"
                ),
                cancel_all=False,
            )

    async def _fail_model(self, model_id: str, message: str) -> None:
        count = await self._off_loop(
            self._ledger.fail_pending_of_model, self._run.id, model_id, message
        )
        self._notice(
            "error",
            f"the API does not know the model {model_id}: "
            f"{count + 1} job(s) of it failed without being sent",
        )

    def _count_failure(self, kind: str) -> None:
        reason = self._failures.failed(kind)
        if reason:
            self._stop(
                FailureStreak(
                    f"stopping early: {reason}; fix the cause and run again (see --max-failures)"
                ),
                cancel_all=False,
            )

    def _on_rate_limited(self, exc: RateLimited, *, submitting: bool = False) -> None:
        self._consecutive_429 += 1
        wait = exc.retry_after
        if wait is None:
            wait = self._options.backoff.delay(self._consecutive_429, self._rng)
        self._gate.block_for(wait)
        # Fewer jobs in flight means fewer submits; polls adapt their own pace, so a 429 on a
        # poll only holds calls back.
        if submitting:
            self._slots.on_rate_limited()

    # -- one job: follow ------------------------------------------------------------------------

    async def _follow(self, job: JobRecord, *, poll_now: bool) -> JobRecord:
        assert job.request_id is not None
        accepted = time.monotonic()
        running_since = accepted
        failures = 0
        first = poll_now
        while True:
            now = time.monotonic()
            delay = (
                0.0
                if first
                else next_poll_delay(
                    self._options.poll,
                    running_for=now - running_since,
                    since_accepted=now - accepted,
                    shortest_seen=self._history.shortest.get(job.model_id),
                )
            )
            first = False
            await anyio.sleep(delay)
            await self._gate.wait()
            try:
                result = await self._client.result(job.request_id)
            except ApiError as exc:
                failures += 1
                settled = await self._poll_failed(job, exc)
                if settled is not None:
                    return settled
                if not isinstance(exc, RateLimited):  # the gate already holds rate-limited calls
                    await anyio.sleep(self._options.backoff.delay(failures, self._rng))
                first = True
                continue
            failures = 0
            if result.status == "in_queue":
                running_since = time.monotonic()
            settled = await self._on_result(job, result, accepted)
            if settled.state not in (JobState.QUEUED, JobState.RUNNING):
                return settled
            job = settled

    async def _poll_failed(self, job: JobRecord, exc: ApiError) -> JobRecord | None:
        """The job settled by a failed poll, or None when the poll is to be repeated."""
        if isinstance(exc, RateLimited):
            self._on_rate_limited(exc)
            return None
        if isinstance(exc, TransportError | ServerError | BadAnswer):
            await self._off_loop(self._ledger.record_job_error, job, f"polling: {exc}")
            return None
        if isinstance(exc, RequestGone):
            await self._off_loop(self._ledger.record_expired, job, str(exc))
            self._count_failure("expired")
            return self._settle(job, JobState.EXPIRED, str(exc))
        if isinstance(exc, AuthError):
            self._stop(exc, cancel_all=True)
            return job
        await self._off_loop(self._ledger.record_generation_failed, job, str(exc), retry=False)
        return self._settle(job, JobState.FAILED, str(exc))

    async def _on_result(self, job: JobRecord, result: RemoteResult, accepted: float) -> JobRecord:
        status = result.status
        if status in ("in_queue", "in_progress"):
            state = JobState.QUEUED if status == "in_queue" else JobState.RUNNING
            if state != job.state:
                await self._off_loop.grouped(self._ledger.record_remote_state, job, state, status)
                job = self._settle(job, state, None)
            return job
        if status in SUCCEEDED and result.output_urls:
            self._failures.succeeded()
            self._history.observe(job.model_id, time.monotonic() - accepted)
            self._outputs_recorded[job.id] = await self._off_loop.grouped(
                self._ledger.record_succeeded, job, result.output_urls
            )
            return self._settle(job, JobState.FETCHING, None)
        if status in CANCELLED:
            await self._off_loop(
                self._ledger.record_generation_failed,
                job,
                "cancelled remotely",
                retry=False,
                outcome="cancelled",
            )
            return self._settle(job, JobState.CANCELLED, "cancelled remotely")
        if status in FAILED or status in SUCCEEDED:
            return await self._generation_failed(job, result)
        return job  # a status this version does not know: keep polling

    async def _generation_failed(self, job: JobRecord, result: RemoteResult) -> JobRecord:
        error = (
            describe_remote_error(result.error)
            if result.error is not None
            else "the generation finished without any output"
        )
        retry = job.attempts < self._options.max_attempts and not self._stop_submitting
        await self._off_loop(self._ledger.record_generation_failed, job, error, retry=retry)
        # Messages of failed generations vary (ids, prompts): the kind is the failure itself.
        self._count_failure("generation failed")
        if retry:
            return self._settle(
                job,
                JobState.PENDING,
                f"generation failed (attempt {job.attempts}), retrying: {error}",
            )
        return self._settle(job, JobState.FAILED, error)

    # -- one job: fetch -------------------------------------------------------------------------

    async def _fetch(self, job: JobRecord) -> None:
        outputs = self._outputs_recorded.pop(job.id, None)
        if outputs is None:  # re-attached: recorded by an earlier run
            outputs = await self._off_loop(self._ledger.outputs, job.id)
        missing = [
            o for o in outputs if o.sha256 is None or not o.path or not Path(o.path).exists()
        ]
        for output in missing:
            # The last file's record also marks the job done: one commit instead of two.
            if not await self._fetch_one(
                job, output, count=len(outputs), last=output is missing[-1]
            ):
                return
        if not missing:
            await self._off_loop.grouped(self._ledger.record_done, job)
        self._settle(job, JobState.DONE, None)

    async def _fetch_one(
        self, job: JobRecord, output: OutputRecord, *, count: int, last: bool
    ) -> bool:
        stem = job.file_stem if count == 1 else f"{job.file_stem}_{output.position}"
        spec = find_model(job.model_id)
        try:
            file = await self._downloader.fetch(
                output.url,
                directory=Path(job.output_dir),
                stem=stem,
                default_extension=spec.extension if spec else ".bin",
            )
        except RequestGone as exc:
            await self._off_loop(
                self._ledger.record_expired, job, f"output file gone before download: {exc}"
            )
            self._settle(job, JobState.EXPIRED, str(exc))
            return False
        except (HostNotAllowed, FileTooLarge) as exc:
            await self._off_loop(self._ledger.record_generation_failed, job, str(exc), retry=False)
            self._settle(job, JobState.FAILED, str(exc))
            return False
        except OutputError as exc:
            await self._off_loop(self._ledger.record_job_error, job, str(exc))
            self._stop(exc, cancel_all=True)
            return False
        except (DownloadError, ApiError) as exc:
            await self._off_loop(
                self._ledger.record_job_error, job, f"download failed, will retry on resume: {exc}"
            )
            await self._park(job)
            self._notice("warning", f"#{job.ordinal} {job.key}: download failed: {exc}")
            return False
        await self._off_loop.grouped(
            self._ledger.record_file,
            output,
            path=str(file.path),
            size=file.size,
            sha256=file.sha256,
            host=self._worker.host,
            last=last,
        )
        return True

    # -- run-level ------------------------------------------------------------------------------

    def _stop(self, exc: Exception, *, cancel_all: bool) -> None:
        if self._stop_error is None:
            self._stop_error = exc
            self._stop_reason = str(exc)
            self._notice("error", f"stopping the run: {exc}")
        self._stop_submitting = True
        if cancel_all and self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _park(self, job: JobRecord) -> None:
        # This worker stops driving the job; other running workers would only fail on it the
        # same way (and waiting for each other's stuck jobs, never finish): the next start
        # adopts it instead.
        try:
            await self._off_loop(self._ledger.park_job, job, self._worker.id)
        except LedgerError as exc:
            self._notice("warning", f"#{job.ordinal} {job.key}: {exc}")

    async def _keep_leases(self) -> None:
        """Heartbeat: renew this worker's leases, and take over the jobs of workers gone."""
        while True:
            await anyio.sleep(self._options.lease_seconds / 3)
            try:
                await self._off_loop(
                    self._ledger.heartbeat,
                    self._run.id,
                    self._worker.id,
                    lease_seconds=self._options.lease_seconds,
                )
                if self._ledger.shared and not self._stop_submitting:
                    await self._take_over_orphans()
            except LedgerError as exc:
                self._notice("warning", f"could not renew this worker's leases: {exc}")

    async def _take_over_orphans(self) -> None:
        takeover = await self._off_loop(
            self._ledger.take_over,
            self._run.id,
            self._worker.id,
            lease_seconds=self._options.lease_seconds,
        )
        if takeover.unknown:
            self._notice(
                "warning",
                f"{takeover.unknown} job(s) of a worker that is gone were "
                "caught submitting and are now `unknown`: they may exist remotely",
            )
        if takeover.attached:
            self._notice(
                "info",
                f"took over {len(takeover.attached)} job(s) in flight from a "
                "worker that is gone (re-attached, not resubmitted)",
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
                    spent_usd=round(self._spent, 6),
                )
            )
            await anyio.sleep(self._options.gauge_interval)

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
            async for _signum in received:
                if self._interrupted:
                    # Second signal: leave at once. Every commit is atomic; nothing is corrupted.
                    os._exit(130)
                self._interrupted = True
                self._stop_submitting = True
                self._notice(
                    "warning",
                    "interrupted: recording submissions in flight, then "
                    "exiting (press Ctrl-C again to exit at once); run again to resume",
                )
                assert self._tg is not None
                self._tg.cancel_scope.cancel()

    def _settle(self, job: JobRecord, state: JobState, message: str | None) -> JobRecord:
        """The job, now in ``state`` (already committed to the ledger), announced."""
        if (job.state in SPENDING_STATES) != (state in SPENDING_STATES):
            sign = 1.0 if state in SPENDING_STATES else -1.0
            self._spent += sign * (job.cost_usd or 0.0)
        self._emit(
            JobEvent(
                key=job.key,
                ordinal=job.ordinal,
                state=state,
                previous=job.state,
                request_id=job.request_id,
                message=message,
            )
        )
        return _with(job, state=state)

    def _notice(self, level: NoticeLevel, message: str) -> None:
        self._emit(RunNotice(level=level, message=message))

    def _emit(self, event: Event) -> None:
        self._emit_to(event)


def describe_remote_error(error: object) -> str:
    """A readable one-line form of a result's ``error``, whatever its shape."""
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        text = error.get("error") or error.get("message") or error.get("error_message")
        code = error.get("errorCode") or error.get("error_code") or error.get("code")
        if text:
            return f"{text} ({code})" if code else str(text)
    if isinstance(error, list) and error:
        return "; ".join(describe_remote_error(item) for item in error)
    return json.dumps(error, default=str)[:300]


def _with(job: JobRecord, **changes: Any) -> JobRecord:
    return replace(job, **changes)
