"""`genbatch gallery`: the page's layout, its escaping, and what a real headless browser sees.

The browser tests need Chromium (Debian: apt-get install chromium). They skip without it, and
fail instead when GENBATCH_REQUIRE_BROWSER=1 (as in .ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch.gallery import choose_axes
from genbatch.simulator import Simulator

from support import KLING, cli_env, genbatch

FAST = 0.0005
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
HOSTILE = '<script>alert(1)</script> "quoted" & <img src=x onerror=alert(2)>'


def chromium() -> str:
    """The browser binary, or skip (fail when the browser is required)."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("GENBATCH_REQUIRE_BROWSER") == "1":
        pytest.fail("GENBATCH_REQUIRE_BROWSER=1 but no Chromium found (apt-get install chromium)")
    pytest.skip(
        "no Chromium on PATH (apt-get install chromium); set GENBATCH_REQUIRE_BROWSER=1 "
        "to make this mandatory"
    )


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


@pytest.fixture
def mixed_run(tmp_path: Path, sim: Simulator) -> tuple[Path, dict[str, str]]:
    """A run of 2 prompts x 2 aspect ratios: the first prompt done, the second failed."""
    env = cli_env(sim, tmp_path / "ledger.db")
    run(manifest(tmp_path, ["a calm lake at dawn"]), env, tmp_path)
    path = manifest(tmp_path, ["a calm lake at dawn", HOSTILE])
    with Simulator(time_scale=FAST, fail_rate=1.0) as failing:
        run(path, cli_env(failing, tmp_path / "ledger.db"), tmp_path)
    return path, env


def test_the_default_layout_is_prompt_rows_by_the_smallest_independent_axis() -> None:
    table = [
        {"prompt": f"a {animal} {shot}", "animal": animal, "aspect_ratio": ratio, "repeat": "0"}
        for animal in ("fox", "owl")
        for shot in ("walks", "looks")
        for ratio in ("16:9", "9:16", "1:1")
    ]

    axes = choose_axes(table)

    assert (axes.rows, axes.cols) == ("prompt", "aspect_ratio")
    assert choose_axes(table, cols="animal").rows == "prompt"
    assert choose_axes(table, rows="aspect_ratio").cols == "animal"


def test_the_gallery_is_private_escaped_and_links_media_relatively(
    tmp_path: Path, mixed_run: tuple[Path, dict[str, str]]
) -> None:
    path, env = mixed_run

    done = genbatch(["gallery", str(path)], env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    page = Path(done.stdout.strip())
    assert page == tmp_path / "out" / "gallery.html"
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
    assert 'class="chip"><b>prompt</b>' in dom  # what the axes leave out is on each item
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_an_unknown_axis_is_a_one_line_usage_error(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    path = manifest(tmp_path, ["a calm lake at dawn"])
    run(path, env, tmp_path)

    done = genbatch(["gallery", str(path), "--cols", "nope"], env=env, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.startswith("genbatch: error: --cols: no job has 'nope'; choose from ")
    assert "aspect_ratio" in done.stderr and len(done.stderr.splitlines()) == 1
