"""The API client's pooled connections, over loopback against the simulator."""

from __future__ import annotations

import socket

import pytest

from genbatch.client import RunComfyClient
from genbatch.errors import TransportError
from genbatch.simulator import Simulator, SimulatorConfig

NANO = "google/nano-banana-2/text-to-image"


@pytest.mark.anyio
async def test_a_connection_the_api_closed_while_idle_is_not_reused_for_the_next_submit() -> None:
    # Sent over a connection the server has closed, a submit would get no answer and its job
    # would be `unknown`: the pool must see the connection is gone and open another.
    sim = Simulator(SimulatorConfig(), time_scale=1.0)
    sim.start()
    try:
        async with RunComfyClient(base_url=sim.base_url, token=sim.token) as client:
            await client.submit(NANO, {"prompt": "a red fox"})  # its connection stays pooled
            sim.stop()  # the server closes every connection...
            sim.start()  # ...and serves again on the same port
            submission = await client.submit(NANO, {"prompt": "a snow owl"})
            result = await client.result(submission.request_id)
    finally:
        sim.stop()
    assert result.request_id == submission.request_id


@pytest.mark.anyio
async def test_a_proxy_the_environment_names_is_used(
    simulator: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    async with RunComfyClient(base_url=simulator.base_url, token=simulator.token) as client:
        with pytest.raises(TransportError) as raised:
            await client.submit(NANO, {"prompt": "a red fox"})
    assert raised.value.request_sent is False  # the proxy refused it: it never left
