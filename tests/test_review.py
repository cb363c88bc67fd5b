"""`genbatch review`: the gallery served live with ratings, its guards against hostile
requests, and what ratings change elsewhere (export filters, metadata.jsonl, show, status).

The server tests run it in-process on real loopback HTTP over a real SQLite ledger whose jobs
were taken to done through the ledger's API with real files; the browser test drives the CLI
in headless Chromium (tests/browser.py), like a user.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from browser import Browser
from genbatch.errors import UsageError
from genbatch.export import ExportFilter, ledger_export_rows, write_run_metadata
from genbatch.jobs import JobSpec
from genbatch.ledger import Ledger, RunInfo, StoredFile, resolve_location
from genbatch.lifecycle import Move
from genbatch.ratings import Rating, Verdict
from genbatch.review import ReviewServer, ReviewSession
from genbatch.simulator import Simulator
from genbatch.states import JobState

from support import KLING, cli_env, genbatch, start_genbatch, wait_until

ANIMALS = ("red fox", "snow owl")
RATIOS = ("16:9", "9:16")


def specs(out: Path, *, animals: tuple[str, ...] = ANIMALS) -> list[JobSpec]:
    """Jobs of a 2-axis sweep (animal x aspect_ratio) writing to ``out``."""
    return [
        JobSpec(
            key=f"{animal[:3]}-{ratio[:2]}",
            ordinal=index,
            block="main",
            model_id=KLING,
            inputs={"prompt": f"a {animal}", "aspect_ratio": ratio},
            variables={"animal": animal},
            file_stem=f"{index:02d}",
            output_dir=str(out),
        )
        for index, (animal, ratio) in enumerate((a, r) for a in animals for r in RATIOS)
    ]


def finish_all(ledger: Ledger, run: RunInfo, *, files: int = 1) -> None:
    """Take every pending job of ``run`` to done, each with ``files`` real files."""
    for job in ledger.claim_jobs(run.id, 100, worker="w", lease_seconds=60):
        moved = ledger.try_move(job, Move.ACCEPT, worker="w", request_id=f"req-{job.key}")
        assert moved is not None
        urls = [f"https://x/{job.key}/{n}" for n in range(files)]
        moved = ledger.try_move(moved, Move.SUCCEED, worker="w", urls=urls)
        assert moved is not None
        stored = []
        for output in ledger.outputs(job.id):
            suffix = f"-{output.position}" if files > 1 else ""
            path = Path(job.output_dir) / f"{job.file_stem}{suffix}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"not really a clip " + job.key.encode())
            size = path.stat().st_size
            stored.append(StoredFile(output_id=output.id, path=str(path), size=size, sha256="0"))
        assert ledger.try_move(moved, Move.FINISH, worker="w", files=stored) is not None


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(resolve_location(str(tmp_path / "ledger.db")))
    yield opened
    opened.close()


@pytest.fixture
def run(ledger: Ledger, tmp_path: Path) -> RunInfo:
    made, _ = ledger.sync_run("zoo", str(tmp_path / "zoo.yaml"), specs(tmp_path / "out"))
    finish_all(ledger, made)
    return made


@pytest.fixture
def server(ledger: Ledger, run: RunInfo) -> Iterator[ReviewServer]:
    with ReviewServer(ReviewSession(ledger, run, metadata_delay=0.05)) as serving:
        yield serving


@pytest.fixture
def client(server: ReviewServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.session.url, timeout=10) as opened:
        yield opened


def numbers(page: str) -> list[int]:
    """The file numbers the page rates, in page order."""
    import re

    return [int(n) for n in re.findall(r'class="rate" data-output="(\d+)"', page)]


def rate(client: httpx.Client, number: int, **fields: Any) -> httpx.Response:
    """PUT a rating as the page does (JSON, from the page's origin)."""
    return rate_raw(client, number, json.dumps(fields), "application/json")


# -- serving ----------------------------------------------------------------------------------


def test_the_page_lists_every_file_with_its_rating_and_serves_the_files(
    client: httpx.Client, ledger: Ledger, run: RunInfo, server: ReviewServer
) -> None:
    page = client.get("")
    first, *others = numbers(page.text)

    assert page.status_code == 200 and len(others) == 3
    assert server.session.url.startswith("http://127.0.0.1:")
    with pytest.raises(httpx.ConnectError):  # loopback's own address only, not all of 127/8
        httpx.get(f"http://127.0.0.2:{server.session.port}/")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    media = client.get(f"media/{first}")
    assert media.status_code == 200 and media.content.startswith(b"not really a clip")
    assert media.headers["content-type"] == "video/mp4"


def test_a_rating_is_stored_in_the_ledger_and_shown_after_a_reload(
    client: httpx.Client, ledger: Ledger
) -> None:
    first, second, *_ = numbers(client.get("").text)

    kept = rate(client, first, verdict="kept", stars=4, note="  sharp <b>fur</b>  ")
    rejected = rate(client, second, verdict="rejected")
    cleared = rate(client, second, verdict=None, stars=None, note=None)

    assert kept.status_code == 200, kept.text
    assert kept.json() | {"rated_by": None} == {
        "verdict": "kept",
        "stars": 4,
        "note": "sharp <b>fur</b>",
        "rated_by": None,
    }
    assert rejected.json()["verdict"] == "rejected"
    assert cleared.json() == {"verdict": None, "stars": None, "note": None}
    (stored,) = ledger.ratings().values()
    assert (stored.verdict, stored.stars) == (Verdict.KEPT, 4)
    again = client.get("").text
    assert f'data-output="{first}" data-verdict="kept" data-stars="4"' in again
    assert 'value="sharp &lt;b&gt;fur&lt;/b&gt;"' in again
    assert f'data-output="{second}" data-verdict="" data-stars=""' in again


def test_ratings_survive_a_rerun_of_an_edited_manifest(
    client: httpx.Client, ledger: Ledger, run: RunInfo, tmp_path: Path
) -> None:
    first, *_ = numbers(client.get("").text)
    rate(client, first, verdict="kept", stars=5)

    # The manifest gains an animal: the run is synced again, old jobs keep their keys.
    bigger = specs(tmp_path / "out", animals=(*ANIMALS, "lynx"))
    ledger.sync_run("zoo", str(tmp_path / "zoo.yaml"), bigger)
    finish_all(ledger, run)
    page = client.get("").text

    assert len(numbers(page)) == 6
    assert f'data-output="{first}" data-verdict="kept" data-stars="5"' in page


def test_a_rating_rewrites_metadata_jsonl_with_verdict_stars_and_note(
    client: httpx.Client, ledger: Ledger, run: RunInfo, tmp_path: Path
) -> None:
    first, *_ = numbers(client.get("").text)
    metadata = tmp_path / "out" / "metadata.jsonl"
    write_run_metadata(ledger, run.id)  # as a run's exit leaves it: the next write may append

    rate(client, first, verdict="kept", stars=3, note="best light")

    def rated_rows() -> list[dict[str, Any]]:
        if not metadata.exists():
            return []
        rows = [json.loads(line) for line in metadata.read_text().splitlines()]
        return [row for row in rows if row["verdict"]]

    wait_until(lambda: bool(rated_rows()), timeout=10, what="metadata.jsonl rewritten")
    (row,) = rated_rows()
    assert (row["file_name"], row["verdict"], row["stars"], row["note"]) == (
        "00.mp4",
        "kept",
        3,
        "best light",
    )
    assert len(metadata.read_text().splitlines()) == 4


def test_a_rating_made_elsewhere_makes_the_next_metadata_write_whole(
    ledger: Ledger, run: RunInfo, tmp_path: Path
) -> None:
    write_run_metadata(ledger, run.id)
    (item, *_) = ledger.job_outputs(run_id=run.id)
    ledger.rate(Rating(job_key=item.job.key, position=0, verdict=Verdict.REJECTED))

    write_run_metadata(ledger, run.id)  # what a run's exit does: append when it can

    rows = [
        json.loads(line) for line in (tmp_path / "out" / "metadata.jsonl").read_text().splitlines()
    ]
    assert [row["verdict"] for row in rows] == ["rejected", None, None, None]


def test_each_file_of_a_job_with_several_is_rated_on_its_own(
    ledger: Ledger, tmp_path: Path
) -> None:
    run, _ = ledger.sync_run("pairs", "pairs.yaml", specs(tmp_path / "pairs"))
    finish_all(ledger, run, files=2)
    with (
        ReviewServer(ReviewSession(ledger, run)) as server,
        httpx.Client(base_url=server.session.url) as client,
    ):
        page = client.get("").text
        rate(client, numbers(page)[1], verdict="kept")  # the second file of the first job

    rows = list(ledger_export_rows(ledger, [run.id], ExportFilter(kept=True)))
    assert len(numbers(page)) == 8 and page.count('<span class="which">#2</span>') == 4
    assert [(row["job_key"], row["file_name"]) for row in rows] == [("red-16", "00-1.mp4")]


def test_a_session_for_unknown_axes_or_a_run_without_jobs_fails_before_serving(
    ledger: Ledger, run: RunInfo
) -> None:
    empty, _ = ledger.sync_run("empty", "empty.yaml", [])

    with pytest.raises(UsageError, match="has no jobs"):
        ReviewSession(ledger, empty)
    with pytest.raises(UsageError, match="seed"):
        ReviewSession(ledger, run, rows="seed")


# -- hostile requests -------------------------------------------------------------------------


def test_without_the_token_or_with_a_wrong_one_nothing_is_served(
    server: ReviewServer, client: httpx.Client
) -> None:
    first, *_ = numbers(client.get("").text)
    root = f"http://127.0.0.1:{server.session.port}"
    token = server.session.token
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")

    for path in ("/", f"/{wrong}/", f"/{wrong}/media/{first}", f"/media/{first}", f"/{token}"):
        answer = httpx.get(root + path)
        assert answer.status_code == 404, path
        assert "not really a clip" not in answer.text and "<html" not in answer.text


def test_paths_in_requests_never_reach_the_filesystem(
    server: ReviewServer, client: httpx.Client, ledger: Ledger, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret")
    other, _ = ledger.sync_run("other", "other.yaml", specs(tmp_path / "elsewhere"))
    finish_all(ledger, other)  # files of another run: not this review's
    foreign = max(o.id for item in ledger.job_outputs(run_id=other.id) for o in item.outputs)
    base = server.session.url

    hostile = [
        "media/../../../../secret.txt",
        "media/..%2f..%2f..%2fsecret.txt",
        "media/%2e%2e/%2e%2e/secret.txt",
        f"media/{tmp_path}/secret.txt",
        "media/-1",
        f"media/{foreign}",
        "media/1e3",
        "../secret.txt",
    ]
    for path in hostile:
        request = httpx.Request("GET", base + path)
        request.url = request.url.copy_with(raw_path=(f"/{server.session.token}/" + path).encode())
        with httpx.Client() as raw:
            answer = raw.send(request)
        assert answer.status_code == 404, path
        assert "the secret" not in answer.text and "not really" not in answer.text, path


def test_a_request_naming_another_host_is_refused(
    server: ReviewServer, client: httpx.Client
) -> None:
    for host in ("evil.example", "evil.example:80", f"127.0.0.2:{server.session.port}"):
        answer = client.get("", headers={"Host": host})
        assert answer.status_code == 421, host
        assert "<html" not in answer.text


def test_a_rating_from_another_origin_or_not_as_json_is_refused_and_nothing_is_stored(
    client: httpx.Client, ledger: Ledger
) -> None:
    first, *_ = numbers(client.get("").text)
    body = json.dumps({"verdict": "kept"})

    no_origin = client.put(
        f"ratings/{first}", content=body, headers={"Content-Type": "application/json"}
    )
    foreign = client.put(
        f"ratings/{first}",
        content=body,
        headers={"Content-Type": "application/json", "Origin": "http://evil.example"},
    )
    as_form = rate_raw(client, first, body, "application/x-www-form-urlencoded")
    as_text = rate_raw(client, first, body, "text/plain")
    by_get = client.get(f"ratings/{first}")

    assert (no_origin.status_code, foreign.status_code) == (403, 403)
    assert (as_form.status_code, as_text.status_code) == (415, 415)
    assert by_get.status_code == 405
    assert ledger.ratings() == {}


def test_a_bad_rating_is_refused_with_the_field_named_and_nothing_is_stored(
    client: httpx.Client, ledger: Ledger
) -> None:
    first, *_ = numbers(client.get("").text)

    answers = {
        "stars 6": rate(client, first, stars=6),
        "stars true": rate(client, first, stars=True),
        "verdict": rate(client, first, verdict="maybe"),
        "verdict list": rate(client, first, verdict=["kept"]),
        "stars text": rate(client, first, stars="3"),
        "note number": rate(client, first, note=123),
        "note": rate(client, first, note="x" * 2001),
        "not an object": rate_raw(client, first, "[1, 2]", "application/json"),
        "not json": rate_raw(client, first, "{", "application/json"),
        "too large": rate_raw(client, first, json.dumps({"note": "x" * 20000}), "application/json"),
        "unknown file": rate(client, 10**9, verdict="kept"),
    }

    assert {name: a.status_code for name, a in answers.items()} == {
        "stars 6": 400,
        "stars true": 400,
        "verdict": 400,
        "verdict list": 400,
        "stars text": 400,
        "note number": 400,
        "note": 400,
        "not an object": 400,
        "not json": 400,
        "too large": 413,
        "unknown file": 404,
    }
    assert "stars" in answers["stars 6"].json()["error"]
    assert "verdict" in answers["verdict"].json()["error"]
    assert ledger.ratings() == {}


def rate_raw(client: httpx.Client, number: int, body: str, content_type: str) -> httpx.Response:
    origin = str(client.base_url).split("/", 3)
    return client.put(
        f"ratings/{number}",
        content=body,
        headers={"Content-Type": content_type, "Origin": f"{origin[0]}//{origin[2]}"},
    )


# -- exports -----------------------------------------------------------------------------------


def test_export_filters_keep_only_kept_or_well_starred_files_of_the_states_asked(
    ledger: Ledger, run: RunInfo
) -> None:
    keys = [item.job.key for item in ledger.job_outputs(run_id=run.id)]
    ledger.rate(Rating(job_key=keys[0], position=0, verdict=Verdict.KEPT, stars=2))
    ledger.rate(Rating(job_key=keys[1], position=0, verdict=Verdict.KEPT, stars=5))
    ledger.rate(Rating(job_key=keys[2], position=0, verdict=Verdict.REJECTED, stars=5))

    def exported(wanted: ExportFilter) -> list[str]:
        return [row["job_key"] for row in ledger_export_rows(ledger, [run.id], wanted)]

    assert exported(ExportFilter()) == keys
    assert exported(ExportFilter(kept=True)) == keys[:2]
    assert exported(ExportFilter(min_stars=4)) == keys[1:3]
    assert exported(ExportFilter(kept=True, min_stars=4)) == [keys[1]]
    assert exported(ExportFilter(states=frozenset({JobState.FAILED}))) == []


# -- in a real browser --------------------------------------------------------------------------

REVIEW_READY = "document.body && document.body.dataset.reviewReady === '1'"

ZOO = """model: kling/kling-2-6/pro/text-to-video
name: zoo
inputs: {duration: 5}
prompts: ["a {animal} in the snow"]
grid:
  animal: [red fox, snow owl, lynx]
  aspect_ratio: ["16:9", "9:16"]
output:
  dir: out
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with Browser(tmp_path_factory.mktemp("profile")) as opened:
        yield opened


def verdicts(browser: Browser) -> dict[str, list[str]]:
    """The page's ratings: each figure's job key with its files' verdict and stars."""
    found: dict[str, list[str]] = browser.evaluate(
        "Object.fromEntries(Array.from(document.querySelectorAll('figure.item'), (f) => "
        "[f.dataset.key, Array.from(f.querySelectorAll('.rate'), "
        "(r) => `${r.dataset.verdict}/${r.dataset.stars}`)]))"
    )
    return found


def test_keep_two_reject_one_star_one_reload_then_export_only_the_kept(
    browser: Browser, tmp_path: Path
) -> None:
    manifest = tmp_path / "zoo.yaml"
    manifest.write_text(ZOO, encoding="utf-8")
    with Simulator(time_scale=0.0005, capacity=8, seed=5) as simulator:
        env = cli_env(simulator, tmp_path / "ledger.db")
        ran = genbatch(["run", str(manifest), "--poll-interval", "0.01"], env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    review = start_genbatch(["review", str(manifest), "--no-open"], env=env, cwd=tmp_path)
    assert review.stdout is not None
    url = review.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url

    browser.navigate(url, ready=REVIEW_READY)
    browser.wait_for("document.body.dataset.mediaLoaded === '6'")
    keys = browser.evaluate(
        "Array.from(document.querySelectorAll('figure.item'), (f) => f.dataset.key)"
    )
    browser.press("ArrowRight")  # the first file
    browser.press("k")
    browser.press("ArrowRight")
    browser.press("k")
    browser.press("4")
    browser.click(f'figure[data-key="{keys[2]}"] button[data-verdict="rejected"]')
    browser.click(f'figure[data-key="{keys[3]}"] button[data-stars="2"]')
    browser.click(f'figure[data-key="{keys[3]}"] input.note')
    browser.type_text("too dark")
    browser.press("Enter")
    browser.wait_for("document.body.dataset.saved === '6'")
    browser.navigate(url, ready=REVIEW_READY)
    after_reload = verdicts(browser)
    counts = browser.evaluate("document.getElementById('review-counts').textContent")
    note = browser.evaluate(
        f"document.querySelector('figure[data-key=\"{keys[3]}\"] input.note').value"
    )

    code, _, stderr = stop(review)
    assert code == 0, stderr
    assert "review stopped" in stderr and "Traceback" not in stderr
    assert after_reload == {
        keys[0]: ["kept/"],
        keys[1]: ["kept/4"],
        keys[2]: ["rejected/"],
        keys[3]: ["/2"],
        keys[4]: ["/"],
        keys[5]: ["/"],
    }
    assert counts == "2 kept1 rejected3 unrated" and note == "too dark"
    kept_file = tmp_path / "kept.parquet"
    exported = genbatch(
        ["export", str(manifest), "--kept", "--format", "parquet", "--output", str(kept_file)],
        env=env,
        cwd=tmp_path,
    )
    assert exported.returncode == 0, exported.stderr
    rows = pq.read_table(kept_file).to_pylist()
    assert [(row["job_key"], row["verdict"], row["stars"]) for row in rows] == [
        (keys[0], "kept", None),
        (keys[1], "kept", 4),
    ]
    metadata_file = tmp_path / "out" / "metadata.jsonl"
    metadata = [json.loads(line) for line in metadata_file.read_text().splitlines()]
    assert sorted((row["verdict"] or "", row["note"] or "") for row in metadata) == [
        ("", ""),
        ("", ""),
        ("", "too dark"),
        ("kept", ""),
        ("kept", ""),
        ("rejected", ""),
    ]
    status = json.loads(genbatch(["status", "--json"], env=env, cwd=tmp_path).stdout)
    assert status["runs"][0]["ratings"] == {
        "files": 6,
        "kept": 2,
        "rejected": 1,
        "unrated": 3,
        "starred": 2,
    }


def test_review_opens_the_browser_unless_told_not_to_and_bad_input_is_one_line(
    tmp_path: Path, ledger: Ledger, run: RunInfo
) -> None:
    opened = tmp_path / "opened.txt"
    opener = tmp_path / "opener"
    opener.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    opener.chmod(0o755)
    env = {"GENBATCH_LEDGER": str(tmp_path / "ledger.db"), "BROWSER": f"{opener} %s"}
    env |= {k: v for k, v in os.environ.items() if not k.startswith(("GENBATCH_", "BROWSER"))}

    review = start_genbatch(["review"], env=env, cwd=tmp_path)
    assert review.stdout is not None
    url = review.stdout.readline().strip()
    wait_until(lambda: opened.exists() and opened.read_text().strip() == url, what="browser")
    code, _, stderr = stop(review)
    bad_axis = genbatch(["review", "--rows", "seed", "--no-open"], env=env, cwd=tmp_path)
    no_manifest = genbatch(["review", "missing.yaml", "--no-open"], env=env, cwd=tmp_path)
    no_ledger = genbatch(
        ["review", "--no-open"],
        env=env | {"GENBATCH_LEDGER": str(tmp_path / "none.db")},
        cwd=tmp_path,
    )

    assert code == 0 and "reviewing 'zoo' (4 file(s))" in stderr
    for done, status in ((bad_axis, 2), (no_manifest, 2), (no_ledger, 4)):
        assert done.returncode == status, done.stderr
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert "seed" in bad_axis.stderr and "missing.yaml" in no_manifest.stderr
    assert not (tmp_path / "none.db").exists()


def stop(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Ctrl-C, as a user stops the server."""
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    return process.returncode, stdout, stderr


def test_the_rating_filter_and_the_compare_view_show_what_they_say(
    browser: Browser,
    server: ReviewServer,
    client: httpx.Client,
    ledger: Ledger,
    run: RunInfo,
    tmp_path: Path,
) -> None:
    ledger.sync_run(
        "zoo", str(tmp_path / "zoo.yaml"), specs(tmp_path / "out", animals=(*ANIMALS, "lynx"))
    )
    finish_all(ledger, run)
    first, second, *_ = numbers(client.get("").text)
    rate(client, first, verdict="kept", stars=5)
    rate(client, second, verdict="rejected", stars=1)
    browser.navigate(server.session.url, ready=REVIEW_READY)

    shown = {}
    for wanted in ("kept", "rejected", "unrated", "5", "1", ""):
        browser.select("#rating-filter", wanted)
        shown[wanted] = browser.evaluate("document.body.dataset.matching")
    browser.select(".compare select", "animal")
    browser.select(".compare select:nth-of-type(3)", "2")
    browser.click('button[data-compare="show"]')
    compared = browser.evaluate(
        "[document.querySelector('section.sweep').dataset.cols, "
        "Array.from(document.querySelectorAll('table.grid thead th'), (t) => t.textContent), "
        "Array.from(document.querySelectorAll('table.grid tbody tr'), (tr) => "
        "Array.from(tr.cells, (c) => c.querySelector('figure') ? "
        "c.querySelector('figure').dataset.key : c.textContent))]"
    )

    assert shown == {"kept": "1", "rejected": "1", "unrated": "4", "5": "1", "1": "2", "": "6"}
    assert compared == [
        "animal",
        ["aspect_ratio ╲ animal", "red fox", "lynx"],
        [["16:9", "red-16", "lyn-16"], ["9:16", "red-9:", "lyn-9:"]],
    ]
