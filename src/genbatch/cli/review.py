"""``genbatch review``: rate a run's outputs in the browser (keep, reject, stars, a note)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from genbatch.cli import app
from genbatch.cli.common import (
    LEDGER_ENVIRONMENT,
    LEDGER_OPTION,
    fail,
    one_line_errors,
    stop_requested,
)
from genbatch.cli.selection import one_run, reading_ledger
from genbatch.errors import EXIT_ENVIRONMENT

EPILOG = """Examples:

  genbatch review sweep.yaml                 opens the page in your browser

  genbatch review sweep.yaml --no-open       only prints its address

  genbatch export sweep.yaml --kept --min-stars 4 > best.jsonl     afterwards

The page is the gallery with a rating bar under each file: keep, reject, 1-5 stars and a
note. Keys: arrows move, k keeps, r rejects, 1-5 set stars, 0 clears them, n writes a note.
Ratings are stored in the ledger at once and kept across re-runs and edits of the manifest;
metadata.jsonl gets verdict, stars and note. The server listens on 127.0.0.1 only, and its
address holds a random token: share it with no one. Ctrl-C stops it.
"""


@app.command(epilog=EPILOG + "\n" + LEDGER_ENVIRONMENT)
@one_line_errors
def review(
    manifest: Path | None = typer.Argument(
        None,
        metavar="MANIFEST",
        help="The manifest whose run to review [default: the run updated last].",
    ),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port (0: any free one)."),
    no_open: bool = typer.Option(
        False, "--no-open", help="Do not open a browser; only print the address."
    ),
    rows: str | None = typer.Option(
        None, "--rows", metavar="KEY", help="The first layout's rows (as genbatch gallery)."
    ),
    cols: str | None = typer.Option(
        None, "--cols", metavar="KEY", help="The first layout's columns (as genbatch gallery)."
    ),
    ledger: str | None = LEDGER_OPTION,
) -> None:
    """Serve the run's gallery on 127.0.0.1 to keep, reject, star and annotate each output."""
    from genbatch.review import ReviewServer, ReviewSession

    with reading_ledger(ledger, manifest) as store:
        run = one_run(store, manifest)
        session = ReviewSession(store, run, rows=rows, cols=cols)
        try:
            server = ReviewServer(session, port=port)
        except OSError as error:
            raise fail(
                f"cannot listen on 127.0.0.1:{port}: {error.strerror or error}", EXIT_ENVIRONMENT
            ) from None
        # Listening for the signals before saying where it serves: whoever reads the address
        # may stop it at once.
        with stop_requested() as stop, server:
            print(
                f"genbatch: reviewing '{run.name}' ({len(session.files)} file(s)); Ctrl-C stops",
                file=sys.stderr,
            )
            print(session.url, flush=True)
            if not no_open:
                _open(session.url)
            while not stop.wait(0.5):  # a timeout keeps the thread waking for the signals
                pass
        problem = session.metadata.problem
    if problem:
        print(f"genbatch: warning: metadata.jsonl not updated: {problem}", file=sys.stderr)
    print("genbatch: review stopped; ratings are in the ledger", file=sys.stderr)


def _open(url: str) -> None:
    import webbrowser

    if not webbrowser.open(url):
        print("genbatch: no browser found: open the address above", file=sys.stderr)
