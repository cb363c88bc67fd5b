"""What an interrupted download leaves for a later run: its ``.part`` and a note of its bytes.

A download cancelled while its file streams in (Ctrl-C, SIGTERM, SIGHUP, a run stopped by
another error) keeps its ``.part`` and writes a note beside it, ``.<stem>.part.resume``: the
URL, how many bytes the ``.part`` holds, their sha256, and the file's size and ETag as the host
gave them. A later run resumes from there only when the note is of the same URL, the ``.part``
still starts with exactly those bytes (hashed again: a power loss or an edit since is caught)
and the host answers with the rest of the same file (a 206 from that byte, of the same size and
ETag); otherwise it starts over. The note is written only for bytes that are the file's own:
sent uncompressed (a compressed body's bytes are checked only at its end), written whole. It is
removed once the ``.part`` is opened again: a note only ever describes a ``.part`` no process
writes.

Both files are hidden (their names start with a dot), so nothing takes them for outputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

NOTE_SUFFIX = ".resume"
_BLOCK = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class ResumePoint:
    """The first ``size`` bytes of the file at ``url``, as a ``.part`` holds them."""

    url: str
    size: int
    sha256: str
    """Of those ``size`` bytes."""
    total_size: int | None
    """The whole file's size, when the host said it."""
    etag: str | None
    """The file's strong ETag, when the host sent one."""

    def continued_by(self, *, start: int | None, total_size: int | None, etag: str | None) -> bool:
        """Whether an answer from byte ``start`` of a file of ``total_size`` with ``etag`` is
        the rest of this file: what the host said of it then, it must say again."""
        return (
            start == self.size
            and (self.total_size is None or total_size == self.total_size)
            and (self.etag is None or etag == self.etag)
        )


def note_of(part: Path) -> Path:
    """Where the note of ``part`` is kept."""
    return part.with_name(f"{part.name}{NOTE_SUFFIX}")


def write_note(part: Path, point: ResumePoint) -> None:
    """Leave ``point`` beside ``part``. Not flushed: a note lost or torn by a power loss is
    unreadable (then the download starts over), and its bytes are hashed again before use."""
    data = json.dumps(asdict(point)).encode()
    fd = os.open(note_of(part), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_note(part: Path) -> tuple[bool, ResumePoint | None]:
    """Whether there is a note beside ``part``, and what it says when it can be read whole."""
    try:
        fd = os.open(note_of(part), os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False, None
    except OSError:
        return True, None
    try:
        return True, _parse(os.read(fd, 64 * 1024))
    except OSError:
        return True, None
    finally:
        os.close(fd)


def _parse(data: bytes) -> ResumePoint | None:
    try:
        fields = json.loads(data)
        return ResumePoint(
            url=str(fields["url"]),
            size=_count(fields["size"]),
            sha256=str(fields["sha256"]),
            total_size=None if fields["total_size"] is None else _count(fields["total_size"]),
            etag=None if fields["etag"] is None else str(fields["etag"]),
        )
    except (ValueError, TypeError, KeyError):
        return None


def remove_note(part: Path) -> None:
    """The note beside ``part``, gone (if any)."""
    with contextlib.suppress(OSError):
        note_of(part).unlink(missing_ok=True)


def resume_digest(fd: int, point: ResumePoint) -> hashlib._Hash | None:
    """The sha256 of the first ``point.size`` bytes of ``fd``, ready to take the rest; None
    unless those bytes are the ones ``point`` describes. The file is cut to them."""
    digest, offset = hashlib.sha256(), 0
    while offset < point.size:
        block = os.pread(fd, min(_BLOCK, point.size - offset), offset)
        if not block:
            return None  # shorter than the note says
        digest.update(block)
        offset += len(block)
    if digest.hexdigest() != point.sha256:
        return None
    os.ftruncate(fd, point.size)  # bytes past the note's are not vouched for
    return digest


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"not a byte count: {value!r}")
    return value
