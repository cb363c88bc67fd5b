"""The simulator speaks RunComfy's Model API contract, over real loopback HTTP."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest

from genbatch.catalog import bundled_models
from genbatch.simulator import Simulator, price_usd

MakeSimulator = Callable[..., Simulator]

KLING = "kling/kling-2-6/pro/text-to-video"
NANO = "google/nano-banana-2/text-to-image"
SEEDREAM = "bytedance/seedream-4-0/text-to-image"
WAN_I2V = "wan-ai/wan-2-6/image-to-video"
MODELS = bundled_models()
ISO_MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$")
# Long enough that nothing finishes during a test: 240 s clips at full time scale.
FROZEN = 1.0


def submit(client: httpx.Client, model: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(f"/v1/models/{model}", json=body)


def accepted(client: httpx.Client, model: str, body: dict[str, Any]) -> str:
    response = submit(client, model, body)
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def wait_result(client: httpx.Client, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result: dict[str, Any] = client.get(f"/v1/requests/{request_id}/result").json()
        if result["status"] in ("succeeded", "failed", "cancelled"):
            return result
        time.sleep(0.01)
    raise AssertionError(f"{request_id} did not finish")


def client_for(sim: Simulator) -> httpx.Client:
    return httpx.Client(base_url=sim.base_url, headers=sim.headers, timeout=10.0)


# -- submit -----------------------------------------------------------------------------------


def test_submit_answers_absolute_urls_for_an_opaque_request_id(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    answer = submit(sim_client, KLING, {"prompt": "a red fox"}).json()

    request_id = answer["request_id"]
    assert re.fullmatch(r"[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}", request_id)
    base = f"{simulator.base_url}/v1/requests/{request_id}"
    assert answer == {
        "request_id": request_id,
        "status_url": f"{base}/status",
        "result_url": f"{base}/result",
        "cancel_url": f"{base}/cancel",
    }
    assert simulator.records[request_id].body == {"prompt": "a red fox"}
    assert simulator.stats.submissions == 1


def test_an_unknown_model_is_400001(simulator: Simulator, sim_client: httpx.Client) -> None:
    response = submit(sim_client, "acme/nope/v1", {"prompt": "x"})

    assert response.status_code == 400
    assert response.json()["error_code"] == 400001
    assert "acme/nope/v1" in response.json()["error_message"]
    assert simulator.stats.submissions == 0
    assert simulator.stats.rejected_submissions == 1


def test_input_outside_the_schema_is_422_with_one_detail_per_field(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    response = submit(sim_client, KLING, {"duration": 7, "colour": "red"})

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail] == [
        ["body", "prompt"],
        ["body", "duration"],
        ["body", "colour"],
    ]
    assert [d["type"] for d in detail] == ["missing", "value_error", "extra_forbidden"]
    assert all(d["msg"] for d in detail)
    assert len(simulator.records) == 0


@pytest.mark.parametrize("raw", [b"[1, 2]", b"{not json", b""])
def test_a_body_that_is_not_a_json_object_is_422(sim_client: httpx.Client, raw: bytes) -> None:
    response = sim_client.post(
        f"/v1/models/{KLING}", content=raw, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


def test_a_string_where_the_published_schema_says_integer_is_422(sim_client: httpx.Client) -> None:
    response = submit(sim_client, KLING, {"prompt": "x", "duration": "10"})
    assert response.status_code == 422
    assert [d["loc"] for d in response.json()["detail"]] == [["body", "duration"]]


def test_a_media_input_must_be_a_public_https_url(sim_client: httpx.Client) -> None:
    good = {"prompt": "x", "img_url": "https://example.com/cat.png"}
    assert submit(sim_client, WAN_I2V, good).status_code == 200
    plain = submit(sim_client, WAN_I2V, {**good, "img_url": "http://example.com/cat.png"})
    assert plain.status_code == 422
    [detail] = plain.json()["detail"]
    assert detail["loc"] == ["body", "img_url"]
    assert "https" in detail["msg"]


# -- auth -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "sim-token"}]
)
def test_every_api_route_refuses_a_missing_or_wrong_token(
    simulator: Simulator, sim_client: httpx.Client, headers: dict[str, str]
) -> None:
    request_id = accepted(sim_client, KLING, {"prompt": "x"})
    calls = [
        ("POST", f"/v1/models/{KLING}"),
        ("GET", f"/v1/models/{KLING}"),
        ("GET", f"/v1/requests/{request_id}/status"),
        ("GET", f"/v1/requests/{request_id}/result"),
        ("POST", f"/v1/requests/{request_id}/cancel"),
    ]
    with httpx.Client(base_url=simulator.base_url, headers=headers) as anonymous:
        for method, path in calls:
            response = anonymous.request(method, path, json={"prompt": "x"})
            assert response.status_code == 401, (method, path)
            assert response.json()["error_code"] == 400004
            assert response.json()["error_message"]
    assert simulator.stats.auth_failures == len(calls)
    assert simulator.stats.submissions == 1


def test_a_custom_token_is_the_only_one_accepted(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(token="s3cret")
    with client_for(sim) as client:
        assert submit(client, KLING, {"prompt": "x"}).status_code == 200
        client.headers["Authorization"] = "Bearer sim-token"
        assert submit(client, KLING, {"prompt": "x"}).status_code == 401


# -- catalog ----------------------------------------------------------------------------------


def test_the_catalog_endpoint_gives_price_unit_and_input_schema(sim_client: httpx.Client) -> None:
    for model in MODELS.values():
        answer = sim_client.get(f"/v1/models/{model.model_id}").json()
        assert answer["model_id"] == model.model_id
        assert answer["display_name"] == model.display_name
        assert answer["base_price_usd"] == (model.price.base_price_usd if model.price else None)
        assert answer["price_unit"] == (model.price.price_unit if model.price else None)
        assert answer["input_schema"] == model.input_schema
        assert answer["required_inputs"] == list(model.required)
    unknown = sim_client.get("/v1/models/acme/nope")
    assert (unknown.status_code, unknown.json()["error_code"]) == (400, 400001)


def test_the_catalog_lists_every_model_paged_with_search(sim_client: httpx.Client) -> None:
    first = sim_client.get("/v1/models", params={"limit": 5}).json()
    rest = sim_client.get("/v1/models", params={"limit": 500, "offset": 5}).json()
    listed = [m["model_id"] for m in first["models"] + rest["models"]]
    assert listed == sorted(MODELS)
    assert first["total"] == rest["total"] == len(MODELS)
    assert "input_schema" not in first["models"][0]

    found = sim_client.get("/v1/models", params={"search": "seedream", "include_schema": "true"})
    assert [m["model_id"] for m in found.json()["models"]] == [
        "bytedance/seedream-4-0/edit",
        "bytedance/seedream-4-0/text-to-image",
    ]
    assert found.json()["models"][0]["input_schema"]["required"] == ["prompt", "images"]
    assert sim_client.get("/v1/models", params={"limit": 0}).status_code == 422


def test_the_catalog_lists_its_categories(sim_client: httpx.Client) -> None:
    categories = sim_client.get("/v1/models/categories").json()["categories"]
    assert {"image-to-video", "text-to-image", "video"} <= set(categories)
    videos = sim_client.get("/v1/models", params={"category": "image-to-video"}).json()
    assert WAN_I2V in [m["model_id"] for m in videos["models"]]
    assert KLING not in [m["model_id"] for m in videos["models"]]


# -- status and result ------------------------------------------------------------------------


def test_a_request_goes_from_queue_to_success_with_iso_timestamps(sim_client: httpx.Client) -> None:
    request_id = accepted(sim_client, KLING, {"prompt": "x"})
    status = sim_client.get(f"/v1/requests/{request_id}/status").json()
    assert status["status"] == "in_progress"
    assert "queue_position" not in status
    assert status["status_url"].endswith(f"/v1/requests/{request_id}/status")
    assert status["result_url"].endswith(f"/v1/requests/{request_id}/result")
    running = sim_client.get(f"/v1/requests/{request_id}/result").json()
    assert running["status"] == "in_progress"
    assert "output" not in running
    assert "finished_at" not in running

    result = wait_result(sim_client, request_id)

    assert result["status"] == "succeeded"
    assert ISO_MICROS.match(result["created_at"])
    assert ISO_MICROS.match(result["finished_at"])
    created = datetime.fromisoformat(result["created_at"])
    assert datetime.fromisoformat(result["finished_at"]) > created
    assert sim_client.get(f"/v1/requests/{request_id}/status").json()["status"] == "completed"


@pytest.mark.parametrize(
    ("model", "body", "key", "count"),
    [
        (KLING, {"prompt": "x"}, "video", None),
        (WAN_I2V, {"prompt": "x", "img_url": "https://example.com/a.png"}, "video", None),
        (NANO, {"prompt": "x"}, "images", 1),
        (SEEDREAM, {"prompt": "x"}, "image", None),
        (NANO, {"prompt": "x", "num_images": 3}, "images", 3),
    ],
)
def test_output_is_shaped_by_the_models_output_key(
    make_simulator: MakeSimulator, model: str, body: dict[str, Any], key: str, count: int | None
) -> None:
    sim = make_simulator(durations={model: (10.0, 0.0)})
    with client_for(sim) as client:
        result = wait_result(client, accepted(client, model, body))

    output = result["output"]
    assert list(output) == [key]
    urls = [output[key]] if count is None else output[key]
    assert isinstance(output[key], str if count is None else list)
    assert len(urls) == (count or 1)
    assert all(url.startswith(f"{sim.base_url}/files/") for url in urls)
    assert len(set(urls)) == len(urls)


def test_a_failed_generation_reads_completed_then_failed_with_an_error(
    make_simulator: MakeSimulator,
) -> None:
    sim = make_simulator(fail_rate=1.0, balance_usd=1.0)
    with client_for(sim) as client:
        request_id = accepted(client, KLING, {"prompt": "x"})
        result = wait_result(client, request_id)
        status = client.get(f"/v1/requests/{request_id}/status").json()

    assert result["status"] == "failed"
    assert result["error"]
    assert "output" not in result
    assert status["status"] == "completed"
    assert sim.stats.faults["fail"] == 1
    assert sim.stats.failed == 1
    assert sim.balance_usd == pytest.approx(1.0)  # a failure is not billed


def test_a_scripted_failure_carries_the_given_error(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    simulator.inject(route="submit", fault="fail", error=[{"errorCode": 7, "error": "nsfw"}])
    failed = wait_result(sim_client, accepted(sim_client, NANO, {"prompt": "x"}))
    fine = wait_result(sim_client, accepted(sim_client, NANO, {"prompt": "x"}))

    assert failed["status"] == "failed"
    assert failed["error"] == [{"errorCode": 7, "error": "nsfw"}]
    assert fine["status"] == "succeeded"


def test_an_unknown_request_id_is_404001_everywhere(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    for method, verb in (("GET", "status"), ("GET", "result"), ("POST", "cancel")):
        response = sim_client.request(method, f"/v1/requests/no-such-id/{verb}")
        assert response.status_code == 404
        assert response.json()["error_code"] == 404001
    assert simulator.stats.not_found == 3


# -- capacity and queue -----------------------------------------------------------------------


def test_capacity_runs_n_and_queues_the_rest_with_true_positions(
    make_simulator: MakeSimulator,
) -> None:
    sim = make_simulator(capacity=2, time_scale=FROZEN)
    with client_for(sim) as client:
        ids = [accepted(client, KLING, {"prompt": f"clip {i}"}) for i in range(6)]
        statuses = [client.get(f"/v1/requests/{i}/status").json() for i in ids]

        assert [s["status"] for s in statuses] == ["in_progress"] * 2 + ["in_queue"] * 4
        assert [s.get("queue_position") for s in statuses] == [None, None, 1, 2, 3, 4]
        assert sim.stats.peak_active == 6
        assert sim.stats.peak_in_progress == 2

        client.post(f"/v1/requests/{ids[3]}/cancel")
        positions = [
            client.get(f"/v1/requests/{i}/status").json().get("queue_position") for i in ids
        ]
        assert positions == [None, None, 1, None, 2, 3]

        sim.set_capacity(4)
        after = [client.get(f"/v1/requests/{i}/status").json()["status"] for i in ids]
        assert after == ["in_progress"] * 3 + ["cancelled"] + ["in_progress", "in_queue"]


def test_a_freed_slot_starts_the_oldest_queued_request(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(capacity=1, durations={NANO: (50.0, 0.0)})  # 0.05 s each
    with client_for(sim) as client:
        ids = [accepted(client, NANO, {"prompt": f"p{i}"}) for i in range(3)]
        for request_id in ids:
            wait_result(client, request_id)
    infos = [sim.records[i] for i in ids]

    for before, after in itertools.pairwise(infos):
        assert after.started_at == before.finished_at  # back to back, FIFO
    assert sim.stats.peak_in_progress == 1


# -- cancel -----------------------------------------------------------------------------------


def test_cancel_outcomes_and_refund(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(capacity=1, time_scale=FROZEN, balance_usd=10.0)
    with client_for(sim) as client:
        running = accepted(client, KLING, {"prompt": "first"})
        queued = accepted(client, KLING, {"prompt": "second"})
        assert sim.balance_usd == pytest.approx(10.0 - 2 * 0.7)

        first = client.post(f"/v1/requests/{queued}/cancel")
        again = client.post(f"/v1/requests/{queued}/cancel")
        refused = client.post(f"/v1/requests/{running}/cancel")

        assert first.status_code == 202
        assert first.json() == {"request_id": queued, "status": "cancelled", "outcome": "cancelled"}
        assert again.json()["outcome"] == "cancelled"
        assert refused.status_code == 202
        assert refused.json() == {
            "request_id": running,
            "status": "in_progress",
            "outcome": "not_cancellable",
        }
        assert sim.balance_usd == pytest.approx(10.0 - 0.7)
        result = client.get(f"/v1/requests/{queued}/result").json()
        assert result["status"] == "cancelled"
        assert "output" not in result
        assert ISO_MICROS.match(result["finished_at"])
        sim.set_capacity(5)
        assert client.get(f"/v1/requests/{queued}/status").json()["status"] == "cancelled"
    assert sim.stats.cancellations == 1


def test_a_finished_request_is_not_cancellable(sim_client: httpx.Client) -> None:
    request_id = accepted(sim_client, NANO, {"prompt": "x"})
    wait_result(sim_client, request_id)

    answer = sim_client.post(f"/v1/requests/{request_id}/cancel").json()

    assert answer["outcome"] == "not_cancellable"
    assert answer["status"] == "completed"


# -- balance ----------------------------------------------------------------------------------


def test_balance_runs_out_with_400002_and_can_be_topped_up(make_simulator: MakeSimulator) -> None:
    kling = MODELS[KLING]
    price = price_usd(kling, {"prompt": "x"})
    sim = make_simulator(balance_usd=price * 2 + 0.01)
    with client_for(sim) as client:
        assert submit(client, KLING, {"prompt": "a"}).status_code == 200
        assert submit(client, KLING, {"prompt": "b"}).status_code == 200
        refused = submit(client, KLING, {"prompt": "c"})
        assert refused.status_code == 400
        assert refused.json()["error_code"] == 400002
        assert sim.stats.submissions == 2
        assert sim.stats.billed_usd == pytest.approx(price * 2)

        sim.set_balance(None)
        assert submit(client, KLING, {"prompt": "c"}).status_code == 200


def test_price_is_per_second_of_video_and_per_image() -> None:
    assert price_usd(MODELS[KLING], {"prompt": "x"}) == pytest.approx(0.14 * 5)  # with audio
    silent = {"prompt": "x", "generate_audio": False}
    assert price_usd(MODELS[KLING], silent) == pytest.approx(0.07 * 5)
    assert price_usd(MODELS[KLING], {**silent, "duration": 10}) == pytest.approx(0.7)
    assert price_usd(MODELS[SEEDREAM], {"prompt": "x"}) == pytest.approx(0.03)
    assert price_usd(MODELS[NANO], {"prompt": "x", "num_images": 4}) == pytest.approx(0.156)
    assert price_usd(MODELS[WAN_I2V], {"prompt": "x"}) == 0.0  # no known price: free here


# -- expiry -----------------------------------------------------------------------------------


def test_records_and_files_expire_after_the_retention(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(expire_after=0.3, durations={NANO: (1.0, 0.0)})
    with client_for(sim) as client:
        request_id = accepted(client, NANO, {"prompt": "x"})
        url = wait_result(client, request_id)["output"]["images"][0]
        assert client.get(url).status_code == 200
        time.sleep(0.35)

        for verb in ("status", "result"):
            gone = client.get(f"/v1/requests/{request_id}/{verb}")
            assert (gone.status_code, gone.json()["error_code"]) == (404, 404001)
        assert client.get(url).status_code == 404
    info = sim.records[request_id]
    assert info.expired
    assert info.status == "succeeded"
    assert sim.stats.expired == 1


# -- accounting -------------------------------------------------------------------------------


def test_duplicates_are_the_same_model_and_canonical_body(
    simulator: Simulator, sim_client: httpx.Client
) -> None:
    accepted(sim_client, KLING, {"prompt": "x", "duration": 5})
    accepted(sim_client, KLING, {"duration": 5, "prompt": "x"})  # same body, other key order
    accepted(sim_client, KLING, {"prompt": "x", "duration": 10})
    accepted(sim_client, NANO, {"prompt": "x"})
    accepted(sim_client, KLING, {"prompt": "x", "duration": 5})

    assert simulator.stats.submissions == 5
    assert simulator.stats.duplicate_submissions == 2


def test_calls_are_counted_per_route(simulator: Simulator, sim_client: httpx.Client) -> None:
    request_id = accepted(sim_client, NANO, {"prompt": "x"})
    url = wait_result(sim_client, request_id)["output"]["images"][0]
    sim_client.get(f"/v1/requests/{request_id}/status")
    sim_client.post(f"/v1/requests/{request_id}/cancel")
    sim_client.get(f"/v1/models/{NANO}")
    sim_client.get(url)
    sim_client.get("/nowhere")

    calls = simulator.stats.snapshot()["calls"]
    assert calls["submit"] == 1
    assert calls["status"] == 1
    assert calls["result"] >= 1
    assert calls["cancel"] == 1
    assert calls["catalog"] == 1
    assert calls["file"] == 1
    assert calls["other"] == 1
    assert simulator.stats.files_served == 1
    assert simulator.stats.bytes_served == simulator.records[request_id].outputs[0].size


def test_the_snapshot_is_plain_data(simulator: Simulator, sim_client: httpx.Client) -> None:
    simulator.inject(route="status", fault="server_error")
    accepted(sim_client, NANO, {"prompt": "x"})
    sim_client.get("/v1/requests/x/status")

    snapshot = simulator.stats.snapshot()

    assert snapshot["faults"] == {"server_error": 1}
    assert type(next(iter(snapshot["faults"]))) is str
    assert snapshot["submissions"] == 1
    assert isinstance(snapshot["calls"], dict)
