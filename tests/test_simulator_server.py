"""Starting the simulator: as a context manager, from async code, and as ``genbatch simulate``."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from genbatch.simulator import Simulator, SimulatorConfig

MakeSimulator = Callable[..., Simulator]

NANO = "google/nano-banana-2/text-to-image"
KLING = "kling/kling-2-6/pro/text-to-video"


def test_start_and_stop_are_quick_and_free_the_port() -> None:
    started = time.monotonic()
    with Simulator(SimulatorConfig()) as sim:
        assert sim.running
        assert sim.base_url == f"http://127.0.0.1:{sim.port}"
        assert httpx.get(f"{sim.base_url}/v1/models/{NANO}", headers=sim.headers).is_success
    assert time.monotonic() - started < 2.0  # generous: it takes milliseconds
    assert not sim.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sim.base_url}/v1/models/{NANO}")


def test_a_restart_keeps_the_port_and_the_requests() -> None:
    sim = Simulator(SimulatorConfig(), time_scale=1.0)
    sim.start()
    request_id = httpx.post(
        f"{sim.base_url}/v1/models/{NANO}", json={"prompt": "x"}, headers=sim.headers
    ).json()["request_id"]
    port = sim.port
    sim.stop()
    sim.stop()  # stopping twice is harmless

    sim.start()
    try:
        assert sim.port == port
        status = httpx.get(f"{sim.base_url}/v1/requests/{request_id}/status", headers=sim.headers)
        assert status.json()["status"] == "in_progress"
    finally:
        sim.stop()
    with pytest.raises(RuntimeError):
        sim.start().start()
    sim.stop()


def test_config_overrides_and_validation() -> None:
    sim = Simulator(SimulatorConfig(capacity=3), seed=9, token="t")
    assert (sim.config.capacity, sim.config.seed, sim.token) == (3, 9, "t")
    assert sim.headers == {"Authorization": "Bearer t"}
    with pytest.raises(ValueError):
        SimulatorConfig(capacity=0)
    with pytest.raises(ValueError):
        SimulatorConfig(fail_rate=2)
    with pytest.raises(ValueError):
        SimulatorConfig(durations={NANO: (-1.0, 0.0)})


@pytest.mark.anyio
async def test_usable_from_async_code(simulator: Simulator) -> None:
    async with httpx.AsyncClient(base_url=simulator.base_url, headers=simulator.headers) as client:
        answer = await client.post(f"/v1/models/{NANO}", json={"prompt": "x"})
        status = await client.get(f"/v1/requests/{answer.json()['request_id']}/status")
    assert status.status_code == 200


def test_generation_times_follow_the_seed(make_simulator: MakeSimulator) -> None:
    def times(seed: int) -> list[float]:
        sim = make_simulator(seed=seed, time_scale=1.0, fail_rate=0.5)
        with httpx.Client(base_url=sim.base_url, headers=sim.headers) as client:
            for i in range(8):
                client.post(f"/v1/models/{KLING}", json={"prompt": f"p{i}"})
        return [info.generation_seconds for info in sim.records.list()]

    first, again, other = times(5), times(5), times(6)

    assert first == again
    assert first != other
    assert len(set(first)) == 8  # a spread, not one fixed time
    assert all(60 < t < 1000 for t in first)  # lognormal around Kling's 240 s


def test_the_duration_override_fixes_the_time(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(durations={NANO: (2000.0, 0.0)}, time_scale=0.0005)
    with httpx.Client(base_url=sim.base_url, headers=sim.headers) as client:
        client.post(f"/v1/models/{NANO}", json={"prompt": "x"})
    assert sim.records.list()[0].generation_seconds == pytest.approx(1.0)


def test_thousands_of_requests_stay_cheap(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(capacity=16, time_scale=0.01)  # 0.12 s per image: a queue builds
    started = time.monotonic()
    with httpx.Client(base_url=sim.base_url, headers=sim.headers) as client:
        ids = [
            client.post(f"/v1/models/{NANO}", json={"prompt": f"p{i}"}).json()["request_id"]
            for i in range(1000)
        ]
        last = client.get(f"/v1/requests/{ids[-1]}/status").json()
    assert time.monotonic() - started < 15  # generous; about a second on one core
    assert sim.stats.submissions == 1000
    assert sim.stats.peak_in_progress == 16
    assert last["status"] == "in_queue"
    assert 1 < last["queue_position"] < 1000 - 16
    assert sim.stats.peak_active > 16


# -- genbatch simulate ------------------------------------------------------------------------


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNCOMFY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "genbatch", "simulate", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("export "):
            settings = dict(part.split("=", 1) for part in line.split()[1:])
            return process, settings["RUNCOMFY_API_BASE"], settings["RUNCOMFY_TOKEN"]
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"genbatch simulate did not start: {process.communicate()}")


def test_genbatch_simulate_serves_until_interrupted() -> None:
    process, base, token = _start_cli(
        "--token", "cli-token", "--time-scale", "0.0001", "--fault-429", "0"
    )
    try:
        headers = {"Authorization": f"Bearer {token}"}
        assert token == "cli-token"
        assert base.startswith("http://127.0.0.1:")
        answer = httpx.post(f"{base}/v1/models/{NANO}", json={"prompt": "x"}, headers=headers)
        assert answer.status_code == 200
        assert httpx.post(f"{base}/v1/models/{NANO}", json={"prompt": "x"}).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)

    assert process.returncode == 0
    assert "Traceback" not in stderr
    assert '"submissions": 1' in stdout


def test_genbatch_simulate_applies_fault_options() -> None:
    process, base, token = _start_cli("--fault-5xx", "1", "--fault-routes", "poll")
    try:
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/v1/requests/x/status", headers=headers).status_code >= 500
        assert (
            httpx.post(
                f"{base}/v1/models/{NANO}", json={"prompt": "x"}, headers=headers
            ).status_code
            == 200
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "Traceback" not in stderr


def test_genbatch_simulate_rejects_bad_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "genbatch", "simulate", "--fault-429", "0.7", "--fault-drop", "0.7"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 2
    assert "add up" in done.stderr
    assert "Traceback" not in done.stderr


def test_genbatch_simulate_serves_a_model_given_as_a_schema_file(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "required": ["prompt"],
        "properties": {"prompt": {"type": "string"}},
    }
    (tmp_path / "dream.json").write_text(json.dumps({"input_schema": schema}))
    process, base, token = _start_cli("--model-schema", f"acme/dream/v1={tmp_path / 'dream.json'}")
    try:
        headers = {"Authorization": f"Bearer {token}"}
        entry = httpx.get(f"{base}/v1/models/acme/dream/v1", headers=headers).json()
        assert entry["input_schema"] == schema
        url = f"{base}/v1/models/acme/dream/v1"
        assert httpx.post(url, json={"prompt": "x"}, headers=headers).status_code == 200
        assert httpx.post(url, json={"prompt": 5}, headers=headers).status_code == 422
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)


def test_genbatch_simulate_refuses_a_schema_file_without_a_model_id(tmp_path: Path) -> None:
    (tmp_path / "dream.json").write_text('{"properties": {"prompt": {"type": "string"}}}')
    done = subprocess.run(
        [sys.executable, "-m", "genbatch", "simulate", "--model-schema", "dream.json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "genbatch: error: --model-schema: dream.json names no model_id: give it as "
        "MODEL_ID=dream.json\n"
    )


def test_a_request_of_a_simulator_gone_is_adopted_by_the_next_on_the_same_port() -> None:
    # What `genbatch run --simulate` does when it resumes a rehearsal: the ledger's request ids
    # are of the simulator that ran before.
    body = {"prompt": "a fox", "aspect_ratio": "9:16", "duration": 5}
    with Simulator(SimulatorConfig(time_scale=0.0)) as first:
        answer = httpx.post(f"{first.base_url}/v1/models/{KLING}", json=body, headers=first.headers)
        request_id = answer.json()["request_id"]
        [output] = first.records[request_id].outputs
        port = first.port

    with Simulator(SimulatorConfig(time_scale=0.0), port=port) as second:
        assert second.adopt(request_id, KLING, body, generated=True)
        assert not second.adopt("another", "acme/not-served", body)
        result = httpx.get(
            f"{second.base_url}/v1/requests/{request_id}/result", headers=second.headers
        ).json()
        clip = httpx.get(output.url)  # the URL the first one gave answers again

    assert result["status"] == "succeeded"
    assert clip.is_success and hashlib.sha256(clip.content).hexdigest() == output.sha256
    assert second.stats.submissions == 0  # nothing sent, nothing billed
