"""``genbatch run`` and ``genbatch resume``: run a manifest to completion, resumably."""

from __future__ import annotations

import sys
from contextlib import ExitStack, nullcontext
from dataclasses import replace
from pathlib import Path

import anyio
import typer

from genbatch import batch
from genbatch.cli import app
from genbatch.cli.common import LEDGER_OPTION, one_line_errors
from genbatch.events import EventSink
from genbatch.polling import PollPolicy
from genbatch.runner import RunOptions, RunSummary
from genbatch.states import JobState
from genbatch.ui import JsonLog, LineLog, LiveDisplay

MANIFEST_ARGUMENT = typer.Argument(..., exists=False, help="The YAML manifest.")

RUN_EPILOG = """Examples:

  genbatch run manifests/quickstart.yaml --simulate     rehearse for free

  RUNCOMFY_TOKEN=... genbatch run sweep.yaml -c 8       the real thing

Exit codes: 0 all jobs done; 1 some jobs not done (failed, unknown, expired...);
2 bad manifest or usage; 3 run stopped by the account (token, balance);
4 ledger or output directory problem; 130 interrupted (run again to resume).
"""


@app.command(epilog=RUN_EPILOG)
@one_line_errors
def run(
    manifest: Path = MANIFEST_ARGUMENT,
    ledger: str | None = LEDGER_OPTION,
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", min=1, help="Requests in flight at once [default: the "
        "manifest's concurrency, else 4]"),
    api_base: str | None = typer.Option(
        None, "--api-base", metavar="URL",
        help="API base [default: $RUNCOMFY_API_BASE or https://model-api.runcomfy.net]"),
    simulate: bool = typer.Option(
        False, "--simulate", help="Run against the bundled simulator (no token, no cost)."),
    resubmit_unknown: bool = typer.Option(
        False, "--resubmit-unknown",
        help="Submit again the jobs whose earlier submit may or may not have been received "
        "(may pay twice for them)."),
    max_jobs: int | None = typer.Option(
        None, "--max-jobs", min=1, help="Allow manifests that expand to more jobs than this."),
    strict: bool = typer.Option(False, "--strict", help="Unknown models are an error."),
    poll_interval: float = typer.Option(
        1.0, "--poll-interval", min=0.001, metavar="SECONDS",
        help="Shortest delay between two polls of one job."),
    allow_insecure: bool = typer.Option(
        False, "--allow-insecure", help="Allow a plain http:// API base that is not loopback."),
    json_output: bool = typer.Option(False, "--json", help="One JSON event per line on stdout."),
) -> None:
    """Run every job of MANIFEST that is not done yet; run it again to resume."""
    loaded = batch.open_manifest(manifest, max_jobs=max_jobs, strict_models=strict)
    for warning in loaded.warnings:
        print(f"genbatch: warning: {warning}", file=sys.stderr)
    options = RunOptions(resubmit_unknown=resubmit_unknown,
                         poll=PollPolicy(min_interval=poll_interval))
    with ExitStack() as stack:
        if simulate:
            connection = stack.enter_context(batch.simulated_connection())
            options = replace(options, poll=PollPolicy(min_interval=0.02, max_interval=1.0))
        else:
            connection = batch.resolve_connection(api_base, allow_insecure=allow_insecure)
        store = stack.enter_context(batch.open_ledger_for(ledger))
        stack.enter_context(store.exclusive())
        prepared = batch.prepare(loaded, store)
        _print_plan_line(prepared, simulate)
        options = batch.options_for(loaded, concurrency=concurrency, base=options)
        summary = _execute(prepared, connection, options, json_output)
    _print_summary(summary, prepared)
    raise typer.Exit(batch.exit_code_for(summary))


@app.command(epilog="Same options as `genbatch run`.")
@one_line_errors
def resume(
    manifest: Path = MANIFEST_ARGUMENT,
    ledger: str | None = LEDGER_OPTION,
    concurrency: int | None = typer.Option(None, "--concurrency", "-c", min=1),
    api_base: str | None = typer.Option(None, "--api-base", metavar="URL"),
    simulate: bool = typer.Option(False, "--simulate"),
    resubmit_unknown: bool = typer.Option(False, "--resubmit-unknown"),
    json_output: bool = typer.Option(False, "--json"),
) -> None:
    """Resume MANIFEST's run: re-attach to requests in flight, submit what is pending."""
    run(manifest=manifest, ledger=ledger, concurrency=concurrency, api_base=api_base,
        simulate=simulate, resubmit_unknown=resubmit_unknown, max_jobs=None, strict=False,
        poll_interval=1.0, allow_insecure=False, json_output=json_output)


def _execute(prepared: batch.Prepared, connection: batch.Connection, options: RunOptions,
             json_output: bool) -> RunSummary:
    sink: EventSink
    if json_output:
        sink, display = JsonLog(), nullcontext()
    elif sys.stderr.isatty():
        live = LiveDisplay(prepared.sync.counts)
        sink, display = live, live  # type: ignore[assignment]  # both context managers
    else:
        sink, display = LineLog(), nullcontext()
    with display:
        return anyio.run(batch.execute, prepared, connection, options, sink)


def _print_plan_line(prepared: batch.Prepared, simulate: bool) -> None:
    sync, counts = prepared.sync, prepared.sync.counts
    target = "the bundled simulator" if simulate else "RunComfy"
    print(f"genbatch: run '{prepared.run.name}': {sync.total} jobs ({sync.new} new, "
          f"{counts[JobState.DONE]} done, {counts[JobState.PENDING]} to submit) against {target}; "
          f"ledger {prepared.ledger.location.display}", file=sys.stderr)


def _print_summary(summary: RunSummary, prepared: batch.Prepared) -> None:
    counts = ", ".join(f"{n} {s.value}" for s, n in summary.counts.items() if n)
    print(f"genbatch: {counts or 'no jobs'}", file=sys.stderr)
    if summary.counts[JobState.UNKNOWN]:
        print(f"genbatch: {summary.counts[JobState.UNKNOWN]} job(s) are unknown (their submit "
              "may have been received); see `genbatch status`, and use --resubmit-unknown to "
              "submit them again", file=sys.stderr)
    if summary.interrupted:
        print("genbatch: interrupted; run the same command again to resume", file=sys.stderr)
    elif summary.stop_reason:
        print(f"genbatch: stopped: {summary.stop_reason}", file=sys.stderr)
    first = prepared.ledger.jobs(prepared.run.id, limit=1)
    if summary.all_done and first:
        print(f"genbatch: outputs in {first[0].output_dir}", file=sys.stderr)
