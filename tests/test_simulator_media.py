"""Output files: real MP4 and PNG bytes, per request, public, with HTTP Range support."""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Callable, Iterator
from hashlib import sha256
from pathlib import Path

import httpx
import pytest

from genbatch.simulator import PNG_SIGNATURE, Simulator

MakeSimulator = Callable[..., Simulator]

KLING = "kling/kling-2-6/pro/text-to-video"
WAN = "wan-ai/wan-2-6/text-to-video"
NANO = "google/nano-banana-2/text-to-image"

# A closed connection reads as a protocol error or, when the close races unread bytes, a reset.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


def outputs(client: httpx.Client, model: str, body: dict[str, object]) -> tuple[str, list[str]]:
    request_id = client.post(f"/v1/models/{model}", json=body).json()["request_id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        result = client.get(f"/v1/requests/{request_id}/result").json()
        if result["status"] == "succeeded":
            value = next(iter(result["output"].values()))
            return request_id, value if isinstance(value, list) else [value]
        time.sleep(0.01)
    raise AssertionError("never finished")


def mp4_boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """Top-level (type, payload) boxes; fails unless they tile the file exactly."""
    boxes, offset = [], 0
    while offset < len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        assert size >= 8, "box sizes of 0 or 1 are not used by the simulator"
        boxes.append((kind, data[offset + 8 : offset + size]))
        offset += size
    assert offset == len(data)
    return boxes


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) chunks, each CRC checked."""
    assert data.startswith(PNG_SIGNATURE)
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        payload = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + payload) & 0xFFFFFFFF, kind
        chunks.append((kind, payload))
        offset += 12 + length
    return chunks


@pytest.fixture
def fast(make_simulator: MakeSimulator) -> Simulator:
    return make_simulator(durations={KLING: (5.0, 0.0), WAN: (5.0, 0.0)})


@pytest.fixture
def client(fast: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fast.base_url, headers=fast.headers, timeout=5) as client:
        yield client


def test_a_clip_is_an_h264_mp4_naming_its_request(
    fast: Simulator, client: httpx.Client, tmp_path: Path
) -> None:
    request_id, [url] = outputs(client, KLING, {"prompt": "x", "aspect_ratio": "9:16"})

    response = httpx.get(url)  # no token: files are public, like the CDN

    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    data = response.content
    assert int(response.headers["content-length"]) == len(data)
    boxes = mp4_boxes(data)
    kinds = [kind for kind, _ in boxes]
    assert kinds[0] == b"ftyp"
    assert boxes[0][1][:4] == b"isom"
    assert kinds.index(b"moov") < kinds.index(b"mdat")  # faststart: plays while downloading
    assert b"avc1" in dict(boxes)[b"moov"]
    assert kinds[-1] == b"free"
    assert request_id.encode() in boxes[-1][1]
    [info] = fast.records[request_id].outputs
    assert (info.sha256, info.size, info.content_type) == (
        sha256(data).hexdigest(),
        len(data),
        "video/mp4",
    )
    if shutil.which("ffprobe"):  # a decoder's word, where one is installed
        clip = tmp_path / "clip.mp4"
        clip.write_bytes(data)
        probe = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width,height",
                "-of",
                "csv=p=0",
                str(clip),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert probe.stdout.strip() == "h264,36,64"


def test_every_clip_differs(fast: Simulator, client: httpx.Client) -> None:
    _, [first] = outputs(client, WAN, {"prompt": "x"})
    _, [second] = outputs(client, WAN, {"prompt": "x"})  # the same body again
    _, [other] = outputs(client, KLING, {"prompt": "x"})
    urls = [first, second]

    hashes = {sha256(httpx.get(url).content).hexdigest() for url in [*urls, other]}

    assert len(hashes) == 3


@pytest.mark.parametrize(
    ("aspect", "size"), [("1:1", (64, 64)), ("16:9", (64, 36)), ("3:4", (48, 64))]
)
def test_an_image_is_a_decodable_png(
    fast: Simulator, client: httpx.Client, aspect: str, size: tuple[int, int]
) -> None:
    request_id, [url] = outputs(client, NANO, {"prompt": "x", "aspect_ratio": aspect})

    response = httpx.get(url)

    assert response.headers["content-type"] == "image/png"
    chunks = png_chunks(response.content)
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert ((width, height), depth, colour) == (size, 8, 2)
    pixels = zlib.decompress(b"".join(p for kind, p in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + width * 3)
    assert request_id.encode() in dict(chunks)[b"tEXt"]
    assert fast.records[request_id].outputs[0].sha256 == sha256(response.content).hexdigest()


def test_images_of_one_request_differ(fast: Simulator, client: httpx.Client) -> None:
    _, urls = outputs(client, NANO, {"prompt": "x", "num_images": 4})

    assert len({httpx.get(url).content for url in urls}) == 4


def test_range_requests(fast: Simulator, client: httpx.Client) -> None:
    _, [url] = outputs(client, KLING, {"prompt": "x"})
    whole = httpx.get(url).content
    size = len(whole)

    def get(range_header: str) -> httpx.Response:
        return httpx.get(url, headers={"Range": range_header})

    middle = get("bytes=100-199")
    assert middle.status_code == 206
    assert middle.headers["content-range"] == f"bytes 100-199/{size}"
    assert middle.headers["content-length"] == "100"
    assert middle.content == whole[100:200]
    assert get("bytes=1000-").content == whole[1000:]
    assert get("bytes=-16").content == whole[-16:]
    assert get(f"bytes=0-{size * 2}").headers["content-range"] == f"bytes 0-{size - 1}/{size}"
    unsatisfiable = get(f"bytes={size}-")
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{size}"
    assert get("bytes=0-1,5-9").status_code == 200  # several ranges: whole file, as allowed
    assert get("pages=1-2").status_code == 200
    assert httpx.get(url).headers["accept-ranges"] == "bytes"


def test_a_download_resumes_with_range_after_a_truncation(
    fast: Simulator, client: httpx.Client
) -> None:
    _, [url] = outputs(client, KLING, {"prompt": "x"})
    whole = httpx.get(url).content
    fast.inject(route="file", fault="truncate", keep=1000)

    received = bytearray()
    with pytest.raises(DROPPED), httpx.stream("GET", url) as response:
        for chunk in response.iter_bytes():
            received += chunk
    rest = httpx.get(url, headers={"Range": f"bytes={len(received)}-"})

    assert len(received) == 1000
    assert bytes(received) + rest.content == whole


def test_head_gives_the_size_without_the_body(fast: Simulator, client: httpx.Client) -> None:
    request_id, [url] = outputs(client, NANO, {"prompt": "x"})

    response = httpx.head(url)

    assert response.status_code == 200
    assert int(response.headers["content-length"]) == fast.records[request_id].outputs[0].size
    assert response.content == b""


def test_files_of_unknown_or_unfinished_requests_are_404(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(time_scale=1.0)
    with httpx.Client(base_url=sim.base_url, headers=sim.headers) as client:
        request_id = client.post(f"/v1/models/{NANO}", json={"prompt": "x"}).json()["request_id"]
        assert httpx.get(f"{sim.base_url}/files/{request_id}/output-0.png").status_code == 404
    assert httpx.get(f"{sim.base_url}/files/nope/output-0.png").status_code == 404
