"""A gallery: one self-contained HTML page showing a run's outputs as grids along its sweep.

``gallery_layout`` decides the grids (one per job block) and their first rows and columns,
``gallery_page`` writes the HTML, in which the reader then picks other rows, columns and
values without any server.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from genbatch.atomic import write_atomically
from genbatch.errors import UsageError
from genbatch.gallery_layout import Axes, Section, choose_axes, facets, sections
from genbatch.gallery_page import Page

if TYPE_CHECKING:
    from genbatch.ledger import JobOutputs, Ledger, RunInfo


__all__ = ["GALLERY_FILE", "Axes", "GalleryReport", "choose_axes", "lay_out", "write_gallery"]

GALLERY_FILE = "gallery.html"


@dataclass(frozen=True, kw_only=True)
class GalleryReport:
    """What ``write_gallery`` wrote."""

    path: Path
    grids: tuple[Section, ...]
    """One per job block (one in all when the run has one block or ``block`` is an axis)."""
    cells: int
    items: int


def write_gallery(
    ledger: Ledger,
    run: RunInfo,
    *,
    output: Path | None = None,
    rows: str | None = None,
    cols: str | None = None,
) -> GalleryReport:
    """Write the gallery of ``run`` (default: ``gallery.html`` in its output directory).

    ``rows`` and ``cols`` are the first layout's axes (the reader can change them in the page).
    """
    items = ledger.job_outputs(run_id=run.id, in_manifest_only=True)
    table, grids = lay_out(run, items, rows=rows, cols=cols)
    path = (output or _default_path(items)).absolute()
    page = Page(items=items, table=table, grids=grids, run=run, html_dir=path.parent)
    write_atomically(path, page.render().encode("utf-8"))
    return GalleryReport(
        path=path,
        grids=grids,
        cells=sum(grid.cells(table) for grid in grids),
        items=len(items),
    )


def lay_out(
    run: RunInfo, items: Sequence[JobOutputs], *, rows: str | None, cols: str | None
) -> tuple[list[dict[str, str]], tuple[Section, ...]]:
    """The facets of ``items`` (the run's jobs) and the grids they make; ``UsageError`` for a
    run without jobs or an unknown ``rows``/``cols`` key."""
    if not items:
        raise UsageError(f"the run '{run.name}' has no jobs")
    table = [facets(item) for item in items]
    return table, tuple(sections(table, rows=rows, cols=cols))


def _default_path(items: Sequence[JobOutputs]) -> Path:
    directories = sorted({item.job.output_dir for item in items})
    return Path(os.path.commonpath(directories)) / GALLERY_FILE
