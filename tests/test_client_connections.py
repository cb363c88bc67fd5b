"""The API client's pooled connections, over loopback against the simulator."""

from __future__ import annotations

import pytest

from genbatch.client import RunComfyClient
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
