"""``genbatch cancel``: stop a run and cancel its queued remote requests."""

from __future__ import annotations

from pathlib import Path

import typer

from genbatch.cli import app
from genbatch.cli.common import LEDGER_ENVIRONMENT, LEDGER_OPTION, one_line_errors
from genbatch.errors import EXIT_JOBS_NOT_DONE


@app.command(
    epilog="Example: genbatch cancel sweep.yaml\n\n"
    + LEDGER_ENVIRONMENT
    + " RUNCOMFY_TOKEN, RUNCOMFY_API_BASE (the API, as for run)."
)
@one_line_errors
def cancel(
    manifest: Path = typer.Argument(
        ..., metavar="MANIFEST", help="The manifest whose run to cancel."
    ),
    ledger: str | None = LEDGER_OPTION,
    api_base: str | None = typer.Option(None, "--api-base", metavar="URL"),
) -> None:
    """Stop MANIFEST's run from submitting and cancel its queued remote requests.

    Requests already running cannot be cancelled: they complete and are billed, and a later
    `genbatch run` still downloads their files. Pending jobs stay pending.
    """
    import anyio

    from genbatch import batch
    from genbatch.cancel import SUBMITS_SETTLE_SECONDS, cancel_run
    from genbatch.cli.selection import run_of_manifest
    from genbatch.client import RunComfyClient
    from genbatch.ledger import open_ledger_for
    from genbatch.manifest import load_manifest

    load_manifest(manifest)  # a manifest with an error says so, before anything is asked
    connection = batch.resolve_connection(api_base)
    with open_ledger_for(ledger, manifest=manifest) as store:
        run = run_of_manifest(store, Path(manifest))

        async def go() -> None:
            async with RunComfyClient(
                base_url=connection.api_base, token=connection.token
            ) as client:
                report = await cancel_run(store, client, run)
            print(f"cancelled {len(report.cancelled)} queued request(s)")
            if report.still_running:
                print(
                    f"{len(report.still_running)} request(s) were already running and could "
                    "not be cancelled: they will complete and be billed; `genbatch run` "
                    "fetches them: " + ", ".join(report.still_running)
                )
            if report.unanswered:
                print(
                    f"{report.unanswered} submit(s) still had no answer after "
                    f"{SUBMITS_SETTLE_SECONDS:.0f} s: their requests may be queued and then run "
                    "and be billed; run `genbatch cancel` again in a moment to cancel them"
                )
            for key, error in report.errors.items():
                print(f"{key}: could not cancel: {error}")
            if report.errors or report.unanswered:
                raise typer.Exit(EXIT_JOBS_NOT_DONE)

        anyio.run(go)
