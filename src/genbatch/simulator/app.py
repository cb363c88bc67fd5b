"""The HTTP face of the simulator: RunComfy's routes, auth, faults, output files.

Every call goes the same way: count it, draw its fault, answer early for faults that stop a
call at the door (429, 5xx, dropped connection), check the token, do the work, then let the
fault shape the answer (slow, partial, lost).
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from genbatch.simulator import catalog
from genbatch.simulator.config import SimulatorConfig
from genbatch.simulator.engine import (
    Engine,
    InvalidInput,
    PollState,
    SimError,
    file_url,
    unknown_model,
)
from genbatch.simulator.faults import CallRoute, Fault, FaultInjector, FaultKind
from genbatch.simulator.media import MediaFile
from genbatch.simulator.responses import (
    DelayedResponse,
    DroppedResponse,
    MediaResponse,
    PartialResponse,
    body_problem_response,
    byte_range,
    cdn_error_page,
    error_response,
    json_response,
    validation_response,
)
from genbatch.simulator.stats import SimulatorStats

Handler = Callable[[Request, Fault | None], Awaitable[Response]]

_EARLY = frozenset(
    {
        FaultKind.RATE_LIMIT,
        FaultKind.RATE_LIMIT_BARE,
        FaultKind.SERVER_ERROR,
        FaultKind.BAD_GATEWAY,
        FaultKind.UNAVAILABLE,
        FaultKind.DROP,
        FaultKind.NOT_FOUND_PAGE,
        FaultKind.FORBIDDEN_PAGE,
        FaultKind.NO_ROUTE,
        FaultKind.OTHER_ACCOUNT,
    }
)
_NOT_THE_FILE = frozenset(
    {
        FaultKind.GZIP,
        FaultKind.GZIP_ALWAYS,
        FaultKind.HTML_200,
        FaultKind.EMPTY_200,
        FaultKind.SHORT_200,
    }
)
_DEFAULT_FAILURE = {"code": "generation_failed", "message": "Generation failed (scripted)."}


def iso(moment: Any) -> str | None:
    """ISO-8601 with microseconds and offset, or None."""
    return None if moment is None else str(moment.isoformat(timespec="microseconds"))


class SimulatorApp:
    """The ASGI application of one simulator run."""

    def __init__(
        self, config: SimulatorConfig, engine: Engine, faults: FaultInjector, stats: SimulatorStats
    ) -> None:
        self.config = config
        self.engine = engine
        self.faults = faults
        self.stats = stats
        self._bearer = f"Bearer {config.token}"
        # Replaced by the server on each start: an Event belongs to the loop that waits on it.
        self.closing = asyncio.Event()
        self.files_base: str | None = None
        """The file host's base URL, once the server has bound its port (None: no file host)."""
        self.router = Router(
            routes=[
                Route("/v1/models", self._models_list, methods=["GET"]),
                Route("/v1/models/{model_id:path}", self._models, methods=["GET", "POST"]),
                Route("/v1/requests/{request_id}/status", self._status, methods=["GET"]),
                Route("/v1/requests/{request_id}/result", self._result, methods=["GET"]),
                Route("/v1/requests/{request_id}/cancel", self._cancel, methods=["POST"]),
                Route("/files/{request_id}/{name}", self._file, methods=["GET"]),
            ],
            default=self._unknown_route,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    def file_host(self) -> Router:
        """The ASGI application of the file host: the output files and nothing else."""
        return Router(
            routes=[Route("/files/{request_id}/{name}", self._serve_file, methods=["GET"])],
            default=self._unknown_route,
        )

    # -- routes -----------------------------------------------------------------------------

    async def _models(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._api(request, "submit", self._submit)
        return await self._api(request, "catalog", self._catalog)

    async def _models_list(self, request: Request) -> Response:
        return await self._api(request, "catalog", self._catalog_list)

    async def _status(self, request: Request) -> Response:
        return await self._api(request, "status", self._answer_status)

    async def _result(self, request: Request) -> Response:
        return await self._api(request, "result", self._answer_result)

    async def _cancel(self, request: Request) -> Response:
        return await self._api(request, "cancel", self._answer_cancel)

    async def _unknown_route(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats.count_call("other")
        response = error_response(404, 404000, f"No route {scope.get('path', '')!r}.")
        await response(scope, receive, send)

    # -- the common path of API calls -------------------------------------------------------

    async def _api(self, request: Request, route: CallRoute, handle: Handler) -> Response:
        self.stats.count_call(route)
        fault = self.faults.draw(route)
        if fault is not None and fault.kind in _EARLY:
            self.stats.count_fault(fault.kind)
            return self._early_answer(fault, request.url.path)
        if fault is not None and fault.kind is FaultKind.ECHO_AUTH:
            self.stats.count_fault(fault.kind)
            return _headers_echoed(request)
        if fault is not None and fault.kind is FaultKind.REDIRECT:
            # A load balancer moving the API: nothing was done; ask there (307 keeps the method
            # and the body).
            self.stats.count_fault(fault.kind)
            return Response(
                b"", 307, {"location": str(fault.params.get("location") or request.url)}
            )
        if request.headers.get("authorization") != self._bearer:
            self.stats.add("auth_failures")
            response = error_response(401, 400004, "Invalid or missing API token.")
        else:
            try:
                response = await handle(request, fault)
            except SimError as error:
                if error.error_code == 404001:
                    self.stats.add("not_found")
                response = error_response(error.http_status, error.error_code, error.message)
        return self._late_answer(fault, response, route)

    def _early_answer(self, fault: Fault, path: str) -> Response:
        kind = fault.kind
        if kind is FaultKind.RATE_LIMIT:
            retry_after = fault.number("retry_after", self.config.faults.retry_after)
            return error_response(
                429, 429001, "Too many requests, slow down.", {"retry-after": _seconds(retry_after)}
            )
        if kind is FaultKind.RATE_LIMIT_BARE:
            return error_response(429, 429001, "Too many requests, slow down.")
        if kind is FaultKind.SERVER_ERROR:
            return error_response(500, 500001, "Internal server error.")
        if kind is FaultKind.BAD_GATEWAY:
            return cdn_error_page(502, "Bad Gateway")
        if kind is FaultKind.UNAVAILABLE:
            return cdn_error_page(503, "Service Temporarily Unavailable")
        if kind is FaultKind.NOT_FOUND_PAGE:
            return cdn_error_page(404, "Not Found")
        if kind is FaultKind.FORBIDDEN_PAGE:
            return cdn_error_page(403, "Forbidden")
        if kind is FaultKind.NO_ROUTE:
            return error_response(404, 404000, f"No route {path!r}.")
        if kind is FaultKind.OTHER_ACCOUNT:
            return error_response(403, 403001, "This request belongs to another account.")
        return DroppedResponse()

    def _late_answer(self, fault: Fault | None, response: Response, route: CallRoute) -> Response:
        if fault is None or fault.kind is FaultKind.FAIL:
            return response
        kind = fault.kind
        if kind is FaultKind.LOST_ANSWER and response.status_code != 200:
            kind = FaultKind.DROP  # nothing was created: a plain drop, counted as such
        self.stats.count_fault(kind)
        if kind is FaultKind.SLOW:
            delay = fault.number("delay", self.config.faults.slow_seconds)
            return DelayedResponse(response, delay, self.closing)
        if kind is FaultKind.PARTIAL:
            keep = fault.params.get("keep")
            return PartialResponse(response, None if keep is None else int(keep))
        if kind is FaultKind.MALFORMED:
            return Response(
                bytes(response.body)[: max(1, len(response.body) // 2)],
                200,
                media_type="application/json",
            )
        return DroppedResponse()

    # -- handlers ---------------------------------------------------------------------------

    async def _submit(self, request: Request, fault: Fault | None) -> Response:
        model_id = request.path_params["model_id"]
        if model_id not in self.config.models:
            self.stats.add("rejected_submissions")
            raise unknown_model(model_id)
        body = await _json_object(request)
        if isinstance(body, Response):
            self.stats.add("rejected_submissions")
            return body
        fail_with = None
        if fault is not None and fault.kind is FaultKind.FAIL:
            fail_with = fault.params.get("error", _DEFAULT_FAILURE)
        try:
            record = self.engine.submit(model_id, body, fail_with=fail_with)
        except InvalidInput as invalid:
            self.stats.add("rejected_submissions")
            return validation_response(invalid.problems)
        except SimError:
            self.stats.add("rejected_submissions")
            raise
        if fault is not None and fault.kind is FaultKind.LOST_ANSWER:
            self.engine.mark_answer_lost(record)
        base = self._base_url(request)
        return json_response(
            {
                "request_id": record.request_id,
                **self._links(base, record.request_id),
                "cancel_url": f"{base}/v1/requests/{record.request_id}/cancel",
            }
        )

    async def _catalog(self, request: Request, fault: Fault | None) -> Response:
        model_id = request.path_params["model_id"]
        models = self.config.models
        if model_id == "categories":
            return json_response({"categories": catalog.categories(models)})
        model = models.get(model_id)
        if model is None:
            raise unknown_model(model_id)
        return json_response(catalog.entry(model))

    async def _catalog_list(self, request: Request, fault: Fault | None) -> Response:
        query = request.query_params
        limit = _int_param(query.get("limit"), 50, 1, catalog.MAX_PAGE)
        offset = _int_param(query.get("offset"), 0, 0, None)
        if limit is None or offset is None:
            return body_problem_response(
                f"limit must be 1..{catalog.MAX_PAGE} and offset >= 0", "value_error"
            )
        return json_response(
            catalog.page(
                self.config.models,
                limit=limit,
                offset=offset,
                search=query.get("search"),
                category=query.get("category"),
                include_schema=query.get("include_schema", "").lower() in ("true", "1"),
            )
        )

    async def _answer_status(self, request: Request, fault: Fault | None) -> Response:
        state = self.engine.poll(request.path_params["request_id"])
        payload: dict[str, Any] = {"request_id": state.request_id, "status": state.status}
        if state.queue_position is not None:
            payload["queue_position"] = state.queue_position
        payload.update(self._links(self._base_url(request), state.request_id))
        return json_response(payload)

    async def _answer_result(self, request: Request, fault: Fault | None) -> Response:
        state = self.engine.poll(request.path_params["request_id"])
        payload: dict[str, Any] = {"request_id": state.request_id, "status": state.result_status}
        if state.output_names:
            payload["output"] = self._output(self._base_url(request), state)
        if state.error is not None:
            payload["error"] = state.error
        payload["created_at"] = iso(state.created_at)
        if state.finished_at is not None:
            payload["finished_at"] = iso(state.finished_at)
        return json_response(payload)

    async def _answer_cancel(self, request: Request, fault: Fault | None) -> Response:
        request_id = request.path_params["request_id"]
        status, outcome = self.engine.cancel(request_id)
        return json_response({"request_id": request_id, "status": status, "outcome": outcome}, 202)

    # -- output files (public, no token, like a CDN) ----------------------------------------

    async def _file(self, request: Request) -> Response:
        if self.config.redirect_files and self.files_base is not None:
            self.stats.add("file_redirects")
            return Response(b"", 307, {"location": f"{self.files_base}{request.url.path}"})
        return await self._serve_file(request)

    async def _serve_file(self, request: Request) -> Response:
        self.stats.count_call("file")
        if "authorization" in request.headers:
            self.stats.add("file_requests_with_token")
        fault = self.faults.draw("file")
        if fault is not None and fault.kind in _EARLY:
            self.stats.count_fault(fault.kind)
            return self._early_answer(fault, request.url.path)
        if fault is not None and fault.kind is FaultKind.REDIRECT:
            self.stats.count_fault(fault.kind)
            location = str(fault.params.get("location") or request.url)
            return Response(b"", 302, {"location": location})
        file = self._find_file(request.path_params["request_id"], request.path_params["name"])
        if file is None:
            self.stats.add("not_found")
            return PlainTextResponse("Not Found", 404)
        span = byte_range(request.headers.get("range"), file.size)
        if span == "unsatisfiable":
            return Response(b"", 416, {"content-range": f"bytes */{file.size}"})
        assert not isinstance(span, str)  # narrowed: the only string is handled above
        if fault is not None and fault.kind in _NOT_THE_FILE:
            self.stats.count_fault(fault.kind)
            if fault.kind is not FaultKind.GZIP or accepts_gzip(
                request.headers.get("accept-encoding")
            ):
                return self._other_answer(file, fault)
            fault = None  # gzip not accepted: the file as stored
        return self._media_answer(file, span, fault)

    def _find_file(self, request_id: str, name: str) -> MediaFile | None:
        try:
            files = self.engine.files(request_id)
        except SimError:
            return None
        return next((f for f in files if f.name == name), None)

    def _media_answer(
        self, file: MediaFile, span: tuple[int, int] | None, fault: Fault | None
    ) -> Response:
        length = file.size if span is None else span[1] - span[0] + 1
        slow: float | None = None
        keep: int | None = None
        if fault is not None:
            self.stats.count_fault(fault.kind)
            if fault.kind is FaultKind.SLOW:
                slow = fault.number("delay", self.config.faults.slow_seconds)
            else:  # truncate or partial: announce everything, send less
                wanted = fault.params.get("keep")
                keep = length // 2 if wanted is None else int(wanted)
                keep = max(0, min(keep, length - 1))
        return MediaResponse(
            file, span, on_sent=self._count_sent, closing=self.closing, slow=slow, keep=keep
        )

    def _other_answer(self, file: MediaFile, fault: Fault) -> Response:
        """A 200 that is not the file as stored: compressed, a page, empty, or cut short."""
        kind = fault.kind
        if kind is FaultKind.HTML_200:
            return cdn_error_page(200, "OK")
        if kind is FaultKind.EMPTY_200:
            return Response(b"", 200, media_type=file.content_type)
        if kind is FaultKind.SHORT_200:
            wanted = fault.params.get("keep")
            keep = file.size // 2 if wanted is None else max(0, min(int(wanted), file.size))
            return Response(file.data[:keep], 200, media_type=file.content_type)
        self._count_sent(file.size, True)
        return Response(
            gzip.compress(file.data, mtime=0),
            200,
            {"content-encoding": "gzip", "etag": f'W/"{file.sha256}"'},
            media_type=file.content_type,
        )

    def _count_sent(self, sent: int, complete: bool) -> None:
        self.stats.add("bytes_served", sent)
        if complete:
            self.stats.add("files_served")

    # -- helpers ----------------------------------------------------------------------------

    def _base_url(self, request: Request) -> str:
        host = request.headers.get("host")
        if host:
            return f"{request.scope.get('scheme', 'http')}://{host}"
        server = request.scope.get("server") or (self.config.host, self.config.port)
        return f"http://{server[0]}:{server[1]}"

    @staticmethod
    def _links(base: str, request_id: str) -> dict[str, str]:
        return {
            "status_url": f"{base}/v1/requests/{request_id}/status",
            "result_url": f"{base}/v1/requests/{request_id}/result",
        }

    def output_base(self, api_base: str) -> str:
        """Where output URLs point: the file host, unless the API's host redirects to it."""
        if self.files_base is None or self.config.redirect_files:
            return api_base
        return self.files_base

    def _output(self, base: str, state: PollState) -> dict[str, Any]:
        files = self.output_base(base)
        urls = [file_url(files, state.request_id, name) for name in state.output_names]
        key = state.model.output.output_key
        if key.endswith("s"):
            return {key: urls + urls[:1] if self.config.duplicate_outputs else urls}
        if self.config.duplicate_outputs:
            return {key: urls[0], f"{key}s": urls[:1]}
        return {key: urls[0]}


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when an ``Accept-Encoding`` header lets gzip through (``q=0`` refuses it)."""
    for item in (accept_encoding or "").lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() in ("gzip", "x-gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


async def _json_object(request: Request) -> dict[str, Any] | Response:
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return body_problem_response(f"JSON decode error: {error}", "json_invalid")
    if not isinstance(body, dict):
        return body_problem_response("Input should be a JSON object", "dict_type")
    return body


def _headers_echoed(request: Request) -> Response:
    """What a badly configured proxy answers: its error quotes the headers it was sent."""
    quoted = "; ".join(
        f"{name}={request.headers.get(name, '')}" for name in ("authorization", "user-agent")
    )
    return error_response(400, 400000, f"Request refused by the gateway (headers: {quoted}).")


def _int_param(text: str | None, default: int, low: int, high: int | None) -> int | None:
    """A whole-number query parameter within [low, high], its default when absent, else None."""
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= low and (high is None or value <= high) else None


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
