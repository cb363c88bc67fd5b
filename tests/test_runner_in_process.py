"""The runner driven in-process: the simulator behind an ASGI transport, time on a virtual clock.

No subprocess and no socket: the run's HTTP calls are function calls of the simulator's app,
its waits between polls are steps of a virtual clock, and its ledger is a real SQLite file.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import anyio
import httpx

from genbatch.client import RunComfyClient
from genbatch.jobs import JobSpec
from genbatch.ledger import Ledger, resolve_location
from genbatch.polling import PollPolicy
from genbatch.runner import Runner, RunOptions
from genbatch.simulator import Simulator, SimulatorConfig
from genbatch.states import JobState

from support import KLING, InProcessTransport, sha256_of

BASE = "http://127.0.0.1:9"
"""Never resolved: every request is a call of the app (a loopback host, so plain http is fine)."""


class VirtualClock:
    """Time that passes only when the runner waits: each wait is recorded and returns at once."""

    def __init__(self) -> None:
        self.time = 0.0
        self.waits: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.time += seconds
        await anyio.sleep(0.001)  # the simulator generates in real (scaled) time meanwhile


def specs(directory: Path, count: int) -> list[JobSpec]:
    return [
        JobSpec(
            key=f"job-{i}",
            ordinal=i,
            block="main",
            model_id=KLING,
            inputs={"prompt": f"clip {i}"},
            file_stem=f"clip-{i}",
            output_dir=str(directory),
        )
        for i in range(count)
    ]


def test_a_run_in_process_polls_on_its_clock_and_keeps_every_file(tmp_path: Path) -> None:
    simulator = Simulator(SimulatorConfig(time_scale=0.0005, seed=2))
    ledger = Ledger.open(resolve_location(str(tmp_path / "ledger.db")))
    run, _ = ledger.sync_run("sweep", "sweep.yaml", specs(tmp_path / "out", 3))
    clock = VirtualClock()
    policy = PollPolicy(interval=1.0, max_interval=30.0)
    polled: dict[str, list[float]] = {}

    class PollsOnTheClock(InProcessTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/result"):
                polled.setdefault(request.url.path, []).append(clock.now())
            return await super().handle_async_request(request)

    async def scenario() -> None:
        transport = PollsOnTheClock(app=simulator.app)
        async with RunComfyClient(base_url=BASE, token=simulator.token, transport=transport) as c:
            runner = Runner(
                ledger=ledger,
                client=c,
                run=run,
                options=RunOptions(concurrency=2, poll=policy, handle_signals=False),
                clock=clock,
            )
            summary = await runner.run()
            assert summary.all_done

    try:
        anyio.run(scenario)
        outputs = [o for item in ledger.job_outputs(run_id=run.id) for o in item.outputs]
        counts = ledger.counts(run.id)
    finally:
        ledger.close()
    assert counts[JobState.DONE] == 3
    served = {out.sha256 for info in simulator.records.list() for out in info.outputs}
    assert sorted(sha256_of(Path(o.path)) for o in outputs if o.path) == sorted(served)
    assert len(outputs) == 3
    # On the runner's clock, only a job's first poll comes sooner than the interval: the first
    # two (no history yet) after interval / 8, the third when the first two say it may be done.
    # Its polls after that are at least the interval apart, from one's sending to the next's.
    assert clock.waits[:2] == [policy.interval / 8] * 2
    assert len(polled) == 3
    assert all(b - a >= policy.interval for at in polled.values() for a, b in pairwise(at))
    assert any(len(at) > 1 for at in polled.values())  # some job was polled more than once
    assert simulator.stats.submissions == 3
