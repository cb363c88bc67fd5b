"""What the simulator counts reaches its users: `sim.stats.snapshot()` and the JSON line
`genbatch simulate` prints when it stops, field for field."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import httpx

from genbatch.simulator import Simulator, SimulatorStats

from support import kill, start_genbatch

KLING = "kling/kling-2-6/pro/text-to-video"
TOKEN = "stats-test-token"


def output_url(base_url: str, headers: dict[str, str]) -> str:
    """Submit one clip over HTTP and wait for it: its output URL."""
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        answer = client.post(f"/v1/models/{KLING}", json={"prompt": "a fox"})
        request_id = answer.json()["request_id"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            result = client.get(f"/v1/requests/{request_id}/result").json()
            if result["status"] == "succeeded":
                return str(result["output"]["video"])
            time.sleep(0.01)
    raise AssertionError("never finished")


def test_the_snapshot_has_every_field_docs_simulator_md_lists() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "simulator.md").read_text(encoding="utf-8")
    table = docs.split("| field | meaning |")[1].split("\n\n")[0]
    listed = {
        name for row in table.splitlines()[2:] for name in re.findall(r"`(\w+)`", row.split("|")[1])
    }

    assert "file_requests_with_token" in listed
    assert listed <= set(SimulatorStats().snapshot())


def test_a_file_request_carrying_the_token_is_counted_in_the_snapshot() -> None:
    with Simulator(time_scale=0.0005, file_host="localhost") as sim:
        url = output_url(sim.base_url, sim.headers)
        assert httpx.get(url, timeout=10).status_code == 200
        assert httpx.get(url, headers=sim.headers, timeout=10).status_code == 200

        snapshot = sim.stats.snapshot()

    assert snapshot["file_requests_with_token"] == 1
    assert snapshot["calls"]["file"] == 2


def test_genbatch_simulate_prints_the_file_requests_with_token_when_it_stops(
    tmp_path: Path,
) -> None:
    process = start_genbatch(
        ["simulate", "--port", "0", "--file-host", "localhost", "--token", TOKEN],
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base = line.split(" listening on ")[1].split()[0]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = output_url(base, headers)
        assert httpx.get(url, headers=headers, timeout=10).status_code == 200
    finally:
        code, rest, _ = kill(process, signal.SIGINT)

    assert code == 0
    stopped = [x for x in rest.splitlines() if x.startswith("simulator stopped: ")]
    counters = json.loads(stopped[0].removeprefix("simulator stopped: "))
    assert counters["file_requests_with_token"] == 1
    assert counters["calls"]["file"] == 1
