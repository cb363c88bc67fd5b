"""A submit's answer cut short or malformed: the request id is kept when it arrived whole.

The request exists as soon as the API answered 200, so an id received whole is a request to
follow, not an `unknown` job to pay for twice. An id not received whole (its closing quote
missing) is nothing: the submit stays ambiguous, as when no byte came.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from genbatch.client import MAX_SUBMIT_ANSWER_BYTES, RunComfyClient, Submission
from genbatch.errors import BadAnswer, ServerError, TransportError
from genbatch.simulator import Simulator, SimulatorConfig

from support import KLING, InProcessTransport

ID_ENDS = len('{"request_id":"') + 36
"""Bytes of the simulator's submit answer (compact JSON, a UUID first) before the id's closing
quote: keeping ``ID_ENDS`` bytes cuts just that quote off."""
REQUEST_ID = "299ae521-5b1e-4c43-9d1e-6f0c2a7d8e11"
TOKEN = "tok-secret-0123456789"

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def submit_to(simulator: Simulator) -> Submission:
    async with RunComfyClient(base_url=simulator.base_url, token=simulator.token) as client:
        return await client.submit(KLING, {"prompt": "a lighthouse at dusk"})


async def submit_in_process(app: Asgi, *, token: str = TOKEN) -> Submission:
    async with RunComfyClient(
        base_url="http://api.test", token=token, transport=InProcessTransport(app=app)
    ) as client:
        return await client.submit(KLING, {"prompt": "a lighthouse at dusk"})


def answering(status: int, body: bytes) -> Asgi:
    """An API that answers every call with ``status`` and ``body``, nothing else."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.anyio
@pytest.mark.parametrize("keep", [ID_ENDS + 1, ID_ENDS + 40])
async def test_a_submit_answer_cut_after_the_request_id_is_a_submission(
    simulator: Simulator, keep: int
) -> None:
    simulator.inject(route="submit", fault="partial", keep=keep)

    submission = await submit_to(simulator)

    assert submission.request_id in simulator.records
    assert simulator.stats.submissions == 1
    assert submission.status_url is None  # cut before it: nothing half received is kept


@pytest.mark.anyio
@pytest.mark.parametrize("keep", [0, 5, 20, ID_ENDS])
async def test_a_submit_answer_cut_before_the_request_id_ends_stays_ambiguous(
    simulator: Simulator, keep: int
) -> None:
    simulator.inject(route="submit", fault="partial", keep=keep)

    with pytest.raises(TransportError) as raised:
        await submit_to(simulator)

    assert raised.value.request_sent is True
    assert raised.value.submit_disposition() == "unknown"


@pytest.mark.anyio
async def test_a_malformed_200_holding_the_request_id_is_a_submission_in_process() -> None:
    simulator = Simulator(SimulatorConfig(time_scale=0.001))
    simulator.inject(route="submit", fault="malformed")

    submission = await submit_in_process(simulator.app, token=simulator.token)

    assert submission.request_id in simulator.records
    assert simulator.stats.faults["malformed"] == 1


@pytest.mark.anyio
async def test_the_links_received_whole_come_with_the_recovered_request_id() -> None:
    whole = json.dumps(
        {
            "request_id": REQUEST_ID,
            "status_url": f"http://api.test/v1/requests/{REQUEST_ID}/status",
            "result_url": f"http://api.test/v1/requests/{REQUEST_ID}/result",
        }
    ).encode()

    submission = await submit_in_process(answering(200, whole[:-20]))

    assert submission.request_id == REQUEST_ID
    assert submission.status_url == f"http://api.test/v1/requests/{REQUEST_ID}/status"
    assert submission.result_url is None


@pytest.mark.anyio
@pytest.mark.parametrize(
    "body",
    [
        b'{"request_id":"299ae521-5b1e',  # cut inside the id
        b'{"request_id":"299ae521-5b1e-4c43-9d1e-6f0c2a7d8e11\\',  # cut inside an escape
        b'{"request_id":"",',  # empty
        b'{"request_id":"a b/c",',  # not an id: could not go in a URL path
        b'{"request_id":12345,',  # not a string
        b'{"detail":{"request_id":"299ae521-5b1e-4c43-9d1e-6f0c2a7d8e11"},',  # not the answer's
        b'{"request_id":"299ae521-5b1e-4c43-9d1e-6f0c2a7d8e11","request_id":"x","',  # twice
        b'{"request_id":"299ae521-5b1e-4c43-9d1e-6f0c2a7d8e11","request_id":"29',  # twice, cut
        b'<html>"request_id":"299ae521-5b1e-4c43-9d1e-6f0c2a7d8e11"',  # not a JSON object
        b"",
    ],
)
async def test_a_malformed_200_without_a_whole_request_id_is_a_bad_answer(body: bytes) -> None:
    with pytest.raises(BadAnswer) as raised:
        await submit_in_process(answering(200, body))

    assert raised.value.submit_disposition() == "unknown"


@pytest.mark.anyio
async def test_an_error_answer_holding_a_request_id_is_not_a_submission() -> None:
    body = f'{{"request_id":"{REQUEST_ID}","error_code":500001,"error_me'.encode()

    with pytest.raises(ServerError):
        await submit_in_process(answering(500, body))


@pytest.mark.anyio
async def test_an_id_holding_the_token_is_never_taken_and_never_quoted() -> None:
    body = f'{{"request_id":"{TOKEN}","status_u'.encode()

    with pytest.raises(BadAnswer) as raised:
        await submit_in_process(answering(200, body))

    assert TOKEN not in str(raised.value) and TOKEN not in repr(raised.value.detail)


@pytest.mark.anyio
async def test_a_submit_answer_larger_than_the_cap_is_read_no_further() -> None:
    padding = b"x" * (MAX_SUBMIT_ANSWER_BYTES * 2)
    unreadable = b'{"status_url":"' + padding + b'"}'
    with_id = f'{{"request_id":"{REQUEST_ID}","padding":"'.encode() + padding + b'"}'

    with pytest.raises(BadAnswer) as raised:
        await submit_in_process(answering(200, unreadable))
    submission = await submit_in_process(answering(200, with_id))

    assert f"larger than {MAX_SUBMIT_ANSWER_BYTES} bytes" in str(raised.value)
    assert submission.request_id == REQUEST_ID


@pytest.mark.anyio
async def test_a_submit_redirected_on_the_api_origin_is_followed_and_answered() -> None:
    calls: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope["path"])
        if scope["path"].startswith("/v1/models/"):
            headers = [(b"location", b"/moved"), (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 307, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await answering(200, f'{{"request_id":"{REQUEST_ID}"}}'.encode())(scope, receive, send)

    submission = await submit_in_process(app)

    assert submission.request_id == REQUEST_ID
    assert calls == [f"/v1/models/{KLING}", "/moved"]


def test_the_loopback_simulator_answers_a_submit_with_the_id_first(
    simulator: Simulator,
) -> None:
    # ID_ENDS above rests on this layout: if it changes, the boundary tests above lie.
    answer = httpx.post(
        f"{simulator.base_url}/v1/models/{KLING}",
        json={"prompt": "x"},
        headers=simulator.headers,
    )
    assert (
        answer.content[: ID_ENDS + 1] == f'{{"request_id":"{answer.json()["request_id"]}"'.encode()
    )


@pytest.mark.anyio
async def test_a_compressed_submit_answer_cut_short_gives_its_request_id_decoded() -> None:
    whole = f'{{"request_id":"{REQUEST_ID}","status_url":"http://api.test/x"}}'.encode()
    compressed = gzip.compress(whole)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-encoding", b"gzip")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": compressed[: len(compressed) - 12]})

    submission = await submit_in_process(app)

    assert submission.request_id == REQUEST_ID
