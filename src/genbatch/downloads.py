"""Fetching output files: only from allowed hosts, capped in size, verified, renamed into place.

A file is streamed to a hidden ``.part`` file beside its final name, hashed as it arrives, checked
against ``Content-Length`` (and a ``Content-Range`` total), checked to be the media expected
(``media_check``: its content type, its first bytes, its container's own length), flushed to
disk, and only then renamed to its final name: a file with its final name is always complete.
It is asked for uncompressed; a host that compresses anyway is decoded (``client``), so the
bytes written and hashed are the file's own. An interrupted transfer resumes with HTTP Range
when the host honours it, and restarts otherwise. A process holds a lock on the ``.part`` it
writes (``flock``, released by the system even when the process is killed): a ``.part`` left by
a killed process is taken over and truncated, while one another live process writes (a worker
frozen past its lease, whose job was taken over) is left alone, this process writing a
``.part`` of its own beside it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import ipaddress
import mimetypes
import os
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import anyio

from genbatch.backoff import Backoff
from genbatch.client import FileStream, RunComfyClient
from genbatch.errors import (
    ApiError,
    DownloadError,
    FileMissing,
    FileTooLarge,
    IncompleteDownload,
    OutputError,
    RequestGone,
    ServerError,
    TransportError,
)
from genbatch.file_commits import FileCommitter
from genbatch.filenames import sanitize_file_stem
from genbatch.media_check import content_type_problem, expected_kind, file_problem, reader_of

DEFAULT_MAX_FILE_SIZE = 2 * 1024**3
DEFAULT_ALLOWED_SUFFIXES = (".runcomfy.net", ".runcomfy.com")
KNOWN_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".webm",
        ".mov",
        ".png",
        ".jpg",
        ".jpeg",
        ".webp",
        ".gif",
        ".mp3",
        ".wav",
        ".m4a",
        ".glb",
        ".json",
        ".txt",
    }
)
DOWNLOAD_ATTEMPTS = 10
MISSING_ATTEMPTS = 5
"""Tries of a file its host answers 403, 404 or 410 for (about 4 to 8 s in all, backoff included):
a CDN may miss a fresh file for a moment; past that, a later run tries again."""
RECENT_FILES = 256
"""URLs remembered per run: a result lists its files together, so a few suffice."""


class NotTheMedia(DownloadError):
    """The host answered with something else than the output file (a page, an empty body, a
    file cut short); retried like a lost connection, never kept."""


@dataclass(frozen=True, kw_only=True)
class HostPolicy:
    """Which hosts output files may come from."""

    api_host: str
    extra_hosts: tuple[str, ...] = ()
    """Exact host names, or ``*.example.com`` (or ``.example.com``, the same) for a domain and
    its subdomains."""

    def allows(self, url: str) -> bool:
        """True when ``url`` may be fetched."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            return False
        if parts.scheme == "http" and not is_loopback(host):
            return False
        if parts.scheme not in ("http", "https"):
            return False
        if host == self.api_host or host.endswith(DEFAULT_ALLOWED_SUFFIXES):
            return True
        return any(_host_matches(host, pattern) for pattern in self.extra_hosts)


def _host_matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower().strip()
    if not pattern.startswith(("*.", ".")):
        return host == pattern
    domain = pattern.removeprefix("*").removeprefix(".")
    return bool(domain) and (host == domain or host.endswith(f".{domain}"))


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (where plain http is acceptable)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Part:
    """The hidden file an output is written to before its rename."""

    path: Path
    spare: Path
    """Where to write instead while another live process writes ``path``."""
    ours: bool = False
    """It holds bytes of this download (resumable); until then, one left by an earlier attempt
    may hold other bytes: it is truncated, never resumed."""


@dataclass(frozen=True, kw_only=True)
class DownloadedFile:
    """A verified file under its final name."""

    path: Path
    size: int
    sha256: str


class Downloader:
    """Downloads output files safely; shared by every job of a run."""

    def __init__(
        self,
        client: RunComfyClient,
        *,
        hosts: HostPolicy,
        max_bytes: int = DEFAULT_MAX_FILE_SIZE,
        backoff: Backoff | None = None,
        attempts: int = DOWNLOAD_ATTEMPTS,
        missing_attempts: int = MISSING_ATTEMPTS,
    ) -> None:
        self._client = client
        self._hosts = hosts
        self._max_bytes = max_bytes
        self._backoff = backoff or Backoff(base=0.5, cap=20.0)
        self._attempts = attempts
        self._missing_attempts = missing_attempts
        self._committer = FileCommitter()
        self._token = secrets.token_hex(4)
        """Names this process's ``.part`` files."""
        self._directories: set[Path] = set()
        """Output directories made (or found) during this run."""
        self._recent: OrderedDict[str, DownloadedFile] = OrderedDict()
        """The last files fetched, by URL: a URL a result lists twice is fetched once."""

    async def fetch(
        self,
        url: str,
        *,
        directory: Path,
        stem: str,
        default_extension: str,
        check_request: Callable[[], Awaitable[object]] | None = None,
    ) -> DownloadedFile:
        """Download ``url`` to ``directory/stem<ext>``; retries what is safe to retry.

        A URL fetched moments ago (a result listing one file twice) is not fetched again: the
        file already verified is copied to the new name, and checked again as it is copied.

        A file its host says is not there (403, 404, 410) is asked for again a few times
        (``FileMissing`` after the last). ``check_request`` asks the API about the file's
        request the first time: its ``RequestGone`` (the API's own word) ends the download
        at once; any other error of it is no answer, and the file is asked for again.
        """
        self._make_directory(directory)
        stem = sanitize_file_stem(stem)
        part = _Part(directory / f".{stem}.part", spare=directory / f".{stem}.{self._token}.part")
        earlier = self._recent.get(url)
        file = None
        if earlier is not None:
            file = await self._copy(earlier, part, directory / f"{stem}{earlier.path.suffix}")
        if file is None:
            file = await self._download(
                url, part, directory, stem, default_extension, check_request
            )
        self._recent[url] = file
        self._recent.move_to_end(url)
        if len(self._recent) > RECENT_FILES:
            self._recent.popitem(last=False)
        return file

    async def _copy(
        self, earlier: DownloadedFile, part: _Part, final: Path
    ) -> DownloadedFile | None:
        """``earlier`` copied to ``final`` through ``part``; None when it is no longer intact
        (moved, edited) or its ``.part`` is busy: then it is downloaded again."""
        if final == earlier.path:
            return earlier if _size_or_zero(final) == earlier.size else None
        try:
            fd = self._open_part(part, resume_from=None)
        except IncompleteDownload:
            return None
        try:
            if not await anyio.to_thread.run_sync(_copy_intact, earlier, fd, part.path):
                _remove_ours(part)
                part.ours = False
                return None
            placed = await self._committer.move_into_place(fd, part.path, final, earlier.sha256)
        except BaseException:
            _remove_ours(part)
            raise
        finally:
            os.close(fd)
        return DownloadedFile(path=placed, size=earlier.size, sha256=earlier.sha256)

    async def _download(
        self,
        url: str,
        part: _Part,
        directory: Path,
        stem: str,
        default_extension: str,
        check_request: Callable[[], Awaitable[object]] | None,
    ) -> DownloadedFile:
        failures = missing = 0
        try:
            while True:
                try:
                    return await self._transfer(url, part, directory, stem, default_extension)
                except (TransportError, ServerError, IncompleteDownload, NotTheMedia):
                    failures += 1
                    if failures == self._attempts:
                        raise
                    delay = self._backoff.delay(failures)
                except FileMissing:
                    missing += 1
                    if missing == 1 and check_request is not None:
                        await _unless_gone(check_request)
                    if missing == self._missing_attempts:
                        raise
                    delay = self._backoff.delay(missing)
                await anyio.sleep(delay)
        except BaseException:
            _remove_ours(part)
            raise

    def _make_directory(self, directory: Path) -> None:
        # Once per directory and run: a directory removed meanwhile is made again when its
        # next file cannot be created (``_open_part``).
        if directory not in self._directories:
            _make_directory(directory)
            self._directories.add(directory)

    def _open_part(self, part: _Part, *, resume_from: int | None) -> int:
        """The part file, open for writing and locked: holding the ``resume_from`` bytes this
        process wrote in an earlier attempt (to append to), or empty."""
        try:
            candidates = [part.path] if resume_from is not None else [part.path, part.spare]
            for path in candidates:
                fd = _open_locked(path)
                if fd is not None:
                    break
            else:
                part.ours = False  # taken by another process between two attempts: start over
                raise IncompleteDownload(f"{part.path.name} is being written by another process")
            if resume_from is None:
                os.ftruncate(fd, 0)
            elif os.fstat(fd).st_size != resume_from:
                os.close(fd)
                part.ours = False  # not the bytes this process wrote: start over
                raise IncompleteDownload(f"{part.path.name} changed between two attempts")
        except OSError as exc:
            raise OutputError(f"cannot write {part.path.parent}: {exc.strerror}") from None
        os.lseek(fd, 0, os.SEEK_END)
        part.path, part.ours = path, True
        return fd

    async def _transfer(
        self, url: str, part: _Part, directory: Path, stem: str, default_extension: str
    ) -> DownloadedFile:
        offset = _size_or_zero(part.path) if part.ours else 0
        fd: int | None = None
        try:
            async with self._client.open_file(
                url, is_allowed=self._hosts.allows, offset=offset
            ) as stream:
                extension = extension_for(url, stream.content_type, default_extension)
                kind = expected_kind(
                    extension, stream.content_type, from_url=_extension_from_url(url) is not None
                )
                _refuse(url, content_type_problem(kind, stream.content_type))
                resumed = offset > 0 and stream.content_range_start == offset
                if stream.status_code == 206 and not resumed and stream.content_range_start != 0:
                    # Part of the file, not the part asked for (another offset, or compressed
                    # so that its place is unknown): written as the file's start it would
                    # corrupt it. Asked again whole, with no bytes to resume.
                    _remove_ours(part)
                    part.ours = False
                    raise IncompleteDownload(
                        f"{url}: the host answered part of the file (206) that is not the part "
                        f"asked for (from byte {offset})"
                    )
                expected = _expected_size(stream, offset if resumed else 0)
                if expected is not None and expected > self._max_bytes:
                    raise FileTooLarge(
                        f"{url} is {expected} bytes, over the cap of {self._max_bytes} bytes"
                    )
                # In a worker thread: creating a file waits for the file system (about 1 ms
                # on ext4 here, a third of it CPU), time the event loop would not serve calls.
                fd = await anyio.to_thread.run_sync(
                    partial(self._open_part, part, resume_from=offset if resumed else None)
                )
                digest = _hash_existing(part.path) if resumed else hashlib.sha256()
                size = await self._write(
                    stream.chunks(), fd, part.path, digest, start=offset if resumed else 0
                )
            if expected is not None and size != expected:
                raise IncompleteDownload(f"{url}: got {size} of {expected} bytes")
            self._check_media(url, part, kind, fd, size)
            # Flushed through the descriptor it was written by, in a worker thread.
            placed = await self._committer.move_into_place(
                fd, part.path, directory / f"{stem}{extension}", digest.hexdigest()
            )
        finally:
            if fd is not None:
                os.close(fd)
        return DownloadedFile(path=placed, size=size, sha256=digest.hexdigest())

    @staticmethod
    def _check_media(url: str, part: _Part, kind: str | None, fd: int, size: int) -> None:
        """Raises NotTheMedia (the part file discarded: never resumed) unless the bytes written
        are a whole ``kind`` file."""
        problem = file_problem(kind, size, reader_of(fd))
        if problem is not None:
            _remove_ours(part)
            part.ours = False
            _refuse(url, problem)

    async def _write(
        self, chunks: object, fd: int, part: Path, digest: hashlib._Hash, *, start: int
    ) -> int:
        size = start
        async for chunk in chunks:  # type: ignore[attr-defined]  # an async iterator of bytes
            size += len(chunk)
            if size > self._max_bytes:
                raise FileTooLarge(
                    f"{part.name}: more than the cap of {self._max_bytes} bytes arrived"
                )
            digest.update(chunk)
            _write_all(fd, chunk, part)
        return size


async def _unless_gone(check_request: Callable[[], Awaitable[object]]) -> None:
    """Raises ``RequestGone`` when the API says the request is gone; any other failure to ask
    says nothing of it."""
    try:
        await check_request()
    except RequestGone:
        raise
    except ApiError:
        pass


def _copy_intact(earlier: DownloadedFile, fd: int, part: Path) -> bool:
    """Copies ``earlier`` into ``fd``; True when the bytes copied are still those verified."""
    try:
        source = os.open(earlier.path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    digest, size = hashlib.sha256(), 0
    try:
        while block := os.read(source, 1024 * 1024):
            digest.update(block)
            size += len(block)
            _write_all(fd, block, part)
    finally:
        os.close(source)
    return size == earlier.size and digest.hexdigest() == earlier.sha256


def _write_all(fd: int, chunk: bytes, part: Path) -> None:
    try:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        raise OutputError(f"cannot write {part.parent}: {exc.strerror}") from None


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output directory {directory}: {exc.strerror}"
        ) from None
    if not os.access(directory, os.W_OK):
        raise OutputError(f"the output directory {directory} is not writable")


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _expected_size(stream: FileStream, offset: int) -> int | None:
    """The size the file must have: the Content-Range total (the whole file) when the host
    gives one, else what Content-Length says is left past ``offset``."""
    length = None if stream.content_length is None else stream.content_length + offset
    if stream.total_size is not None and length is not None and stream.total_size != length:
        raise IncompleteDownload(
            f"{stream.url}: the host sends {length} bytes of a file of {stream.total_size}"
        )
    return stream.total_size if stream.total_size is not None else length


def _refuse(url: str, problem: str | None) -> None:
    if problem is not None:
        raise NotTheMedia(f"{url} is not the output file: {problem}")


def _hash_existing(part: Path) -> hashlib._Hash:
    with part.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256")


def _extension_from_url(url: str) -> str | None:
    suffix = Path(urlsplit(url).path).suffix.lower()
    return suffix if suffix in KNOWN_EXTENSIONS else None


def extension_for(url: str, content_type: str | None, default: str) -> str:
    """The file extension for an output: from its URL, else its content type, else ``default``."""
    found = _extension_from_url(url)
    if found:
        return found
    if content_type:
        guessed = mimetypes.guess_extension(content_type.split(";")[0].strip())
        if guessed in KNOWN_EXTENSIONS:
            return guessed
    return default


def _open_locked(path: Path) -> int | None:
    """``path`` opened for writing, never through a link, and locked; None when another live
    process holds it (or it is a link: it is never written through)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW  # read back by the media check
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:  # the directory was removed during the run
        _make_directory(path.parent)
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Locked, but perhaps a file another process renamed into place meanwhile (then the
        # name is free again, or another file's): only the file still at ``path`` will do.
        opened, named = os.fstat(fd), os.stat(path, follow_symlinks=False)
        if (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
            os.close(fd)
            return None
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    return fd


def _remove_ours(part: _Part) -> None:
    """The part file this process wrote, gone; never one another process is writing."""
    if part.ours:
        _remove(part.path)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


__all__ = [
    "DownloadError",
    "DownloadedFile",
    "Downloader",
    "HostPolicy",
    "NotTheMedia",
    "extension_for",
]
