"""``genbatch status`` as a person reads it: on an 80-column terminal, workers that matter."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from genbatch.simulator import Simulator, SimulatorConfig

from support import cli_env, genbatch, kling_manifest, run_args


def test_status_fits_80_columns_with_whole_run_names_and_the_states_in_use(
    tmp_path: Path,
) -> None:
    with Simulator(SimulatorConfig(time_scale=0.0005, fail_rate=0.5, seed=61)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        for name in ("overnight-animals-by-place", "overnight-portraits-by-light"):
            manifest = kling_manifest(tmp_path, 6, name=f"{name}.yaml", prefix=name)
            genbatch(run_args(manifest, "--max-failures", "off"), env=env, cwd=tmp_path)

        shown = genbatch(["status"], env={**env, "COLUMNS": "80"}, cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in shown.stdout  # nothing cut
    for column in ("overnight-animals-by-place", "overnight-portraits-by-light", "done", "failed"):
        assert column in shown.stdout
    assert "pending" not in shown.stdout  # no job is pending: no column for it
    assert "workers" in shown.stdout  # two workers, just stopped


def test_workers_long_gone_are_listed_only_with_all(tmp_path: Path) -> None:
    with Simulator(SimulatorConfig(time_scale=0.0005, seed=62)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, 1)
        genbatch(run_args(manifest), env=env, cwd=tmp_path)
        # Seen eleven minutes ago: the ledger's record is moved back, not the test's clock.
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            db.execute(
                "UPDATE workers SET heartbeat_at = datetime(heartbeat_at, '-11 minutes'), "
                "started_at = datetime(started_at, '-12 minutes')"
            )

        default = genbatch(["status"], env=env, cwd=tmp_path)
        everything = genbatch(["status", "--all"], env=env, cwd=tmp_path)

    assert "workers" not in default.stdout
    assert "1 worker(s) not seen for over 10 minutes not shown (--all lists them)" in default.stdout
    assert "workers" in everything.stdout and "stopped" in everything.stdout


def test_status_of_a_manifest_finds_its_run_by_name_without_compiling_its_jobs(
    tmp_path: Path,
) -> None:
    (tmp_path / "prompts.txt").write_text("a fox\na heron\n", encoding="utf-8")
    manifest = tmp_path / "night.yaml"
    manifest.write_text(
        "model: kling/kling-2-6/pro/text-to-video\nname: foxes\n"
        "prompts: {file: prompts.txt}\noutput: {dir: out}\n",
        encoding="utf-8",
    )
    with Simulator(SimulatorConfig(time_scale=0.0005, seed=63)) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        assert genbatch(run_args(manifest), env=env, cwd=tmp_path).returncode == 0
    # Its jobs can no longer be compiled (their prompt file is gone): its run is still found.
    (tmp_path / "prompts.txt").unlink()

    shown = genbatch(["status", str(manifest), "--json"], env=env, cwd=tmp_path)
    manifest.write_text("model: kling/kling-2-6/pro/text-to-video\nname: [foxes]\n", "utf-8")
    not_a_name = genbatch(["status", str(manifest)], env=env, cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr
    assert [(run["run"], run["counts"]["done"]) for run in json.loads(shown.stdout)["runs"]] == [
        ("foxes", 2)
    ]
    assert not_a_name.returncode == 2  # the name is still checked, as `run` checks it
    assert "night.yaml:2: name: must be text (quote it), not a list" in not_a_name.stderr
