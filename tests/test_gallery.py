"""`genbatch gallery`: the page's layout, its escaping, and what a real headless browser sees
and does (clicks, hovers, axis changes) through the DevTools protocol (tests/browser.py).

The browser tests need Chromium (Debian: apt-get install chromium). They skip without it, and
fail instead when GENBATCH_REQUIRE_BROWSER=1 (as in .ci/run).
"""

from __future__ import annotations

import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import Browser, chromium
from genbatch.gallery import Axes, choose_axes
from genbatch.simulator import Simulator

from support import KLING, cli_env, genbatch

FAST = 0.0005
HOSTILE = '<script>alert(1)</script> "quoted" & <img src=x onerror=alert(2)>'


def browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Open ``page`` in headless Chromium, letting its script and media load first."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--window-size=1280,1000",
        *extra,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def body_attributes(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))


def manifest(
    directory: Path, prompts: list[str], *, name: str = "sweep", model: str = KLING, extra: str = ""
) -> Path:
    path = directory / f"{name}.yaml"
    listed = "\n".join(f"  - {prompt!r}" for prompt in prompts)
    path.write_text(
        f"model: {model}\nname: {name}\nprompts:\n{listed}\n"
        f"grid:\n  aspect_ratio: ['16:9', '9:16']\n{extra}output:\n  dir: out\n",
        encoding="utf-8",
    )
    return path


def run(path: Path, env: dict[str, str], cwd: Path) -> None:
    done = genbatch(
        ["run", str(path), "--poll-interval", "0.01", "--max-failures", "off"], env=env, cwd=cwd
    )
    assert done.returncode in (0, 1), done.stderr


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(time_scale=FAST, capacity=8, seed=5) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A run of 2 prompts x 2 aspect ratios: the first prompt done, the second failed.

    Shared by the tests of this module: each writes its gallery in its own place.
    """
    directory = tmp_path_factory.mktemp("mixed")
    with Simulator(time_scale=FAST, capacity=8, seed=5) as working:
        env = cli_env(working, directory / "ledger.db")
        run(manifest(directory, ["a calm lake at dawn"]), env, directory)
    path = manifest(directory, ["a calm lake at dawn", HOSTILE])
    with Simulator(time_scale=FAST, fail_rate=1.0) as failing:
        run(path, cli_env(failing, directory / "ledger.db"), directory)
    return path, env


def test_the_default_axes_are_the_two_independent_swept_keys_with_the_most_values() -> None:
    zoo = [
        {"prompt": f"a {animal} in the {place}", "animal": animal, "place": place, "ratio": ratio}
        for animal in ("fox", "owl", "lynx", "cat")
        for place in ("snow", "desert", "forest")
        for ratio in ("16:9", "9:16")
    ]
    listed = [
        {"prompt": prompt, "ratio": ratio, "repeat": "0"}
        for prompt in ("a calm lake", "a busy street", "a dark forest")
        for ratio in ("16:9", "9:16")
    ]

    assert choose_axes(zoo) == Axes(rows="animal", cols="place")  # the prompt is the template's
    assert choose_axes(zoo, cols="animal") == Axes(rows="place", cols="animal")
    assert choose_axes(zoo, rows="ratio") == Axes(rows="ratio", cols="animal")
    assert choose_axes(listed) == Axes(rows="prompt", cols="ratio")  # a list of prompts is an axis
    assert choose_axes([{"prompt": "a"}, {"prompt": "b"}]) == Axes(rows="prompt", cols=None)
    assert choose_axes([{"prompt": "a"}, {"prompt": "a"}]) == Axes(rows=None, cols=None)


def test_a_key_another_one_decides_is_not_its_partner_and_ties_go_to_the_outer_loop() -> None:
    quickstart = [
        {"prompt": template.format(animal), "animal": animal, "ratio": ratio}
        for template in ("a {} walks", "a {} looks")
        for animal in ("fox", "owl")
        for ratio in ("16:9", "9:16")
    ]
    zipped = [
        {"camera": camera, "seed": seed, "style": style}
        for camera, seed in (("pan", "1"), ("tilt", "2"), ("zoom", "3"))
        for style in ("ink", "oil")
    ]

    assert choose_axes(quickstart) == Axes(rows="prompt", cols="ratio")  # not prompt x animal
    assert choose_axes(zipped) == Axes(rows="camera", cols="style")  # seed is camera's twin


def test_the_gallery_is_private_escaped_and_links_media_relatively(
    tmp_path: Path, mixed_run: tuple[Path, dict[str, str]]
) -> None:
    path, env = mixed_run

    done = genbatch(["gallery", str(path)], env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    page = Path(done.stdout.strip())
    assert page == path.parent / "out" / "gallery.html"
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    text = page.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &amp;" in text
    sources = re.findall(r'<video src="([^"]+)"', text)
    assert len(sources) == 2
    assert all(not s.startswith(("/", "file:", "http")) for s in sources)
    assert all((page.parent / s).is_file() for s in sources)
    assert "http://" not in text and "https://" not in text
    assert "rows prompt x columns aspect_ratio" in done.stderr


def test_a_browser_shows_every_cell_plays_the_media_and_reports_no_error(
    tmp_path: Path, mixed_run: tuple[Path, dict[str, str]]
) -> None:
    path, env = mixed_run
    page = tmp_path / "view" / "g.html"
    assert genbatch(["gallery", str(path), "-o", str(page)], env=env, cwd=tmp_path).returncode == 0

    shown = browse(page, tmp_path, "--dump-dom")

    assert shown.returncode == 0, shown.stderr[-2000:]
    dom = shown.stdout
    body = body_attributes(dom)
    assert body.get("data-ready") == "1", "the page's script did not run"
    assert "data-errors" not in body, re.search(r'id="gallery-errors"[^>]*>(.*?)<', dom)
    assert (body["data-media-loaded"], body["data-media-failed"]) == ("2", "0")
    assert len(re.findall(r'<td class="cell"', dom)) == 4
    assert len(re.findall(r'<figure class="item" data-state="done"', dom)) == 2
    assert len(re.findall(r'<figure class="item" data-state="failed"', dom)) == 2
    assert "Refused to" not in shown.stderr  # no Content-Security-Policy violation
    assert "Uncaught" not in shown.stderr


def test_an_image_gallery_loads_its_images_and_a_screenshot_is_drawn(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    path = manifest(
        tmp_path,
        ["red", "blue"],
        model="google/nano-banana-2/text-to-image",
        extra="  resolution: [1K, 2K]\n",
    )
    run(path, env, tmp_path)
    assert (
        genbatch(["gallery", str(path), "--rows", "resolution"], env=env, cwd=tmp_path).returncode
        == 0
    )
    page = tmp_path / "out" / "gallery.html"

    dom = browse(page, tmp_path, "--dump-dom").stdout
    shot = tmp_path / "shot.png"
    browse(page, tmp_path, f"--screenshot={shot}", "--hide-scrollbars")

    body = body_attributes(dom)
    assert (body["data-cells"], body["data-items"]) == ("4", "8")
    assert (body["data-media-loaded"], body["data-media-failed"]) == ("8", "0")
    assert len(re.findall(r'<img src="', dom)) == 8
    # what the axes leave out is named on each item
    assert len(re.findall(r'class="chip" data-k="\d+"><b>aspect_ratio</b>', dom)) == 8
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_an_unknown_axis_is_a_one_line_usage_error(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    path = manifest(tmp_path, ["a calm lake at dawn"])
    run(path, env, tmp_path)

    done = genbatch(["gallery", str(path), "--cols", "nope"], env=env, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.startswith("genbatch: error: --cols: no job has 'nope'; choose from ")
    assert "aspect_ratio" in done.stderr and len(done.stderr.splitlines()) == 1


ZOO = f"""model: {KLING}
name: zoo
prompts:
  - "a {{animal}} in the {{place}}"
grid:
  animal: [red fox, snow owl, lynx]
  place: [snow, desert]
  aspect_ratio: ['16:9', '9:16']
output:
  dir: out
"""

LAUNCH = f"""name: launch
model: {KLING}
vars: {{product: a matte black watch}}
prompts: ["{{product}} on a pedestal", "{{product}} on a wrist"]
jobs:
  - name: hero
    grid: {{aspect_ratio: ['16:9', '9:16']}}
  - name: teaser
    prompts: ["a teaser of {{product}}"]
  - name: stills
    model: google/nano-banana-2/text-to-image
    prompts: ["{{product}} on white"]
    grid:
      aspect_ratio: ['1:1', '16:9', '9:16', '4:3', '3:4', '21:9', '3:2']
      resolution: [1K, 2K]
output:
  dir: out
"""

GRID = """(() => {
  const section = document.querySelectorAll("section.sweep")[%d];
  const table = section.querySelector("table.grid");
  const prompts = (td) => Array.from(
    td.querySelectorAll("figure.item"), (f) => f.querySelector("dd").textContent);
  return {
    rows: section.dataset.rows,
    cols: section.dataset.cols,
    shown: Number(section.dataset.shown),
    head: table ? Array.from(table.tHead.rows[0].cells).slice(1).map((c) => c.textContent) : [],
    cells: table ? Array.from(table.tBodies[0].rows, (row) => [
      row.cells[0].textContent, ...Array.from(row.cells).slice(1).map(prompts)]) : [],
    chips: [...new Set(Array.from(
      section.querySelectorAll("table .chip:not([hidden]) b"), (b) => b.textContent))],
    filters: Array.from(section.querySelectorAll(".filter"), (f) => f.dataset.key),
  };
})()"""


def grid(browser: Browser, section: int = 0) -> dict[str, Any]:
    """What a grid of the page shows: its axes, column heads, and per row its label then the
    prompts of each cell's items."""
    shown: dict[str, Any] = browser.evaluate(GRID % section)
    return shown


def filter_box(key: str, value: int) -> str:
    return f'details.filter[data-key="{key}"] input[data-value="{value}"]'


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with Browser(tmp_path_factory.mktemp("profile")) as opened:
        yield opened


def gallery_of(directory: Path, text: str, *extra: str) -> tuple[Path, str]:
    """Run the manifest ``text`` against a simulator, then write its gallery: (page, stderr)."""
    path = directory / "sweep.yaml"
    path.write_text(text, encoding="utf-8")
    with Simulator(time_scale=FAST, capacity=8, seed=5) as simulator:
        env = cli_env(simulator, directory / "ledger.db")
        run(path, env, directory)
        done = genbatch(["gallery", str(path), *extra], env=env, cwd=directory)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip()), done.stderr


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page of a 3-axis sweep: 3 animals x 2 places x 2 aspect ratios, 12 clips."""
    page, _ = gallery_of(tmp_path_factory.mktemp("zoo"), ZOO)
    return page


def test_a_three_axis_sweep_opens_on_its_two_largest_axes_the_third_a_filter(
    browser: Browser, zoo: Path, tmp_path: Path
) -> None:
    browser.open(zoo, width=1400)

    shown = grid(browser)

    assert (shown["rows"], shown["cols"]) == ("animal", "place")
    assert shown["head"] == ["snow", "desert"]
    assert [row[0] for row in shown["cells"]] == ["red fox", "snow owl", "lynx"]
    for animal, *cells in shown["cells"]:
        for place, prompts in zip(shown["head"], cells, strict=True):
            assert prompts == [f"a {animal} in the {place}"] * 2  # one per aspect ratio
    assert shown["filters"] == ["animal", "place", "aspect_ratio", "prompt"]
    assert shown["chips"] == ["aspect_ratio"]  # the axes and the prompt they make go unsaid
    browser.wait_for("document.body.dataset.mediaLoaded === '12'")
    browser.screenshot(tmp_path / "zoo.png")
    assert (tmp_path / "zoo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unticking_a_value_hides_its_items_and_none_shows_a_note(
    browser: Browser, zoo: Path
) -> None:
    browser.open(zoo, width=1400)

    browser.click('details.filter[data-key="aspect_ratio"] summary')
    browser.click(filter_box("aspect_ratio", 1))
    after_click = grid(browser)
    browser.click('details.filter[data-key="animal"] summary')
    browser.click('details.filter[data-key="animal"] button[data-set="none"]')
    nothing = browser.evaluate("document.querySelector('.scroller').textContent")
    browser.click('details.filter[data-key="animal"] button[data-set="all"]')

    assert after_click["shown"] == 6
    assert all(len(prompts) == 1 for row in after_click["cells"] for prompts in row[1:])
    assert browser.evaluate(
        "Array.from(document.querySelectorAll('table figure.item'), "
        "(f) => f.querySelector('.chip[data-k=\"2\"]').textContent).join('|')"
    ) == "|".join(["aspect_ratio 16:9"] * 6)
    assert browser.evaluate("document.querySelector('.pool').childElementCount") == 6
    assert nothing == "no job matches the filters"
    assert grid(browser)["shown"] == 6
    assert (
        browser.evaluate(
            "document.querySelector('details.filter[data-key=animal] .shown').textContent"
        )
        == "3/3"
    )


def test_swapping_or_choosing_axes_rebuilds_the_grid(browser: Browser, zoo: Path) -> None:
    browser.open(zoo, width=1400)

    browser.click("button.swap")
    swapped = grid(browser)
    browser.select("select[data-axis=rows]", "aspect_ratio")
    by_ratio = grid(browser)
    browser.select("select[data-axis=cols]", "aspect_ratio")  # the rows' key: the axes swap
    crossed = grid(browser)

    assert (swapped["rows"], swapped["cols"]) == ("place", "animal")
    assert swapped["head"] == ["red fox", "snow owl", "lynx"]
    for place, *cells in swapped["cells"]:
        for animal, prompts in zip(swapped["head"], cells, strict=True):
            assert prompts == [f"a {animal} in the {place}"] * 2
    assert (by_ratio["rows"], by_ratio["cols"]) == ("aspect_ratio", "animal")
    assert [row[0] for row in by_ratio["cells"]] == ["16:9", "9:16"]
    assert by_ratio["cells"][0][1] == ["a red fox in the snow", "a red fox in the desert"]
    assert by_ratio["chips"] == ["place"]
    assert (crossed["rows"], crossed["cols"]) == ("animal", "aspect_ratio")
    assert crossed["head"] == ["16:9", "9:16"]


def test_a_clip_plays_while_the_pointer_is_over_it(browser: Browser, zoo: Path) -> None:
    browser.open(zoo, width=1400)
    browser.wait_for("document.body.dataset.mediaLoaded === '12'")
    first = "document.querySelector('table video')"

    browser.hover("table video")
    browser.wait_for(f"!{first}.paused && {first}.currentTime > 0")
    browser.hover("h1")

    assert browser.evaluate(f"{first}.paused") is True


def test_a_multi_block_manifest_gets_a_grid_per_block_within_a_1400_px_window(
    browser: Browser, tmp_path: Path
) -> None:
    page, stderr = gallery_of(tmp_path, LAUNCH)

    browser.open(page, width=1400)

    assert "3 grids, one per block (hero: rows prompt x columns aspect_ratio; teaser: " in stderr
    assert browser.evaluate(
        "Array.from(document.querySelectorAll('section.sweep h2'), (h) => h.firstChild.textContent)"
    ) == ["hero ", "teaser ", "stills "]
    hero, teaser, stills = (grid(browser, index) for index in range(3))
    assert (hero["rows"], hero["cols"], len(hero["cells"]), hero["head"]) == (
        "prompt",
        "aspect_ratio",
        2,
        ["16:9", "9:16"],
    )
    assert teaser["cells"] == [["", ["a teaser of a matte black watch"]]]
    assert (stills["rows"], stills["cols"]) == ("aspect_ratio", "resolution")
    assert browser.evaluate("document.querySelectorAll('td.empty').length") == 0
    assert browser.evaluate("document.documentElement.scrollWidth") <= 1400
    browser.click("section.sweep:nth-of-type(3) button.swap")  # 7 columns of 248 px
    assert grid(browser, 2)["cols"] == "aspect_ratio"
    assert browser.evaluate("document.documentElement.scrollWidth") <= 1400
    wide = "document.querySelectorAll('.scroller')[2]"
    assert browser.evaluate(f"{wide}.scrollWidth > {wide}.clientWidth")  # it scrolls inside


def test_a_failed_job_shows_failed_and_its_error_in_its_cell(
    browser: Browser, mixed_run: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, env = mixed_run
    page = tmp_path / "failed.html"
    assert genbatch(["gallery", str(path), "-o", str(page)], env=env, cwd=tmp_path).returncode == 0

    browser.open(page, width=1400)

    cells = browser.evaluate(
        "Array.from(document.querySelectorAll('td.cell'), (td) => "
        "[td.closest('tr').cells[0].textContent, td.querySelector('.media').textContent])"
    )
    failed = [media for label, media in cells if label == HOSTILE]
    assert len(failed) == 2 and all(media.startswith("failed") for media in failed)
    assert all(media == "" for label, media in cells if label != HOSTILE)  # done: the clip
