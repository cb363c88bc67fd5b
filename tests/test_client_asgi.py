"""The client's transport seam: the simulator driven in-process through ASGI, no socket opened.

``Simulator(...)`` builds its ASGI app without serving it; ``start()`` is what binds a port.
These tests never call it, so each call is a function call on the test's own event loop.
"""

from __future__ import annotations

import anyio
import pytest

from genbatch.client import RemoteResult, RunComfyClient
from genbatch.errors import AuthError, RateLimited, TransportError
from genbatch.pricing import fetch_api_prices
from genbatch.simulator import Simulator, SimulatorConfig

from support import KLING, InProcessTransport

IN_PROCESS_BASE = "http://simulator.test"
"""Any host will do: the transport never resolves it. The simulator builds its URLs on it."""


def in_process_client(simulator: Simulator, *, token: str | None = None) -> RunComfyClient:
    """A client whose every request, to the API and to the file host, is a call of the app."""
    return RunComfyClient(
        base_url=IN_PROCESS_BASE,
        token=simulator.token if token is None else token,
        transport=InProcessTransport(app=simulator.app),
    )


async def settled(client: RunComfyClient, request_id: str) -> RemoteResult:
    """The result once the request has left the queue and finished."""
    with anyio.fail_after(10):  # a guard against a hang, not a measure
        while True:
            result = await client.result(request_id)
            if result.status not in ("in_queue", "in_progress"):
                return result
            await anyio.sleep(0.001)


def on_simulator(url: str) -> bool:
    """The download policy of these tests: files come from the simulator only."""
    return url.startswith(f"{IN_PROCESS_BASE}/")


def test_a_generation_is_submitted_polled_and_downloaded_in_process() -> None:
    simulator = Simulator(SimulatorConfig(time_scale=0.001))

    async def generate() -> tuple[RemoteResult, bytes, int | None]:
        async with in_process_client(simulator) as client:
            submission = await client.submit(KLING, {"prompt": "a lighthouse at dusk"})
            result = await settled(client, submission.request_id)
            async with client.open_file(result.output_urls[0], is_allowed=on_simulator) as stream:
                body = b"".join([chunk async for chunk in stream.chunks()])
            return result, body, stream.content_length

    result, body, announced = anyio.run(generate)

    assert result.status == "succeeded"
    assert result.output_urls[0].startswith(f"{IN_PROCESS_BASE}/files/{result.request_id}/")
    assert body[4:8] == b"ftyp" and len(body) == announced
    assert simulator.records[result.request_id].status == "succeeded"
    assert simulator.stats.calls["submit"] == 1 and simulator.stats.files_served == 1
    assert simulator.stats.file_requests_with_token == 0
    assert not simulator.running  # no server, no port: everything happened in this process


def test_api_errors_and_scripted_faults_are_translated_the_same_in_process() -> None:
    simulator = Simulator(SimulatorConfig(time_scale=0.001))
    simulator.inject(route="submit", fault="rate_limit", retry_after=3)

    async def refused(token: str | None) -> Exception:
        async with in_process_client(simulator, token=token) as client:
            with pytest.raises((AuthError, RateLimited)) as raised:
                await client.submit(KLING, {"prompt": "x"})
            return raised.value

    limited = anyio.run(refused, None)
    unauthorised = anyio.run(refused, "not-the-token")

    assert isinstance(limited, RateLimited) and limited.retry_after == 3
    assert isinstance(unauthorised, AuthError) and unauthorised.http_status == 401
    assert simulator.stats.submissions == 0 and simulator.stats.auth_failures == 1


def test_a_lost_submit_answer_is_an_ambiguous_transport_error_in_process() -> None:
    simulator = Simulator(SimulatorConfig(time_scale=0.001))
    simulator.inject(route="submit", fault="lost_answer")

    async def submit() -> TransportError:
        async with in_process_client(simulator) as client:
            with pytest.raises(TransportError) as raised:
                await client.submit(KLING, {"prompt": "x"})
            return raised.value

    error = anyio.run(submit)

    assert error.request_sent  # the request may have been received: never submit it again
    assert simulator.stats.submissions == 1 and len(simulator.records) == 1


def test_prices_are_read_from_the_catalog_in_process() -> None:
    simulator = Simulator(SimulatorConfig())

    async def prices() -> set[str]:
        async with in_process_client(simulator) as client:
            return set(await fetch_api_prices(client, [KLING, "acme/not-in-the-catalog"]))

    assert anyio.run(prices) == {KLING}
    assert simulator.stats.calls["catalog"] == 2
