"""Cancelling a run: stop its submitting, cancel its queued remote requests.

Only queued requests can be cancelled (the API answers ``not_cancellable`` once one runs: it will
complete and be billed, so its job stays attached and a later run still fetches its files).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from genbatch.client import RunComfyClient
from genbatch.errors import ApiError, AuthError, RequestGone
from genbatch.ledger import JobRecord, Ledger, RunInfo
from genbatch.ledger.sqlite_file import driven_by_another_process
from genbatch.lifecycle import Actor, Move
from genbatch.states import JobState

CANCEL_CONCURRENCY = 8
SUBMITS_SETTLE_SECONDS = 10.0
"""How long ``cancel_run`` waits for the submits in flight when it asked the run to stop: their
answers come after it, and the requests they made are cancelled once recorded."""


@dataclass(kw_only=True)
class CancelReport:
    """What ``cancel_run`` did, job key by job key."""

    cancelled: list[str] = field(default_factory=list)
    still_running: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    unanswered: int = 0
    """Submits still waiting for their answer when ``cancel_run`` stopped waiting: their
    requests may be queued remotely, and run and be billed unless cancelled later."""


async def cancel_run(ledger: Ledger, client: RunComfyClient, run: RunInfo) -> CancelReport:
    """Ask the run's driver to stop submitting, then cancel every queued remote request."""
    ledger.request_stop(run.id, "cancelled with `genbatch cancel`")
    report = CancelReport()
    asked: set[int] = set()
    await _cancel_attached(ledger, client, run, report, asked)
    # A submit sent before the stop is answered after it (the job `submitting` until then): its
    # request is queued remotely like the others, and cancelled as soon as it is recorded.
    deadline = anyio.current_time() + SUBMITS_SETTLE_SECONDS
    unanswered = _submits_in_flight(ledger, run)
    while unanswered and anyio.current_time() < deadline:
        await anyio.sleep(0.2)
        await _cancel_attached(ledger, client, run, report, asked)
        unanswered = _submits_in_flight(ledger, run)
    report.unanswered = unanswered
    return report


def _submits_in_flight(ledger: Ledger, run: RunInfo) -> int:
    """The jobs `submitting` that a process may still be sending (on SQLite, only while a run
    holds the ledger: those a killed process left are `unknown` to its next run)."""
    path = ledger.location.sqlite_path
    if path is not None and not driven_by_another_process(path):
        return 0
    return ledger.counts(run.id)[JobState.SUBMITTING]


async def _cancel_attached(
    ledger: Ledger, client: RunComfyClient, run: RunInfo, report: CancelReport, asked: set[int]
) -> None:
    """Ask the API to cancel each request of the run not asked about yet (``asked``)."""
    jobs = [
        j
        for j in ledger.attached_jobs(run.id)
        if j.request_id is not None
        and j.id not in asked
        and Move.CANCELLED.allows(j.state, Actor.CANCEL)
    ]
    asked.update(j.id for j in jobs)
    limiter = anyio.CapacityLimiter(CANCEL_CONCURRENCY)
    try:
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(_cancel_one, ledger, client, job, report, limiter)
    except* AuthError as refused:
        # The task group gathers errors: its first refusal, alone, is the one line to show
        # (every other call would be refused the same way).
        raise refused.exceptions[0] from None


async def _cancel_one(
    ledger: Ledger,
    client: RunComfyClient,
    job: JobRecord,
    report: CancelReport,
    limiter: anyio.CapacityLimiter,
) -> None:
    assert job.request_id is not None
    async with limiter:
        try:
            answer = await client.cancel(job.request_id)
        except RequestGone as exc:  # the API's own 404001: any other 404 is a GatewayError
            if ledger.try_move(job, Move.EXPIRE_ON_CANCEL, actor=Actor.CANCEL, error=str(exc)):
                report.gone.append(job.key)
            return
        except AuthError:  # a refused token, or a request of another account (403001)
            raise
        except ApiError as exc:
            report.errors[job.key] = str(exc)
            return
    if answer.outcome == "cancelled":
        moved = ledger.try_move(
            job, Move.CANCELLED, actor=Actor.CANCEL, error="cancelled with `genbatch cancel`"
        )
        # Refused: the run's worker moved the job first, perhaps to `cancelled` itself (it saw
        # the cancellation on its next poll); anything else, it is left as the worker recorded.
        state = moved.state if moved else ledger.refusal(job, Move.CANCELLED).found
        cancelled = state is JobState.CANCELLED
        (report.cancelled if cancelled else report.still_running).append(job.key)
    else:
        report.still_running.append(job.key)
