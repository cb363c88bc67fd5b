"""The answers the simulator sends, faulty ones included, and output files with Range support."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from genbatch.catalog import InputProblem
from genbatch.simulator.connection import close_connection, pause
from genbatch.simulator.media import MediaFile

_CDN_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_PROBLEM_TYPES = {"missing": "missing", "unknown": "extra_forbidden", "invalid": "value_error"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_SLOW_CHUNK = 512


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A compact JSON answer."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(body, status, headers, media_type="application/json")


def error_response(
    http_status: int, error_code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """RunComfy's error body: ``{"error_code", "error_message"}``."""
    return json_response({"error_code": error_code, "error_message": message}, http_status, headers)


def validation_response(problems: list[InputProblem]) -> Response:
    """422 with one ``{"loc", "msg", "type"}`` per problem, the way FastAPI-style APIs answer."""
    detail = [
        {"loc": ["body", p.field], "msg": f"{p.field} {p.message}", "type": _PROBLEM_TYPES[p.kind]}
        for p in problems
    ]
    return json_response({"detail": detail}, 422)


def body_problem_response(message: str, kind: str) -> Response:
    """422 for a body that is not a JSON object at all."""
    return json_response({"detail": [{"loc": ["body"], "msg": message, "type": kind}]}, 422)


def cdn_error_page(status: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    """An HTML error page like a CDN in front of the API sends."""
    page = _CDN_PAGE.format(status=status, reason=reason)
    return Response(page, status, headers, media_type="text/html")


class DroppedResponse(Response):
    """No answer at all: the connection is closed before a byte is sent."""

    def __init__(self) -> None:
        super().__init__(b"", 500)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await close_connection(scope, receive)


class PartialResponse(Response):
    """``inner``'s status and headers (full Content-Length) and ``keep`` bytes, then closed."""

    def __init__(self, inner: Response, keep: int | None = None) -> None:
        super().__init__(bytes(inner.body), inner.status_code)
        self.raw_headers = inner.raw_headers
        self.keep = len(self.body) // 2 if keep is None else max(0, min(keep, len(self.body)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send(
            {"type": "http.response.body", "body": bytes(self.body[: self.keep]), "more_body": True}
        )
        await close_connection(scope, receive)


class DelayedResponse(Response):
    """``inner``, sent after ``delay`` seconds (not at all if the client left meanwhile)."""

    def __init__(self, inner: Response, delay: float, closing: asyncio.Event) -> None:
        super().__init__(bytes(inner.body), inner.status_code)
        self.raw_headers = inner.raw_headers
        self.delay = delay
        self.closing = closing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await pause(receive, self.delay, self.closing):
            await close_connection(scope, receive)
            return
        await super().__call__(scope, receive, send)


def byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The inclusive (first, last) bytes a Range header asks for.

    None means serve the whole file (no header, or one we ignore as RFC 9110 allows: not
    bytes, several ranges, malformed); "unsatisfiable" means answer 416.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # suffix range: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = size - 1 if not last_text else min(int(last_text), size - 1)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        return "unsatisfiable"
    return first, last


class MediaResponse(Response):
    """An output file: whole (200) or one range (206), maybe slow or cut short by a fault.

    ``on_sent(bytes_sent, complete)`` is called once the answer is over, for the accounting.
    """

    def __init__(
        self,
        file: MediaFile,
        span: tuple[int, int] | None,
        *,
        on_sent: Callable[[int, bool], None],
        closing: asyncio.Event,
        slow: float | None = None,
        keep: int | None = None,
    ) -> None:
        first, last = span if span is not None else (0, file.size - 1)
        headers = {
            "accept-ranges": "bytes",
            "etag": f'"{file.sha256}"',
            "cache-control": "public, max-age=3600",
        }
        if span is not None:
            headers["content-range"] = f"bytes {first}-{last}/{file.size}"
        super().__init__(
            file.data[first : last + 1],
            206 if span is not None else 200,
            headers,
            media_type=file.content_type,
        )
        self.on_sent = on_sent
        self.closing = closing
        self.slow = slow
        self.keep = keep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        body = bytes(self.body)
        # Counted before the last send, so a client that has the file also sees it counted.
        if scope["method"] == "HEAD":
            self.on_sent(0, True)
            await send({"type": "http.response.body", "body": b""})
        elif self.keep is not None:
            await self._send_cut(scope, receive, send, body[: self.keep])
        elif self.slow is not None:
            await self._send_slowly(scope, receive, send, body, self.slow)
        else:
            self.on_sent(len(body), True)
            await send({"type": "http.response.body", "body": body})

    async def _send_cut(self, scope: Scope, receive: Receive, send: Send, part: bytes) -> None:
        self.on_sent(len(part), False)
        await send({"type": "http.response.body", "body": part, "more_body": True})
        await close_connection(scope, receive)

    async def _send_slowly(
        self, scope: Scope, receive: Receive, send: Send, body: bytes, seconds: float
    ) -> None:
        chunks = [body[i : i + _SLOW_CHUNK] for i in range(0, len(body), _SLOW_CHUNK)] or [b""]
        gap = seconds / max(1, len(chunks) - 1)
        sent = 0
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            # The first chunk goes at once, so a client sees the download start, then crawl.
            if index and await pause(receive, gap, self.closing):
                self.on_sent(sent, False)
                await close_connection(scope, receive)
                return
            sent += len(chunk)
            if last:
                self.on_sent(sent, True)
            await send({"type": "http.response.body", "body": chunk, "more_body": not last})
