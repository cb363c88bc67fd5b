"""How a run's exit brings metadata.jsonl up to date: appended when only new jobs are done,
rewritten whole whenever appending could leave it wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch.export import METADATA_FILE
from genbatch.simulator import Simulator

from support import cli_env, genbatch, kling_manifest, run_args, sha256_of

FAST = 0.0005


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(time_scale=FAST, capacity=8, seed=5) as simulator:
        yield simulator


def metadata(tmp_path: Path) -> Path:
    return tmp_path / "out" / METADATA_FILE


def rows_of(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_ok(manifest: Path, env: dict[str, str], cwd: Path) -> None:
    done = genbatch(run_args(manifest), env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr


def assert_true_to_the_files(tmp_path: Path, prompts: list[str]) -> None:
    """One row per file, for exactly these prompts, each with its file's checksum."""
    rows = rows_of(metadata(tmp_path))
    assert sorted(str(row["prompt"]) for row in rows) == sorted(prompts)
    for row in rows:
        assert row["sha256"] == sha256_of(tmp_path / "out" / str(row["file_name"]))


def test_a_run_that_adds_jobs_appends_their_rows_to_the_file_as_it_was(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    run_ok(kling_manifest(tmp_path, 2), env, tmp_path)
    before = metadata(tmp_path).read_bytes()
    inode = metadata(tmp_path).stat().st_ino

    run_ok(kling_manifest(tmp_path, 4), env, tmp_path)

    after = metadata(tmp_path).read_bytes()
    assert metadata(tmp_path).stat().st_ino == inode  # appended to, not replaced
    assert after.startswith(before)
    assert_true_to_the_files(tmp_path, [f"clip number {i}" for i in range(4)])


def test_appended_rows_are_the_rows_a_whole_rewrite_writes(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    run_ok(kling_manifest(tmp_path, 1), env, tmp_path)
    run_ok(kling_manifest(tmp_path, 3), env, tmp_path)
    appended = rows_of(metadata(tmp_path))

    exported = genbatch(["export", str(tmp_path / "sweep.yaml")], env=env, cwd=tmp_path)

    assert exported.returncode == 0, exported.stderr
    rewritten = rows_of(metadata(tmp_path))  # export rewrites it whole
    assert sorted(appended, key=str) == sorted(rewritten, key=str)


def test_a_file_edited_by_hand_is_rewritten_whole_at_the_next_run(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    run_ok(kling_manifest(tmp_path, 3), env, tmp_path)
    lines = metadata(tmp_path).read_text(encoding="utf-8").splitlines(keepends=True)
    metadata(tmp_path).write_text("".join(lines[1:]), encoding="utf-8")  # a row deleted

    run_ok(kling_manifest(tmp_path, 4), env, tmp_path)

    assert_true_to_the_files(tmp_path, [f"clip number {i}" for i in range(4)])


def test_an_append_cut_short_by_a_crash_is_repaired_by_the_next_run(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 2)
    run_ok(manifest, env, tmp_path)
    with metadata(tmp_path).open("ab") as cut:
        cut.write(b'{"file_name": "clip-00')  # what a process killed mid-append leaves

    run_ok(manifest, env, tmp_path)  # nothing to submit: only the file is put right

    assert_true_to_the_files(tmp_path, ["clip number 0", "clip number 1"])
    assert sim.stats.submissions == 2


def test_a_manifest_edit_that_reorders_done_jobs_rewrites_their_index(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 3)
    run_ok(manifest, env, tmp_path)
    text = manifest.read_text(encoding="utf-8")
    first, last = '  - "clip number 0"\n', '  - "clip number 2"\n'
    manifest.write_text(
        text.replace(first, "@").replace(last, first).replace("@", last), encoding="utf-8"
    )

    run_ok(manifest, env, tmp_path)

    index = {row["prompt"]: row["index"] for row in rows_of(metadata(tmp_path))}
    assert index == {"clip number 2": 0, "clip number 1": 1, "clip number 0": 2}
    assert sim.stats.submissions == 3


def test_a_job_reusing_another_runs_file_under_its_name_leaves_one_row_for_it(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    run_ok(kling_manifest(tmp_path, 1, name="first.yaml"), env, tmp_path)
    run_ok(kling_manifest(tmp_path, 2, name="first.yaml"), env, tmp_path)  # appended
    second = kling_manifest(tmp_path, 2, name="second.yaml")  # the same jobs, the same names

    run_ok(second, env, tmp_path)

    assert sim.stats.submissions == 2  # the second run reused both files
    assert_true_to_the_files(tmp_path, ["clip number 0", "clip number 1"])


@pytest.mark.postgres
def test_on_a_shared_ledger_each_exit_rewrites_the_file_whole(
    tmp_path: Path, sim: Simulator, postgres_url: str
) -> None:
    env = cli_env(sim, tmp_path / "unused.db", GENBATCH_LEDGER=postgres_url)
    run_ok(kling_manifest(tmp_path, 2), env, tmp_path)
    inode = metadata(tmp_path).stat().st_ino

    run_ok(kling_manifest(tmp_path, 3), env, tmp_path)

    assert metadata(tmp_path).stat().st_ino != inode  # workers' done order is not commit order
    assert_true_to_the_files(tmp_path, [f"clip number {i}" for i in range(3)])
