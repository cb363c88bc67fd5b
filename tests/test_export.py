"""What a run leaves beside its files (metadata.jsonl) and what `genbatch export` writes."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest

from genbatch.batch import run_manifest
from genbatch.export import FILE_COLUMNS, METADATA_FILE, flat_inputs
from genbatch.ledger import open_ledger_for
from genbatch.simulator import Simulator

from support import cli_env, genbatch, kling_manifest, output_files, run_args, sha256_of

FAST = 0.0005


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_one_type_per_column(rows: list[dict[str, object]]) -> None:
    """What Arrow (datasets, pandas) needs of JSON Lines: each column one type, or null."""
    types: dict[str, set[str]] = {}
    for row in rows:
        for key, value in row.items():
            if value is not None:
                types.setdefault(key, set()).add(type(value).__name__)
    assert {k: t for k, t in types.items() if len(t) > 1} == {}


@pytest.fixture
def sim() -> Simulator:
    with Simulator(time_scale=FAST, capacity=8, seed=3) as simulator:
        yield simulator


def test_a_run_writes_metadata_jsonl_with_one_row_per_file(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 3, extra="grid:\n  aspect_ratio: ['16:9', '1:1']\n")

    assert genbatch(run_args(manifest), env=env, cwd=tmp_path).returncode == 0

    path = tmp_path / "out" / METADATA_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rows = read_jsonl(path)
    files = output_files(tmp_path / "out")
    assert sorted(str(r["file_name"]) for r in rows) == sorted(f.name for f in files)
    served = {info.request_id for info in sim.records.list()}
    for row in rows:
        assert set(FILE_COLUMNS) <= set(row)
        assert list(row)[:2] == ["file_name", "prompt"]
        file = tmp_path / "out" / str(row["file_name"])
        assert row["sha256"] == sha256_of(file)
        assert row["size"] == file.stat().st_size
        assert row["request_id"] in served
        assert row["inputs"] == {k: row[k] for k in ("prompt", "aspect_ratio")}
        assert row["model_id"] == "kling/kling-2-6/pro/text-to-video"
        assert row["cost_usd"] == 0.7  # 5 s x $0.14 with audio (generate_audio defaults true)
        created = datetime.fromisoformat(str(row["created_at"]))
        finished = datetime.fromisoformat(str(row["finished_at"]))
        assert created.tzinfo is not None and created <= finished
    assert sorted(r["index"] for r in rows) == list(range(6))
    assert_one_type_per_column(rows)


def test_metadata_is_regenerated_never_duplicated_and_drops_deleted_files(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 2)
    genbatch(run_args(manifest), env=env, cwd=tmp_path)
    kling_manifest(tmp_path, 3)
    genbatch(run_args(manifest), env=env, cwd=tmp_path)
    genbatch(run_args(manifest), env=env, cwd=tmp_path)
    path = tmp_path / "out" / METADATA_FILE
    assert len(read_jsonl(path)) == 3

    gone = output_files(tmp_path / "out")[0]
    gone.unlink()
    done = genbatch(["export"], env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert gone.name not in {r["file_name"] for r in read_jsonl(path)}
    assert len(read_jsonl(path)) == 2
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_export_writes_jsonl_to_stdout_and_csv_to_a_private_file(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 2)
    genbatch(run_args(manifest), env=env, cwd=tmp_path)

    jsonl = genbatch(["export", str(manifest)], env=env, cwd=tmp_path)
    done_csv = genbatch(
        ["export", "--format", "csv", "--output", "x/all.csv"], env=env, cwd=tmp_path
    )

    assert jsonl.returncode == 0, jsonl.stderr
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["state"] for r in rows] == ["done", "done"]
    assert all(r["run"] == "sweep" and r["output_dir"] == str(tmp_path / "out") for r in rows)
    assert all(Path(r["output_dir"], r["file_name"]).is_file() for r in rows)
    assert done_csv.returncode == 0, done_csv.stderr
    assert "2 row(s)" in done_csv.stderr
    written = tmp_path / "x" / "all.csv"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    table = list(csv.DictReader(io.StringIO(written.read_text(encoding="utf-8"))))
    assert [r["file_name"] for r in table] == [r["file_name"] for r in rows]
    assert json.loads(table[0]["inputs"]) == rows[0]["inputs"]
    assert table[0]["error"] == ""


def test_export_all_states_adds_failed_jobs_with_their_error(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 1)
    first = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    kling_manifest(tmp_path, 2)
    with Simulator(time_scale=FAST, fail_rate=1.0) as failing:
        genbatch(run_args(manifest), env=cli_env(failing, tmp_path / "ledger.db"), cwd=tmp_path)

    only_done = genbatch(["export"], env=env, cwd=tmp_path).stdout.splitlines()
    every = [
        json.loads(line)
        for line in genbatch(["export", "--all-states"], env=env, cwd=tmp_path).stdout.splitlines()
    ]

    assert len(only_done) == 1
    failed = [r for r in every if r["state"] == "failed"]
    assert len(every) == 2 and len(failed) == 1
    assert failed[0]["file_name"] is None and failed[0]["sha256"] is None
    assert failed[0]["error"]
    assert failed[0]["request_id"]


def test_export_of_a_manifest_without_a_run_is_a_one_line_usage_error(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    other = genbatch(
        run_args(kling_manifest(tmp_path, 1, name="other.yaml")), env=env, cwd=tmp_path
    )
    assert other.returncode == 0, other.stderr
    done = genbatch(["export", str(kling_manifest(tmp_path, 1))], env=env, cwd=tmp_path)

    assert done.returncode == 2
    assert done.stderr.startswith("genbatch: error: the ledger has no run 'sweep'")
    assert len(done.stderr.splitlines()) == 1


def test_export_without_a_ledger_is_a_one_line_ledger_error_and_creates_none(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    done = genbatch(["export", str(kling_manifest(tmp_path, 1))], env=env, cwd=tmp_path)

    assert done.returncode == 4
    assert done.stderr.startswith(f"genbatch: error: no ledger at {tmp_path / 'ledger.db'}")
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "ledger.db").exists()


def test_the_python_api_writes_metadata_and_reads_jobs_with_outputs_in_one_call(
    tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNCOMFY_TOKEN", sim.token)
    manifest = kling_manifest(tmp_path, 3)
    ledger_path = tmp_path / "ledger.db"

    summary = run_manifest(manifest, ledger=str(ledger_path), api_base=sim.base_url)

    assert summary.all_done
    assert len(read_jsonl(tmp_path / "out" / METADATA_FILE)) == 3
    with open_ledger_for(str(ledger_path)) as store:
        items = store.job_outputs()
    assert [item.job.ordinal for item in items] == [0, 1, 2]
    for item in items:
        assert len(item.outputs) == 1 and item.outputs[0].path is not None
        assert item.attempt is not None and item.attempt.request_id == item.job.request_id
        assert item.run_name == "sweep" and item.finished_at is not None


def test_an_input_named_like_a_fixed_column_is_prefixed_not_lost() -> None:
    flat = flat_inputs({"size": "2K", "seed": 3, "prompt": "p"})

    assert flat == {"prompt": "p", "seed": 3, "input_size": "2K"}
    assert list(flat) == ["prompt", "seed", "input_size"]


def test_metadata_loads_with_pandas_when_installed(tmp_path: Path, sim: Simulator) -> None:
    pandas = pytest.importorskip("pandas")
    env = cli_env(sim, tmp_path / "ledger.db")
    genbatch(run_args(kling_manifest(tmp_path, 2)), env=env, cwd=tmp_path)

    frame = pandas.read_json(os.fspath(tmp_path / "out" / METADATA_FILE), lines=True)

    assert len(frame) == 2 and "file_name" in frame.columns


def test_a_run_that_would_write_over_another_runs_file_is_refused_and_metadata_stays_true(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    same_name = '  name: "clip-{index}"\n'
    first = kling_manifest(tmp_path, 2, name="first.yaml", prefix="dawn", extra=same_name)
    second = kling_manifest(tmp_path, 1, name="second.yaml", prefix="dusk", extra=same_name)
    assert genbatch(run_args(first), env=env, cwd=tmp_path).returncode == 0

    refused = genbatch(run_args(second), env=env, cwd=tmp_path)

    assert refused.returncode == 2
    assert "the file of a done job with other inputs" in refused.stderr
    assert sim.stats.submissions == 2
    rows = read_jsonl(tmp_path / "out" / METADATA_FILE)
    assert sorted(str(row["prompt"]) for row in rows) == ["dawn number 0", "dawn number 1"]
    for row in rows:
        assert row["sha256"] == sha256_of(tmp_path / "out" / str(row["file_name"]))
