"""The gallery page's own style and script (inline in the page, allowed by their hashes).

The script reads the page's markup and nothing else: each ``section.sweep`` is one grid, its
``details.filter`` elements name the swept keys in order (their checkbox labels are the values),
and each ``figure.item`` says where it sits with ``data-v``: one value number per key. Choosing
rows, columns or values rebuilds the grid's table by moving those figures; figures filtered out
wait in the section's hidden pool. No framework, no network, no data in the script.
"""

from __future__ import annotations

STYLE = r"""
:root { --tile: 240px; --bg: #f6f7f9; --card: #fff; --ink: #1d2330; --muted: #69707d;
  --line: #e3e6eb; --media: #14171c; --accent: #3563e9;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
@media (prefers-color-scheme: dark) { :root { --bg: #14161a; --card: #1c1f25; --ink: #e8eaee;
  --muted: #9aa1ad; --line: #2c3038; --media: #0b0c0e; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); }
header { padding: 20px 24px 4px; }
h1 { margin: 0 0 4px; font-size: 20px; font-weight: 650; }
h2 { margin: 0 0 6px; font-size: 16px; font-weight: 650; }
h2 small { color: var(--muted); font-weight: 500; font-size: 13px; }
.meta { margin: 0; color: var(--muted); overflow-wrap: anywhere; }
.meta code { font-size: 12px; }
.summary { display: flex; flex-wrap: wrap; gap: 6px; margin: 10px 0 0; align-items: center; }
.controls, .layout { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center;
  margin-top: 12px; color: var(--muted); }
.controls label, .layout > label { display: inline-flex; gap: 6px; align-items: center; }
button, select { font: inherit; padding: 2px 8px; border: 1px solid var(--line);
  border-radius: 6px; background: var(--card); color: var(--ink); cursor: pointer; }
select { max-width: 16em; }
.filters { display: contents; }
details.filter { border: 1px solid var(--line); border-radius: 6px; background: var(--card);
  padding: 2px 8px; max-width: 100%; }
details.filter[open] { flex-basis: 100%; }
details.filter summary { color: var(--ink); }
.shown { color: var(--muted); font-size: 12px; }
.values { display: flex; flex-wrap: wrap; gap: 4px 12px; padding: 6px 0 4px; max-height: 220px;
  overflow: auto; }
.values label { display: inline-flex; gap: 4px; align-items: baseline; max-width: 40em;
  overflow-wrap: anywhere; color: var(--ink); }
main { padding: 0 24px 32px; }
section.sweep { margin-top: 20px; min-width: 0; }
.scroller { margin-top: 10px; max-width: 100%; max-height: calc(100vh - 24px); overflow: auto;
  border-radius: 10px; }
table.grid { border-collapse: separate; border-spacing: 8px; margin: -8px; }
thead th { position: sticky; top: 0; z-index: 2; background: var(--bg); padding: 6px 4px;
  font-weight: 600; text-align: left; white-space: nowrap; }
th.corner { color: var(--muted); font-weight: 500; left: 0; z-index: 3; }
tbody th { position: sticky; left: 0; z-index: 1; background: var(--bg); vertical-align: top;
  text-align: left; font-weight: 500; padding: 6px 8px 6px 0; }
.rowlabel { width: 200px; max-height: calc(var(--tile) + 40px); overflow: auto;
  white-space: pre-wrap; overflow-wrap: anywhere; }
td.cell { vertical-align: top; padding: 0; white-space: nowrap; }
td.cell.empty { color: var(--muted); text-align: center; vertical-align: middle;
  width: var(--tile); border: 1px dashed var(--line); border-radius: 10px; }
.nothing { color: var(--muted); margin: 12px 0; }
figure.item { display: inline-block; vertical-align: top; white-space: normal; margin: 0 8px 0 0;
  width: var(--tile); background: var(--card); border: 1px solid var(--line);
  border-radius: 10px; overflow: hidden; }
figure.item:last-child { margin-right: 0; }
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
.chips:not(:has(.chip:not([hidden]))) { display: none; }
.chip { background: var(--bg); border: 1px solid var(--line); border-radius: 999px;
  padding: 0 8px; overflow-wrap: anywhere; }
.chip[hidden] { display: none; }
.chip b { font-weight: 600; color: var(--muted); margin-right: 2px; }
details { color: var(--muted); }
figcaption details { margin-top: 4px; }
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

SCRIPT = r"""
(() => {
  const body = document.body;
  const errors = [];
  const report = (message) => {
    errors.push(String(message));
    const box = document.getElementById("gallery-errors");
    box.hidden = false;
    box.textContent = errors.join("\n");
    body.dataset.errors = String(errors.length);
  };
  window.addEventListener("error", (event) => report(event.message || "script error"));
  window.addEventListener("unhandledrejection", (event) => report(event.reason));
  const element = (tag, className, text) => {
    const made = document.createElement(tag);
    if (className) { made.className = className; }
    if (text !== undefined) { made.textContent = text; }
    return made;
  };

  // One grid: rows, columns and shown values chosen in its controls.
  const sweep = (section) => {
    const keys = Array.from(section.querySelectorAll(".filter")).map((filter) => ({
      name: filter.dataset.key,
      boxes: Array.from(filter.querySelectorAll("input[type=checkbox]")),
      labels: Array.from(filter.querySelectorAll(".values label span"), (s) => s.textContent),
      decides: filter.dataset.decides.split(" ").filter(Boolean).map(Number),
      shown: filter.querySelector(".shown"),
      derived: filter.hasAttribute("data-derived"),
      filter,
    }));
    const figures = Array.from(section.querySelectorAll("figure.item"), (figure) => ({
      figure,
      at: figure.dataset.v.split(" ").filter(Boolean).map(Number),
      chips: Array.from(figure.querySelectorAll(".chip")),
    }));
    const selects = {
      rows: section.querySelector("select[data-axis=rows]"),
      cols: section.querySelector("select[data-axis=cols]"),
    };
    const scroller = section.querySelector(".scroller");
    const pool = section.querySelector(".pool");
    const axis = (name) => {
      const select = selects[name];
      return select ? keys.findIndex((k) => k.name === select.value) : -1;
    };
    const label = (k, value) => (k < 0 ? "" : keys[k].labels[value]);

    const render = () => {
      const r = axis("rows");
      const c = axis("cols");
      const shown = figures.filter((f) => f.at.every((value, k) => keys[k].boxes[value].checked));
      const showing = new Set(shown);
      const values = (k) => {
        if (k < 0) { return [-1]; }
        return [...new Set(shown.map((f) => f.at[k]))].sort((a, b) => a - b);
      };
      const rowValues = values(r);
      const colValues = values(c);
      const table = element("table", "grid");
      const head = table.createTHead().insertRow();
      const corner = [r, c].filter((k) => k >= 0).map((k) => keys[k].name).join(" \u2572 ");
      head.append(element("th", "corner", corner));
      colValues.forEach((value) => {
        const th = element("th", "", label(c, value));
        th.scope = "col";
        head.append(th);
      });
      const cells = new Map();
      const tbody = table.createTBody();
      rowValues.forEach((rowValue) => {
        const tr = tbody.insertRow();
        const th = element("th");
        th.scope = "row";
        th.append(element("div", "rowlabel", label(r, rowValue)));
        tr.append(th);
        colValues.forEach((colValue) => {
          const td = element("td", "cell");
          cells.set(`${rowValue} ${colValue}`, td);
          tr.append(td);
        });
      });
      shown.forEach((f) => {
        cells.get(`${r < 0 ? -1 : f.at[r]} ${c < 0 ? -1 : f.at[c]}`).append(f.figure);
      });
      let filled = 0;
      cells.forEach((td) => {
        if (td.childElementCount) {
          filled += 1;
          td.dataset.cell = String(td.childElementCount);
        } else {
          td.className = "cell empty";
          td.dataset.cell = "empty";
          td.append(element("span", "", "no job"));
        }
      });
      const hidden = new Set([r, c, ...keys.flatMap((k, i) => (k.derived ? [i] : []))]);
      [r, c].filter((k) => k >= 0).forEach((k) => keys[k].decides.forEach((d) => hidden.add(d)));
      figures.forEach((f) => {
        if (!showing.has(f)) { pool.append(f.figure); }
        f.chips.forEach((chip) => { chip.hidden = hidden.has(Number(chip.dataset.k)); });
      });
      const none = element("p", "nothing", "no job matches the filters");
      scroller.replaceChildren(shown.length ? table : none);
      keys.forEach((k) => {
        k.shown.textContent = `${k.boxes.filter((b) => b.checked).length}/${k.boxes.length}`;
      });
      section.dataset.rows = r < 0 ? "" : keys[r].name;
      section.dataset.cols = c < 0 ? "" : keys[c].name;
      section.dataset.cells = String(filled);
      section.dataset.shown = String(shown.length);
      body.dataset.cells = String(Array.from(
        document.querySelectorAll("section.sweep"), (s) => Number(s.dataset.cells || 0),
      ).reduce((a, b) => a + b, 0));
    };

    // Rows and columns never name the same key: choosing the other axis's key swaps them.
    const current = () => ({ rows: selects.rows.value, cols: selects.cols.value });
    let chosen = selects.rows ? current() : {};
    Object.entries(selects).forEach(([name, select]) => {
      if (!select) { return; }
      select.addEventListener("change", () => {
        const other = name === "rows" ? "cols" : "rows";
        if (select.value && select.value === selects[other].value) {
          selects[other].value = chosen[name];
        }
        chosen = current();
        render();
      });
    });
    const swap = section.querySelector(".swap");
    if (swap) {
      swap.addEventListener("click", () => {
        [selects.rows.value, selects.cols.value] = [selects.cols.value, selects.rows.value];
        chosen = current();
        render();
      });
    }
    keys.forEach((k) => {
      k.boxes.forEach((box) => box.addEventListener("change", render));
      k.filter.querySelectorAll("button[data-set]").forEach((button) => {
        button.addEventListener("click", () => {
          k.boxes.forEach((box) => { box.checked = button.dataset.set === "all"; });
          render();
        });
      });
    });
    render();
  };
  document.querySelectorAll("section.sweep").forEach(sweep);

  let loaded = 0;
  let failed = 0;
  const count = () => {
    body.dataset.mediaLoaded = String(loaded);
    body.dataset.mediaFailed = String(failed);
  };
  const watch = (media, readyEvent, isReady) => {
    const ok = () => { loaded += 1; count(); };
    const bad = () => {
      failed += 1;
      media.closest(".media").classList.add("broken");
      count();
    };
    if (isReady()) { ok(); return; }
    media.addEventListener(readyEvent, ok, { once: true });
    media.addEventListener("error", bad, { once: true });
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
  // Only the clips the filters leave in the grids.
  document.getElementById("play").addEventListener("click", () => {
    document.querySelectorAll("table.grid video").forEach((v) => { v.play().catch(() => {}); });
  });
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
