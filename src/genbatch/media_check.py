"""Is a downloaded file the media it should be? Cheap checks: a few bytes at the head and tail.

A file host may answer 200 with something else than the output (a CDN's HTML error page, an
empty body) or with a file cut short whose ``Content-Length`` matches the cut. Each check reads
at most a few bytes per container box, never the whole file:

- the content type must not be a page or a document (``text/*``, JSON, XML); a media type
  with no check here (SVG, AVIF named only by its content type...) is trusted unchecked;
- the first bytes must be a signature of the expected kind (an MP4/MOV box, WebM's EBML, PNG,
  JPEG, GIF, WebP, MP3, WAV...);
- where the container says how long it is, the file must be that long: the top-level boxes of
  an MP4/MOV/M4A must end exactly at the end of the file, a PNG must end with its ``IEND``
  chunk, a GIF with its trailer, a RIFF file (WebP, WAV) must hold the size its header gives.
  JPEG, WebM and MP3 have no such cheap end marker and are checked at the head only.
"""

from __future__ import annotations

import mimetypes
import os
import struct
from collections.abc import Callable

KINDS_BY_EXTENSION = {
    **dict.fromkeys((".mp4", ".mov", ".webm"), "video"),
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".webp", ".gif"), "image"),
    **dict.fromkeys((".mp3", ".wav", ".m4a"), "audio"),
}
HEAD_SIZE = 16
_BOX_TYPES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"styp"})
_PNG = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_A = {"video": "a video", "image": "an image", "audio": "an audio"}
_MAX_BOXES = 100_000
_DOCUMENTS = frozenset({"json", "xml", "xhtml+xml", "problem+xml", "javascript"})

Reader = Callable[[int, int], bytes]
"""``read(size, offset)``: up to ``size`` bytes of the file at ``offset``."""


def kind_for(extension: str) -> str | None:
    """``video``, ``image`` or ``audio`` for a media file extension; None for anything else."""
    return KINDS_BY_EXTENSION.get(extension.lower())


def expected_kind(extension: str, content_type: str | None, *, from_url: bool) -> str | None:
    """The kind of media a file saved as ``extension`` must be, or None to trust it unchecked:
    when the URL names no extension and the host names a media type without a check here
    (``image/svg+xml``, ``image/avif``, ``video/x-matroska``...)."""
    essence = (content_type or "").split(";")[0].strip().lower()
    media = essence.partition("/")[0] in ("image", "video", "audio")
    if media and not from_url and mimetypes.guess_extension(essence) not in KINDS_BY_EXTENSION:
        return None
    return kind_for(extension)


def content_type_problem(kind: str | None, content_type: str | None) -> str | None:
    """Why a response of ``content_type`` cannot be a ``kind`` file, or None when it can."""
    if kind is None or not content_type:
        return None
    essence = content_type.split(";")[0].strip().lower()
    main, _, sub = essence.partition("/")
    if main == "text" or (main == "application" and (sub in _DOCUMENTS or sub.endswith("+json"))):
        return f"the host sent {essence}, not {_A[kind]} file"
    return None


def file_problem(kind: str | None, size: int, read: Reader) -> str | None:
    """Why a complete file of ``size`` bytes is not a whole ``kind`` file, or None."""
    if kind is None:
        return None
    if size == 0:
        return f"the host sent an empty body, not {_A[kind]} file"
    head = read(HEAD_SIZE, 0)
    container = _container(head)
    if container is None or container not in _CONTAINERS_BY_KIND[kind]:
        return f"the first bytes ({head[:8].hex()}) are not those of {_A[kind]} file"
    check = _END_CHECKS.get(container)
    return check(size, read) if check else None


def _container(head: bytes) -> str | None:
    """The container format ``head`` starts, by its signature."""
    if head[4:8] in _BOX_TYPES:
        return "isobmff"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "ebml"
    if head.startswith(_PNG):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"WAVE"):
        return "riff"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mpeg-audio"
    return None


_CONTAINERS_BY_KIND = {
    "video": frozenset({"isobmff", "ebml"}),
    "image": frozenset({"png", "jpeg", "gif", "riff", "isobmff"}),  # isobmff: AVIF, HEIC
    "audio": frozenset({"isobmff", "riff", "mpeg-audio"}),
}


def _boxes_end_at_the_end(size: int, read: Reader) -> str | None:
    """The top-level boxes of an ISO BMFF file (MP4, MOV, M4A) tile it exactly."""
    position = 0
    for _ in range(_MAX_BOXES):
        if position == size:
            return None
        header = read(16, position)
        if len(header) < 8:
            break
        box_size = struct.unpack(">I", header[:4])[0]
        if box_size == 0:  # the last box runs to the end of the file
            return None
        if box_size == 1 and len(header) == 16:
            box_size = struct.unpack(">Q", header[8:16])[0]
        if box_size < 8:
            return f"a broken box header at byte {position}"
        position += box_size
    else:
        return None  # more boxes than worth walking: what was walked was sound
    return f"the file stops at byte {size} inside a box that runs to byte {position}"


def _png_ends(size: int, read: Reader) -> str | None:
    if read(len(_PNG_END), size - len(_PNG_END)) != _PNG_END:
        return "the PNG has no IEND chunk at its end: cut short"
    return None


def _gif_ends(size: int, read: Reader) -> str | None:
    return None if read(1, size - 1) == b";" else "the GIF has no trailer at its end: cut short"


def _riff_holds_its_size(size: int, read: Reader) -> str | None:
    declared = struct.unpack("<I", read(4, 4))[0] + 8
    if size < declared:
        return f"the file is {size} bytes, its header says {declared}: cut short"
    return None


_END_CHECKS: dict[str, Callable[[int, Reader], str | None]] = {
    "isobmff": _boxes_end_at_the_end,
    "png": _png_ends,
    "gif": _gif_ends,
    "riff": _riff_holds_its_size,
}


def reader_of(fd: int) -> Reader:
    """A ``Reader`` of an open file descriptor (positional reads: the write offset stays)."""
    return lambda size, offset: os.pread(fd, size, max(0, offset))
