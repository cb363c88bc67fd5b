"""A gallery: one self-contained HTML page showing a run's outputs as a grid along its axes.

The page needs no network: CSS and script are inline (allowed by hash in a Content Security
Policy that forbids everything else), media are referenced by paths relative to the page.
Every value shown (prompts are user text, errors are remote text) is escaped, and no data is
ever placed inside the script, so a prompt can never become markup or code.

Rows and columns are two of the keys that vary across the run's jobs (template variables, model
inputs, ``model``, ``block``, ``repeat``). By default the prompt makes the rows, and the columns
are the varying key with the fewest values that the prompt does not already decide (with
``{animal}`` in the prompt, ``animal`` adds nothing beside it). Whatever else varies is shown on
each item.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from genbatch.atomic import write_atomically
from genbatch.errors import UsageError
from genbatch.ledger import JobOutputs, Ledger, RunInfo
from genbatch.states import JobState

GALLERY_FILE = "gallery.html"
MISSING = "—"
VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".m4v"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".avif"})
AUDIO_EXTENSIONS = frozenset({".mp3", ".wav", ".m4a", ".ogg"})


@dataclass(frozen=True, kw_only=True)
class Axes:
    """The keys laid out as rows and columns (None: a single row or column)."""

    rows: str | None
    cols: str | None


@dataclass(frozen=True, kw_only=True)
class GalleryReport:
    """What ``write_gallery`` wrote."""

    path: Path
    axes: Axes
    cells: int
    items: int


def facets(item: JobOutputs) -> dict[str, str]:
    """What a job can be arranged by, as display text: model, block, repeat, then its inputs,
    then its template variables (which win on a shared name)."""
    job = item.job
    values = {"model": job.model_id, "block": job.block, "repeat": str(job.repeat_index)}
    values.update({name: display(value) for name, value in job.inputs.items()})
    values.update({name: display(value) for name, value in job.variables.items()})
    return values


def display(value: Any) -> str:
    """A value as a person reads it: text as is, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def varying_keys(table: Sequence[dict[str, str]]) -> dict[str, list[str]]:
    """Keys with at least two distinct values, each with its values in first-seen order."""
    names: dict[str, None] = {}
    for values in table:
        names.update(dict.fromkeys(values))
    found = {}
    for name in names:
        seen = list(dict.fromkeys(values.get(name, MISSING) for values in table))
        if len(seen) > 1:
            found[name] = seen
    return found


def choose_axes(
    table: Sequence[dict[str, str]], *, rows: str | None = None, cols: str | None = None
) -> Axes:
    """The rows and columns: the user's choice, else the prompt by the smallest independent
    key (see the module's docstring)."""
    known = {name for values in table for name in values}
    for option, key in (("--rows", rows), ("--cols", cols)):
        if key is not None and key not in known:
            raise UsageError(
                f"{option}: no job has '{key}'; choose from {', '.join(sorted(known)) or 'nothing'}"
            )
    varying = varying_keys(table)
    if rows is None:
        rows = _default_rows(table, varying, cols)
    if cols is None:
        cols = _default_cols(table, varying, rows)
    return Axes(rows=rows, cols=cols)


def _default_rows(
    table: Sequence[dict[str, str]], varying: dict[str, list[str]], cols: str | None
) -> str | None:
    if "prompt" in varying and cols != "prompt":
        return "prompt"
    free = [k for k in varying if k != cols and not (cols and _decides(table, cols, k))]
    return max(free, key=lambda k: len(varying[k]), default=None)


def _default_cols(
    table: Sequence[dict[str, str]], varying: dict[str, list[str]], rows: str | None
) -> str | None:
    free = [k for k in varying if k != rows and not (rows and _decides(table, rows, k))]
    return min(free, key=lambda k: len(varying[k]), default=None)


def _decides(table: Sequence[dict[str, str]], key: str, other: str) -> bool:
    """True when knowing ``key`` tells ``other`` (each value of one maps to one of the other)."""
    mapping: dict[str, str] = {}
    for values in table:
        seen = mapping.setdefault(values.get(key, MISSING), values.get(other, MISSING))
        if seen != values.get(other, MISSING):
            return False
    return True


def write_gallery(
    ledger: Ledger,
    run: RunInfo,
    *,
    output: Path | None = None,
    rows: str | None = None,
    cols: str | None = None,
) -> GalleryReport:
    """Write the gallery of ``run`` (default: ``gallery.html`` in its output directory)."""
    items = ledger.job_outputs(run_id=run.id, in_manifest_only=True)
    if not items:
        raise UsageError(f"the run '{run.name}' has no jobs")
    path = (output or _default_path(items)).absolute()
    page = Page(items=items, run=run, html_dir=path.parent, rows=rows, cols=cols)
    write_atomically(path, page.render().encode("utf-8"))
    return GalleryReport(path=path, axes=page.axes, cells=page.cell_count, items=len(items))


def _default_path(items: Sequence[JobOutputs]) -> Path:
    directories = sorted({item.job.output_dir for item in items})
    return Path(os.path.commonpath(directories)) / GALLERY_FILE


class Page:
    """The HTML of one gallery."""

    def __init__(
        self,
        *,
        items: Sequence[JobOutputs],
        run: RunInfo,
        html_dir: Path,
        rows: str | None = None,
        cols: str | None = None,
    ) -> None:
        self.items = list(items)
        self.run = run
        self.html_dir = html_dir
        self.table = [facets(item) for item in self.items]
        self.axes = choose_axes(self.table, rows=rows, cols=cols)
        varying = varying_keys(self.table)
        self.row_values = varying.get(self.axes.rows or "", [""]) if self.axes.rows else [""]
        self.col_values = varying.get(self.axes.cols or "", [""]) if self.axes.cols else [""]
        self.extra_keys = [
            k for k in varying if k not in (self.axes.rows, self.axes.cols) and not self._decided(k)
        ]
        self.cell_count = len(self.row_values) * len(self.col_values)

    def _decided(self, key: str) -> bool:
        return any(
            axis is not None and _decides(self.table, axis, key)
            for axis in (self.axes.rows, self.axes.cols)
        )

    def _value(self, values: dict[str, str], axis: str | None) -> str:
        return values.get(axis, MISSING) if axis else ""

    def render(self) -> str:
        """The whole page."""
        return _DOCUMENT.format(
            csp=_esc(_CSP),
            title=_esc(f"{self.run.name} · genbatch gallery"),
            style=_STYLE,
            script=_SCRIPT,
            header=self._header(),
            grid=self._grid(),
            cells=self.cell_count,
            items=len(self.items),
        )

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
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return _HEADER.format(
            run=_esc(self.run.name),
            manifest=_esc(self.run.manifest_path),
            chips=chips,
            jobs=len(self.items),
            cost=_esc(cost),
            when=_esc(when),
            rows=_esc(self.axes.rows or "·"),
            cols=_esc(self.axes.cols or "·"),
        )

    def _grid(self) -> str:
        cells: dict[tuple[str, str], list[int]] = {}
        for index, values in enumerate(self.table):
            key = (self._value(values, self.axes.rows), self._value(values, self.axes.cols))
            cells.setdefault(key, []).append(index)
        head = "".join(f'<th scope="col">{_esc(value)}</th>' for value in self.col_values)
        corner = f"{self.axes.rows or ''} ╲ {self.axes.cols or ''}".strip(" ╲")
        body = "".join(self._row(row, cells) for row in self.row_values)
        return (
            f'<table class="grid"><thead><tr><th class="corner">{_esc(corner)}</th>'
            f"{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def _row(self, row: str, cells: dict[tuple[str, str], list[int]]) -> str:
        tds = []
        for col in self.col_values:
            members = cells.get((row, col), [])
            if not members:
                tds.append('<td class="cell empty" data-cell="empty"><span>no job</span></td>')
                continue
            figures = "".join(self._figure(index) for index in members)
            tds.append(f'<td class="cell" data-cell="{len(members)}">{figures}</td>')
        label = f'<th scope="row"><div class="rowlabel">{_esc(row)}</div></th>'
        return f"<tr>{label}{''.join(tds)}</tr>"

    def _figure(self, index: int) -> str:
        item, values = self.items[index], self.table[index]
        state = item.job.state.value
        chips = "".join(
            f'<span class="chip"><b>{_esc(k)}</b> {_esc(values.get(k, MISSING))}</span>'
            for k in self.extra_keys
        )
        return (
            f'<figure class="item" data-state="{_esc(state)}" '
            f'data-key="{_esc(item.job.key)}">{self._media(item)}'
            f'<figcaption><div class="chips">{chips}</div>{self._details(item)}'
            "</figcaption></figure>"
        )

    def _media(self, item: JobOutputs) -> str:
        job = item.job
        files = [o.path for o in item.outputs if o.path]
        if job.state != JobState.DONE or not files:
            error = f'<p class="error">{_esc(job.error)}</p>' if job.error else ""
            return (
                f'<div class="media placeholder"><span class="badge state-{_esc(job.state)}">'
                f"{_esc(job.state)}</span>{error}</div>"
            )
        present = [path for path in files if os.path.isfile(path)]
        if not present:
            return (
                '<div class="media placeholder"><span class="badge state-failed">file '
                'missing</span><p class="error">the file was moved or deleted</p></div>'
            )
        many = " many" if len(present) > 1 else ""
        return f'<div class="media{many}">{"".join(self._element(p, job) for p in present)}</div>'

    def _element(self, path: str, job: Any) -> str:
        source = _esc(quote(Path(os.path.relpath(path, self.html_dir)).as_posix()))
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

    def _details(self, item: JobOutputs) -> str:
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


def _catalog_cost(items: Iterable[JobOutputs]) -> float:
    return sum(item.job.cost_usd or 0.0 for item in items)


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _hash(source: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()


_STYLE = """
:root { --tile: 240px; --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #69707d;
  --line: #e3e6eb; --media: #14171c; --accent: #3563e9;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
@media (prefers-color-scheme: dark) { :root { --bg: #14161a; --card: #1c1f25; --ink: #e8eaee;
  --muted: #9aa1ad; --line: #2c3038; --media: #0b0c0e; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); }
header { position: sticky; left: 0; padding: 20px 24px 12px; }
h1 { margin: 0 0 4px; font-size: 20px; font-weight: 650; }
.meta { margin: 0; color: var(--muted); }
.meta code { font-size: 12px; }
.summary { display: flex; flex-wrap: wrap; gap: 6px; margin: 10px 0 0; align-items: center; }
.controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin-top: 12px;
  color: var(--muted); }
.controls label { display: inline-flex; gap: 6px; align-items: center; }
.controls button { font: inherit; padding: 3px 10px; border: 1px solid var(--line);
  border-radius: 6px; background: var(--card); color: var(--ink); cursor: pointer; }
.axes b { color: var(--ink); }
main { padding: 0 24px 32px; overflow-x: auto; }
table.grid { border-collapse: separate; border-spacing: 8px; margin-left: -8px; }
thead th { position: sticky; top: 0; z-index: 2; background: var(--bg); padding: 6px 4px;
  font-weight: 600; text-align: left; white-space: nowrap; }
th.corner { color: var(--muted); font-weight: 500; }
tbody th { position: sticky; left: 0; z-index: 1; background: var(--bg); vertical-align: top;
  text-align: left; font-weight: 500; padding: 6px 8px 6px 0; }
.rowlabel { width: 220px; max-height: calc(var(--tile) + 40px); overflow: auto;
  white-space: pre-wrap; overflow-wrap: anywhere; }
td.cell { vertical-align: top; padding: 0; }
td.cell.empty { color: var(--muted); text-align: center; vertical-align: middle;
  width: var(--tile); border: 1px dashed var(--line); border-radius: 10px; }
figure.item { margin: 0 0 8px; width: var(--tile); background: var(--card);
  border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
figure.item:last-child { margin-bottom: 0; }
.media { width: 100%; height: var(--tile); background: var(--media); display: flex;
  align-items: center; justify-content: center; gap: 2px; flex-wrap: wrap; }
.media video, .media img { width: 100%; height: 100%; object-fit: contain; display: block; }
.media.many video, .media.many img { width: calc(50% - 1px); height: calc(50% - 1px); }
.media audio { width: 92%; }
.media a.file { color: #fff; }
.media.placeholder { flex-direction: column; gap: 8px; padding: 14px;
  background: repeating-linear-gradient(135deg, var(--card), var(--card) 10px,
  var(--bg) 10px, var(--bg) 20px); }
.media.broken { outline: 3px solid #d64545; outline-offset: -3px; }
.error { margin: 0; max-width: 100%; color: var(--ink); font-size: 12px; overflow-wrap: anywhere;
  display: -webkit-box; -webkit-line-clamp: 5; -webkit-box-orient: vertical; overflow: hidden; }
figcaption { padding: 6px 8px 8px; font-size: 12px; }
.chips { display: flex; flex-wrap: wrap; gap: 4px; }
.chips:empty { display: none; }
.chip { background: var(--bg); border: 1px solid var(--line); border-radius: 999px;
  padding: 0 8px; }
.chip b { font-weight: 600; color: var(--muted); margin-right: 2px; }
details { color: var(--muted); margin-top: 4px; }
.chips:empty + details { margin-top: 0; }
summary { cursor: pointer; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 8px; margin: 6px 0 0;
  color: var(--ink); }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; white-space: pre-wrap; }
.badge { display: inline-block; border-radius: 999px; padding: 1px 9px; font-size: 12px;
  font-weight: 600; background: #e6e8ec; color: #333; }
.state-done { background: #dcf3e4; color: #17663a; }
.state-failed, .state-expired { background: #fde2e1; color: #a32020; }
.state-unknown { background: #fff1cc; color: #7a5600; }
.state-cancelled { background: #eceef2; color: #4d5563; }
.state-queued, .state-running, .state-fetching, .state-submitting, .state-pending {
  background: #e3ebff; color: #2949a8; }
body.no-captions figcaption { display: none; }
body.problems-only figure.item[data-state="done"] { display: none; }
#gallery-errors { margin: 12px 24px; padding: 10px; border: 1px solid #d64545;
  color: #a32020; white-space: pre-wrap; }
"""

_SCRIPT = """
(() => {
  const body = document.body;
  const errors = [];
  const report = (message) => {
    errors.push(String(message));
    const box = document.getElementById("gallery-errors");
    box.hidden = false;
    box.textContent = errors.join("\\n");
    body.dataset.errors = String(errors.length);
  };
  window.addEventListener("error", (event) => report(event.message || "script error"));
  window.addEventListener("unhandledrejection", (event) => report(event.reason));
  let loaded = 0;
  let failed = 0;
  const count = () => {
    body.dataset.mediaLoaded = String(loaded);
    body.dataset.mediaFailed = String(failed);
  };
  const watch = (element, readyEvent, isReady) => {
    const ok = () => { loaded += 1; count(); };
    const bad = () => {
      failed += 1;
      element.closest(".media").classList.add("broken");
      count();
    };
    if (isReady()) { ok(); return; }
    element.addEventListener(readyEvent, ok, { once: true });
    element.addEventListener("error", bad, { once: true });
  };
  const videos = Array.from(document.querySelectorAll(".media video"));
  videos.forEach((v) => watch(v, "loadedmetadata", () => v.readyState >= 1));
  // A tiny seek makes every browser decode and show the first frame of a paused clip.
  videos.forEach((v) => {
    const first = () => { if (v.currentTime === 0) { v.currentTime = 0.001; } };
    if (v.readyState >= 1) { first(); } else { v.addEventListener("loadedmetadata", first); }
  });
  document.querySelectorAll(".media img").forEach(
    (i) => watch(i, "load", () => i.complete && i.naturalWidth > 0));
  // Controls stay in the markup (the page works without script) but show only on hover or
  // focus, so a grid of paused clips reads as pictures; hovering plays the clip.
  videos.forEach((v) => {
    v.controls = false;
    v.tabIndex = 0;
    const on = () => { v.controls = true; v.play().catch(() => {}); };
    const off = () => { v.controls = false; v.pause(); };
    v.addEventListener("mouseenter", on);
    v.addEventListener("mouseleave", off);
    v.addEventListener("focus", () => { v.controls = true; });
    v.addEventListener("blur", () => { v.controls = false; });
  });
  const size = document.getElementById("size");
  const resize = () => document.documentElement.style.setProperty("--tile", size.value + "px");
  size.addEventListener("input", resize);
  resize();
  document.getElementById("play").addEventListener(
    "click", () => videos.forEach((v) => { v.play().catch(() => {}); }));
  document.getElementById("pause").addEventListener(
    "click", () => videos.forEach((v) => v.pause()));
  document.getElementById("captions").addEventListener(
    "change", (event) => body.classList.toggle("no-captions", !event.target.checked));
  document.getElementById("problems").addEventListener(
    "change", (event) => body.classList.toggle("problems-only", event.target.checked));
  count();
  body.dataset.ready = "1";
})();
"""

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
<span class="axes">rows <b>{rows}</b> &times; columns <b>{cols}</b></span>
<label>size <input id="size" type="range" min="120" max="640" step="20" value="240"></label>
<button id="play" type="button">play all</button>
<button id="pause" type="button">pause all</button>
<label><input id="captions" type="checkbox" checked> captions</label>
<label><input id="problems" type="checkbox"> only problems</label>
</div>
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
<main>{grid}</main>
<div id="gallery-errors" hidden></div>
<script>{script}</script>
</body>
</html>
"""
