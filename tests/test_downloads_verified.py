"""A file marked ``done`` is the file the API produced (issue 14, "Downloads").

Each test runs the real CLI against the simulator over HTTP, the file host misbehaving on
purpose: compressing the answer, sending a page or an empty body with status 200, sending a file
cut short whose ``Content-Length`` matches the cut. Whatever lands under a final name must have
the sha256 of the file the simulator produced; anything else is retried, never kept.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from genbatch.backoff import Backoff
from genbatch.client import RunComfyClient
from genbatch.downloads import Downloader, HostPolicy, NotTheMedia
from genbatch.errors import DownloadError, IncompleteDownload
from genbatch.simulator import Simulator

from support import cli_env, genbatch, kling_manifest, output_files, run_args, sha256_of, status

MakeSimulator = Callable[..., Simulator]

FAST = 0.0005
NANO = "google/nano-banana-2/text-to-image"


def served_hashes(sim: Simulator) -> set[str]:
    return {out.sha256 for info in sim.records.list() for out in info.outputs}


def run_kling(tmp_path: Path, sim: Simulator, jobs: int) -> list[Path]:
    """``genbatch run`` of ``jobs`` clips, which must end with every job done."""
    env = cli_env(sim, tmp_path / "ledger.db")
    done = genbatch(run_args(kling_manifest(tmp_path, jobs)), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert status(env, tmp_path)["counts"]["done"] == jobs
    return output_files(tmp_path / "out")


def image_manifest(directory: Path) -> Path:
    path = directory / "images.yaml"
    path.write_text(f'model: {NANO}\nprompts:\n  - "a red kite"\noutput:\n  dir: out\n')
    return path


# -- compression --------------------------------------------------------------------------------


def test_a_host_that_compresses_when_asked_sends_the_file_as_stored(
    tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(time_scale=FAST, capacity=8)
    sim.inject(route="file", fault="gzip", count=3)

    files = run_kling(tmp_path, sim, 3)

    assert {sha256_of(f) for f in files} == served_hashes(sim) and len(files) == 3
    assert sim.stats.faults["gzip"] == 3


def test_a_file_compressed_regardless_of_what_was_asked_is_decoded(
    tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(time_scale=FAST, capacity=8)
    sim.inject(route="file", fault="gzip_always", count=3)

    files = run_kling(tmp_path, sim, 3)

    assert {sha256_of(f) for f in files} == served_hashes(sim) and len(files) == 3
    assert sim.stats.faults["gzip_always"] == 3
    assert sim.stats.calls["file"] == 3  # decoded on the first try, not refetched


# -- a 200 that is not the media -----------------------------------------------------------------


@pytest.mark.parametrize("fault", ["html_200", "empty_200", "short_200"])
def test_a_200_that_is_not_the_clip_is_retried_and_never_kept(
    tmp_path: Path, make_simulator: MakeSimulator, fault: str
) -> None:
    sim = make_simulator(time_scale=FAST, capacity=8)
    sim.inject(route="file", fault=fault, count=2)

    files = run_kling(tmp_path, sim, 1)

    assert [sha256_of(f) for f in files] == list(served_hashes(sim))
    assert sim.stats.faults[fault] == 2
    assert sim.stats.calls["file"] == 3
    assert not list((tmp_path / "out").glob(".*.part"))


@pytest.mark.parametrize("fault", ["html_200", "short_200"])
def test_a_200_that_is_not_the_image_is_retried_and_never_kept(
    tmp_path: Path, make_simulator: MakeSimulator, fault: str
) -> None:
    sim = make_simulator(time_scale=FAST, capacity=8)
    sim.inject(route="file", fault=fault, count=1)
    env = cli_env(sim, tmp_path / "ledger.db")

    done = genbatch(run_args(image_manifest(tmp_path)), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    [image] = output_files(tmp_path / "out")
    assert image.suffix == ".png" and {sha256_of(image)} == served_hashes(sim)
    assert sim.stats.calls["file"] == 2


def test_a_file_cut_inside_its_header_is_refused_until_the_whole_file_comes(
    tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(time_scale=FAST, capacity=8)
    sim.inject(route="file", fault="short_200", keep=6)

    files = run_kling(tmp_path, sim, 1)

    assert [sha256_of(f) for f in files] == list(served_hashes(sim))


def test_a_host_that_never_sends_the_media_is_reported_and_nothing_is_kept(
    tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    """Retried like a lost connection, then raised: the runner keeps the job ``fetching``."""
    sim = make_simulator(time_scale=FAST, capacity=8)
    env = cli_env(sim, tmp_path / "ledger.db")
    assert genbatch(run_args(kling_manifest(tmp_path, 1)), env=env, cwd=tmp_path).returncode == 0
    [record] = sim.records.list()
    sim.inject(route="file", fault="html_200", count=100)

    async def fetch() -> None:
        async with RunComfyClient(base_url=sim.base_url, token=None) as client:
            downloader = Downloader(client, hosts=HostPolicy(api_host="127.0.0.1"), attempts=3)
            await downloader.fetch(
                record.outputs[0].url,
                directory=tmp_path / "again",
                stem="clip",
                default_extension=".mp4",
            )

    with pytest.raises(NotTheMedia, match="text/html, not a video file"):
        asyncio.run(fetch())
    assert sim.stats.faults["html_200"] == 3
    assert list((tmp_path / "again").iterdir()) == []


def test_a_resumed_answer_shorter_than_its_content_range_total_is_not_kept(
    tmp_path: Path,
) -> None:
    """A host that cuts a ranged answer and its Content-Length, but still says the file's
    whole size in Content-Range: the total wins. (A JPEG: no end marker to catch the cut.)"""
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
    answers: list[str] = []

    def host(request: httpx.Request) -> httpx.Response:
        wanted = request.headers.get("range")
        answers.append(wanted or "whole")
        if wanted is None:  # the whole file announced, a tenth of it sent
            headers = {"content-length": str(len(jpeg))}
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(jpeg[:100]))
        first = int(wanted.removeprefix("bytes=").rstrip("-"))
        cut = jpeg[first : first + 10]
        span = f"bytes {first}-{first + len(cut) - 1}/{len(jpeg)}"
        headers = {"content-range": span, "content-length": str(len(cut))}
        return httpx.Response(206, headers=headers, stream=httpx.ByteStream(cut))

    with pytest.raises(IncompleteDownload, match="sends 110 bytes of a file of 1028"):
        asyncio.run(_fetch_from(host, "https://x.runcomfy.net/a.jpg", tmp_path))
    assert answers == ["whole", "bytes=100-", "bytes=100-"]
    assert not (tmp_path / "a.jpg").exists()


async def _fetch_from(
    host: Callable[[httpx.Request], httpx.Response], url: str, into: Path, *, attempts: int = 3
) -> str:
    """``url`` downloaded from ``host`` as ``into/a.EXT``, in ``attempts`` tries with no wait
    between: its sha256."""
    async with RunComfyClient(
        base_url="https://x.runcomfy.net", token=None, transport=httpx.MockTransport(host)
    ) as client:
        downloader = Downloader(
            client,
            hosts=HostPolicy(api_host="x.runcomfy.net"),
            attempts=attempts,
            backoff=Backoff(base=0.001, cap=0.001),
        )
        extension = "." + url.rsplit(".", 1)[1]
        file = await downloader.fetch(url, directory=into, stem="a", default_extension=extension)
        return file.sha256


@pytest.mark.parametrize("range_answer", ["compressed", "another offset"])
def test_a_206_that_is_not_the_part_asked_for_is_never_written_as_the_file(
    tmp_path: Path, range_answer: str
) -> None:
    """The retry of a cut download asks for the rest; a host answering with part of the file
    whose place is unknown (compressed: its Content-Range no longer describes the bytes) or
    elsewhere must not have it saved as the file from byte 0. (A .glb: no media check would
    catch it.) The file is asked for again whole."""
    glb = b"glTF" + bytes(range(256)) * 64
    answers: list[str] = []

    def host(request: httpx.Request) -> httpx.Response:
        wanted = request.headers.get("range")
        answers.append(wanted or "whole")
        if wanted is None and len(answers) == 1:  # the whole file announced, a part sent
            headers = {"content-length": str(len(glb))}
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(glb[:1000]))
        if wanted is None:
            headers = {"content-length": str(len(glb))}
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(glb))
        first = int(wanted.removeprefix("bytes=").rstrip("-"))
        if range_answer == "compressed":
            span = f"bytes {first}-{len(glb) - 1}/{len(glb)}"
            body = gzip.compress(glb[first:], mtime=0)
            headers = {"content-range": span, "content-encoding": "gzip"}
        else:
            first += 500
            span = f"bytes {first}-{len(glb) - 1}/{len(glb)}"
            body = glb[first:]
            headers = {"content-range": span, "content-length": str(len(body))}
        return httpx.Response(206, headers=headers, stream=httpx.ByteStream(body))

    digest = asyncio.run(_fetch_from(host, "https://x.runcomfy.net/a.glb", tmp_path))

    assert answers == ["whole", "bytes=1000-", "whole"]
    assert digest == hashlib.sha256(glb).hexdigest() == sha256_of(tmp_path / "a.glb")


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8 + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


async def _fetch_encoded(directory: Path, encoding: str, body: bytes) -> str:
    def host(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept-encoding"] == "identity"
        headers = {"content-encoding": encoding, "content-length": str(len(body))}
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))

    return await _fetch_from(host, "https://x.runcomfy.net/a.png", directory, attempts=1)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(PNG)),
        ("x-gzip", gzip.compress(PNG)),
        ("deflate", zlib.compress(PNG)),
        ("deflate", _raw_deflate(PNG)),
    ],
    ids=["gzip", "x-gzip", "deflate", "raw-deflate"],
)
def test_a_compressed_answer_is_stored_decoded(tmp_path: Path, encoding: str, body: bytes) -> None:
    digest = asyncio.run(_fetch_encoded(tmp_path, encoding, body))

    assert digest == hashlib.sha256(PNG).hexdigest() == sha256_of(tmp_path / "a.png")


def test_a_compressed_answer_cut_short_is_not_kept(tmp_path: Path) -> None:
    cut = gzip.compress(PNG)[:-40]

    with pytest.raises(IncompleteDownload, match="ended early"):
        asyncio.run(_fetch_encoded(tmp_path, "gzip", cut))
    assert list(tmp_path.iterdir()) == []


def test_an_encoding_genbatch_cannot_decode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="Content-Encoding 'br'"):
        asyncio.run(_fetch_encoded(tmp_path, "br", b"\x0b\x02\x80hello\x03"))
    assert list(tmp_path.iterdir()) == []


# -- one URL listed twice -------------------------------------------------------------------------


def test_a_url_a_result_lists_twice_is_fetched_once_and_each_output_gets_its_file(
    tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(time_scale=FAST, capacity=8, duplicate_outputs=True)

    files = run_kling(tmp_path, sim, 3)

    served = served_hashes(sim)
    assert len(files) == 6 and len(served) == 3  # two files per job, the same bytes
    assert sorted(sha256_of(f) for f in files) == sorted(2 * list(served))
    assert sim.stats.calls["file"] == 3
    assert len({f.stat().st_ino for f in files}) == 6  # copies, not links to one another


def test_a_duplicate_among_several_images_is_fetched_once(
    tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    sim = make_simulator(time_scale=FAST, capacity=8, duplicate_outputs=True)
    manifest = image_manifest(tmp_path)
    manifest.write_text(manifest.read_text() + "inputs:\n  num_images: 2\n")
    env = cli_env(sim, tmp_path / "ledger.db")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    [record] = sim.records.list()
    first, second = (out.sha256 for out in record.outputs)
    files = output_files(tmp_path / "out")
    assert [sha256_of(f) for f in files] == [first, second, first]
    assert sim.stats.calls["file"] == 2
    again = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sim.stats.calls["file"] == 2 and sim.stats.submissions == 1


# -- media genbatch has no check for ---------------------------------------------------------------


async def _fetch_typed(directory: Path, url: str, content_type: str, body: bytes) -> Path:
    def host(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": content_type, "content-length": str(len(body))}
        return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))

    async with RunComfyClient(
        base_url="https://x.runcomfy.net", token=None, transport=httpx.MockTransport(host)
    ) as client:
        downloader = Downloader(client, hosts=HostPolicy(api_host="x.runcomfy.net"), attempts=1)
        file = await downloader.fetch(url, directory=directory, stem="a", default_extension=".png")
    return file.path


def test_a_media_type_without_a_check_is_trusted_when_the_url_names_no_extension(
    tmp_path: Path,
) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'

    path = asyncio.run(_fetch_typed(tmp_path, "https://x.runcomfy.net/o/1", "image/svg+xml", svg))

    assert path.read_bytes() == svg


def test_an_avif_image_passes_the_image_check(tmp_path: Path) -> None:
    avif = b"\x00\x00\x00\x14ftypavif\x00\x00\x00\x00avif" + b"\x00\x00\x00\x10mdat" + bytes(8)

    path = asyncio.run(_fetch_typed(tmp_path, "https://x.runcomfy.net/o/1.png", "image/png", avif))

    assert path.read_bytes() == avif


def test_an_html_page_named_like_an_image_is_still_refused(tmp_path: Path) -> None:
    page = b"<html><body>Access denied</body></html>"

    with pytest.raises(NotTheMedia, match="text/html, not an image file"):
        asyncio.run(_fetch_typed(tmp_path, "https://x.runcomfy.net/o/1", "text/html", page))
    assert list(tmp_path.iterdir()) == []


# -- a name already taken -----------------------------------------------------------------------


def test_a_file_never_replaces_another_jobs_file_that_has_its_name(
    tmp_path: Path, make_simulator: MakeSimulator
) -> None:
    # The cat job makes two images, cat_0 and cat_1; the dog job's whole name is cat_1.
    sim = make_simulator(time_scale=FAST, capacity=8)
    manifest = tmp_path / "clash.yaml"
    manifest.write_text(
        f"model: {NANO}\njobs:\n"
        '  - name: a\n    inputs: {num_images: 2}\n    prompts: ["a cat"]\n'
        '    output: {dir: out, name: "cat"}\n'
        '  - name: b\n    prompts: ["a dog"]\n    output: {dir: out, name: "cat_1"}\n'
    )
    env = cli_env(sim, tmp_path / "ledger.db")

    done = genbatch(run_args(manifest, "--json"), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    files = output_files(tmp_path / "out")
    assert len(files) == 3  # cat_0, cat_1 and, beside them, the second of the names cat_1
    assert {sha256_of(f) for f in files} == served_hashes(sim)
    exported = genbatch(["export", str(manifest), "--format", "jsonl"], env=env, cwd=tmp_path)
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert {row["file_name"] for row in rows} == {f.name for f in files}
    assert all(sha256_of(tmp_path / "out" / row["file_name"]) == row["sha256"] for row in rows)
    assert "holds other bytes" in done.stdout + done.stderr
