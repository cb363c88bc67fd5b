"""A download cancelled mid-stream keeps its ``.part`` for a later run, which resumes it only
when the bytes held and the host's answer are both those of the same file.

The downloader is driven through its own interface against a file host over
``httpx.MockTransport``: a first ``Downloader`` (one run) is cancelled while the file streams
in, a second (the next run) fetches the same URL into the same folder. The CLI's Ctrl-C, through
the simulator over HTTP, is in ``tests/test_crash.py``.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import anyio
import httpx
import pytest

from genbatch.backoff import Backoff
from genbatch.client import RunComfyClient
from genbatch.downloads import Downloader, HostPolicy
from genbatch.resume_points import note_of

URL = "https://x.runcomfy.net/a.jpg"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64
SENT_FIRST = 1000
"""Bytes of the whole file a first answer sends before it stalls."""


class StallingBody(httpx.AsyncByteStream):
    """Sends ``first``, says so, then never sends more: a download in progress."""

    def __init__(self, first: bytes, streaming: anyio.Event) -> None:
        self._first = first
        self._streaming = streaming

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._first
        # Asked for more: the first bytes are written.
        self._streaming.set()
        await anyio.sleep_forever()


class FileHost:
    """Serves ``body`` whole (200) or from a ``Range`` (206), with a strong ETag of its bytes;
    a whole answer stalls after ``SENT_FIRST`` bytes while ``stall`` is set."""

    def __init__(self, body: bytes, *, encoding: str | None = None) -> None:
        self.body = body
        self.encoding = encoding
        self.stall = True
        self.streaming = anyio.Event()
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        wanted = request.headers.get("range")
        self.asked.append(wanted or "whole")
        headers = {"etag": f'"{hashlib.sha256(self.body).hexdigest()}"'}
        if wanted is not None and self.encoding is None:
            first = int(wanted.removeprefix("bytes=").rstrip("-"))
            if first >= len(self.body):
                return httpx.Response(416, headers={"content-range": f"bytes */{len(self.body)}"})
            headers["content-range"] = f"bytes {first}-{len(self.body) - 1}/{len(self.body)}"
            return httpx.Response(206, headers=headers, stream=httpx.ByteStream(self.body[first:]))
        body = self.body
        if self.encoding is not None:
            headers["content-encoding"] = self.encoding
            body = gzip.compress(body, mtime=0)
        headers["content-length"] = str(len(body))
        if not self.stall:
            return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))
        stream = StallingBody(body[:SENT_FIRST], self.streaming)
        return httpx.Response(200, headers=headers, stream=stream)


async def _fetch(host: FileHost, directory: Path) -> str:
    async with RunComfyClient(
        base_url="https://x.runcomfy.net", token=None, transport=httpx.MockTransport(host)
    ) as client:
        downloader = Downloader(
            client,
            hosts=HostPolicy(api_host="x.runcomfy.net"),
            attempts=3,
            backoff=Backoff(base=0.001, cap=0.001),
        )
        file = await downloader.fetch(URL, directory=directory, stem="a", default_extension=".jpg")
    return file.sha256


async def _interrupt(host: FileHost, directory: Path) -> None:
    """A fetch cancelled (as Ctrl-C cancels a run) once the file streams in."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(_fetch, host, directory))
        await host.streaming.wait()
        tg.cancel_scope.cancel()


def interrupted(tmp_path: Path, host: FileHost) -> Path:
    """The ``.part`` path of a fetch of ``host``'s file into ``tmp_path``, interrupted."""
    anyio.run(_interrupt, host, tmp_path)
    host.stall = False
    return tmp_path / ".a.part"


def resumed(tmp_path: Path, host: FileHost) -> str:
    """The sha256 a second fetch (the next run) reports; the file on disk must have it."""
    digest = anyio.run(_fetch, host, tmp_path)
    assert hashlib.sha256((tmp_path / "a.jpg").read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]  # no part, no note left
    return digest


def test_a_cancelled_download_keeps_its_part_and_the_next_fetch_asks_for_the_rest(
    tmp_path: Path,
) -> None:
    host = FileHost(JPEG)

    part = interrupted(tmp_path, host)

    assert part.read_bytes() == JPEG[:SENT_FIRST] and note_of(part).exists()
    assert resumed(tmp_path, host) == hashlib.sha256(JPEG).hexdigest()
    assert host.asked == ["whole", f"bytes={SENT_FIRST}-"]


def test_a_compressed_body_cancelled_mid_stream_is_never_kept(tmp_path: Path) -> None:
    """Its bytes so far are checked only at its end (gzip's checksum): not trusted."""
    host = FileHost(JPEG, encoding="gzip")

    interrupted(tmp_path, host)

    assert list(tmp_path.iterdir()) == []


def test_a_file_changed_on_its_host_since_the_interruption_is_fetched_whole(
    tmp_path: Path,
) -> None:
    """Its ETag is not the one noted: the 206 is refused, never appended to the old bytes."""
    host = FileHost(JPEG)
    interrupted(tmp_path, host)
    host.body = JPEG[:4] + bytes(reversed(JPEG[4:]))

    assert resumed(tmp_path, host) == hashlib.sha256(host.body).hexdigest()
    assert host.asked == ["whole", f"bytes={SENT_FIRST}-", "whole"]


def test_a_part_of_another_url_is_not_resumed(tmp_path: Path) -> None:
    host = FileHost(JPEG)
    part = interrupted(tmp_path, host)
    note_of(part).write_text(note_of(part).read_text().replace("/a.jpg", "/b.jpg"))

    assert resumed(tmp_path, host) == hashlib.sha256(JPEG).hexdigest()
    assert host.asked == ["whole", "whole"]


@pytest.mark.parametrize("note", ["", "{not json", '{"url": 1}'])
def test_a_note_that_cannot_be_read_means_starting_over(tmp_path: Path, note: str) -> None:
    host = FileHost(JPEG)
    part = interrupted(tmp_path, host)
    note_of(part).write_text(note)

    assert resumed(tmp_path, host) == hashlib.sha256(JPEG).hexdigest()
    assert host.asked == ["whole", "whole"]


def test_a_host_with_no_bytes_from_the_noted_one_is_asked_for_the_whole_file(
    tmp_path: Path,
) -> None:
    """A 416 (the file is now shorter than the part): fetched again from its start, not
    refused forever."""
    host = FileHost(JPEG)
    interrupted(tmp_path, host)
    host.body = JPEG[: SENT_FIRST // 2]

    assert resumed(tmp_path, host) == hashlib.sha256(host.body).hexdigest()
    assert host.asked == ["whole", f"bytes={SENT_FIRST}-", "whole"]
