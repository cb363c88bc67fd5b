"""``genbatch gallery``: one self-contained HTML page to compare a run's outputs."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from genbatch.cli import app
from genbatch.cli.common import LEDGER_OPTION, one_line_errors
from genbatch.cli.selection import one_run, reading_ledger
from genbatch.gallery import write_gallery

EPILOG = """Examples:

  genbatch gallery manifests/quickstart.yaml        then open the printed file

  genbatch gallery sweep.yaml --rows seed --cols aspect_ratio --output ~/sweep.html

Rows and columns default to the prompt and the varying input or variable with the fewest
values; anything else that varies is shown on each item. Videos play on hover.
"""


@app.command(epilog=EPILOG)
@one_line_errors
def gallery(
    manifest: Path | None = typer.Argument(
        None,
        metavar="MANIFEST",
        help="The manifest whose run to show [default: the run updated last].",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="FILE",
        help="Where to write the page [default: gallery.html in the run's output directory].",
    ),
    rows: str | None = typer.Option(
        None, "--rows", metavar="KEY", help="Input or variable for the rows [default: prompt]."
    ),
    cols: str | None = typer.Option(
        None, "--cols", metavar="KEY", help="Input or variable for the columns."
    ),
    ledger: str | None = LEDGER_OPTION,
) -> None:
    """Write an HTML page showing the run's outputs as a grid along the sweep's axes."""
    with reading_ledger(ledger, manifest) as store:
        run = one_run(store, manifest)
        report = write_gallery(store, run, output=output, rows=rows, cols=cols)
    axes = f"rows {report.axes.rows or '-'} x columns {report.axes.cols or '-'}"
    print(
        f"genbatch: gallery of '{run.name}': {report.items} job(s) in {report.cells} "
        f"cell(s), {axes}",
        file=sys.stderr,
    )
    print(report.path)
