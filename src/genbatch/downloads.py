"""Fetching output files: only from allowed hosts, capped in size, verified, renamed into place.

A file is streamed to a hidden ``.part`` file beside its final name, hashed as it arrives, checked
against ``Content-Length`` (and a ``Content-Range`` total), checked to be the media expected
(``media_check``: its content type, its first bytes, its container's own length), flushed to
disk, and only then renamed to its final name: a file with its final name is always complete.
It is asked for uncompressed; a host that compresses anyway is decoded (``client``), so the
bytes written and hashed are the file's own. An interrupted transfer resumes with HTTP Range
when the host honours it, and restarts otherwise: a retry of the same run resumes the bytes it
wrote; a later run resumes a ``.part`` left by a download that was cancelled (Ctrl-C, SIGTERM,
SIGHUP, a run stopped by another error), once its bytes are checked against the note left
beside it (``resume_points``). A ``.part`` whose bytes may be wrong is never resumed: one left
with no note (a killed process) is truncated, one of a compressed body or of a file that was not
the media is discarded. A process holds a lock on the ``.part`` it writes (``flock``, released by
the system even when the process is killed): one another live process writes (a worker frozen
past its lease, whose job was taken over) is left alone, this process writing a ``.part`` of its
own beside it.
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
    RangeNotSatisfiable,
    RequestGone,
    ServerError,
    TransportError,
)
from genbatch.file_commits import FileCommitter
from genbatch.filenames import sanitize_file_stem
from genbatch.media_check import content_type_problem, expected_kind, file_problem, reader_of
from genbatch.resume_points import ResumePoint, read_note, remove_note, resume_digest, write_note

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
    """It holds bytes of this download (removed when the download fails); until then, one left
    by an earlier process may hold other bytes: it is truncated, unless its note says it holds
    the start of this very file."""
    resumable: bool = False
    """Ours, and its bytes are the start of the file as the host sent it, uncompressed: the
    next attempt asks for the rest."""
    noted: bool = False
    """A note of what an interrupted run left lies beside ``path``, until ``path`` is opened:
    it is then resumed (its bytes checked) or truncated, and the note removed."""
    left: ResumePoint | None = None
    """What that note says (of any URL), when it can be read."""
    left_usable: bool = True
    """False once the host's answer or the bytes held refused ``left``: starts over."""

    def start_over(self) -> None:
        """Its bytes are not to be resumed: the next attempt starts from the first byte."""
        self.resumable = False
        self.left_usable = False


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
        part.noted, part.left = read_note(part.path)
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
            fd, _ = self._open_part(part, resume_from=None)
        except IncompleteDownload:
            return None
        try:
            if not await anyio.to_thread.run_sync(_copy_intact, earlier, fd, part.path):
                _remove_ours(part)
                part.ours = False
                part.start_over()
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

    def _open_part(self, part: _Part, *, resume_from: int | None) -> tuple[int, hashlib._Hash]:
        """The part file, open for writing and locked, and the sha256 of what it holds: the
        ``resume_from`` bytes of this download (written by this process in an earlier attempt,
        or left by an interrupted run as its note says), to append to; or nothing."""
        try:
            candidates = [part.path] if resume_from is not None else [part.path, part.spare]
            for path in candidates:
                fd = _open_locked(path)
                if fd is not None:
                    break
            else:
                part.ours = False  # taken by another process between two attempts: start over
                part.start_over()
                raise IncompleteDownload(f"{part.path.name} is being written by another process")
            digest = _held_digest(part, fd, path, resume_from)
            if part.noted and path != part.spare:
                # Its bytes are this download's now: the note would no longer say what it holds.
                remove_note(path)
                part.noted, part.left = False, None
        except OSError as exc:
            raise OutputError(f"cannot write {part.path.parent}: {exc.strerror}") from None
        os.lseek(fd, 0, os.SEEK_END)
        part.path, part.ours, part.resumable = path, True, True
        return fd, digest

    async def _transfer(
        self, url: str, part: _Part, directory: Path, stem: str, default_extension: str
    ) -> DownloadedFile:
        left = part.left if part.left_usable and part.left and part.left.url == url else None
        offset = _size_or_zero(part.path) if part.resumable else (left.size if left else 0)
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
                resumed = offset > 0 and _continues(part, left, stream, offset)
                expected = _expected_size(stream, offset if resumed else 0)
                if expected is not None and expected > self._max_bytes:
                    raise FileTooLarge(
                        f"{url} is {expected} bytes, over the cap of {self._max_bytes} bytes"
                    )
                # In a worker thread: creating a file waits for the file system (about 1 ms
                # on ext4 here, a third of it CPU), time the event loop would not serve calls;
                # so does hashing the bytes a resume appends to.
                held = await anyio.to_thread.run_sync(
                    partial(self._open_part, part, resume_from=offset if resumed else None)
                )
                fd, digest = held[0], held[1]
                if stream.content_encoding is not None:
                    part.start_over()  # a compressed body's bytes are checked only at its end
                try:
                    size = await self._write(
                        stream.chunks(), fd, part.path, digest, start=offset if resumed else 0
                    )
                except anyio.get_cancelled_exc_class():
                    _leave_for_a_later_run(url, part, stream, fd, digest, expected)
                    raise
            if expected is not None and size != expected:
                raise IncompleteDownload(f"{url}: got {size} of {expected} bytes")
            self._check_media(url, part, kind, fd, size)
            # Flushed through the descriptor it was written by, in a worker thread.
            placed = await self._committer.move_into_place(
                fd, part.path, directory / f"{stem}{extension}", digest.hexdigest()
            )
        except RangeNotSatisfiable:
            part.start_over()  # the bytes held are not the start of this file
            raise
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
            part.start_over()
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


def _continues(part: _Part, left: ResumePoint | None, stream: FileStream, offset: int) -> bool:
    """Whether ``stream`` is the rest of the file from byte ``offset``, which the part holds.
    A 206 that is not, unless it is the whole file (from byte 0), is refused: never written."""
    if part.resumable or left is None:
        continues = stream.content_range_start == offset
    else:
        continues = left.continued_by(
            start=stream.content_range_start, total_size=stream.total_size, etag=stream.etag
        )
    if not continues and stream.content_range_start not in (None, 0):
        part.start_over()
        raise IncompleteDownload(f"{stream.url}: the host sent another part of the file")
    return continues


def _held_digest(part: _Part, fd: int, path: Path, resume_from: int | None) -> hashlib._Hash:
    """The sha256 of the bytes the part (open and locked as ``fd``) is resumed from; the part
    emptied when it starts afresh. Raises IncompleteDownload (the next attempt starts over)
    when it does not hold the bytes it should."""
    if resume_from is None:
        os.ftruncate(fd, 0)
        return hashlib.sha256()
    digest = None
    if part.resumable:
        if os.fstat(fd).st_size == resume_from:
            with open(fd, "rb", closefd=False) as handle:
                digest = hashlib.file_digest(handle, "sha256")
    elif part.left is not None and part.left_usable:
        digest = resume_digest(fd, part.left)
    if digest is None:
        if part.noted:  # another file's bytes, or changed since: never resumed
            remove_note(path)
            part.noted = False
        os.close(fd)
        part.ours = False  # not the bytes this download wrote: start over
        part.start_over()
        raise IncompleteDownload(f"{path.name} changed since its bytes were written")
    return digest


def _leave_for_a_later_run(
    url: str, part: _Part, stream: FileStream, fd: int, digest: hashlib._Hash, total: int | None
) -> None:
    """A download cancelled while its file streams in: the part is kept, with a note of its
    bytes (``resume_points``), for a later run to resume. Not when its bytes could be wrong
    (a compressed body), when it is a spare (another process writes the part) or empty."""
    size = os.fstat(fd).st_size
    if not part.resumable or part.path == part.spare or size == 0:
        return
    point = ResumePoint(
        url=url, size=size, sha256=digest.hexdigest(), total_size=total, etag=stream.etag
    )
    try:
        write_note(part.path, point)
    except OSError:
        return  # no note: removed as any failed download's part is
    part.ours = False  # not this download's to remove any more


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
