"""Every error genbatch raises on purpose.

    GenbatchError                      root; ``exit_code`` tells the CLI how to end
    ├── UsageError                     bad command line or configuration        (exit 2)
    ├── ManifestError                  bad manifest: file, line, field          (exit 2)
    ├── LedgerError                    ledger unreadable, corrupt or locked     (exit 4)
    ├── TransitionRefused              a job was moved by another process meanwhile
    ├── OutputError                    output directory unwritable, disk full  (exit 4)
    │   └── ForeignMetadata            a metadata.jsonl genbatch did not write (exit 4)
    ├── ApiError                       the API said no, or could not be heard
    │   ├── AuthError                  400004 / 401: bad, expired, revoked token (exit 3)
    │   │   └── RequestForbidden       403001: a request id of another account   (exit 3)
    │   ├── BalanceExhausted           400002: no balance left                  (exit 3)
    │   ├── ModelNotFound              400001: unknown model id
    │   ├── InputRejected              422: input outside the model's schema
    │   ├── RequestGone                404001: unknown, deleted or expired request id
    │   ├── GatewayError               another 4xx about a request: not the API's word
    │   ├── RateLimited                429, maybe with Retry-After
    │   ├── ServerError                5xx
    │   ├── BadAnswer                  a 2xx whose body is not the JSON we expect
    │   └── TransportError             timeout, reset, refused: no answer at all
    ├── DownloadError                  an output file could not be fetched safely
    │   ├── FileMissing                the file host answered 403, 404 or 410
    │   ├── HostNotAllowed             URL (or redirect) outside the allowed hosts
    │   ├── FileTooLarge               over the size cap
    │   └── IncompleteDownload         fewer bytes than announced
    ├── RunStopped                     the whole run must stop (auth, balance)  (exit 3)
    │   ├── BudgetReached              the next job would cross the budget      (exit 5)
    │   └── StopRequested              `genbatch cancel` asked the run to stop  (exit 1)
    ├── OutputClosed                   the log's pipe was closed by its reader  (exit 141)
    ├── FailureStreak                  recent jobs keep failing the same way    (exit 6)
    └── ApiUnreachable                 the API gave no answer, again and again  (exit 7)

Each class's docstring is its default message, so most errors are one-line declarations.
Each API error also says what the runner does with it (``Disposition``): on a submit
(``on_submit``) and on a poll of a request already accepted (``on_poll``).
Messages never contain the API token: the client never puts it in anything it raises.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

# Exit codes of the CLI, documented in the README.
EXIT_OK = 0
EXIT_JOBS_NOT_DONE = 1
EXIT_USAGE = 2
EXIT_ACCOUNT_STOP = 3
EXIT_ENVIRONMENT = 4
EXIT_BUDGET = 5
EXIT_FAILURES = 6
EXIT_API_UNREACHABLE = 7
EXIT_INTERRUPTED = 130
EXIT_OUTPUT_CLOSED = 141
"""128 + SIGPIPE: what a shell reports for a command whose pipe's reader left."""


class Disposition(StrEnum):
    """What the runner does with an API error."""

    RETRY_LATER = "retry later"
    """Nothing was created: slow down, then try the same call again."""
    UNKNOWN = "unknown"
    """A submit whose answer was lost: it may exist remotely; never sent again blindly."""
    FAIL_JOB = "fail job"
    """Permanent for this job."""
    EXPIRE = "expire"
    """The remote record is gone: the job is ``expired``."""
    STOP_SUBMITTING = "stop submitting"
    """The account cannot take more jobs now: jobs in flight are still followed."""
    STOP_RUN = "stop run"
    """Nothing else may be sent (a refused token): the whole run stops at once."""


class GenbatchError(Exception):
    """genbatch failed."""

    exit_code: int = EXIT_JOBS_NOT_DONE

    def __init__(self, message: str | None = None) -> None:
        # One line, always: a value quoted in a message (a template, a server's answer) may
        # hold line breaks, and the CLI and logs promise one line per error.
        self.message = " ".join((message or (self.__doc__ or "").strip()).splitlines())
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class UsageError(GenbatchError):
    """Bad usage."""

    exit_code = EXIT_USAGE


class ManifestError(GenbatchError):
    """The manifest is not valid."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.reason}"


class LedgerError(GenbatchError):
    """The ledger cannot be used."""

    exit_code = EXIT_ENVIRONMENT


class TransactionEnded(LedgerError):
    """The database ended a transaction of this process before its commit (the process was
    frozen in it, or the server closed the session): nothing of it was written, so running it
    again is safe."""


class CommitInDoubt(LedgerError):
    """The connection was lost while the database committed: whether the transaction was
    written is unknown, so it must not run again (a claim would leave its first jobs held, a
    move be refused by its own first try)."""


class OutputError(GenbatchError):
    """An output file cannot be written."""

    exit_code = EXIT_ENVIRONMENT


class ForeignMetadata(OutputError):
    """A metadata.jsonl genbatch did not write is where genbatch writes its own."""


class TransitionRefused(GenbatchError):
    """The job was moved by another process since this one last read it."""

    def __init__(self, *, job_key: str, move: str, found: Any, holder: str | None) -> None:
        self.job_key = job_key
        self.move = move
        self.found = found
        """The job's state now (None: the job is gone)."""
        self.holder = holder
        super().__init__(
            f"job {job_key}: not moved ({move.lower().replace('_', ' ')}): another process "
            f"moved it first, it is now {found or 'gone'}"
            + (f", held by {holder}" if holder else "")
        )


class ApiError(GenbatchError):
    """The RunComfy API call failed."""

    on_submit: ClassVar[Disposition] = Disposition.FAIL_JOB
    on_poll: ClassVar[Disposition] = Disposition.FAIL_JOB

    def __init__(
        self,
        message: str | None = None,
        *,
        http_status: int | None = None,
        error_code: int | None = None,
        detail: Any = None,
        request_id: str | None = None,
    ) -> None:
        self.http_status = http_status
        self.error_code = error_code
        self.detail = detail
        self.request_id = request_id
        super().__init__(message)

    def submit_disposition(self) -> Disposition:
        """What the runner does when a submit raised this."""
        return self.on_submit


class AuthError(ApiError):
    """The API token was refused (bad, expired or revoked): set RUNCOMFY_TOKEN."""

    on_submit = Disposition.STOP_RUN
    on_poll = Disposition.STOP_RUN

    exit_code = EXIT_ACCOUNT_STOP


class BalanceExhausted(ApiError):
    """The RunComfy account has no balance left: top it up, then run again to resume."""

    on_submit = Disposition.STOP_SUBMITTING
    on_poll = Disposition.STOP_RUN

    exit_code = EXIT_ACCOUNT_STOP


class ModelNotFound(ApiError):
    """The API does not know this model id."""


class InputRejected(ApiError):
    """The API rejected the inputs of this job."""


class RequestForbidden(AuthError):
    """This request id belongs to another account: the token is not the one that submitted it."""

    # The API's own answer (403001) to a poll of a request genbatch submitted means the run is
    # resumed with another account's token: every job would be refused the same way, so the run
    # stops as for a refused token (exit 3); nothing is failed, nothing is lost.


class RequestGone(ApiError):
    """The remote record of this request is gone (unknown, deleted or expired)."""

    # Only the API's own answer, error code 404001, means this; any other 404 is a GatewayError.
    on_submit = Disposition.FAIL_JOB
    on_poll = Disposition.EXPIRE


class GatewayError(ApiError):
    """The answer is not the API's own (a gateway or CDN in between?): nothing is known of the
    request from it."""

    # A 4xx answered to a call about a request (status, result, cancel) without an error code
    # the contract lists (a 403 or 404 HTML page, a router's 404000, no body): the contract
    # gives such calls only 403001, 404001 and the account's own errors. A poll that got it is
    # repeated later, as when the API cannot be reached (it counts toward the run's patience):
    # it never expires nor fails a job. (A submit or a catalog call never gets it: their 4xx
    # keep their meaning.)
    on_poll = Disposition.RETRY_LATER


class RateLimited(ApiError):
    """The API is rate limiting us."""

    on_submit = Disposition.RETRY_LATER
    on_poll = Disposition.RETRY_LATER

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **fields: Any
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, **fields)


class ServerError(ApiError):
    """The API had a server error."""

    on_submit = Disposition.UNKNOWN
    on_poll = Disposition.RETRY_LATER


class BadAnswer(ApiError):
    """The API answered with something that is not the JSON the contract describes."""

    on_submit = Disposition.UNKNOWN
    on_poll = Disposition.RETRY_LATER


class TransportError(ApiError):
    """No answer from the API (timeout, reset or refused connection)."""

    on_submit = Disposition.UNKNOWN
    on_poll = Disposition.RETRY_LATER

    request_sent: bool = True
    """False only when the request provably never left (the connection was never made)."""

    def submit_disposition(self) -> Disposition:
        """A submit that provably never left is retried; one that may have landed is unknown."""
        return self.on_submit if self.request_sent else Disposition.RETRY_LATER


class DownloadError(GenbatchError):
    """An output file could not be downloaded."""


class FileMissing(DownloadError):
    """The file host answered 403, 404 or 410 for an output file."""

    # A CDN may answer so for a moment (a file not replicated yet, a miss it cached): the
    # download is retried and the API asked whether the request is gone. Only its own answer
    # (404001) expires the job; otherwise the job keeps its request id and output URLs in
    # `fetching`, and a later run fetches the files.


class HostNotAllowed(DownloadError):
    """The output URL is not on an allowed host."""


class FileTooLarge(DownloadError):
    """The output file is larger than the size cap."""


class IncompleteDownload(DownloadError):
    """The output file arrived shorter than announced."""


class RunStopped(GenbatchError):
    """The run was stopped."""

    exit_code = EXIT_ACCOUNT_STOP


class OutputClosed(GenbatchError):
    """The run's output (a pipe whose reader left) was closed: the run stopped submitting and
    recorded what was in flight; run again to resume."""

    exit_code = EXIT_OUTPUT_CLOSED


class FailureStreak(GenbatchError):
    """Recent jobs keep failing the same way: the run stopped early."""

    exit_code = EXIT_FAILURES


class ApiUnreachable(GenbatchError):
    """The API gave no answer, again and again: the run stopped (resumable)."""

    exit_code = EXIT_API_UNREACHABLE


class BudgetReached(RunStopped):
    """The next job would cross the run's budget."""

    exit_code = EXIT_BUDGET


class StopRequested(RunStopped):
    """The run was asked to stop (genbatch cancel)."""

    exit_code = EXIT_JOBS_NOT_DONE
