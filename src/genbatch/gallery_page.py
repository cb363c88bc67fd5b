"""The gallery's HTML: one self-contained page, its grids laid out at first as ``gallery_layout``
chose, then rearranged in the browser by the reader.

The page needs no network: CSS and script are inline (allowed by hash in a Content Security
Policy that forbids everything else), media are referenced by paths relative to the page.
Every value shown (prompts are user text, errors are remote text) is escaped, and no data is
ever placed inside the script: each job's position in the sweep is a list of value numbers on
its ``<figure>`` (``data-v``), the values themselves are the escaped labels of the filters, and
the script only moves those elements and copies text between them. So a prompt can never
become markup or code, and the page shows its first layout even without script.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from genbatch.gallery_assets import SCRIPT, STYLE
from genbatch.gallery_layout import MISSING, Section, display
from genbatch.gallery_layout import _decides as decides
from genbatch.states import JobState

if TYPE_CHECKING:
    from genbatch.ledger import JobOutputs, JobRecord, OutputRecord, RunInfo


VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".m4v"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".avif"})
AUDIO_EXTENSIONS = frozenset({".mp3", ".wav", ".m4a", ".ogg"})


class Page:
    """The HTML of one gallery. ``genbatch review`` serves a subclass: the hooks below
    (``source``, ``under_media``, ``extra_controls``, ``policy``, ``script``) are what differ."""

    style = STYLE
    script = SCRIPT

    def __init__(
        self,
        *,
        items: Sequence[JobOutputs],
        table: Sequence[dict[str, str]],
        grids: Sequence[Section],
        run: RunInfo,
        html_dir: Path,
    ) -> None:
        self.items = items
        self.table = table
        self.grids = grids
        self.run = run
        self.html_dir = html_dir

    def render(self) -> str:
        """The whole page."""
        return _DOCUMENT.format(
            csp=_esc(self.policy()),
            title=_esc(f"{self.run.name} · genbatch {self.kind}"),
            style=self.style,
            script=self.script,
            header=self._header(),
            grids="".join(self._section(grid) for grid in self.grids),
            cells=sum(grid.cells(self.table) for grid in self.grids),
            items=len(self.items),
        )

    kind = "gallery"
    """The page's name in its title."""

    def policy(self) -> str:
        """The Content-Security-Policy: the page's own style and script, files beside it."""
        return _CSP

    def source(self, output: OutputRecord, path: str) -> str:
        """The URL of an output file: its path relative to the page."""
        return quote(Path(os.path.relpath(path, self.html_dir)).as_posix())

    def under_media(self, item: JobOutputs, present: Sequence[OutputRecord]) -> str:
        """Markup below a done job's media (nothing in the static gallery)."""
        return ""

    def extra_controls(self) -> str:
        """Controls added to the header's."""
        return ""

    def grid_controls(self, grid: Section) -> str:
        """Controls added to one grid's layout controls."""
        return ""

    def _header(self) -> str:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.job.state.value] = counts.get(item.job.state.value, 0) + 1
        chips = "".join(
            f'<span class="badge state-{_esc(state)}">{n} {_esc(state)}</span>'
            for state, n in counts.items()
        )
        spent = _catalog_cost(item for item in self.items if item.job.state == JobState.DONE)
        cost = f" · about ${spent:,.2f} (estimated)" if spent else ""
        return _HEADER.format(
            run=_esc(self.run.name),
            manifest=_esc(self.run.manifest_path),
            chips=chips,
            jobs=len(self.items),
            cost=_esc(cost),
            when=_esc(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
            extra=self.extra_controls(),
        )

    def _section(self, grid: Section) -> str:
        heading = (
            f"<h2>{_esc(grid.name)} <small>{len(grid.members)} jobs</small></h2>"
            if grid.name is not None
            else ""
        )
        view = _GridView(page=self, grid=grid)
        return (
            f'<section class="sweep" data-block="{_esc(grid.name or "")}">{heading}'
            f'{view.controls()}<div class="scroller">{view.table()}</div>'
            '<div class="pool" hidden></div></section>'
        )


class _GridView:
    """One grid's controls and first layout."""

    def __init__(self, *, page: Page, grid: Section) -> None:
        self.page = page
        self.grid = grid
        self.keys = list(grid.swept)
        self.own = [page.table[index] for index in grid.members]
        self.hidden_chips = self._hidden_chips()
        self.positions = {
            key: {value: index for index, value in enumerate(values)}
            for key, values in grid.swept.items()
        }

    def _hidden_chips(self) -> set[str]:
        """Keys not named on each item: the axes and what they decide."""
        axes = [axis for axis in (self.grid.axes.rows, self.grid.axes.cols) if axis]
        return (
            set(axes)
            | set(self.grid.derived)
            | {key for key in self.keys for axis in axes if decides(self.own, axis, key)}
        )

    def controls(self) -> str:
        if not self.keys:
            return ""
        rows = self._select("rows", self.grid.axes.rows)
        cols = self._select("cols", self.grid.axes.cols)
        filters = "".join(self._filter(position, key) for position, key in enumerate(self.keys))
        return (
            f'<div class="layout"><label>rows {rows}</label>'
            '<button class="swap" type="button" title="swap rows and columns">&#8645;</button>'
            f"<label>columns {cols}</label>{self.page.grid_controls(self.grid)}"
            f'<span class="filters">{filters}</span></div>'
        )

    def _select(self, axis: str, chosen: str | None) -> str:
        options = [("", "none")] + [(key, key) for key in self.keys]
        listed = "".join(
            f'<option value="{_esc(value)}"{" selected" if value == (chosen or "") else ""}>'
            f"{_esc(label)}</option>"
            for value, label in options
        )
        return f'<select data-axis="{axis}">{listed}</select>'

    def _filter(self, position: int, key: str) -> str:
        values = self.grid.swept[key]
        decided = " ".join(
            str(other)
            for other, name in enumerate(self.keys)
            if other != position and decides(self.own, key, name)
        )
        boxes = "".join(
            f'<label><input type="checkbox" checked data-value="{index}"><span>{_esc(value)}'
            "</span></label>"
            for index, value in enumerate(values)
        )
        derived = ' data-derived=""' if key in self.grid.derived else ""
        return (
            f'<details class="filter" data-key="{_esc(key)}" data-decides="{decided}"{derived}>'
            f'<summary>{_esc(key)} <span class="shown">{len(values)}/{len(values)}</span>'
            '</summary><div class="values"><button type="button" data-set="all">all</button>'
            f'<button type="button" data-set="none">none</button>{boxes}</div></details>'
        )

    def table(self) -> str:
        rows, cols = self.grid.axes.rows, self.grid.axes.cols
        row_values = self.grid.swept[rows] if rows else [""]
        col_values = self.grid.swept[cols] if cols else [""]
        cells: dict[tuple[str, str], list[int]] = {}
        for index in self.grid.members:
            cells.setdefault(self.grid.cell_of(self.page.table[index]), []).append(index)
        head = "".join(f'<th scope="col">{_esc(value)}</th>' for value in col_values)
        body = "".join(
            f'<tr><th scope="row"><div class="rowlabel">{_esc(row)}</div></th>'
            + "".join(self._cell(cells.get((row, col), [])) for col in col_values)
            + "</tr>"
            for row in row_values
        )
        return (
            f'<table class="grid"><thead><tr><th class="corner">{_esc(_corner(rows, cols))}'
            f"</th>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def _cell(self, members: list[int]) -> str:
        if not members:
            return '<td class="cell empty" data-cell="empty"><span>no job</span></td>'
        figures = "".join(self._figure(index) for index in members)
        return f'<td class="cell" data-cell="{len(members)}">{figures}</td>'

    def _figure(self, index: int) -> str:
        item, values = self.page.items[index], self.page.table[index]
        state = item.job.state.value
        positions = " ".join(
            str(self.positions[key][values.get(key, MISSING)]) for key in self.keys
        )
        chips = "".join(
            f'<span class="chip" data-k="{position}"{self._hidden(key)}>'
            f"<b>{_esc(key)}</b> {_esc(values.get(key, MISSING))}</span>"
            for position, key in enumerate(self.keys)
        )
        return (
            f'<figure class="item" data-state="{_esc(state)}" data-key="{_esc(item.job.key)}" '
            f'data-v="{positions}">{self._media(item)}'
            f'<figcaption><div class="chips">{chips}</div>{_details(item)}'
            "</figcaption></figure>"
        )

    def _hidden(self, key: str) -> str:
        return " hidden" if key in self.hidden_chips else ""

    def _media(self, item: JobOutputs) -> str:
        job = item.job
        files = [o for o in item.outputs if o.path]
        if job.state != JobState.DONE or not files:
            error = f'<p class="error">{_esc(job.error)}</p>' if job.error else ""
            return (
                f'<div class="media placeholder"><span class="badge state-{_esc(job.state)}">'
                f"{_esc(job.state)}</span>{error}</div>"
            )
        present = [o for o in files if o.path and os.path.isfile(o.path)]
        if not present:
            return (
                '<div class="media placeholder"><span class="badge state-failed">file '
                'missing</span><p class="error">the file was moved or deleted</p></div>'
            )
        many = " many" if len(present) > 1 else ""
        elements = "".join(self._element(o, job) for o in present)
        below = self.page.under_media(item, present)
        return f'<div class="media{many}">{elements}</div>{below}'

    def _element(self, output: OutputRecord, job: JobRecord) -> str:
        path = output.path or ""
        source = _esc(self.page.source(output, path))
        alt = _esc(str(job.inputs.get("prompt", job.key)))
        suffix = Path(path).suffix.lower()
        if suffix in VIDEO_EXTENSIONS:
            return (
                f'<video src="{source}" controls muted loop preload="metadata" playsinline '
                f'title="{alt}"></video>'
            )
        if suffix in IMAGE_EXTENSIONS:
            return f'<img src="{source}" alt="{alt}" loading="lazy" decoding="async">'
        if suffix in AUDIO_EXTENSIONS:
            return f'<audio src="{source}" controls preload="metadata"></audio>'
        return f'<a class="file" href="{source}">{_esc(Path(path).name)}</a>'


def _details(item: JobOutputs) -> str:
    job = item.job
    rows = [
        (name, display(value))
        for name, value in sorted(
            job.inputs.items(), key=lambda pair: (pair[0] != "prompt", pair[0])
        )
    ]
    rows += [(f"{{{name}}}", display(value)) for name, value in job.variables.items()]
    rows += [("model", job.model_id), ("state", job.state.value)]
    if job.error:
        rows.append(("error", job.error))
    rows += [("file", Path(o.path).name) for o in item.outputs if o.path]
    listing = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in rows)
    return (
        f"<details><summary>#{job.ordinal} · {_esc(job.key[:8])}</summary>"
        f"<dl>{listing}</dl></details>"
    )


def _corner(rows: str | None, cols: str | None) -> str:
    return f"{rows or ''} ╲ {cols or ''}".strip(" ╲")


def _catalog_cost(items: Iterable[JobOutputs]) -> float:
    return sum(item.job.cost_usd or 0.0 for item in items)


def esc(value: object) -> str:
    """``value`` as HTML text or attribute value."""
    return html.escape(str(value), quote=True)


_esc = esc


def source_hash(source: str) -> str:
    """A CSP source allowing an inline script or style by its hash."""
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


_hash = source_hash


_STYLE = STYLE
_SCRIPT = SCRIPT
_CSP = (
    f"default-src 'none'; style-src '{_hash(_STYLE)}'; script-src '{_hash(_SCRIPT)}'; "
    "img-src 'self' file: data: blob:; media-src 'self' file: blob:; "
    "base-uri 'none'; form-action 'none'"
)

_HEADER = """<header>
<h1>{run}</h1>
<p class="meta">{jobs} jobs from <code>{manifest}</code>{cost} · made {when}</p>
<div class="summary">{chips}</div>
<div class="controls">
<label>size <input id="size" type="range" min="120" max="640" step="20" value="240"></label>
<button id="play" type="button">play all</button>
<button id="pause" type="button">pause all</button>
<label><input id="captions" type="checkbox" checked> captions</label>
<label><input id="problems" type="checkbox"> only problems</label>
{extra}</div>
</header>"""

_DOCUMENT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="generator" content="genbatch">
<title>{title}</title>
<style>{style}</style>
</head>
<body data-cells="{cells}" data-items="{items}">
{header}
<main>{grids}</main>
<div id="gallery-errors" hidden></div>
<script>{script}</script>
</body>
</html>
"""
