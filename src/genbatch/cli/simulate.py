"""``genbatch simulate``: run the bundled RunComfy Model API simulator as a server."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from genbatch.cli import app
from genbatch.cli.common import fail, stop_requested
from genbatch.errors import EXIT_ENVIRONMENT, EXIT_USAGE

if TYPE_CHECKING:  # the simulator (uvicorn, starlette) is imported only when it is started
    from genbatch.simulator import Simulator

_EPILOG = (
    "Example: genbatch simulate --time-scale 0.01 --fault-429 0.05 --fault-lost-answer 0.01"
    "  (then, in another shell, run the printed export line and genbatch run)"
)


@app.command(epilog=_EPILOG)
def simulate(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8787, "--port", min=0, max=65535, help="Port (0: any free one)."),
    token: str = typer.Option("sim-token", "--token", help="The only accepted API token."),
    time_scale: float = typer.Option(
        0.01,
        "--time-scale",
        min=0.0,
        help="Multiplies generation times (0.01: a 240 s clip takes 2.4 s).",
    ),
    capacity: int = typer.Option(
        4, "--capacity", min=1, help="Requests in progress at once; the rest queue."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds generation times, failures and faults."),
    balance: float | None = typer.Option(
        None,
        "--balance",
        min=0.0,
        metavar="USD",
        help="Account balance in USD; submits beyond it get 400002. Unlimited if omitted.",
    ),
    expire_after: float = typer.Option(
        3600.0,
        "--expire-after",
        min=0.0,
        metavar="SECONDS",
        help="Real seconds after a request finishes before its record and files are gone.",
    ),
    fail_rate: float = typer.Option(
        0.0, "--fail-rate", min=0.0, max=1.0, help="Probability that a generation fails."
    ),
    fault_429: float = typer.Option(
        0.0,
        "--fault-429",
        min=0.0,
        max=1.0,
        metavar="P",
        help="429, half of them with Retry-After.",
    ),
    retry_after: float = typer.Option(
        1.0,
        "--retry-after",
        min=0.0,
        metavar="SECONDS",
        help="Retry-After of the 429s that carry one.",
    ),
    fault_5xx: float = typer.Option(
        0.0, "--fault-5xx", min=0.0, max=1.0, metavar="P", help="500 (JSON), 502 or 503 (HTML)."
    ),
    fault_drop: float = typer.Option(
        0.0, "--fault-drop", min=0.0, max=1.0, metavar="P", help="Connection closed with no answer."
    ),
    fault_partial: float = typer.Option(
        0.0,
        "--fault-partial",
        min=0.0,
        max=1.0,
        metavar="P",
        help="Connection closed halfway through the answer.",
    ),
    fault_slow: float = typer.Option(
        0.0,
        "--fault-slow",
        min=0.0,
        max=1.0,
        metavar="P",
        help="Answer (or file) delayed by --slow-seconds.",
    ),
    slow_seconds: float = typer.Option(2.0, "--slow-seconds", min=0.0, metavar="SECONDS"),
    fault_truncate: float = typer.Option(
        0.0, "--fault-truncate", min=0.0, max=1.0, metavar="P", help="File downloads cut short."
    ),
    fault_lost_answer: float = typer.Option(
        0.0,
        "--fault-lost-answer",
        min=0.0,
        max=1.0,
        metavar="P",
        help="Submits created (and billed) whose answer is lost.",
    ),
    fault_malformed: float = typer.Option(
        0.0,
        "--fault-malformed",
        min=0.0,
        max=1.0,
        metavar="P",
        help="API answers 200 with a body that is not valid JSON (after doing the work).",
    ),
    fault_routes: str = typer.Option(
        "submit,poll,cancel,file",
        "--fault-routes",
        metavar="LIST",
        help="Route classes random faults hit: submit, poll, cancel, file.",
    ),
    file_host: str | None = typer.Option(
        None,
        "--file-host",
        metavar="NAME",
        help="Serve output files from a second server addressed by this host name (e.g. "
        "localhost), as from a CDN; it must resolve to the --host address.",
    ),
    file_port: int = typer.Option(
        0, "--file-port", min=0, max=65535, help="The file host's port (0: any free one)."
    ),
    redirect_files: bool = typer.Option(
        False,
        "--redirect-files",
        help="With --file-host: output URLs name the API's host, which redirects (307) to "
        "the file host.",
    ),
    model_schema: list[str] = typer.Option(
        [],
        "--model-schema",
        metavar="[MODEL_ID=]FILE",
        help="Also serve the model whose input schema is in this JSON file (pasted from its "
        "API page; MODEL_ID= unless the file names its model_id). Repeatable.",
    ),
) -> None:
    """Serve a local RunComfy Model API (real HTTP, queue, media, faults) until Ctrl-C."""
    from genbatch.catalog import SchemaInvalid, read_model_file
    from genbatch.simulator import FaultConfig, Simulator, SimulatorConfig, parse_routes

    try:
        extra_models = tuple(read_model_file(given) for given in model_schema)
    except (ValueError, SchemaInvalid) as error:
        raise fail(f"--model-schema: {error}", EXIT_USAGE) from None
    try:
        faults = FaultConfig(
            rate_limit=fault_429,
            retry_after=retry_after,
            server_error=fault_5xx,
            drop=fault_drop,
            partial=fault_partial,
            slow=fault_slow,
            slow_seconds=slow_seconds,
            truncate=fault_truncate,
            lost_answer=fault_lost_answer,
            malformed=fault_malformed,
            routes=parse_routes(fault_routes),
        )
        config = SimulatorConfig(
            token=token,
            host=host,
            port=port,
            time_scale=time_scale,
            capacity=capacity,
            seed=seed,
            balance_usd=balance,
            expire_after=expire_after,
            fail_rate=fail_rate,
            faults=faults,
            file_host=file_host,
            file_port=file_port,
            redirect_files=redirect_files,
            extra_models=extra_models,
        )
    except ValueError as error:
        raise fail(str(error), EXIT_USAGE) from None
    simulator = Simulator(config)
    try:
        simulator.start()
    except OSError as error:
        where = f"{host}:{port}" + (f" and {host}:{file_port}" if file_host else "")
        raise fail(
            f"cannot listen on {where}: {error.strerror or error}", EXIT_ENVIRONMENT
        ) from None
    try:
        # Listening for the signals before saying where it serves: whoever reads that may stop
        # it at once.
        with stop_requested() as stop:
            _announce(simulator)
            # A timeout keeps the main thread waking up, so signal handlers run promptly.
            while not stop.wait(0.5):
                pass
    finally:
        simulator.stop()
    typer.echo(f"simulator stopped: {json.dumps(simulator.stats.snapshot())}")


def _announce(simulator: Simulator) -> None:
    typer.echo(f"genbatch simulator listening on {simulator.base_url}")
    if simulator.files_url != simulator.base_url:
        how = " (the API's file URLs redirect there)" if simulator.config.redirect_files else ""
        typer.echo(f"output files served from {simulator.files_url}{how}")
    typer.echo(f"export RUNCOMFY_API_BASE={simulator.base_url} RUNCOMFY_TOKEN={simulator.token}")
    typer.echo("Press Ctrl-C to stop.")
