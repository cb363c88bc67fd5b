"""The one seam to RunComfy's Model API: the only module that imports httpx.

It speaks the contract (``shared/runcomfy-model-api.md``) and turns every answer into a value
object or one of the exceptions of ``genbatch.errors``. It never retries: whether a call may be
repeated is the scheduler's decision (a submit whose answer was lost must never be repeated).
The token goes into the API client's headers only; file downloads use a second client that never
carries it, and nothing raised here contains it.
"""

from __future__ import annotations

import functools
import json
import re
import select
import socket
import ssl
import time
import urllib.request
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urljoin

import httpcore
import httpx

from genbatch import __version__
from genbatch.errors import (
    ApiError,
    AuthError,
    BadAnswer,
    BalanceExhausted,
    DownloadError,
    FileMissing,
    GatewayError,
    HostNotAllowed,
    IncompleteDownload,
    InputRejected,
    ModelNotFound,
    RateLimited,
    RequestForbidden,
    RequestGone,
    ServerError,
    TransportError,
)
from genbatch.redact import redact, redact_value

DEFAULT_API_BASE = "https://model-api.runcomfy.net"
USER_AGENT = f"genbatch/{__version__}"
MAX_REDIRECTS = 5
# Most servers close idle keep-alive connections after 5 s; reusing one at that instant makes a
# request fail ambiguously, which for a submit means an `unknown` job. Expire ours first.
KEEPALIVE_EXPIRY = 3.0
# httpcore's pool scans every connection for every waiting request each time a request starts or
# ends (encode/httpcore#1035): past a few dozen connections that bookkeeping dominates the CPU.
# Measured on loopback with 64 jobs at once: 16 connections do 2.5x the calls per second of 128.
# Calls are short (a poll is a small JSON answer), so 16 in flight per client is ample even at
# hundreds of concurrent jobs; the others wait a moment for a free connection.
DEFAULT_MAX_CONNECTIONS = 16
# Output files are asked for as stored: a compressed answer's length and ranges would be those
# of the compressed bytes. A host that compresses anyway is decoded (these encodings only).
_FILE_ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 0}
_DECODED_BLOCK = 1024 * 1024
# A submit's answer is a few hundred bytes; it is read by chunks, so what arrived survives a
# connection lost halfway, and no more than this is ever held of it.
MAX_SUBMIT_ANSWER_BYTES = 1024 * 1024
# The contract calls a request id opaque (a UUID, it seems). One read from an answer cut short
# must be a complete JSON string (a cut one lacks its closing quote) and a plausible id: the
# characters of a URL path segment, as every later call puts it in one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")
_JSON = json.JSONDecoder()
_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")


@dataclass(frozen=True, kw_only=True)
class Submission:
    """The API's answer to an accepted submit."""

    request_id: str
    status_url: str | None = None
    result_url: str | None = None
    cancel_url: str | None = None


@dataclass(frozen=True, kw_only=True)
class RemoteResult:
    """The result endpoint's answer: the current state, and outputs once succeeded."""

    request_id: str
    status: str
    output_urls: tuple[str, ...] = ()
    error: Any = None
    created_at: str | None = None
    finished_at: str | None = None


@dataclass(frozen=True, kw_only=True)
class RemoteStatusAnswer:
    """The status endpoint's answer."""

    request_id: str
    status: str
    queue_position: int | None = None


@dataclass(frozen=True, kw_only=True)
class CancelAnswer:
    """The cancel endpoint's answer; ``outcome`` is ``cancelled`` or ``not_cancellable``."""

    request_id: str
    status: str
    outcome: str


@dataclass(frozen=True, kw_only=True)
class FileStream:
    """An open download: headers known, body not yet read."""

    url: str
    status_code: int
    content_length: int | None
    content_type: str | None
    content_range_start: int | None
    total_size: int | None = None
    """The whole file's size as a ``Content-Range`` gives it (a 206), when it does."""
    content_encoding: str | None = None
    """The compression the host applied anyway; ``chunks`` yields the decoded bytes, and
    ``content_length`` is then None (it counts the compressed bytes)."""
    chunks: Callable[[], AsyncIterator[bytes]] = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Seconds to wait for the API and for file hosts."""

    connect: float = 10.0
    read: float = 60.0
    download_read: float = 120.0


class RunComfyClient:
    """Asynchronous client of the RunComfy Model API. Use as ``async with``.

    ``transport`` replaces the network for both the API and the file hosts: a test drives the
    simulator in-process with ``httpx.ASGITransport(app=Simulator().app)``, no socket opened.
    Given one, ``max_connections`` no longer applies (the pool, if any, is the transport's).
    """

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_API_BASE,
        token: str | None,
        timeouts: Timeouts | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        timeouts = timeouts or Timeouts()
        limits = httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=KEEPALIVE_EXPIRY,
        )
        # A transport of its own (tests) makes no TLS connection: no context to build.
        verify: ssl.SSLContext | bool = True if transport is not None else _tls_context()
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        self._secrets: tuple[str, ...] = ()
        """What is removed from remote text before it is raised or returned (see redact)."""
        if token:
            headers["Authorization"] = f"Bearer {token}"
            self._secrets = (headers["Authorization"], token)
        self._api = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            limits=limits,
            follow_redirects=False,
            timeout=httpx.Timeout(timeouts.read, connect=timeouts.connect),
            verify=verify,
            transport=transport or _pooled_transport(verify, limits),
        )
        self._files = httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            limits=limits,
            follow_redirects=False,
            timeout=httpx.Timeout(timeouts.download_read, connect=timeouts.connect),
            verify=verify,
            # Shared because in tests the simulator serves the output files as well; headers
            # belong to each client, so the token still never reaches a file host.
            transport=transport or _pooled_transport(verify, limits),
        )

    async def __aenter__(self) -> RunComfyClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection."""
        await self._api.aclose()
        await self._files.aclose()

    async def submit(self, model_id: str, inputs: Mapping[str, Any]) -> Submission:
        """Submit one generation. Raises ``TransportError`` with ``request_sent`` when unsure.

        An accepted submit whose answer was cut short, or is not valid JSON, still succeeds when
        the bytes received hold the request id whole: the request exists, and is followed.
        """
        answer = _ReceivedAnswer()
        try:
            body = await self._submit_call(f"/v1/models/{model_id}", dict(inputs), answer)
        except (TransportError, BadAnswer):
            recovered = answer.submission(self._secrets)
            if recovered is None:
                raise
            return recovered
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise BadAnswer(
                "the submit answer has no request_id", detail=_short(body, self._secrets)
            )
        return Submission(
            request_id=request_id,
            status_url=body.get("status_url"),
            result_url=body.get("result_url"),
            cancel_url=body.get("cancel_url"),
        )

    async def result(self, request_id: str) -> RemoteResult:
        """The result of a request: its state while unfinished, its outputs once succeeded."""
        body = await self._call("GET", f"/v1/requests/{request_id}/result", request_id=request_id)
        error = body.get("error")
        return RemoteResult(
            request_id=request_id,
            status=_status_of(body, self._secrets),
            output_urls=tuple(collect_urls(body.get("output"))),
            # The server's own words: they enter the ledger, so they are redacted here.
            error=None if error is None else redact_value(error, self._secrets),
            created_at=body.get("created_at"),
            finished_at=body.get("finished_at"),
        )

    async def status(self, request_id: str) -> RemoteStatusAnswer:
        """The status of a request."""
        body = await self._call("GET", f"/v1/requests/{request_id}/status", request_id=request_id)
        position = body.get("queue_position")
        return RemoteStatusAnswer(
            request_id=request_id,
            status=_status_of(body, self._secrets),
            queue_position=position if isinstance(position, int) else None,
        )

    async def cancel(self, request_id: str) -> CancelAnswer:
        """Ask to cancel a request; only queued requests can be cancelled."""
        body = await self._call("POST", f"/v1/requests/{request_id}/cancel", request_id=request_id)
        return CancelAnswer(
            request_id=request_id,
            status=str(body.get("status", "")),
            outcome=str(body.get("outcome", "")),
        )

    async def model_info(self, model_id: str) -> dict[str, Any]:
        """The catalog entry of a model (price and unit), when the API offers it."""
        return await self._call("GET", f"/v1/models/{model_id}")

    async def list_models(
        self,
        *,
        search: str | None = None,
        limit: int = 500,
        offset: int = 0,
        include_schema: bool = False,
    ) -> dict[str, Any]:
        """One page of the catalog, ``{"models": [entry...], "total": N}``, as the official
        CLI's ``runcomfy models list`` asks for it."""
        query: dict[str, str | int] = {"limit": limit, "offset": offset, "kind": "model"}
        if search:
            query["search"] = search
        if include_schema:
            query["include_schema"] = "true"
        return await self._call("GET", f"/v1/models?{urlencode(query)}")

    async def model_categories(self) -> list[str]:
        """The catalog's categories (``GET /v1/models/categories``), as the official CLI's
        ``runcomfy models categories`` lists them; anything but strings is left out."""
        answer = await self._call("GET", "/v1/models/categories")
        names = answer.get("categories")
        return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []

    @asynccontextmanager
    async def open_file(
        self, url: str, *, is_allowed: Callable[[str], bool], offset: int = 0
    ) -> AsyncIterator[FileStream]:
        """Open an output file for streaming, following redirects only to allowed hosts.

        With ``offset`` > 0 it asks for the rest of the file (HTTP Range); the answer says
        whether the server honoured that (``content_range_start``). It asks for the bytes as
        stored (``Accept-Encoding: identity``) and decodes gzip or deflate sent anyway.
        """
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        for _ in range(MAX_REDIRECTS + 1):
            if not is_allowed(url):
                raise HostNotAllowed(f"refusing to download from a host not allowed: {url}")
            request = self._files.build_request("GET", url, headers=headers)
            response = await self._send_stream(request)
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                yield _file_stream(url, response)
                return
            finally:
                await response.aclose()
        raise DownloadError(f"too many redirects downloading {url}")

    async def _send_stream(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._files.send(request, stream=True)
        except httpx.TransportError as exc:
            raise _transport_error(exc, request_id=None) from None

    async def _call(
        self, method: str, path: str, *, request_id: str | None = None
    ) -> dict[str, Any]:
        try:
            response = await self._api.request(method, path)
            for _ in range(MAX_REDIRECTS):
                if response.next_request is None:
                    break
                # Followed on the API's own origin only: the token goes nowhere else.
                response = await self._api.send(self._same_origin(response, request_id))
        except httpx.TransportError as exc:
            raise _transport_error(exc, request_id=request_id) from None
        return _parse_answer(response, request_id=request_id, secrets=self._secrets)

    async def _submit_call(
        self, path: str, json_body: dict[str, Any], answer: _ReceivedAnswer
    ) -> dict[str, Any]:
        """``_call`` for a submit, its answer read by chunks into ``answer``: what arrived stays
        there when the answer is cut short or cannot be parsed (``submit`` looks in it)."""
        request = self._api.build_request("POST", path, json=json_body)
        try:
            response = await self._api.send(request, stream=True)
            try:
                for _ in range(MAX_REDIRECTS):
                    if response.next_request is None:
                        break
                    following = self._same_origin(response, None)
                    await response.aclose()
                    response = await self._api.send(following, stream=True)
                await answer.read(response)
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            raise _transport_error(exc, request_id=None) from None
        if answer.unreadable and answer.is_success:
            raise BadAnswer(
                f"HTTP {answer.status_code} answer {answer.unreadable}",
                http_status=answer.status_code,
            )
        return _parse_answer(answer.response(), request_id=None, secrets=self._secrets)

    def _same_origin(self, response: httpx.Response, request_id: str | None) -> httpx.Request:
        following = response.next_request
        assert following is not None
        if _origin(following.url) != _origin(httpx.URL(self.base_url)):
            raise BadAnswer(
                f"the API answered HTTP {response.status_code} to {following.url.host}, another "
                "host: not followed (the token is only ever sent to the API)",
                http_status=response.status_code,
                request_id=request_id,
            )
        return following


class _ReceivedAnswer:
    """The answer to a submit as far as it arrived: its status line, headers and first bytes."""

    def __init__(self) -> None:
        self.status_code: int | None = None
        self.headers = httpx.Headers()
        self.body = bytearray()
        self.unreadable = ""
        """Why the body is not all there though the connection held ("" when it is)."""
        self._request: httpx.Request | None = None

    @property
    def is_success(self) -> bool:
        """Whether the status line said 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300

    async def read(self, response: httpx.Response) -> None:
        """Reads the body, decoded, up to ``MAX_SUBMIT_ANSWER_BYTES``; a connection lost
        raises httpx's error, the bytes received until then kept."""
        self.status_code = response.status_code
        self.headers = response.headers
        self._request = response.request
        try:
            async for chunk in response.aiter_bytes():
                room = MAX_SUBMIT_ANSWER_BYTES - len(self.body)
                self.body += chunk[:room]
                if len(chunk) > room:
                    self.unreadable = f"is larger than {MAX_SUBMIT_ANSWER_BYTES} bytes"
                    return
        except httpx.DecodingError:
            encoding = response.headers.get("content-encoding")
            self.unreadable = f"cannot be decoded (Content-Encoding {encoding})"

    def response(self) -> httpx.Response:
        """The answer as httpx gives one read whole, its body the bytes received (decoded)."""
        assert self.status_code is not None
        headers = [
            (name, value)
            for name, value in self.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            self.status_code, headers=headers, content=bytes(self.body), request=self._request
        )

    def submission(self, secrets: tuple[str, ...]) -> Submission | None:
        """The submission a 2xx's bytes hold whole, even cut short or not valid JSON: a
        request id complete (its closing quote received), and the links complete with it."""
        if not self.is_success:
            return None
        members = _complete_members(self.body.decode("utf-8", errors="replace"))
        request_id = members.get("request_id")
        if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
            return None
        if any(secret in request_id for secret in secrets):
            return None  # a proxy echoing our headers: never an id, never to be recorded
        links = {
            name: value
            for name in ("status_url", "result_url", "cancel_url")
            if isinstance(value := members.get(name), str)
        }
        return Submission(request_id=request_id, **links)


def _complete_members(text: str) -> dict[str, Any]:
    """The members of the JSON object ``text`` opens that arrived whole, in order, up to the
    first one cut short or not valid JSON; none when a key repeats (which one would count?)."""
    members: dict[str, Any] = {}
    position = _after_whitespace(text, 0)
    if not text.startswith("{", position):
        return {}
    position += 1
    while text.startswith('"', position := _after_whitespace(text, position)):
        try:
            key, position = _JSON.raw_decode(text, position)
            if key in members:
                return {}  # even with its second value cut: whole, it would have won
            position = _after_whitespace(text, position)
            if not text.startswith(":", position):
                break
            members[key], position = _JSON.raw_decode(text, _after_whitespace(text, position + 1))
        except json.JSONDecodeError:
            break
        position = _after_whitespace(text, position)
        if not text.startswith(",", position):
            break
        position += 1
    return members


def _after_whitespace(text: str, position: int) -> int:
    """The position of the first character at or after ``position`` that is not JSON space."""
    match = _JSON_WHITESPACE.match(text, position)
    return position if match is None else match.end()


def _pooled_transport(
    verify: ssl.SSLContext | bool, limits: httpx.Limits
) -> httpx.AsyncBaseTransport | None:
    """httpx's transport, its pool's connections made by ``_PoolBackend``; None (httpx's own
    transports) when the environment names a proxy: httpx honours those only without a
    transport of ours."""
    if not isinstance(verify, ssl.SSLContext) or urllib.request.getproxies():
        return None
    return _PooledTransport(verify=verify, limits=limits)


class _PooledTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` over a pool of ``_PoolBackend`` connections."""

    def __init__(self, *, verify: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=verify, limits=limits)
        # httpx takes no network backend: the pool it built is built again with ours (should
        # httpx rename its pool, its own serves, as before).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PoolBackend(),
        )


class _PoolBackend(httpcore.AsyncNetworkBackend):
    """httpcore's AnyIO backend, whose connections answer the pool's "has the server closed
    this idle connection?" cheaply.

    httpcore's pool asks it of every idle connection each time a request starts or ends
    (encode/httpx#3215), and AnyIO answers by building the socket's whole attribute map, a
    ``getpeername()`` call included, each time: with 16 connections, about 60,000 times in an
    800-job run, an eighth of its CPU. Here the socket is looked up once per connection and
    only polled.
    """

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _PooledStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_unix_socket(path, timeout, socket_options)
        return _PooledStream(stream)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _PooledStream(httpcore.AsyncNetworkStream):
    """A connection of ``_PoolBackend``: httpcore's stream, its socket kept at hand."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _PooledStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _readable(self._socket)
        return self._stream.get_extra_info(info)


def _readable(sock: socket.socket | None) -> bool:
    """Whether reading ``sock`` would not block: for an idle connection, that the server has
    closed it (or sent what it should not have). A socket gone counts as readable, as in
    httpcore: the connection is then dropped, never reused."""
    if sock is None or sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The certificates every client of this process verifies hosts with, loaded once: httpx
    builds a context per client otherwise (about 40 ms of CPU each, and ``genbatch run`` makes
    four clients: the catalog's and the run's, each with an API and a file client)."""
    return httpx.create_ssl_context()


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)


def collect_urls(output: Any) -> list[str]:
    """Every http(s) URL in a result's ``output``, in document order."""
    found: list[str] = []
    if isinstance(output, str):
        if output.startswith(("https://", "http://")):
            found.append(output)
    elif isinstance(output, Mapping):
        for value in output.values():
            found.extend(collect_urls(value))
    elif isinstance(output, list):
        for value in output:
            found.extend(collect_urls(value))
    return found


def describe_remote_error(error: object) -> str:
    """A readable one-line form of a result's ``error``, whatever its shape, with anything that
    looks like a credential redacted (the answer was already cleared of our own token)."""
    return redact(_remote_error_text(error))


def _remote_error_text(error: object) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        text = error.get("error") or error.get("message") or error.get("error_message")
        code = error.get("errorCode") or error.get("error_code") or error.get("code")
        if text:
            return f"{text} ({code})" if code else str(text)
    if isinstance(error, list) and error:
        return "; ".join(_remote_error_text(item) for item in error)
    # Redacted before the cut, which could otherwise leave half a credential unrecognised.
    return redact(json.dumps(error, default=str))[:300]


def _status_of(body: Mapping[str, Any], secrets: tuple[str, ...]) -> str:
    status = body.get("status")
    if not isinstance(status, str) or not status:
        raise BadAnswer("the answer has no status", detail=_short(body, secrets))
    return status.lower()


def _file_stream(url: str, response: httpx.Response) -> FileStream:
    _check_file_status(url, response)
    encoding = _content_encoding(url, response)
    length = response.headers.get("content-length")
    start, total = (
        _content_range(response.headers.get("content-range"))
        if response.status_code == 206
        else (None, None)
    )
    return FileStream(
        url=url,
        status_code=response.status_code,
        content_length=int(length) if length and length.isdigit() and not encoding else None,
        content_type=response.headers.get("content-type"),
        content_range_start=None if encoding else start,
        total_size=None if encoding else total,
        content_encoding=encoding,
        chunks=lambda: _body_chunks(response, _Decoder(url, encoding) if encoding else None),
    )


def _check_file_status(url: str, response: httpx.Response) -> None:
    if response.status_code in (403, 404, 410):
        # Not the API's word that the request is gone: a CDN may answer so for a moment (403:
        # a private bucket's answer for a key it does not have yet, or an edge's hiccup).
        raise FileMissing(f"the file host answered HTTP {response.status_code} for {url}")
    if response.status_code >= 500 or response.status_code == 429:
        raise ServerError(
            f"file host answered HTTP {response.status_code} for {url}",
            http_status=response.status_code,
        )
    if response.status_code not in (200, 206):
        raise DownloadError(f"file host answered HTTP {response.status_code} for {url}")


def _content_encoding(url: str, response: httpx.Response) -> str | None:
    """The compression applied to the body (lowercase), None for none; refuses unknown ones."""
    encoding = str(response.headers.get("content-encoding", "")).strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding not in _FILE_ENCODINGS:
        raise DownloadError(f"file host sent Content-Encoding {encoding!r}, not decodable: {url}")
    return encoding


class _Decoder:
    """Decompresses a gzip or deflate body in bounded blocks, and tells when it ended early."""

    def __init__(self, url: str, encoding: str) -> None:
        self._url = url
        self._wbits = _FILE_ENCODINGS[encoding]
        self._zlib: zlib._Decompress | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        """The decoded bytes of ``chunk``, in blocks of at most 1 MiB (no decompression bomb
        is ever held in memory whole: the downloader's size cap sees each block)."""
        if not chunk:
            return []
        blocks = []
        data = chunk
        try:
            decompressor = self._decompressor(chunk)
            while data:
                blocks.append(decompressor.decompress(data, _DECODED_BLOCK))
                data = decompressor.unconsumed_tail
        except zlib.error as exc:
            raise IncompleteDownload(
                f"{self._url}: the compressed body is corrupt ({exc})"
            ) from None
        return blocks

    def finish(self) -> None:
        """Raises IncompleteDownload when the compressed stream did not reach its end."""
        if self._zlib is None or not self._zlib.eof:
            raise IncompleteDownload(f"{self._url}: the compressed body ended early")

    def _decompressor(self, first: bytes) -> zlib._Decompress:
        if self._zlib is None:
            # "deflate" is zlib-wrapped by the standard and raw by some servers: tell them apart.
            wbits = self._wbits or (zlib.MAX_WBITS if first[:1] == b"\x78" else -zlib.MAX_WBITS)
            self._zlib = zlib.decompressobj(wbits)
        return self._zlib


async def _body_chunks(response: httpx.Response, decoder: _Decoder | None) -> AsyncIterator[bytes]:
    """The body as stored (decoded when the host compressed it anyway), with a connection lost
    mid-body reported as our TransportError."""
    try:
        async for chunk in response.aiter_raw():
            for block in decoder.feed(chunk) if decoder else (chunk,):
                yield block
    except httpx.TransportError as exc:
        raise _transport_error(exc, request_id=None) from None
    if decoder is not None:
        decoder.finish()


def _content_range(content_range: str | None) -> tuple[int | None, int | None]:
    """The first byte and the whole size of ``bytes 100-199/200`` (None for what is not said)."""
    if not content_range or not content_range.startswith("bytes "):
        return None, None
    span, _, total = content_range[6:].partition("/")
    first = span.split("-", 1)[0].strip()
    total = total.strip()
    return (
        int(first) if first.isdigit() else None,
        int(total) if total.isdigit() else None,
    )


_TRANSPORT_DETAIL: dict[type[httpx.TransportError], str] = {
    httpx.ReadError: "the connection was closed or reset while the answer was read",
    httpx.WriteError: "the connection was closed or reset while the request was sent",
    httpx.ReadTimeout: "no answer in time",
    httpx.WriteTimeout: "the request could not be sent in time",
    httpx.ConnectTimeout: "no connection in time",
    httpx.PoolTimeout: "no free connection in time",
}


def _transport_error(exc: httpx.TransportError, *, request_id: str | None) -> TransportError:
    # Only a failure to connect proves the request never left: anything later is ambiguous.
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    # httpx gives some of these no text (a ReadError when the peer closed): say what it is.
    detail = str(exc) or _TRANSPORT_DETAIL.get(type(exc), "the connection failed")
    error = TransportError(
        f"no answer from the API: {type(exc).__name__}: {detail}", request_id=request_id
    )
    error.request_sent = sent
    return error


def _parse_answer(
    response: httpx.Response, *, request_id: str | None, secrets: tuple[str, ...]
) -> dict[str, Any]:
    body = _json_or_none(response)
    error_code = body.get("error_code") if isinstance(body, dict) else None
    if response.is_success and isinstance(body, dict) and error_code in (None, 0, ""):
        return body
    if response.is_success and body is None:
        raise BadAnswer(
            f"HTTP {response.status_code} answer is not JSON",
            http_status=response.status_code,
            request_id=request_id,
        )
    raise _api_error(response, redact_value(body, secrets), request_id=request_id, secrets=secrets)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


_ERRORS_BY_CODE: dict[int, type[ApiError]] = {
    400001: ModelNotFound,
    400002: BalanceExhausted,
    400004: AuthError,
    403001: RequestForbidden,
    404001: RequestGone,
    500001: ServerError,
}


def _api_error(
    response: httpx.Response, body: Any, *, request_id: str | None, secrets: tuple[str, ...]
) -> ApiError:
    """The error an answer means; ``body`` is already redacted, the raw text is redacted here."""
    status = response.status_code
    code = _int_or_none(body.get("error_code")) if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    fields: dict[str, Any] = {
        "http_status": status,
        "error_code": code,
        "detail": detail,
        "request_id": request_id,
    }
    message = _message_of(response, body, secrets)
    if status == 429:
        return RateLimited(message, retry_after=_retry_after(response), **fields)
    cls = _ERRORS_BY_CODE.get(code or 0)
    if cls is None or (cls is ModelNotFound and request_id is not None):
        cls = _error_class_for_status(status, request_id)
    if cls is InputRejected:
        message = _describe_validation(detail) or message
    elif cls is RequestForbidden and request_id is not None:
        message = (
            f"the API says request {request_id} belongs to another account ({message}): is "
            "RUNCOMFY_TOKEN the token of the account that submitted it?"
        )
    elif cls is GatewayError:
        message = (
            f"{message.rstrip('.')}: not an error the API gives for this call "
            "(a gateway or CDN in between?)"
        )
    return cls(message, **fields)


def _error_class_for_status(status: int, request_id: str | None) -> type[ApiError]:
    """The error of an answer without an error code the contract lists."""
    if status == 401:
        return AuthError
    if request_id is not None and status < 500:
        # About a request we hold: only the API's own codes (403001, 404001) say it belongs
        # to another account or is gone. Any other answer (a gateway's page, a router's
        # 404000, no body, a 200 with a code the contract does not list) says nothing of the
        # request, and must not end a paid job.
        return GatewayError
    if status == 404:
        return RequestGone
    if status == 422:
        return InputRejected
    if status >= 500:
        return ServerError
    return ApiError


def _message_of(response: httpx.Response, body: Any, secrets: tuple[str, ...]) -> str:
    prefix = f"HTTP {response.status_code}"
    if isinstance(body, dict):
        code = body.get("error_code")
        for key in ("error_message", "message", "error", "detail"):
            value = body.get(key)
            if value:
                text = value if isinstance(value, str) else json.dumps(value)[:300]
                return f"{prefix} ({code}): {text}" if code else f"{prefix}: {text}"
        return f"{prefix}: {_short(body, secrets)}"
    content_type = response.headers.get("content-type", "")
    if "html" in content_type or response.text.lstrip()[:1] == "<":
        return f"{prefix} (an HTML error page)"
    # Redacted whole, then cut: a cut first could leave half a token that no longer matches.
    text = redact(response.text, secrets)
    return f"{prefix}: {text[:200]!r}" if text else prefix


def _describe_validation(detail: Any) -> str | None:
    """``{"detail": [{"loc": [...], "msg": ...}]}`` as ``field: message; ...``."""
    if not isinstance(detail, list) or not detail:
        return None
    parts = []
    for item in detail:
        if not isinstance(item, dict):
            continue
        loc = [str(p) for p in item.get("loc", []) if p != "body"]
        parts.append(f"{'.'.join(loc) or 'input'}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _short(body: Any, secrets: tuple[str, ...] = ()) -> str:
    return redact(json.dumps(body, default=str), secrets)[:300]
