"""Paid once, kept forever (issue 13): a job is its content, whatever the manifest is called.

Each test runs the CLI against the simulator, then does what a user does next (renames the
manifest, inserts a prompt), and checks that the simulator received one submission per
distinct job and that every earlier file keeps its sha256.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch.simulator import Simulator, SimulatorConfig

from support import (
    KLING,
    cli_env,
    genbatch,
    kling_manifest,
    output_files,
    run_args,
    sha256_of,
    status,
    status_json,
)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=0.0005, capacity=8, seed=4)) as simulator:
        yield simulator


def hashes(directory: Path) -> dict[str, str]:
    return {path.name: sha256_of(path) for path in output_files(directory)}


def test_a_renamed_manifest_reuses_the_files_of_its_done_jobs_and_pays_nothing(
    tmp_path: Path, sim: Simulator
) -> None:
    manifest = kling_manifest(tmp_path, 3)
    env = cli_env(sim, tmp_path / "ledger.db")
    assert genbatch(run_args(manifest), env=env, cwd=tmp_path).returncode == 0
    before = hashes(tmp_path / "out")

    renamed = tmp_path / "renamed.yaml"
    shutil.move(manifest, renamed)
    again = genbatch(run_args(renamed), env=env, cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert "3 job(s) are the same as jobs done in other runs" in again.stderr
    assert sim.stats.submissions == 3
    assert hashes(tmp_path / "out") == before
    runs = status_json(env, tmp_path)["runs"]
    assert [(r["counts"]["done"], r["reused"]) for r in runs] == [(3, 0), (3, 3)]


def test_the_same_jobs_wanted_in_another_folder_get_the_done_files_there_without_paying(
    tmp_path: Path, sim: Simulator
) -> None:
    manifest = kling_manifest(tmp_path, 2)
    env = cli_env(sim, tmp_path / "ledger.db")
    assert genbatch(run_args(manifest), env=env, cwd=tmp_path).returncode == 0
    elsewhere = tmp_path / "copy.yaml"
    elsewhere.write_text(manifest.read_text().replace("dir: out", "dir: other"))

    again = genbatch(run_args(elsewhere), env=env, cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert sim.stats.submissions == 2
    assert sorted(hashes(tmp_path / "other").values()) == sorted(hashes(tmp_path / "out").values())


def test_a_job_another_run_has_in_flight_or_unknown_is_refused_before_anything_is_sent(
    tmp_path: Path, sim: Simulator
) -> None:
    manifest = kling_manifest(tmp_path, 2)
    env = cli_env(sim, tmp_path / "ledger.db")
    sim.inject(route="submit", fault="lost_answer", count=1)
    first = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert status(env, tmp_path)["counts"]["unknown"] == 1, first.stderr
    submitted = sim.stats.calls["submit"]
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(manifest.read_text())

    refused = genbatch(run_args(renamed), env=env, cwd=tmp_path)

    assert refused.returncode == 2
    assert "would pay twice" in refused.stderr and "unknown there" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert sim.stats.calls["submit"] == submitted


def test_an_edit_that_gives_a_new_job_the_name_of_a_done_jobs_file_is_refused_before_paying(
    tmp_path: Path, sim: Simulator
) -> None:
    def manifest_of(prompts: list[str]) -> str:
        lines = "\n".join(f'  - "{p}"' for p in prompts)
        return f'model: {KLING}\nprompts:\n{lines}\noutput:\n  dir: out\n  name: "{{index}}"\n'

    manifest = tmp_path / "sweep.yaml"
    manifest.write_text(manifest_of(["a cat", "a dog"]))
    env = cli_env(sim, tmp_path / "ledger.db")
    assert genbatch(run_args(manifest), env=env, cwd=tmp_path).returncode == 0
    before = hashes(tmp_path / "out")

    manifest.write_text(manifest_of(["a fox", "a cat", "a dog"]))  # every index shifts
    refused = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert refused.returncode == 2, refused.stderr
    assert "the file of a done job with other inputs" in refused.stderr
    assert sim.stats.submissions == 2
    assert hashes(tmp_path / "out") == before
