"""Job states and the named sets of them that the rest of genbatch uses.

The values are the names that appear in every machine-readable output. Which state follows which,
and who may move a job, is the lifecycle table's to say (``genbatch.lifecycle``).
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    PENDING = "pending"
    """Not submitted yet."""
    SUBMITTING = "submitting"
    """The intent to submit is committed; the POST is (or was) on its way."""
    QUEUED = "queued"
    """Accepted by the API (request_id known), waiting in the remote queue."""
    RUNNING = "running"
    """Generating remotely."""
    FETCHING = "fetching"
    """Succeeded remotely; output URLs are known; files are being downloaded."""
    DONE = "done"
    """Every output file is on disk and verified."""
    FAILED = "failed"
    """Failed for good (the generation failed, or the API rejected the job)."""
    CANCELLED = "cancelled"
    """Cancelled remotely."""
    UNKNOWN = "unknown"
    """The submit was sent but its answer never recorded: it may or may not be paid for."""
    EXPIRED = "expired"
    """The remote record or the output files were gone before we got them."""


# Jobs with a request_id whose remote side is not finished, or whose files are not yet here:
# on resume they are re-attached (polled, fetched), never resubmitted.
ATTACHED_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.FETCHING})

# Jobs a worker drives and holds a lease on: when the lease ends, another worker takes them over.
LEASED_STATES = ATTACHED_STATES | {JobState.SUBMITTING}

# Jobs that hold a slot of the run's remote concurrency.
REMOTE_ACTIVE_STATES = frozenset({JobState.SUBMITTING, JobState.QUEUED, JobState.RUNNING})

# Jobs paid, being paid, or possibly paid, whose request is still ours to follow (or done): the
# same job in another run is not sent again while one of its copies is in one of these.
SPENDING_STATES = REMOTE_ACTIVE_STATES | {JobState.FETCHING, JobState.DONE, JobState.UNKNOWN}

# Jobs whose cost counts against a budget and in the run's spend: the spending ones, and the
# expired ones. An expired request was accepted, and the API forgets requests after they finish:
# its generation most likely ran and was billed (counted, as an `unknown` submit is).
BUDGET_STATES = SPENDING_STATES | {JobState.EXPIRED}

# Final: nothing more happens to these without an explicit user action (retry).
TERMINAL_STATES = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED})

# Jobs a run leaves alone unless the user asks (--resubmit-unknown, genbatch retry).
SETTLED_STATES = TERMINAL_STATES | {JobState.UNKNOWN}


class RemoteStatus(StrEnum):
    """Status values the API reports, on the status and the result endpoints."""

    IN_QUEUE = "in_queue"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CANCELED = "canceled"
    ERROR = "error"


REMOTE_WAITING = frozenset({RemoteStatus.IN_QUEUE, RemoteStatus.IN_PROGRESS})
REMOTE_SUCCEEDED = frozenset({RemoteStatus.SUCCEEDED, RemoteStatus.COMPLETED})
REMOTE_FAILED = frozenset({RemoteStatus.FAILED, RemoteStatus.ERROR})
REMOTE_CANCELLED = frozenset({RemoteStatus.CANCELLED, RemoteStatus.CANCELED})
