"""``genbatch review``: the gallery of a run served live on loopback, with ratings.

The server is small and suspicious by design. It listens on 127.0.0.1 only; every URL starts
with a random token made for the session (``/<token>/``), compared in constant time, and any
other path is a bare 404; a request naming another host (DNS rebinding) is refused; a rating
must come as JSON from the page's own origin. Files are served by their number in the ledger,
looked up among the outputs of the run's jobs: no part of a request ever becomes a path.
Responses are never cached and never send a Referer (the token is in the URL).

Ratings go to the ledger at once; ``metadata.jsonl`` of the rated file's directory is
rewritten shortly after (a burst of key presses makes one rewrite), and once more on exit.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genbatch.errors import GenbatchError, UsageError
from genbatch.export import write_metadata
from genbatch.gallery import lay_out
from genbatch.ratings import checked_rating
from genbatch.review_page import POLICY, ReviewPage

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from genbatch.ledger import Ledger, RunInfo

HOST = "127.0.0.1"
METADATA_DELAY = 1.0
"""Seconds after the last rating before ``metadata.jsonl`` is rewritten."""
MAX_BODY = 16_384
"""Bytes of a rating request: a note is at most 2,000 characters."""


@dataclass(frozen=True, kw_only=True)
class ServedFile:
    """An output file the page may show or rate: where it is, and what its rating is keyed by."""

    path: str
    job_key: str
    position: int
    output_dir: str


class ReviewSession:
    """One review of one run: its token, its files, and the application serving them."""

    def __init__(
        self,
        ledger: Ledger,
        run: RunInfo,
        *,
        rows: str | None = None,
        cols: str | None = None,
        metadata_delay: float = METADATA_DELAY,
    ) -> None:
        self.ledger = ledger
        self.run = run
        self.rows = rows
        self.cols = cols
        self.token = secrets.token_urlsafe(24)
        self.port = 0
        self.files: dict[int, ServedFile] = {}
        self.page()  # a bad --rows/--cols or a run without jobs fails before serving
        self.metadata = MetadataRefresher(ledger, delay=metadata_delay)

    @property
    def url(self) -> str:
        """The page's address, token included."""
        return f"http://{HOST}:{self.port}/{self.token}/"

    def page(self) -> str:
        """The page, from the ledger as it is now (a run still going shows its new files)."""
        items = self.ledger.job_outputs(run_id=self.run.id, in_manifest_only=True)
        table, grids = lay_out(self.run, items, rows=self.rows, cols=self.cols)
        for item in items:
            for output in item.outputs:
                if output.path:
                    self.files[output.id] = ServedFile(
                        path=output.path,
                        job_key=item.job.key,
                        position=output.position,
                        output_dir=item.job.output_dir,
                    )
        page = ReviewPage(items=items, table=table, grids=grids, run=self.run, html_dir=Path())
        return page.render()

    def rate(self, number: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Store the rating ``fields`` of the file ``number``; the rating as stored."""
        served = self.files[number]
        rating = checked_rating(
            served.job_key,
            served.position,
            verdict=fields.get("verdict"),
            stars=fields.get("stars"),
            note=fields.get("note"),
        )
        stored = self.ledger.rate(rating)
        self.metadata.touch(served.output_dir)
        if stored is None:
            return {"verdict": None, "stars": None, "note": None}
        return {
            "verdict": stored.verdict.value if stored.verdict else None,
            "stars": stored.stars,
            "note": stored.note,
            "rated_by": stored.rated_by,
        }

    def app(self) -> ASGIApp:
        """The ASGI application: the routes behind the host and token checks."""
        from starlette.applications import Starlette
        from starlette.routing import Route

        prefix = f"/{self.token}"
        routes = [
            Route(f"{prefix}/", self._page_route, methods=["GET"]),
            Route(prefix + "/media/{number:int}", self._media_route, methods=["GET"]),
            Route(prefix + "/ratings/{number:int}", self._rating_route, methods=["PUT"]),
        ]
        return _Guard(Starlette(routes=routes), session=self)

    def _page_route(self, request: Request) -> Response:
        from starlette.responses import HTMLResponse

        return HTMLResponse(self.page(), headers={"Content-Security-Policy": POLICY})

    def _media_route(self, request: Request) -> Response:
        from starlette.responses import FileResponse

        served = self.files.get(request.path_params["number"])
        if served is None or not os.path.isfile(served.path):
            return _not_found()
        return FileResponse(served.path)

    async def _rating_route(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        number = request.path_params["number"]
        if number not in self.files:
            return _not_found()
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"error": "send the rating as application/json"}, 415)
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"error": "too large"}, 413)
        try:
            fields = json.loads(body)
            if not isinstance(fields, dict):
                raise ValueError("not an object")
            stored = await run_in_threadpool(self.rate, number, fields)
        except ValueError as error:
            return JSONResponse({"error": f"not a rating: {error}"}, 400)
        except UsageError as error:
            return JSONResponse({"error": error.message}, 400)
        except GenbatchError as error:  # the ledger: locked too long, gone
            return JSONResponse({"error": error.message}, 503)
        return JSONResponse(stored)


class _Guard:
    """Checks before any route: the Host header names this server, the token is the
    session's (constant time), a change comes from the page's own origin; and headers on
    every answer that keep it from being cached, framed, sniffed or leaking its URL."""

    def __init__(self, app: ASGIApp, *, session: ReviewSession) -> None:
        self.app = app
        self.session = session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._refusal(scope)
        if problem is not None:
            await _plain(problem[0], problem[1])(scope, receive, send)
            return
        await self.app(scope, receive, _with_headers(send))

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        allowed = {f"{HOST}:{self.session.port}", f"localhost:{self.session.port}"}
        if headers.get("host") not in allowed:
            return 421, "this server answers only to its own address"
        parts = str(scope["path"]).split("/", 2)
        if len(parts) < 3 or not secrets.compare_digest(
            parts[1].encode("utf-8", "surrogatepass"), self.session.token.encode()
        ):
            return 404, "not found"
        origin = headers.get("origin")
        if scope["method"] != "GET" and origin not in {f"http://{h}" for h in allowed}:
            return 403, "a change must come from the review page"
        return None


_SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *_SECURITY_HEADERS]}
        await send(message)

    return sending


def _plain(status: int, text: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    from starlette.responses import PlainTextResponse

    return PlainTextResponse(text + "\n", status, headers={"cache-control": "no-store"})


def _not_found() -> Response:
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("not found\n", 404)


class MetadataRefresher:
    """Rewrites ``metadata.jsonl`` of the directories whose files were rated, ``delay``
    seconds after the last rating (one rewrite for a burst), in a thread of its own."""

    def __init__(self, ledger: Ledger, *, delay: float) -> None:
        self.ledger = ledger
        self.delay = delay
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="genbatch-metadata", daemon=True)
        self._thread.start()
        self.problem: str | None = None
        """The last rewrite's error, if it failed (the ratings themselves are in the ledger)."""

    def touch(self, directory: str) -> None:
        """A file of ``directory`` was rated."""
        with self._lock:
            self._dirty.add(directory)
        self._wake.set()

    def close(self) -> None:
        """Stop the thread, then rewrite what is left."""
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self.flush()

    def flush(self) -> None:
        """Rewrite the directories rated since the last rewrite, now."""
        with self._lock:
            directories, self._dirty = sorted(self._dirty), set()
        if not directories:
            return
        try:
            write_metadata(self.ledger, directories)
            self.problem = None
        except GenbatchError as error:
            self.problem = error.message

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            # Quiet for ``delay``: every new rating restarts the wait.
            while not self._stop.is_set() and self._wake.wait(self.delay):
                self._wake.clear()
            if not self._stop.is_set():
                self.flush()


class ReviewServer:
    """A ``ReviewSession`` served by uvicorn from a background thread, until ``stop()``."""

    def __init__(self, session: ReviewSession, *, port: int = 0) -> None:
        import uvicorn

        self.session = session
        self._socket = bind(port)
        session.port = self._socket.getsockname()[1]
        config = uvicorn.Config(
            session.app(), log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=f"genbatch-review:{session.port}",
            daemon=True,
        )

    def start(self) -> ReviewServer:
        """Serve; returns once the server accepts connections."""
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise GenbatchError("the review server did not start")
            self._thread.join(0.01)
        return self

    def stop(self) -> None:
        """Stop serving, then write the ratings' last ``metadata.jsonl``."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join()
        self._socket.close()
        self.session.metadata.close()

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def bind(port: int = 0) -> socket.socket:
    """A listening socket on loopback (``port`` 0: any free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    sock.listen(64)
    return sock
