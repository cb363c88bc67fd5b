"""Real, tiny output files, different for every request: H.264 MP4 clips and PNG images.

Clips come from the bundled base clips (made once by ``assets/make_assets.sh``); each request
gets its own copy with a trailing ``free`` box naming it, which players ignore and which moves
no offset of the file. Images are drawn here in pure Python.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from importlib import resources

VIDEO_TYPE = "video/mp4"
IMAGE_TYPE = "image/png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_PALETTES = 4
_CLIP_RATIOS = {"16:9": "16x9", "9:16": "9x16", "1:1": "1x1"}
# Long side 64 px keeps each image a few KB while keeping the requested shape.
_IMAGE_SIZES = {
    "1:1": (64, 64),
    "16:9": (64, 36),
    "9:16": (36, 64),
    "4:3": (64, 48),
    "3:4": (48, 64),
}


@dataclass(frozen=True)
class MediaFile:
    """One output file: its name in the URL, its type and its bytes."""

    name: str
    content_type: str
    data: bytes = field(repr=False)
    sha256: str = field(init=False)
    size: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())
        object.__setattr__(self, "size", len(self.data))


def render(
    kind: str, name: str, request_id: str, index: int, aspect_ratio: str | None
) -> MediaFile:
    """The ``index``-th output file of ``request_id``: a clip for ``video``, else an image."""
    digest = hashlib.sha256(f"{request_id}:{index}".encode()).digest()
    if kind == "video":
        return MediaFile(
            name, VIDEO_TYPE, mp4_for(request_id, index, digest[0] % _PALETTES, aspect_ratio)
        )
    return MediaFile(name, IMAGE_TYPE, png_for(request_id, index, digest, aspect_ratio))


def mp4_for(request_id: str, index: int, palette: int, aspect_ratio: str | None) -> bytes:
    """A playable clip in ``palette`` whose trailing ``free`` box names the request."""
    ratio = _CLIP_RATIOS.get(aspect_ratio or "16:9", "16x9")
    tag = f"genbatch-simulator request_id={request_id} index={index}".encode()
    return _base_clip(palette % _PALETTES, ratio) + _box(b"free", tag)


@functools.cache
def _base_clip(palette: int, ratio: str) -> bytes:
    asset = resources.files("genbatch.simulator").joinpath("assets", f"clip-{palette}-{ratio}.mp4")
    return asset.read_bytes()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def png_for(request_id: str, index: int, digest: bytes, aspect_ratio: str | None) -> bytes:
    """A PNG with colours and stripes drawn from ``digest``, naming the request in a tEXt."""
    width, height = _IMAGE_SIZES.get(aspect_ratio or "1:1", (64, 64))
    first, second = digest[0:3], digest[3:6]
    stripe = 4 + digest[6] % 8
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")  # filter type 0 (None) for every row
        for x in range(width):
            base = first if ((x + y) // stripe) % 2 == 0 else second
            shade = (y * 96) // height
            row += bytes((c + shade) % 256 for c in base)
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    text = b"Comment\x00" + f"genbatch-simulator request_id={request_id} index={index}".encode()
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"tEXt", text)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
        + _chunk(b"IEND", b"")
    )


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)
