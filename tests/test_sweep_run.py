"""A sampled sweep with variants and a wildcard file, end to end: the CLI against the simulator
over loopback, a real SQLite ledger. Raising ``sample.n`` pays only for the new jobs; lowering it
deletes nothing; the variants' variables reach metadata.jsonl and the export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch.simulator import Simulator, SimulatorConfig

from support import KLING, cli_env, genbatch, run_args

FAST = 0.0005


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=FAST, capacity=8, seed=1)) as simulator:
        yield simulator


def write_sweep(folder: Path, n: int) -> Path:
    (folder / "wildcards").mkdir(exist_ok=True)
    (folder / "wildcards" / "animals.txt").write_text("red fox\nsnow owl\nlynx\n", "utf-8")
    manifest = folder / "sweep.yaml"
    manifest.write_text(
        f"model: {KLING}\n"
        "prompts: ['a __animals__ at {light=dawn|dusk|night}, {style}']\n"
        "grid: {style: [ink, oil, pastel], aspect_ratio: ['16:9', '9:16']}\n"
        f"sample: {{n: {n}, seed: 11}}\n"
        "output: {dir: out}\n",
        "utf-8",
    )
    return manifest


def metadata_rows(folder: Path) -> list[dict[str, object]]:
    lines = (folder / "out" / "metadata.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_raising_n_pays_only_for_new_jobs_and_lowering_it_deletes_nothing(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = write_sweep(tmp_path, 3)
    assert genbatch(run_args(manifest), env=env, cwd=tmp_path).returncode == 0
    first = {row["job_key"] for row in metadata_rows(tmp_path)}

    write_sweep(tmp_path, 5)
    plan = genbatch(["plan", str(manifest), "--offline"], env=env, cwd=tmp_path)
    assert (
        "block main: kling/kling-2-6/pro/text-to-video, 5 job(s) sampled from a space of 54, "
        "seed 11, strategy random: 3 already done;"
    ) in plan.stdout
    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sim.stats.submissions == 5 and sim.stats.duplicate_submissions == 0
    assert first < {row["job_key"] for row in metadata_rows(tmp_path)}

    write_sweep(tmp_path, 1)
    again = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    export = genbatch(["export", str(manifest), "--format", "jsonl"], env=env, cwd=tmp_path)
    assert again.returncode == 0 and sim.stats.submissions == 5
    rows = [json.loads(line) for line in export.stdout.splitlines()]
    assert len(rows) == 5 and {row["state"] for row in rows} == {"done"}
    assert all({"animals", "light"} <= set(row["variables"]) for row in rows)


def test_the_variants_and_wildcards_variables_reach_metadata_plan_and_gallery_axes(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = write_sweep(tmp_path, 4)

    assert genbatch(run_args(manifest), env=env, cwd=tmp_path).returncode == 0
    plan = genbatch(["plan", str(manifest), "--offline", "--json"], env=env, cwd=tmp_path)
    gallery = genbatch(
        ["gallery", str(manifest), "--rows", "light", "--cols", "animals"], env=env, cwd=tmp_path
    )

    for row in metadata_rows(tmp_path):
        variables = row["variables"]
        assert isinstance(variables, dict)
        assert set(variables) == {"animals", "light", "style", "aspect_ratio"}
        assert f"a {variables['animals']} at {variables['light']}" in str(row["prompt"])
    block = json.loads(plan.stdout)["blocks"][0]
    assert (block["space"], block["sample"], block["done"]) == (
        54,
        {"n": 4, "seed": 11, "strategy": "random"},
        4,
    )
    assert gallery.returncode == 0, gallery.stderr
    assert "rows light x columns animals" in gallery.stdout + gallery.stderr


def test_a_missing_wildcard_file_is_one_line_with_exit_2_and_no_ledger(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = tmp_path / "sweep.yaml"
    manifest.write_text(f"model: {KLING}\nprompts: ['a __animals__']\n", "utf-8")

    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"genbatch: error: {manifest}:2: wildcard: wildcard file 'wildcards/animals.txt' not found "
        f"(looked for {tmp_path / 'wildcards' / 'animals.txt'})"
    ]
    assert sim.stats.submissions == 0
