"""The simulator's faults: scripted ones hit exactly the next calls, random ones follow the seed."""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from genbatch.simulator import FaultConfig, Simulator

MakeSimulator = Callable[..., Simulator]

KLING = "kling/kling-2-6/pro/text-to-video"
NANO = "google/nano-banana-2/text-to-image"

# A closed connection reads as a protocol error or, when the close races unread bytes, a reset.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


def submit(client: httpx.Client, body: dict[str, Any] | None = None) -> httpx.Response:
    return client.post(f"/v1/models/{NANO}", json=body or {"prompt": "x"})


def finished_file_url(client: httpx.Client) -> tuple[str, str]:
    request_id = submit(client).json()["request_id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        result = client.get(f"/v1/requests/{request_id}/result").json()
        if result["status"] == "succeeded":
            return request_id, str(result["output"]["images"][0])
        time.sleep(0.01)
    raise AssertionError("never finished")


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# -- answers that stop the call at the door ---------------------------------------------------


def test_rate_limit_with_and_without_retry_after(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    simulator.inject(route="submit", fault="rate_limit", retry_after=7)
    simulator.inject(route="submit", fault="rate_limit_bare")

    with_header = submit(sim_client)
    without = submit(sim_client)

    assert (with_header.status_code, with_header.headers["retry-after"]) == (429, "7")
    assert without.status_code == 429
    assert "retry-after" not in without.headers
    assert submit(sim_client).status_code == 200
    assert simulator.stats.faults == {"rate_limit": 1, "rate_limit_bare": 1}
    assert simulator.stats.submissions == 1  # a 429 was not accepted


@pytest.mark.parametrize(
    ("fault", "status", "kind"),
    [
        ("server_error", 500, "application/json"),
        ("bad_gateway", 502, "text/html"),
        ("unavailable", 503, "text/html"),
    ],
)
def test_server_errors_look_like_the_api_or_a_cdn(
    simulator: Simulator, sim_client: httpx.Client, fault: str, status: int, kind: str
) -> None:
    simulator.inject(route="poll", fault=fault, count=2)

    answers = [
        sim_client.get("/v1/requests/whatever/status"),
        sim_client.get("/v1/requests/whatever/result"),
    ]

    for answer in answers:
        assert answer.status_code == status
        assert answer.headers["content-type"].startswith(kind)
    if status == 500:
        assert answers[0].json()["error_code"] == 500001
    else:
        assert answers[0].text.startswith("<html>")
    assert simulator.stats.faults[fault] == 2


def test_a_dropped_submit_creates_nothing(simulator: Simulator, sim_client: httpx.Client) -> None:
    simulator.inject(route="submit", fault="drop")

    with pytest.raises(DROPPED):
        submit(sim_client)

    assert len(simulator.records) == 0
    assert simulator.stats.faults["drop"] == 1
    assert submit(sim_client).status_code == 200  # the next call is fine


# -- the ambiguous submits --------------------------------------------------------------------


def test_a_lost_answer_creates_runs_and_bills_the_request(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(balance_usd=1.0)
    sim.inject(route="submit", fault="lost_answer")
    with httpx.Client(base_url=sim.base_url, headers=sim.headers) as client:
        with pytest.raises(DROPPED):
            submit(client, {"prompt": "lost"})

        [info] = sim.records.list()
        assert info.answer_lost
        assert info.body == {"prompt": "lost"}
        assert sim.stats.submissions == 1
        assert sim.balance_usd == pytest.approx(1.0 - 0.039)
        wait_for(lambda: sim.records[info.request_id].status == "succeeded")
    assert sim.stats.faults["lost_answer"] == 1


def test_a_lost_answer_on_a_refused_submit_is_a_plain_drop(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    simulator.inject(route="submit", fault="lost_answer")

    with pytest.raises(DROPPED):
        sim_client.post("/v1/models/acme/nope", json={"prompt": "x"})

    assert simulator.stats.faults == {"drop": 1}


def test_a_partial_answer_cuts_the_body_after_the_side_effect(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    simulator.inject(route="submit", fault="partial", keep=10)

    with pytest.raises(DROPPED):
        submit(sim_client)

    assert len(simulator.records) == 1
    assert simulator.stats.faults["partial"] == 1


def test_a_slow_submit_exists_before_its_answer_arrives(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    simulator.inject(route="submit", fault="slow", delay=5.0)

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        sim_client.post(f"/v1/models/{NANO}", json={"prompt": "x"}, timeout=0.3)

    assert len(simulator.records) == 1  # created, while the client never heard back
    assert time.monotonic() - started < 2
    assert simulator.stats.faults["slow"] == 1


def test_a_slow_poll_arrives_late_but_whole(simulator: Simulator, sim_client: httpx.Client) -> None:
    request_id = submit(sim_client).json()["request_id"]
    simulator.inject(route="status", fault="slow", delay=0.2)

    started = time.monotonic()
    answer = sim_client.get(f"/v1/requests/{request_id}/status")

    assert answer.status_code == 200
    assert time.monotonic() - started >= 0.2


# -- output files -----------------------------------------------------------------------------


def test_a_truncated_download_announces_everything_and_sends_less(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    request_id, url = finished_file_url(sim_client)
    size = simulator.records[request_id].outputs[0].size
    simulator.inject(route="file", fault="truncate")

    received = bytearray()
    with pytest.raises(DROPPED), httpx.stream("GET", url) as response:
        assert int(response.headers["content-length"]) == size
        for chunk in response.iter_bytes():
            received += chunk

    assert 0 < len(received) < size
    assert simulator.stats.faults["truncate"] == 1
    assert simulator.stats.files_served == 0
    assert httpx.get(url).content.__len__() == size  # the next download is whole


def test_a_slow_download_can_be_abandoned_midway(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    request_id, url = finished_file_url(sim_client)
    size = simulator.records[request_id].outputs[0].size
    simulator.inject(route="file", fault="slow", delay=30.0)

    with httpx.stream("GET", url) as response:
        first = next(response.iter_raw())
    # Leaving the block closed the connection: the server stops streaming at once.

    assert 0 < len(first) < size
    wait_for(lambda: simulator.stats.bytes_served > 0)
    assert simulator.stats.bytes_served < size
    assert simulator.stats.files_served == 0
    assert simulator.stats.faults["slow"] == 1


def test_a_slow_download_completes_if_waited_for(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    request_id, url = finished_file_url(sim_client)
    simulator.inject(route="file", fault="slow", delay=0.2)

    body = httpx.get(url).content

    assert len(body) == simulator.records[request_id].outputs[0].size
    assert simulator.stats.files_served == 1


def test_a_dropped_download(simulator: Simulator, sim_client: httpx.Client) -> None:
    _, url = finished_file_url(sim_client)
    simulator.inject(route="file", fault="drop")

    with pytest.raises(DROPPED):
        httpx.get(url)


def test_gzip_compresses_a_file_only_for_a_client_that_accepts_it(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    request_id, url = finished_file_url(sim_client)
    stored = simulator.records[request_id].outputs[0]
    simulator.inject(route="file", fault="gzip", count=2)

    with httpx.stream("GET", url, headers={"accept-encoding": "gzip"}) as accepting:
        raw = b"".join(accepting.iter_raw())
    refusing = httpx.get(url, headers={"accept-encoding": "identity"})

    assert accepting.headers["content-encoding"] == "gzip"
    # The gzip magic number, not the length: random file bytes may compress to their own size.
    assert raw[:2] == b"\x1f\x8b"
    assert int(accepting.headers["content-length"]) == len(raw)
    assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == stored.sha256
    assert "content-encoding" not in refusing.headers
    assert hashlib.sha256(refusing.content).hexdigest() == stored.sha256
    assert simulator.stats.faults["gzip"] == 2


def test_gzip_always_compresses_whatever_the_client_accepts(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    request_id, url = finished_file_url(sim_client)
    simulator.inject(route="file", fault="gzip_always")

    with httpx.stream("GET", url, headers={"accept-encoding": "identity"}) as answer:
        raw = b"".join(answer.iter_raw())

    assert answer.headers["content-encoding"] == "gzip"
    assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == (
        simulator.records[request_id].outputs[0].sha256
    )


@pytest.mark.parametrize(
    ("fault", "kind", "size"),
    [("html_200", "text/html", None), ("empty_200", "image/png", 0), ("short_200", "image/png", 5)],
)
def test_a_200_that_is_not_the_file(
    simulator: Simulator, sim_client: httpx.Client, fault: str, kind: str, size: int | None
) -> None:
    _, url = finished_file_url(sim_client)
    simulator.inject(route="file", fault=fault, **({"keep": 5} if fault == "short_200" else {}))

    answer = httpx.get(url)

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(kind)
    assert int(answer.headers["content-length"]) == len(answer.content)
    if size is None:
        assert answer.text.startswith("<html>")
    else:
        assert len(answer.content) == size
    assert simulator.stats.faults[fault] == 1


def test_stopping_cuts_a_slow_answer_short(make_simulator: MakeSimulator) -> None:
    sim = make_simulator()
    sim.inject(route="submit", fault="slow", delay=30.0)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(
                f"{sim.base_url}/v1/models/{NANO}",
                json={"prompt": "x"},
                headers=sim.headers,
                timeout=10,
            )
        except httpx.HTTPError as error:
            errors.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: len(sim.records) == 1)
    started = time.monotonic()
    sim.stop()
    caller.join(5)

    assert time.monotonic() - started < 2
    assert len(errors) == 1


# -- scripting rules --------------------------------------------------------------------------


def test_scripted_faults_hit_only_matching_calls_in_order(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    simulator.inject(route="result", fault="server_error", count=2)
    simulator.inject(route="any", fault="unavailable")

    assert sim_client.get("/v1/requests/x/status").status_code == 503  # 'any' matched first
    assert sim_client.get("/v1/requests/x/result").status_code == 500
    assert sim_client.get("/v1/requests/x/status").status_code == 404
    assert sim_client.get("/v1/requests/x/result").status_code == 500
    assert sim_client.get("/v1/requests/x/result").status_code == 404
    assert simulator.pending_faults == 0


def test_inject_refuses_what_cannot_happen(simulator: Simulator) -> None:
    with pytest.raises(ValueError, match="only applies"):
        simulator.inject(route="status", fault="lost_answer")
    with pytest.raises(ValueError, match="only applies"):
        simulator.inject(route="submit", fault="truncate")
    with pytest.raises(ValueError, match="only applies"):
        simulator.inject(route="result", fault="html_200")
    with pytest.raises(ValueError, match="unknown fault"):
        simulator.inject(route="submit", fault="meteor")
    with pytest.raises(ValueError, match="unknown route"):
        simulator.inject(route="upload", fault="drop")
    with pytest.raises(ValueError, match="parameters"):
        simulator.inject(route="submit", fault="drop", delay=1)
    simulator.inject(route="file", fault="slow", count=3, delay=1)
    simulator.clear_faults()
    assert simulator.pending_faults == 0


# -- random faults ----------------------------------------------------------------------------


def _answers(sim: Simulator, calls: int) -> list[str]:
    seen = []
    with httpx.Client(base_url=sim.base_url, headers=sim.headers, timeout=5) as client:
        for _ in range(calls):
            try:
                seen.append(str(client.get("/v1/requests/x/status").status_code))
            except DROPPED:
                seen.append("dropped")
    return seen


def test_random_faults_follow_the_seed_and_are_all_counted(make_simulator: MakeSimulator) -> None:
    faults = FaultConfig(rate_limit=0.2, server_error=0.2, drop=0.1, retry_after=0)
    first = _answers(make_simulator(faults=faults, seed=42), 80)
    again = make_simulator(faults=faults, seed=42)
    second = _answers(again, 80)
    other = _answers(make_simulator(faults=faults, seed=43), 80)

    assert first == second
    assert first != other
    assert {"429", "500", "502", "503", "dropped", "404"} <= set(first)
    assert again.stats.faults_total == sum(answer != "404" for answer in second)


def test_random_faults_spare_route_classes_left_out(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(faults=FaultConfig(server_error=1.0, routes=frozenset({"submit"})))
    with httpx.Client(base_url=sim.base_url, headers=sim.headers) as client:
        assert submit(client).status_code >= 500
        assert client.get("/v1/requests/x/status").status_code == 404


def test_fault_probabilities_are_checked() -> None:
    with pytest.raises(ValueError, match="add up"):
        FaultConfig(rate_limit=0.6, drop=0.6)
    with pytest.raises(ValueError, match="probability"):
        FaultConfig(slow=1.5)
    with pytest.raises(ValueError, match="route"):
        FaultConfig(routes=frozenset({"upload"}))  # type: ignore[arg-type]  # on purpose


def test_a_malformed_answer_is_a_200_whose_body_is_not_json_after_the_work_is_done(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    simulator.inject(route="submit", fault="malformed")

    response = submit(sim_client)

    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert len(simulator.records) == 1  # the request exists: the answer is ambiguous
    assert simulator.stats.faults["malformed"] == 1


def test_a_redirected_file_answers_302_to_the_given_location(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    simulator.inject(route="file", fault="redirect", location="https://elsewhere.example/x.mp4")

    response = httpx.get(f"{simulator.base_url}/files/any/output-0.mp4")

    assert response.status_code == 302
    assert response.headers["location"] == "https://elsewhere.example/x.mp4"


def test_file_requests_carrying_a_token_are_counted(simulator: Simulator) -> None:
    httpx.get(f"{simulator.base_url}/files/none/x.mp4", headers={"Authorization": "Bearer t"})
    httpx.get(f"{simulator.base_url}/files/none/x.mp4")

    assert simulator.stats.file_requests_with_token == 1
