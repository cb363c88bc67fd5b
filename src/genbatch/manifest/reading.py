"""Reading the files a manifest is made of: regular files only, bounded, and (for prompt files)
inside the manifest's folder tree.

A manifest may come from someone else. Read naively, ``{file: /proc/self/environ}`` puts the
environment (the API token with it) into prompts that ``plan`` prints and the API receives,
``/dev/zero`` fills the memory and a named pipe blocks forever. So a file is opened without
waiting (a FIFO opens at once), checked to be a regular file, and read up to a cap: files under
``/proc`` announce a size of 0 whatever they hold, so the cap is enforced on the bytes read too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from genbatch.manifest.locations import Source

__all__ = [
    "MAX_PROMPT_FILE_BYTES",
    "FileRefused",
    "outside_of",
    "read_named_file",
    "read_regular_file",
]

MAX_PROMPT_FILE_BYTES = 64 * 1024 * 1024
"""The largest prompt file read (64 MiB: a million prompts of 60 words)."""

_PSEUDO_ROOTS = ("/proc", "/sys", "/dev")
"""Kernel views, never prompt data: refused even where files outside the manifest's folder are
allowed."""


class FileRefused(Exception):
    """A file genbatch will not read; the message says why, as a phrase after the file name."""


def read_regular_file(path: Path, *, limit: int, what: str) -> bytes:
    """The bytes of the regular file at ``path``, at most ``limit`` of them.

    Raises ``FileRefused`` for anything else (a folder, a pipe, a device, a file too large),
    calling the file expected ``what`` ("a manifest file"), and lets ``OSError`` through for
    files that cannot be opened.
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"is {_kind(info.st_mode)}, not {what}")
        _refuse_over(info.st_size, limit, what)
        data = _read_at_most(fd, limit + 1)
        _refuse_over(len(data), limit, what)
        return data
    finally:
        os.close(fd)


def read_named_file(
    path: Path, written: str, where: Source, *, limit: int, kind: str, field: str
) -> bytes:
    """``read_regular_file`` for a file a manifest names (``written``, at ``where``): anything
    that stops it is a one-line error at that line and field, calling the file a ``kind`` file
    ("prompt", "schema")."""
    try:
        return read_regular_file(path, limit=limit, what=f"a {kind} file")
    except FileRefused as why:
        raise where.error(f"{kind} file '{written}' {why}", field=field) from None
    except FileNotFoundError:
        raise where.error(
            f"{kind} file '{written}' not found (looked for {path})", field=field
        ) from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise where.error(f"cannot read {kind} file '{written}': {reason}", field=field) from None


def outside_of(path: Path, folder: Path, *, allowed: bool) -> str | None:
    """Why ``path`` may not be read as part of a manifest in ``folder``, or None when it may.

    Links are resolved first: a link in the folder pointing out of it is outside. With
    ``allowed``, only the kernel's pseudo-filesystems stay refused.
    """
    real = os.path.realpath(path)
    root = next((r for r in _PSEUDO_ROOTS if real == r or real.startswith(r + os.sep)), None)
    if root is not None:
        return f"is under {root}, which holds no prompt files"
    if allowed:
        return None
    base = os.path.realpath(folder)
    if os.path.commonpath([real, base]) == base:
        return None
    return (
        "is outside the manifest's folder; move it there, or set "
        "allow_outside_prompt_files: true in the manifest"
    )


def _refuse_over(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise FileRefused(f"is larger than {limit:,} bytes, the limit for {what}")


def _read_at_most(fd: int, count: int) -> bytes:
    chunks: list[bytes] = []
    left = count
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"
