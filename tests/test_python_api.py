"""The Python API a notebook uses: load a manifest, run it, read what it produced."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

import genbatch
from genbatch.catalog import Price
from genbatch.client import RunComfyClient
from genbatch.pricing import PriceTable, fetch_api_prices
from genbatch.simulator import Simulator, SimulatorConfig

from support import KLING, kling_manifest


def test_a_notebook_loads_runs_and_reads_the_results_without_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = kling_manifest(tmp_path, 3)

    manifest = genbatch.load_manifest(path)
    summary = genbatch.run_manifest(path, simulate=True)
    rows = genbatch.results(path)

    assert manifest.job_count == 3
    assert summary.all_done and summary.counts[genbatch.JobState.DONE] == 3
    assert len(rows) == 3
    assert {row["prompt"] for row in rows} == {f"clip number {i}" for i in range(3)}
    assert all((tmp_path / "out" / row["file_name"]).is_file() for row in rows)
    assert all(len(row["sha256"]) == 64 and row["request_id"] for row in rows)


def test_a_bad_manifest_raises_one_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "model: kling/kling-2-6/pro/text-to-video\nprompts: [a]\ninputs: {duration: 7}\n"
    )

    with pytest.raises(genbatch.ManifestError, match=r"bad.yaml:3: duration: 7 is not one of"):
        genbatch.run_manifest(path, simulate=True)


def test_prices_are_read_from_the_apis_catalog_endpoint_when_it_answers() -> None:
    async def ask(sim: Simulator) -> dict[str, Price]:
        async with RunComfyClient(base_url=sim.base_url, token=sim.token) as client:
            return await fetch_api_prices(client, [KLING, "acme/not-in-the-catalog"])

    with Simulator(SimulatorConfig()) as sim:
        prices = anyio.run(ask, sim)
        calls = sim.stats.calls["catalog"]

    assert set(prices) == {KLING}
    assert prices[KLING].base_price_usd == 0.07 and prices[KLING].price_unit == "second"
    assert calls == 2
    table = PriceTable(
        manifest={KLING: Price(base_price_usd=0.5, price_unit="request")}, api=prices
    )
    assert table.cost(KLING, {"prompt": "x"}) == 0.5  # the manifest wins over the API
