"""``genbatch gallery``: one self-contained HTML page to compare a run's outputs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from genbatch.cli import app
from genbatch.cli.common import LEDGER_ENVIRONMENT, LEDGER_OPTION, one_line_errors
from genbatch.cli.selection import one_run, reading_ledger

if TYPE_CHECKING:
    from genbatch.gallery_layout import Section

EPILOG = """Examples:

  genbatch gallery manifests/quickstart.yaml        then open the printed file

  genbatch gallery sweep.yaml --rows seed --cols aspect_ratio --output ~/sweep.html

Rows and columns default to the two swept keys with the most values (the prompt when
nothing else varies it); in the page, pick other rows and columns and tick the values to show.
A manifest with several job blocks gets one grid per block (--rows block: one grid for all).
Videos play on hover.
"""


@app.command(epilog=EPILOG + "\n" + LEDGER_ENVIRONMENT)
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
        None,
        "--rows",
        metavar="KEY",
        help="Input, variable, model, block or repeat for the rows at first "
        "[default: the swept key with the most values].",
    ),
    cols: str | None = typer.Option(
        None,
        "--cols",
        metavar="KEY",
        help="The same for the columns [default: the next independent swept key].",
    ),
    ledger: str | None = LEDGER_OPTION,
) -> None:
    """Write an HTML page showing the run's outputs as a grid along the sweep's axes."""
    with reading_ledger(ledger, manifest) as store:
        run = one_run(store, manifest)
        if output is not None:
            from genbatch.output_guard import refuse_kept_output

            refuse_kept_output(store, output)
        from genbatch.gallery import write_gallery  # the page's machinery: only when run

        report = write_gallery(store, run, output=output, rows=rows, cols=cols)
    print(
        f"genbatch: gallery of '{run.name}': {report.items} job(s) in {report.cells} "
        f"cell(s), {_layout(report.grids)}",
        file=sys.stderr,
    )
    print(report.path)


def _layout(grids: tuple[Section, ...]) -> str:
    described = [
        f"{grid.name + ': ' if grid.name else ''}rows {grid.axes.rows or '-'} x columns "
        f"{grid.axes.cols or '-'}"
        for grid in grids
    ]
    if len(grids) == 1:
        return described[0]
    return f"{len(grids)} grids, one per block ({'; '.join(described)})"
