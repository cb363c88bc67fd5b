"""The job lifecycle: every move a job may make, who may make it, and what it records.

This table is the only place that decides a job's state. The ledger applies a move with one
guarded write (``Ledger.try_move``): the row changes only if the job is still in one of the move's
source states and, for the moves of the process driving it, still held by that process. When
nothing matched (``genbatch cancel`` got there first, or a worker whose lease lapsed was taken
over), the write changes nothing and the mover is told (``TransitionRefused``), so two writers
never overwrite each other silently.

    pending ─CLAIM─▶ submitting ─ACCEPT─▶ queued ⇄ running ─SUCCEED─▶ fetching ─FINISH─▶ done
       ▲                │  │  └─LOSE_ANSWER / INTERRUPT─▶ unknown       │
       └────REFUSE──────┘  └─REJECT─▶ failed         │                  └─EXPIRE─▶ expired
       └────RETRY_GENERATION─────────────────────────┤
                               failed / cancelled / expired ◀─FAIL / CANCELLED / EXPIRE
                                                                (cancel: EXPIRE_ON_CANCEL)
       ◀────RESET (genbatch retry, --resubmit-unknown)── failed, cancelled, expired, unknown

A job whose generation succeeded stays ``fetching`` until every file is on disk, whatever stops
its download (a host not allowed, a file over the cap, an unwritable folder, a file its host
keeps answering 404 for): it keeps its request id and output URLs and is never submitted again.
Only the API's own word that the request is gone (404001) expires it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from genbatch.states import JobState

S = JobState


class Actor(StrEnum):
    """Who moves a job."""

    RUNNER = "runner"
    """The worker driving the job (it holds the job's lease)."""
    TAKEOVER = "takeover"
    """A worker adopting the jobs of one that is gone, or a resume after a crash."""
    CANCEL = "cancel"
    """``genbatch cancel``, from another process."""
    USER = "user"
    """An explicit decision: ``genbatch retry``, ``--resubmit-unknown``."""


class AttemptOutcome(StrEnum):
    """How a submission attempt ended (``attempts.outcome``)."""

    SENDING = "sending"
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNKNOWN = "unknown"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


@dataclass(frozen=True, kw_only=True)
class Transition:
    """One allowed move: from any of ``sources`` to ``target``, made by one of ``actors``."""

    sources: frozenset[JobState]
    target: JobState
    actors: frozenset[Actor]
    attempt: AttemptOutcome | None = None
    """What the move records as the outcome of the job's current attempt."""
    forgets_request: bool = False
    """The job goes back to pending: the next attempt gets its own request id."""
    refunds_attempt: bool = False
    """Nothing was created remotely: the attempt does not count against ``max_attempts``."""


def _t(
    sources: set[JobState],
    target: JobState,
    *actors: Actor,
    attempt: AttemptOutcome | None = None,
    forgets_request: bool = False,
    refunds_attempt: bool = False,
) -> Transition:
    return Transition(
        sources=frozenset(sources),
        target=target,
        actors=frozenset(actors),
        attempt=attempt,
        forgets_request=forgets_request,
        refunds_attempt=refunds_attempt,
    )


_IN_FLIGHT = {S.QUEUED, S.RUNNING}
_RUNNER = Actor.RUNNER
_O = AttemptOutcome


class Move(Enum):
    """Every move of the lifecycle; ``move.value`` is its ``Transition``."""

    CLAIM = _t({S.PENDING}, S.SUBMITTING, _RUNNER)
    """The intent to submit, committed durably before the POST."""
    ACCEPT = _t({S.SUBMITTING, S.UNKNOWN}, S.QUEUED, _RUNNER, attempt=_O.ACCEPTED)
    """The API answered with a request id. From ``unknown`` too: a worker frozen past its
    lease whose answer arrives after the takeover gave up on it still records it."""
    REFUSE = _t(
        {S.SUBMITTING},
        S.PENDING,
        _RUNNER,
        attempt=_O.REFUSED,
        forgets_request=True,
        refunds_attempt=True,
    )
    """The API said no for now (429, a connection refused before sending): try again later."""
    REJECT = _t({S.SUBMITTING}, S.FAILED, _RUNNER, attempt=_O.REFUSED)
    """The API refused the job for good (422, an unknown model)."""
    LOSE_ANSWER = _t({S.SUBMITTING}, S.UNKNOWN, _RUNNER, attempt=_O.UNKNOWN)
    """The POST was sent but its answer lost: it may or may not exist remotely."""
    INTERRUPT = _t({S.SUBMITTING}, S.UNKNOWN, Actor.TAKEOVER, attempt=_O.UNKNOWN)
    """A job caught submitting by a crash or a worker that is gone."""
    QUEUE = _t(_IN_FLIGHT, S.QUEUED, _RUNNER)
    """The API reports the request waiting in its queue."""
    START = _t(_IN_FLIGHT, S.RUNNING, _RUNNER)
    """The API reports the request generating."""
    SUCCEED = _t(_IN_FLIGHT, S.FETCHING, _RUNNER, attempt=_O.SUCCEEDED)
    """The generation succeeded: its output URLs are recorded before any download."""
    FAIL = _t(_IN_FLIGHT, S.FAILED, _RUNNER, attempt=_O.FAILED)
    """The generation failed, and no attempt is left."""
    RETRY_GENERATION = _t(_IN_FLIGHT, S.PENDING, _RUNNER, attempt=_O.FAILED, forgets_request=True)
    """The generation failed; ``max_attempts`` allows another one."""
    CANCELLED = _t(_IN_FLIGHT, S.CANCELLED, _RUNNER, Actor.CANCEL, attempt=_O.CANCELLED)
    """Cancelled remotely (by ``genbatch cancel``, or seen cancelled by the runner)."""
    EXPIRE = _t({*_IN_FLIGHT, S.FETCHING}, S.EXPIRED, _RUNNER, attempt=_O.EXPIRED)
    """The API says the request is gone (404001) before we got its files: on a poll, or asked
    when the file host said a file is missing (a file host's 404 alone expires nothing)."""
    EXPIRE_ON_CANCEL = _t(_IN_FLIGHT, S.EXPIRED, Actor.CANCEL, attempt=_O.EXPIRED)
    """``genbatch cancel`` was told the request is gone (404001). Never from ``fetching``: a
    generation that succeeded meanwhile is the runner's to fetch."""
    FINISH = _t({S.FETCHING}, S.DONE, _RUNNER)
    """Every output file is on disk, verified, under its final name."""
    REUSE = _t({S.PENDING}, S.DONE, _RUNNER)
    """The same job (model, inputs, repeat) is done in another run of the ledger: its files are
    reused (hard-linked or copied where this run wants them), nothing is submitted."""
    FAIL_MODEL = _t({S.PENDING}, S.FAILED, _RUNNER)
    """The API does not know the job's model: its pending jobs fail without being sent."""
    RESET = _t(
        {S.FAILED, S.CANCELLED, S.EXPIRED, S.UNKNOWN},
        S.PENDING,
        Actor.USER,
        forgets_request=True,
    )
    """The user asks for another generation (``genbatch retry``, ``--resubmit-unknown``)."""

    @property
    def transition(self) -> Transition:
        """The move's row of the table."""
        value: Transition = self.value
        return value

    def allows(self, state: JobState, actor: Actor) -> bool:
        """True when ``actor`` may make this move from ``state``."""
        return state in self.transition.sources and actor in self.transition.actors

    def needs_holder(self, actor: Actor) -> bool:
        """True when the mover must still hold the job (``jobs.worker`` is the mover): the
        runner's moves of a job in flight. A worker that lost the job to a takeover cannot
        move it any more; a pending job is held by nobody."""
        return actor is Actor.RUNNER and JobState.PENDING not in self.transition.sources


def moves_from(state: JobState) -> list[Move]:
    """Every move that leaves ``state``, in the table's order."""
    return [move for move in Move if state in move.transition.sources]
