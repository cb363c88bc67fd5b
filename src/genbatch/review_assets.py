"""The review page's own style and script, added to the gallery's (``gallery_assets``).

The script reads the markup the server wrote and nothing else: each output file has a
``div.rate`` (``data-output``: the number the server knows it by; ``data-verdict``,
``data-stars``: its rating) with keep/reject/star buttons and a note field. A change is sent
as JSON to ``ratings/<number>`` beside the page (the URL carries the session's token) and the
element takes the rating the server answers with. Filters and the compare view only tick the
gallery's own controls, so the gallery's script lays the grids out as ever.
"""

from __future__ import annotations

STYLE = r"""
.rate { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; padding: 6px 8px 0;
  border-top: 1px solid var(--line); }
.rate + .rate { padding-top: 4px; }
.rate .which { color: var(--muted); font-size: 12px; }
.rate button { padding: 0 7px; font-size: 12px; }
.rate button.on[data-verdict=kept] { background: #dcf3e4; color: #17663a; border-color: #17663a; }
.rate button.on[data-verdict=rejected] { background: #fde2e1; color: #a32020;
  border-color: #a32020; }
.rate .stars button { border: 0; background: none; padding: 0 1px; font-size: 16px;
  color: var(--line); }
.rate .stars button.on { color: #e0a100; }
.rate input.note { flex: 1 1 100%; font: inherit; font-size: 12px; padding: 2px 6px;
  border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--ink); }
.rate[data-saving] { opacity: 0.6; }
.rate[data-failed] input.note { border-color: #d64545; }
figure.item:has(.rate[data-verdict=kept]) { border-color: #17663a; }
figure.item:has(.rate[data-verdict=rejected]) .media { opacity: 0.45; }
figure.item:has(.rate.current) { outline: 3px solid var(--accent); outline-offset: 1px; }
.rate.current { background: color-mix(in srgb, var(--accent) 10%, transparent); }
body figure.item.unmatched { display: none; }
.compare { display: inline-flex; gap: 6px; align-items: center; }
.keys { color: var(--muted); font-size: 12px; }
.keys kbd { border: 1px solid var(--line); border-radius: 4px; padding: 0 4px; }
#review-counts .badge { margin-right: 4px; }
"""

SCRIPT = r"""
(() => {
  const body = document.body;
  const rates = () => Array.from(document.querySelectorAll("table.grid .rate"))
    .filter((r) => r.offsetParent !== null);
  let current = null;

  const show = (rate) => {
    const verdict = rate.dataset.verdict || "";
    const stars = Number(rate.dataset.stars || 0);
    rate.querySelectorAll("button[data-verdict]").forEach((b) => {
      b.classList.toggle("on", b.dataset.verdict === verdict);
      b.setAttribute("aria-pressed", String(b.dataset.verdict === verdict));
    });
    rate.querySelectorAll("button[data-stars]").forEach((b) => {
      b.classList.toggle("on", Number(b.dataset.stars) <= stars);
    });
  };

  const counts = () => {
    const all = Array.from(document.querySelectorAll(".rate"));
    const n = (verdict) => all.filter((r) => (r.dataset.verdict || "") === verdict).length;
    const box = document.getElementById("review-counts");
    box.querySelector("[data-count=kept]").textContent = `${n("kept")} kept`;
    box.querySelector("[data-count=rejected]").textContent = `${n("rejected")} rejected`;
    box.querySelector("[data-count=unrated]").textContent = `${n("")} unrated`;
  };

  // A change shows at once and is sent in order, one request at a time per file, each with
  // the file's whole rating as it is then: quick keys (k then 4) never undo each other. The
  // server's answer is taken once no other change waits.
  const send = async (rate) => {
    const wanted = {
      verdict: rate.dataset.verdict || null,
      stars: rate.dataset.stars ? Number(rate.dataset.stars) : null,
      note: rate.querySelector("input.note").value || null,
    };
    try {
      const answer = await fetch(`ratings/${rate.dataset.output}`, {
        method: "PUT",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(wanted),
        credentials: "same-origin",
      });
      const stored = await answer.json();
      if (!answer.ok) { throw new Error(stored.error || answer.statusText); }
      if (rate.pending === 1) {
        rate.dataset.verdict = stored.verdict || "";
        rate.dataset.stars = stored.stars ? String(stored.stars) : "";
        rate.querySelector("input.note").value = stored.note || "";
      }
      delete rate.dataset.failed;
      rate.title = "";
    } catch (error) {
      rate.dataset.failed = "1";
      rate.title = `not saved: ${error.message || error}`;
    } finally {
      rate.pending -= 1;
      if (!rate.pending) { delete rate.dataset.saving; }
      body.dataset.saved = String(Number(body.dataset.saved || 0) + 1);
      show(rate);
      counts();
      filter();
    }
  };
  const save = (rate, change) => {
    if ("verdict" in change) { rate.dataset.verdict = change.verdict || ""; }
    if ("stars" in change) { rate.dataset.stars = change.stars ? String(change.stars) : ""; }
    show(rate);
    counts();
    rate.pending = (rate.pending || 0) + 1;
    rate.dataset.saving = "1";
    rate.queue = (rate.queue || Promise.resolve()).then(() => send(rate));
  };
  const verdict = (rate, value) =>
    save(rate, { verdict: rate.dataset.verdict === value ? null : value });
  const stars = (rate, value) =>
    save(rate, { stars: Number(rate.dataset.stars || 0) === value ? null : value });

  const choose = (rate) => {
    if (current) { current.classList.remove("current"); }
    current = rate;
    if (rate) {
      rate.classList.add("current");
      rate.closest("figure").scrollIntoView({ block: "nearest", inline: "nearest" });
    }
  };

  document.querySelectorAll(".rate").forEach((rate) => {
    show(rate);
    rate.addEventListener("click", (event) => {
      choose(rate);
      const button = event.target.closest("button");
      if (!button) { return; }
      if (button.dataset.verdict) { verdict(rate, button.dataset.verdict); }
      if (button.dataset.stars) { stars(rate, Number(button.dataset.stars)); }
    });
    rate.querySelector("input.note").addEventListener("change", () => save(rate, {}));
  });

  // The rating filter hides the figures none of whose files match.
  const ratingFilter = document.getElementById("rating-filter");
  const matches = (rate, wanted) => {
    const v = rate.dataset.verdict || "";
    if (wanted === "") { return true; }
    if (wanted === "unrated") { return v === ""; }
    if (wanted === "kept" || wanted === "rejected") { return v === wanted; }
    return Number(rate.dataset.stars || 0) >= Number(wanted);
  };
  const filter = () => {
    const wanted = ratingFilter.value;
    document.querySelectorAll("figure.item").forEach((figure) => {
      const own = Array.from(figure.querySelectorAll(".rate"));
      const shown = wanted === "" || own.some((rate) => matches(rate, wanted));
      figure.classList.toggle("unmatched", !shown);
    });
    body.dataset.matching = String(document.querySelectorAll("figure.item:not(.unmatched)").length);
  };
  ratingFilter.addEventListener("change", filter);

  // Keyboard: arrows move between files, k keeps, r rejects, 1-5 stars, n writes a note.
  document.addEventListener("keydown", (event) => {
    const target = event.target instanceof Element ? event.target : null;
    const typing = target && target.closest("input, select, textarea");
    if (typing) {
      if (event.key === "Escape" || event.key === "Enter") { target.blur(); }
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    const list = rates();
    if (!list.length) { return; }
    const at = list.indexOf(current);
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
    if (step) {
      event.preventDefault();
      const next = at < 0 ? (step > 0 ? 0 : list.length - 1) : at + step;
      choose(list[Math.max(0, Math.min(list.length - 1, next))]);
      return;
    }
    if (!current) { return; }
    if (event.key === "k") { verdict(current, "kept"); }
    else if (event.key === "r") { verdict(current, "rejected"); }
    else if (/^[1-5]$/.test(event.key)) { stars(current, Number(event.key)); }
    else if (event.key === "0") { save(current, { stars: null }); }
    else if (event.key === "n") {
      event.preventDefault();
      current.querySelector("input.note").focus();
    } else { return; }
  });

  // Compare two settings: the key's two values side by side as columns, nothing else of it.
  document.querySelectorAll("section.sweep").forEach((section) => {
    const box = section.querySelector(".compare");
    if (!box) { return; }
    const [keySelect, first, second] = box.querySelectorAll("select");
    const filterOf = (name) => Array.from(section.querySelectorAll(".filter"))
      .find((f) => f.dataset.key === name);
    const fill = () => {
      const labels = Array.from(
        filterOf(keySelect.value).querySelectorAll(".values label span"), (s) => s.textContent);
      [first, second].forEach((select, which) => {
        select.replaceChildren(...labels.map((label, index) => {
          const option = document.createElement("option");
          option.value = String(index);
          option.textContent = label;
          return option;
        }));
        select.value = String(Math.min(which, labels.length - 1));
      });
    };
    keySelect.addEventListener("change", fill);
    fill();
    box.querySelector("button[data-compare=show]").addEventListener("click", () => {
      const cols = section.querySelector("select[data-axis=cols]");
      if (cols.value !== keySelect.value) {
        cols.value = keySelect.value;
        cols.dispatchEvent(new Event("change", { bubbles: true }));
      }
      const boxes = Array.from(filterOf(keySelect.value).querySelectorAll("input[type=checkbox]"));
      boxes.forEach((b, index) => {
        b.checked = index === Number(first.value) || index === Number(second.value);
      });
      boxes[0].dispatchEvent(new Event("change", { bubbles: true }));
      section.dataset.comparing = keySelect.value;
    });
    box.querySelector("button[data-compare=off]").addEventListener("click", () => {
      const boxes = Array.from(filterOf(keySelect.value).querySelectorAll("input[type=checkbox]"));
      boxes.forEach((b) => { b.checked = true; });
      boxes[0].dispatchEvent(new Event("change", { bubbles: true }));
      delete section.dataset.comparing;
    });
  });

  counts();
  filter();
  body.dataset.reviewReady = "1";
})();
"""
