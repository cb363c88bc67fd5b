"""Preflight (issue 13, path 5): an output folder that cannot be used is found before paying.

Before the first submit, every output folder of the jobs about to run is created if needed and
a probe file is written in it and removed. A folder that fails stops the run with exit 4 and one
line naming it and why, and the simulator receives no submit at all. (Tests run as root, whom a
read-only folder does not stop: the folders here cannot be created because a regular file sits
where a folder should be.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch.simulator import Simulator, SimulatorConfig

from support import KLING, cli_env, genbatch, kling_manifest, output_files, run_args, status

FAST = 0.0005


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=FAST, capacity=8, seed=5)) as simulator:
        yield simulator


def test_an_output_folder_that_cannot_be_created_stops_the_run_before_any_submit(
    tmp_path: Path, sim: Simulator
) -> None:
    (tmp_path / "renders").write_text("a regular file where a folder is needed")
    manifest = kling_manifest(tmp_path, 3)
    manifest.write_text(manifest.read_text().replace("dir: out", "dir: renders/june"))
    env = cli_env(sim, tmp_path / "ledger.db")

    stopped = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert stopped.returncode == 4, stopped.stderr
    assert stopped.stderr.strip().splitlines() == [
        f"genbatch: error: preflight: cannot create the output directory "
        f"{tmp_path / 'renders' / 'june'}: {tmp_path / 'renders'} is a file, not a folder; "
        "no job was submitted"
    ]
    assert sim.stats.calls["submit"] == 0
    assert sim.stats.submissions == 0


def test_a_bad_folder_of_a_later_block_stops_the_jobs_of_every_block(
    tmp_path: Path, sim: Simulator
) -> None:
    (tmp_path / "stills").write_text("not a folder")
    manifest = tmp_path / "two-blocks.yaml"
    manifest.write_text(
        f"model: {KLING}\n"
        "jobs:\n"
        "  - name: clips\n"
        "    prompts: [a fox, an owl]\n"
        "    output: {dir: out/clips}\n"
        "  - name: stills\n"
        "    model: google/nano-banana-2/text-to-image\n"
        "    prompts: [a lynx]\n"
        "    output: {dir: stills/out}\n"
    )
    env = cli_env(sim, tmp_path / "ledger.db")

    stopped = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert stopped.returncode == 4
    assert len(stopped.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "stills" / "out") in stopped.stderr
    assert sim.stats.calls["submit"] == 0
    assert not list(tmp_path.glob("out/clips/.genbatch-probe-*"))


def test_a_fixed_folder_runs_and_the_probe_file_leaves_no_trace(
    tmp_path: Path, sim: Simulator
) -> None:
    (tmp_path / "renders").write_text("in the way")
    manifest = kling_manifest(tmp_path, 2)
    manifest.write_text(manifest.read_text().replace("dir: out", "dir: renders/june"))
    env = cli_env(sim, tmp_path / "ledger.db")
    assert genbatch(run_args(manifest), env=env, cwd=tmp_path).returncode == 4

    (tmp_path / "renders").unlink()
    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert sim.stats.submissions == 2
    assert len(output_files(tmp_path / "renders" / "june")) == 2
    assert not list((tmp_path / "renders" / "june").glob(".genbatch-probe-*"))


def test_fixing_the_output_folder_in_the_manifest_moves_the_unfinished_jobs_there(
    tmp_path: Path, sim: Simulator
) -> None:
    # A budget of 0 records the jobs (folder out/) without submitting any; then out/ becomes
    # unusable and the manifest points elsewhere: the jobs follow the manifest.
    manifest = kling_manifest(tmp_path, 2)
    env = cli_env(sim, tmp_path / "ledger.db")
    held = genbatch(run_args(manifest, "--budget", "0"), env=env, cwd=tmp_path)
    assert held.returncode == 5, held.stderr
    assert status(env, tmp_path)["counts"]["pending"] == 2
    (tmp_path / "out").rmdir()
    (tmp_path / "out").write_text("in the way")
    manifest.write_text(manifest.read_text().replace("dir: out", "dir: elsewhere"))

    fixed = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert fixed.returncode == 0, fixed.stderr
    assert len(output_files(tmp_path / "elsewhere")) == 2
    assert sim.stats.calls["submit"] == 2
