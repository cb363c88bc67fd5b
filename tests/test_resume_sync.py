"""Resuming: a manifest unchanged since its last sync is not expanded again, and nothing that
changes its jobs or their estimated costs goes unnoticed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch import batch
from genbatch.catalog import Price
from genbatch.errors import ManifestError
from genbatch.ledger import Ledger, SyncReport, resolve_location
from genbatch.manifest import load_manifest
from genbatch.pricing import PriceTable
from genbatch.states import JobState

from support import KLING


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(resolve_location(str(tmp_path / "ledger.db")))
    yield opened
    opened.close()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def sync(
    path: Path, ledger: Ledger, prices: PriceTable | None = None, **options: object
) -> SyncReport:
    manifest = load_manifest(path, **options)  # type: ignore[arg-type]  # load_manifest's options
    return batch.prepare(manifest, ledger, prices).sync


def test_an_unchanged_manifest_is_not_synced_again(tmp_path: Path, ledger: Ledger) -> None:
    path = write(tmp_path / "sweep.yaml", f"model: {KLING}\nprompts: [a cat, a dog]\n")

    first = sync(path, ledger)
    again = sync(path, ledger)

    assert (first.unchanged, first.new) == (False, 2)
    assert again.unchanged
    assert (again.total, again.new, again.counts[JobState.PENDING]) == (2, 0, 2)


def test_an_edited_manifest_is_synced(tmp_path: Path, ledger: Ledger) -> None:
    path = write(tmp_path / "sweep.yaml", f"model: {KLING}\nprompts: [a cat, a dog]\n")
    sync(path, ledger)

    write(path, f"model: {KLING}\nprompts: [a cat, a dog, a fox]\n")
    edited = sync(path, ledger)

    assert (edited.unchanged, edited.new, edited.total) == (False, 1, 3)


def test_an_edited_prompt_file_is_synced(tmp_path: Path, ledger: Ledger) -> None:
    prompts = write(tmp_path / "prompts.txt", "a cat\na dog\n")
    path = write(tmp_path / "sweep.yaml", f"model: {KLING}\nprompts: {{file: prompts.txt}}\n")
    sync(path, ledger)

    write(prompts, "a cat\na dog\na fox\n")
    edited = sync(path, ledger)

    assert (edited.unchanged, edited.new, edited.total) == (False, 1, 3)


def test_a_changed_price_is_synced_into_pending_costs(tmp_path: Path, ledger: Ledger) -> None:
    path = write(tmp_path / "sweep.yaml", f"model: {KLING}\nprompts: [a cat]\n")
    cheap = PriceTable(api={KLING: Price(base_price_usd=0.01, price_unit="request")})
    dear = PriceTable(api={KLING: Price(base_price_usd=0.02, price_unit="request")})
    sync(path, ledger, cheap)

    repriced = sync(path, ledger, dear)

    run = ledger.find_run("sweep")
    assert run is not None
    assert not repriced.unchanged
    assert ledger.spend(run.id)[JobState.PENDING] == pytest.approx(0.02)


def test_other_options_are_synced(tmp_path: Path, ledger: Ledger) -> None:
    path = write(tmp_path / "sweep.yaml", f"model: {KLING}\nprompts: [a cat]\n")
    sync(path, ledger)

    assert not sync(path, ledger, max_jobs=5).unchanged
    assert not sync(path, ledger, max_jobs=5, strict_models=True).unchanged
    assert sync(path, ledger, max_jobs=5, strict_models=True).unchanged


def test_a_bad_manifest_leaves_the_ledger_as_it_was(tmp_path: Path, ledger: Ledger) -> None:
    path = write(tmp_path / "sweep.yaml", f"model: {KLING}\nprompts: [a cat, a cat]\n")

    with pytest.raises(ManifestError, match="job 1 has the same model, inputs and repeat index"):
        sync(path, ledger)

    assert ledger.find_run("sweep") is None


def test_the_first_resume_after_a_run_that_fetched_the_catalog_is_not_synced_again(
    tmp_path: Path,
) -> None:
    from genbatch.simulator import Simulator

    manifest = write(
        tmp_path / "m.yaml", f"model: {KLING}\nprompts: [a, b]\noutput: {{dir: out}}\n"
    )
    ledger = str(tmp_path / "ledger.db")
    with Simulator(time_scale=0.001) as sim:
        connection = batch.Connection(api_base=sim.base_url, token=sim.token)
        unchanged = []
        for _ in range(2):  # fetched from the API, then read from the ledger's cache
            loaded = batch.load_with_catalog(manifest, ledger=ledger, connection=connection)
            store = Ledger.open(resolve_location(ledger))
            try:
                report = batch.prepare(loaded.manifest, store).sync
            finally:
                store.close()
            unchanged.append(report.unchanged)

    assert unchanged == [False, True]
