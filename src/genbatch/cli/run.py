"""``genbatch run``, ``resume`` and ``retry``: run a manifest to completion, resumably."""

from __future__ import annotations

import os
import shlex
import statistics
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from genbatch.capacity import concurrency_for_capacity
from genbatch.cli import app
from genbatch.cli.common import LEDGER_OPTION, exit_on_signals, one_line_errors
from genbatch.errors import AuthError, BudgetReached, UsageError
from genbatch.events import EventSink, RunFinished, RunStarted
from genbatch.failures import DEFAULT_MAX_FAILURES, FailureLimit
from genbatch.polling import PollPolicy
from genbatch.progress import ProgressTracker
from genbatch.states import ATTACHED_STATES, BUDGET_STATES, JobState
from genbatch.workers import DEFAULT_LEASE_SECONDS, LEASE_ENV

if TYPE_CHECKING:
    # The command's options are declared at import, its machinery loaded when it runs: --help
    # and shell completion need only the declarations.
    from genbatch import batch
    from genbatch.runner import RunOptions, RunSummary

EXIT_CODES = """Exit codes: 0 all jobs done; 1 some jobs not done (failed, unknown, expired...;
the last line says what to run next); 2 bad manifest or usage; 3 the account stopped the run
(token, balance); 4 ledger or output directory problem; 5 budget reached; 6 stopped after
failures in a row; 7 the API gave no answer; 130 interrupted (run again to resume); 141 output
closed (e.g. piped into head; run again to resume).

Environment: RUNCOMFY_TOKEN (the API token, else the runcomfy CLI's token.json),
RUNCOMFY_API_BASE, RUNCOMFY_CONFIG_DIR, GENBATCH_LEDGER, GENBATCH_LEASE_SECONDS, NO_COLOR."""

RUN_EPILOG = f"""Examples:

  genbatch run manifests/quickstart.yaml --simulate     rehearse for free

  RUNCOMFY_TOKEN=... genbatch run sweep.yaml -c 8       the real thing

{EXIT_CODES}
"""

MANIFEST = typer.Argument(..., metavar="MANIFEST", help="The YAML manifest.")
CONCURRENCY = typer.Option(
    None,
    "--concurrency",
    "-c",
    min=1,
    metavar="N",
    help="Requests in flight at once from this process [default: the "
    "manifest's, else 4]; the manifest's concurrency caps the whole run, "
    "all workers together",
)
CAPACITY = typer.Option(
    None,
    "--capacity",
    min=1,
    metavar="C",
    help="Your account runs C generations at once: keep C requests running and a few more "
    "waiting in its queue (concurrency C + max(2, C/2 rounded up)), so that no slot idles while "
    "genbatch notices a finished job. Instead of --concurrency.",
)
LEASE_SECONDS = typer.Option(
    DEFAULT_LEASE_SECONDS,
    "--lease-seconds",
    envvar=LEASE_ENV,
    min=0.1,
    metavar="SECONDS",
    help="With a shared (PostgreSQL) ledger: how long after this "
    "worker's last heartbeat other workers take its jobs over.",
)
API_BASE = typer.Option(
    None,
    "--api-base",
    metavar="URL",
    help="API base [default: $RUNCOMFY_API_BASE or https://model-api.runcomfy.net]",
)
SIMULATE = typer.Option(
    False, "--simulate", help="Run against the bundled simulator (no token, no cost)."
)
RESUBMIT_UNKNOWN = typer.Option(
    False,
    "--resubmit-unknown",
    help="Submit again the jobs whose earlier submit may or may "
    "not have been received (may pay twice for them).",
)
MAX_JOBS = typer.Option(
    None,
    "--max-jobs",
    min=1,
    metavar="N",
    help="Allow manifests that expand to more jobs than this.",
)
STRICT = typer.Option(False, "--strict", help="Unknown models are an error.")
POLL_INTERVAL = typer.Option(
    2.0,
    "--poll-interval",
    min=0.001,
    metavar="SECONDS",
    help="Shortest gap between two polls of one job after its first; later gaps grow to 10% "
    "of the job's age (at most 30 s). The first poll comes at 90% of the model's 10th "
    "percentile generation time in the ledger, or after SECONDS/8 with no history.",
)
MAX_FAILURES = typer.Option(
    DEFAULT_MAX_FAILURES,
    "--max-failures",
    metavar="N|P%|off",
    help="Stop early after N jobs in a row failed the same way, or when P% of the last 20 failed.",
)
ALLOW_INSECURE = typer.Option(
    False, "--allow-insecure", help="Allow a plain http:// API base that is not loopback."
)
JSON_OUTPUT = typer.Option(False, "--json", help="One JSON event per line on stdout.")
BUDGET = typer.Option(
    None,
    "--budget",
    min=0.0,
    metavar="USD",
    help="Stop submitting before the run's estimated spending would pass "
    "this [default: the manifest's budget_usd]",
)


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """Everything the run-like commands take from the command line."""

    manifest: Path
    ledger: str | None = None
    concurrency: int | None = None
    capacity: int | None = None
    """The account's capacity (``--capacity``): sets the concurrency, with a queue margin."""
    api_base: str | None = None
    simulate: bool = False
    resubmit_unknown: bool = False
    max_jobs: int | None = None
    strict: bool = False
    poll_interval: float = 2.0
    max_failures: str = DEFAULT_MAX_FAILURES
    allow_insecure: bool = False
    json_output: bool = False
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    budget: float | None = None
    reset_states: Sequence[JobState] = ()
    given: frozenset[str] = frozenset()
    """The options the user gave on the command line (their parameter names): the commands
    this run suggests next repeat them, and only them."""


@app.command(epilog=RUN_EPILOG)
@one_line_errors
def run(
    ctx: typer.Context,
    manifest: Path = MANIFEST,
    ledger: str | None = LEDGER_OPTION,
    concurrency: int | None = CONCURRENCY,
    capacity: int | None = CAPACITY,
    api_base: str | None = API_BASE,
    simulate: bool = SIMULATE,
    resubmit_unknown: bool = RESUBMIT_UNKNOWN,
    max_jobs: int | None = MAX_JOBS,
    strict: bool = STRICT,
    poll_interval: float = POLL_INTERVAL,
    max_failures: str = MAX_FAILURES,
    budget: float | None = BUDGET,
    allow_insecure: bool = ALLOW_INSECURE,
    json_output: bool = JSON_OUTPUT,
    lease_seconds: float = LEASE_SECONDS,
) -> None:
    """Run every job of MANIFEST that is not done yet; run it again to resume."""
    execute_request(
        RunRequest(
            manifest=manifest,
            ledger=ledger,
            concurrency=concurrency,
            capacity=capacity,
            api_base=api_base,
            simulate=simulate,
            resubmit_unknown=resubmit_unknown,
            max_jobs=max_jobs,
            strict=strict,
            poll_interval=poll_interval,
            max_failures=max_failures,
            budget=budget,
            allow_insecure=allow_insecure,
            json_output=json_output,
            lease_seconds=lease_seconds,
            given=given_options(ctx),
        )
    )


@app.command(epilog="Example: genbatch resume sweep.yaml\n\n" + EXIT_CODES)
@one_line_errors
def resume(
    ctx: typer.Context,
    manifest: Path = MANIFEST,
    ledger: str | None = LEDGER_OPTION,
    concurrency: int | None = CONCURRENCY,
    capacity: int | None = CAPACITY,
    api_base: str | None = API_BASE,
    simulate: bool = SIMULATE,
    resubmit_unknown: bool = RESUBMIT_UNKNOWN,
    max_jobs: int | None = MAX_JOBS,
    strict: bool = STRICT,
    poll_interval: float = POLL_INTERVAL,
    max_failures: str = MAX_FAILURES,
    budget: float | None = BUDGET,
    allow_insecure: bool = ALLOW_INSECURE,
    json_output: bool = JSON_OUTPUT,
    lease_seconds: float = LEASE_SECONDS,
) -> None:
    """Resume MANIFEST's run (the same as `run`): re-attach to requests in flight, submit the
    pending jobs."""
    execute_request(
        RunRequest(
            manifest=manifest,
            ledger=ledger,
            concurrency=concurrency,
            capacity=capacity,
            api_base=api_base,
            simulate=simulate,
            resubmit_unknown=resubmit_unknown,
            max_jobs=max_jobs,
            strict=strict,
            poll_interval=poll_interval,
            max_failures=max_failures,
            budget=budget,
            allow_insecure=allow_insecure,
            json_output=json_output,
            lease_seconds=lease_seconds,
            given=given_options(ctx),
        )
    )


@app.command(epilog="Example: genbatch retry sweep.yaml --failed --expired\n\n" + EXIT_CODES)
@one_line_errors
def retry(
    ctx: typer.Context,
    manifest: Path = MANIFEST,
    ledger: str | None = LEDGER_OPTION,
    failed: bool = typer.Option(False, "--failed", help="Retry failed jobs."),
    unknown: bool = typer.Option(
        False,
        "--unknown",
        help="Retry unknown jobs (their first submit may have been received: may pay twice).",
    ),
    expired: bool = typer.Option(False, "--expired", help="Retry expired jobs."),
    cancelled: bool = typer.Option(False, "--cancelled", help="Retry cancelled jobs."),
    concurrency: int | None = CONCURRENCY,
    capacity: int | None = CAPACITY,
    api_base: str | None = API_BASE,
    simulate: bool = SIMULATE,
    max_jobs: int | None = MAX_JOBS,
    strict: bool = STRICT,
    poll_interval: float = POLL_INTERVAL,
    max_failures: str = MAX_FAILURES,
    budget: float | None = BUDGET,
    allow_insecure: bool = ALLOW_INSECURE,
    json_output: bool = JSON_OUTPUT,
    lease_seconds: float = LEASE_SECONDS,
) -> None:
    """Run again the jobs of MANIFEST that ended failed (default), unknown, expired or
    cancelled; done jobs are kept."""
    states = [
        s
        for s, wanted in (
            (JobState.FAILED, failed),
            (JobState.UNKNOWN, unknown),
            (JobState.EXPIRED, expired),
            (JobState.CANCELLED, cancelled),
        )
        if wanted
    ]
    execute_request(
        RunRequest(
            manifest=manifest,
            ledger=ledger,
            concurrency=concurrency,
            capacity=capacity,
            api_base=api_base,
            simulate=simulate,
            max_jobs=max_jobs,
            strict=strict,
            poll_interval=poll_interval,
            max_failures=max_failures,
            budget=budget,
            allow_insecure=allow_insecure,
            json_output=json_output,
            lease_seconds=lease_seconds,
            reset_states=states or [JobState.FAILED],
            given=given_options(ctx),
        )
    )


def execute_request(request: RunRequest) -> None:
    """Load, sync, run, report; exits with the documented code."""
    from genbatch import batch
    from genbatch.cli.export import refresh_metadata
    from genbatch.runner import RunOptions

    concurrency = _concurrency(request)
    # Every job is validated as it is synced (one walk of the jobs, not two). The schemas of
    # the API's catalog are read here (cached in the ledger, else fetched); a rehearsal reads
    # only the cache: the bundled simulator's catalog is the bundled snapshot.
    connection = (
        None
        if request.simulate
        else batch.optional_connection(request.api_base, allow_insecure=request.allow_insecure)
    )
    found = batch.load_with_catalog(
        request.manifest,
        ledger=request.ledger,
        connection=connection,
        max_jobs=request.max_jobs,
        strict_models=request.strict,
    )
    loaded = found.manifest
    for note in found.notes:
        print(f"genbatch: note: {note}", file=sys.stderr)
    for warning in loaded.warnings:
        print(f"genbatch: warning: {warning}", file=sys.stderr)
    options = RunOptions(
        resubmit_unknown=request.resubmit_unknown,
        poll=PollPolicy(interval=request.poll_interval),
        max_failures=FailureLimit.parse(request.max_failures),
        budget_usd=request.budget,
        lease_seconds=request.lease_seconds,
        resume_command=_command(request, "run"),
    )
    if request.reset_states:
        _check_run_to_retry(request, loaded.name)
    with batch.open_session(
        loaded,
        ledger=request.ledger,
        api_base=request.api_base,
        simulate=request.simulate,
        allow_insecure=request.allow_insecure,
        concurrency=concurrency,
        options=options,
    ) as session:
        prepared, store = session.prepared, session.prepared.ledger
        if request.reset_states:
            count = len(store.reset_to_pending(prepared.run.id, request.reset_states))
            print(f"genbatch: {count} job(s) to run again", file=sys.stderr)
            prepared = replace(
                prepared, sync=replace(prepared.sync, counts=store.counts(prepared.run.id))
            )
        started = _run_started(prepared, session, request.simulate)
        _print_plan_line(started, prepared, request)
        sink, display = _sink_for(prepared, request.json_output, _expected_job_seconds(prepared))
        sink(started)
        summary = _execute(prepared, session.connection, session.options, sink, display)
        refresh_metadata(store, prepared.run.id)
        code = batch.exit_code_for(summary)
        next_command = _next_command(summary, request)
        spend = store.spend(prepared.run.id)
        _print_summary(
            summary, prepared, spend, request, next_command, session.connection.token_source
        )
        sink(
            RunFinished(
                counts=summary.counts,
                spent_usd=_spent(spend),
                exit_code=code,
                stop_reason=summary.stop_reason,
                next_command=next_command,
            )
        )
    raise typer.Exit(code)


def _sink_for(
    prepared: batch.Prepared, json_output: bool, expected_seconds: float | None
) -> tuple[EventSink, AbstractContextManager[object]]:
    """The run's sink (progress reports added) and the display to keep open while it runs."""
    from genbatch.ui import JsonLog, LineLog, LiveDisplay

    counts = prepared.sync.counts
    if json_output:
        return ProgressTracker(JsonLog(), counts, expected_seconds=expected_seconds), nullcontext()
    if sys.stderr.isatty():
        live = LiveDisplay(counts)
        # The live display shows a fresh ETA every second or so.
        return ProgressTracker(live, counts, every=1.0, expected_seconds=expected_seconds), live
    return ProgressTracker(LineLog(), counts, expected_seconds=expected_seconds), nullcontext()


ETA_HISTORY_SIZE = 200
"""Generation times per model read from the ledger for the first ETA."""


def _expected_job_seconds(prepared: batch.Prepared) -> float | None:
    """The median generation time the ledger recorded for the run's models, any run."""
    times = [
        seconds
        for model_id in {block.model_id for block in prepared.manifest.blocks}
        for seconds in prepared.ledger.generation_times(model_id, ETA_HISTORY_SIZE)
    ]
    return statistics.median(times) if times else None


def _execute(
    prepared: batch.Prepared,
    connection: batch.Connection,
    options: RunOptions,
    sink: EventSink,
    display: AbstractContextManager[object],
) -> RunSummary:
    import anyio

    from genbatch import batch

    try:
        with display:
            return anyio.run(batch.execute, prepared, connection, options, sink)
    finally:
        exit_on_signals()  # the run's own handlers are gone: the summary stays interruptible


def _check_run_to_retry(request: RunRequest, name: str) -> None:
    """``retry`` goes on with a run: with none in the ledger (none run yet, or only
    rehearsed), it would submit every job, and a retry never pays for what never ran."""
    from genbatch.errors import LedgerError
    from genbatch.ledger import open_ledger_for

    try:
        with open_ledger_for(
            request.ledger, manifest=request.manifest, rehearsal=request.simulate
        ) as store:
            if store.find_run(name) is not None:
                return
            where = store.location.display
    except LedgerError as exc:
        where = str(exc)
    hint = "" if request.simulate else " (a rehearsal's is retried with --simulate)"
    raise UsageError(
        f"nothing to retry: no run '{name}' to go on with ({where}){hint}; "
        f"`{_command(request, 'run')}` runs it"
    )


def _run_started(prepared: batch.Prepared, session: batch.Session, simulate: bool) -> RunStarted:
    sync, counts = prepared.sync, prepared.sync.counts
    return RunStarted(
        run=prepared.run.name,
        jobs=sync.total,
        new=sync.new,
        done=counts[JobState.DONE],
        to_submit=counts[JobState.PENDING],
        reattached=sum(counts[s] for s in ATTACHED_STATES),
        concurrency=session.options.concurrency,
        ledger=prepared.ledger.location.display,
        api="the bundled simulator" if simulate else session.connection.api_base,
    )


def _concurrency(request: RunRequest) -> int | None:
    """This process's concurrency: ``--concurrency``, or ``--capacity`` and its queue margin."""
    if request.capacity is None:
        return request.concurrency
    if request.concurrency is not None:
        raise UsageError(
            "give --capacity or --concurrency, not both: --capacity "
            f"{request.capacity} means --concurrency {concurrency_for_capacity(request.capacity)}"
        )
    return concurrency_for_capacity(request.capacity)


def _print_plan_line(started: RunStarted, prepared: batch.Prepared, request: RunRequest) -> None:
    reattached = f", {started.reattached} re-attached" if started.reattached else ""
    print(
        f"genbatch: run '{started.run}': {started.jobs} jobs ({started.new} new, "
        f"{started.done} done, {started.to_submit} to submit{reattached}) against "
        f"{started.api}; ledger {started.ledger}",
        file=sys.stderr,
    )
    failed = prepared.sync.counts[JobState.FAILED]
    if failed and JobState.FAILED not in request.reset_states:
        print(
            f"genbatch: {failed} job(s) failed in an earlier run and are not run again; "
            f"to run them again: {_command(request, 'retry', '--failed')}",
            file=sys.stderr,
        )
    if prepared.reused:
        print(
            f"genbatch: {prepared.reused} job(s) are the same as jobs done in other runs of the "
            "ledger: their files were reused, nothing was submitted for them",
            file=sys.stderr,
        )


CARRIED_OPTIONS = (
    ("ledger", "--ledger"),
    ("simulate", "--simulate"),
    ("api_base", "--api-base"),
    ("allow_insecure", "--allow-insecure"),
    ("concurrency", "--concurrency"),
    ("capacity", "--capacity"),
    ("budget", "--budget"),
    ("max_failures", "--max-failures"),
    ("poll_interval", "--poll-interval"),
    ("lease_seconds", "--lease-seconds"),
    ("max_jobs", "--max-jobs"),
    ("strict", "--strict"),
    ("json_output", "--json"),
)
"""The options a suggested command repeats when the user gave them, in this order.

Left out on purpose: ``--resubmit-unknown`` (it pays again for jobs whose first submit may have
been received: a suggested command asks for it only when unknown jobs are what is left), and
``retry``'s ``--failed``, ``--unknown``, ``--expired``, ``--cancelled`` (the suggested command
names the states left to run)."""


def given_options(ctx: typer.Context) -> frozenset[str]:
    """The parameters of the command that were given on its command line (not defaults, not
    the environment: a resume reads the same environment)."""
    # By name: typer ships its own copy of click, whose ParameterSource is another class.
    return frozenset(
        name
        for name in ctx.params
        if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
    )


def _command(request: RunRequest, command: str, *flags: str) -> str:
    """The exact command line that does ``command`` for this manifest, with the options the
    user gave (``flags`` replace the same options given; a ledger password is left out)."""
    words = ["genbatch", command, str(request.manifest), *flags]
    for name, flag in CARRIED_OPTIONS:
        value = getattr(request, name)
        # `is`, not `in (None, False)`: a budget of 0 equals False, and must be repeated.
        if name not in request.given or flag in flags or value is None or value is False:
            continue
        words += [flag] if value is True else [flag, _option_text(name, value)]
    return shlex.join(words)


def _option_text(name: str, value: object) -> str:
    """An option's value as typed: ``100`` for 100.0, a ledger URL without its password."""
    if name == "ledger":
        return ledger_without_password(str(value))
    if isinstance(value, float):
        return repr(value).removesuffix(".0")
    return str(value)


def ledger_without_password(ledger: str) -> str:
    """``--ledger``'s text, a PostgreSQL URL's password left out (libpq then reads it from
    ``PGPASSWORD`` or ``~/.pgpass``); the text as given when it has none."""
    if not ledger.startswith(("postgresql:", "postgres:", "postgresql+")):
        return ledger
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(ledger)
    except ArgumentError:
        return ledger  # the run refused it before any command was suggested
    if url.password is None and "password" not in url.query:
        return ledger
    kept = URL.create(  # not url.set(password=None): set() takes None for "unchanged"
        url.drivername,
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query={k: v for k, v in url.query.items() if k != "password"},
    )
    return kept.render_as_string(hide_password=False)


def _password_left_out(request: RunRequest) -> bool:
    """True when the suggested commands leave out the password of the ``--ledger`` given."""
    return (
        "ledger" in request.given
        and request.ledger is not None
        and (ledger_without_password(request.ledger) != request.ledger)
    )


def _next_command(summary: RunSummary, request: RunRequest) -> str | None:
    """What to run next, exactly, for a run that did not finish every job."""
    counts = summary.counts
    if summary.all_done:
        return None
    if isinstance(summary.stop_error, BudgetReached):
        return _command(request, "run", "--budget", "USD")
    if counts[JobState.FAILED] or counts[JobState.EXPIRED]:
        # `retry` runs the pending jobs and follows those in flight too.
        states = [f"--{s.value}" for s in (JobState.FAILED, JobState.EXPIRED) if counts[s]]
        return _command(request, "retry", *states)
    if summary.interrupted or counts[JobState.PENDING] or counts[JobState.FETCHING]:
        return _command(request, "run")
    if counts[JobState.UNKNOWN]:
        return _command(request, "run", "--resubmit-unknown")
    if counts[JobState.CANCELLED]:
        return _command(request, "retry", "--cancelled")
    return _command(request, "run")


def _spent(spend: dict[JobState, float]) -> float:
    """The estimated spend of the run: jobs done, in flight, unknown or expired."""
    return sum(spend[s] for s in BUDGET_STATES)


def _print_summary(
    summary: RunSummary,
    prepared: batch.Prepared,
    spend: dict[JobState, float],
    request: RunRequest,
    next_command: str | None,
    token_source: str,
) -> None:
    counts = ", ".join(f"{n} {s.value}" for s, n in summary.counts.items() if n)
    print(f"genbatch: {counts or 'no jobs'}", file=sys.stderr)
    if summary.counts[JobState.UNKNOWN]:
        print(
            f"genbatch: {summary.counts[JobState.UNKNOWN]} job(s) are unknown (their submit "
            "may have been received); see `genbatch status`, and use --resubmit-unknown to "
            "submit them again",
            file=sys.stderr,
        )
    if summary.interrupted:
        print("genbatch: interrupted; run the same command again to resume", file=sys.stderr)
    elif summary.stop_reason:
        print(f"genbatch: stopped: {summary.stop_reason}", file=sys.stderr)
    spent = _spent(spend)
    if spent:
        print(
            f"genbatch: estimated spend ${spent:,.2f} (done ${spend[JobState.DONE]:,.2f}); "
            f"left to run ${spend[JobState.PENDING]:,.2f}"
            + (" at RunComfy's prices; simulated, nothing was paid" if request.simulate else ""),
            file=sys.stderr,
        )
    folders = prepared.ledger.output_dirs(prepared.run.id) if summary.all_done else []
    if folders:
        print(f"genbatch: outputs in {_output_folders(folders)}", file=sys.stderr)
    if request.simulate:
        ledger = shlex.quote(prepared.ledger.location.display)
        print(
            "genbatch: a rehearsal, kept apart from real runs (its own ledger and folders): "
            f"`--ledger {ledger}` shows it to status, show, export and gallery",
            file=sys.stderr,
        )
    if isinstance(summary.stop_error, AuthError):  # to put right before the next command
        print(f"genbatch: the refused token came from {token_source}", file=sys.stderr)
    if next_command:
        if _password_left_out(request):
            print(PASSWORD_LEFT_OUT, file=sys.stderr)
        print(f"genbatch: next: {next_command}", file=sys.stderr)


PASSWORD_LEFT_OUT = (
    "genbatch: note: the next command leaves out the ledger's password: give it with "
    "PGPASSWORD or ~/.pgpass, or put the whole URL in GENBATCH_LEDGER and leave out --ledger"
)


def _output_folders(folders: Sequence[str]) -> str:
    """The run's output folder, or the folder its folders share, naming them (a folder per
    block, and the folders of the jobs done before an edit moved them)."""
    folders = sorted(folders)
    if len(folders) == 1:
        return folders[0]
    common = os.path.commonpath(folders)
    return f"{common} ({', '.join(os.path.relpath(f, common) + '/' for f in folders)})"
