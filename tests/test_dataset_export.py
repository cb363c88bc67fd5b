"""`genbatch export --format parquet|webdataset`: a run's files as a dataset, read back as its
users would (pyarrow, the webdataset reader). The Hugging Face folders are in test_dataset_hf.py
(importing `datasets` is slow: one module pays it)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner
from webdataset.tariterators import group_by_keys, tar_file_iterator

from genbatch.batch import run_manifest
from genbatch.cli import _register_commands, app
from genbatch.dataset import BYTES_COLUMN, PATH_COLUMN
from genbatch.dataset.columns import ColumnKind, ColumnPlan
from genbatch.simulator import Simulator

from dataset_runs import LAUNCH, Finished, finish_launch
from support import output_files

_register_commands()


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    return finish_launch(tmp_path_factory.mktemp("launch"))


def read_shard(shard: Path) -> list[dict[str, Any]]:
    """The samples of a shard, by webdataset's own tar reader and grouping by key (its
    ``WebDataset`` pipeline leaves the last shard open, which the warnings-as-errors reject)."""
    with shard.open("rb") as stream:
        files = ({**f, "__url__": str(shard)} for f in tar_file_iterator(stream))
        return list(group_by_keys(files))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the run's folders ------------------------------------------------------------------------


def test_each_block_of_the_run_has_its_own_folder_none_inside_another(finished: Finished) -> None:
    out = finished.folder / "out"
    assert sorted(p.name for p in out.iterdir()) == ["clips", "stills"]
    assert {p.suffix for p in (out / "clips").glob("*.*") if p.name != "metadata.jsonl"} == {".mp4"}
    assert {p.suffix for p in (out / "stills").glob("*.*") if p.name != "metadata.jsonl"} == {
        ".png"
    }


def test_a_run_begun_with_blocks_in_one_folder_resumes_keeping_its_files_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before blocks had folders of their own, every block of LAUNCH wrote into out/.
    one_folder = LAUNCH.replace("  - name: stills\n", "    output: {dir: out}\n  - name: stills\n")
    one_folder += "    output: {dir: out}\n"
    manifest = tmp_path / "launch.yaml"
    manifest.write_text(one_folder, encoding="utf-8")
    with Simulator(time_scale=0.0005, capacity=8, seed=5) as sim:
        monkeypatch.setenv("RUNCOMFY_TOKEN", sim.token)
        ledger = str(tmp_path / "ledger.db")
        assert run_manifest(manifest, ledger=ledger, api_base=sim.base_url).all_done
        before = {p.name: sha256(p.read_bytes()) for p in output_files(tmp_path / "out")}
        # Now with the default folders, and a second sample of each clip.
        more = LAUNCH.replace(
            "    inputs: {duration: 5}\n", "    inputs: {duration: 5}\n    repeat: 2\n"
        )
        manifest.write_text(more, encoding="utf-8")
        assert run_manifest(manifest, ledger=ledger, api_base=sim.base_url).all_done
        submissions = sim.stats.submissions

    assert submissions == 6 + 2  # the two new samples only: nothing paid or fetched again
    assert {p.name: sha256(p.read_bytes()) for p in output_files(tmp_path / "out")} == before
    assert len(output_files(tmp_path / "out" / "clips")) == 2
    assert output_files(tmp_path / "out" / "stills") == []
    metadata = (tmp_path / "out" / "metadata.jsonl").read_text(encoding="utf-8")
    listed = [json.loads(line) for line in metadata.splitlines()]
    assert sorted(row["file_name"] for row in listed) == sorted(before)


# --- parquet ----------------------------------------------------------------------------------


def test_parquet_holds_exactly_the_exported_rows_with_a_path_to_each_file(
    finished: Finished,
) -> None:
    expected = finished.rows()

    done = finished.export("--format", "parquet", "--output", "data/launch.parquet")

    assert done.returncode == 0, done.stderr
    assert done.stderr == "genbatch: 6 row(s) written to data/launch.parquet\n"
    table = pq.read_table(finished.folder / "data" / "launch.parquet")
    rows = table.to_pylist()
    assert [r["job_key"] for r in rows] == [r["job_key"] for r in expected]
    for row, exported in zip(rows, expected, strict=True):
        file = finished.folder / "data" / row[PATH_COLUMN]
        assert sha256(file.read_bytes()) == row["sha256"] == exported["sha256"]
        assert json.loads(row["inputs"]) == exported["inputs"]
        assert json.loads(row["variables"]) == exported["variables"]
        for column in ("prompt", "request_id", "cost_usd", "model_id", "block", "run"):
            assert row[column] == exported[column]
    assert table.schema.field("duration").type == "int64"  # null for the stills
    assert table.schema.field("aspect_ratio").type == "string"
    assert BYTES_COLUMN not in table.schema.names
    assert (finished.folder / "data" / "launch.parquet").stat().st_mode & 0o777 == 0o600


def test_parquet_with_embed_carries_each_files_bytes(finished: Finished) -> None:
    done = finished.export("--format", "parquet", "--embed", "-o", "embedded.parquet")

    assert done.returncode == 0, done.stderr
    rows = pq.read_table(finished.folder / "embedded.parquet").to_pylist()
    assert len(rows) == 6
    assert all(sha256(row[BYTES_COLUMN]) == row["sha256"] for row in rows)
    for row in rows:
        magic = row[BYTES_COLUMN][4:8] if row["block"] == "clips" else row[BYTES_COLUMN][:4]
        assert magic == (b"ftyp" if row["block"] == "clips" else b"\x89PNG")


def test_parquet_without_pyarrow_is_one_line_naming_the_extra_and_writes_nothing(
    finished: Finished,
) -> None:
    # pyarrow made unimportable in that process, as in an install without genbatch[dataset].
    hide = (
        "import sys; sys.modules['pyarrow'] = None; sys.argv[0] = 'genbatch'; "
        "from genbatch.launch import main; sys.exit(main())"
    )
    args = ["export", str(finished.manifest), "--format", "parquet", "-o", "none.parquet"]
    done = subprocess.run(
        [sys.executable, "-c", hide, *args],
        env=finished.env,
        cwd=finished.folder,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 2
    assert done.stderr == (
        "genbatch: error: --format parquet needs pyarrow, which is not installed: "
        "pip install 'genbatch[dataset]'\n"
    )
    assert not (finished.folder / "none.parquet").exists()


# --- webdataset -------------------------------------------------------------------------------


def test_webdataset_shards_hold_one_sample_per_file_keyed_by_job(
    finished: Finished, tmp_path: Path
) -> None:
    expected = {row["job_key"]: row for row in finished.rows()}
    largest = max(int(row["size"]) for row in expected.values())
    limit = 3 * (largest + 4096)  # room for two or three samples a shard

    done = finished.export(
        "--format", "webdataset", "--output", str(tmp_path / "shards"), "--shard-size", str(limit)
    )

    assert done.returncode == 0, done.stderr
    shards = sorted((tmp_path / "shards").glob("shard-*.tar"))
    assert len(shards) >= 2
    assert all(shard.stat().st_size <= limit for shard in shards)
    assert done.stderr == (
        f"genbatch: 6 sample(s) in {len(shards)} shard(s) written to {tmp_path / 'shards'}\n"
    )
    samples = [sample for shard in shards for sample in read_shard(shard)]
    assert sorted(s["__key__"] for s in samples) == sorted(expected)
    for sample in samples:
        row = json.loads(sample["json"])
        media = sample.get("mp4") or sample["png"]
        assert row == {k: v for k, v in expected[sample["__key__"]].items() if k != "output_dir"}
        assert sha256(media) == row["sha256"]
        assert ("mp4" in sample) == (row["block"] == "clips")


def test_webdataset_members_are_a_file_then_its_json_with_fixed_owner(
    finished: Finished, tmp_path: Path
) -> None:
    done = finished.export("--format", "webdataset", "-o", str(tmp_path / "one"))

    assert done.returncode == 0, done.stderr
    with tarfile.open(tmp_path / "one" / "shard-000000.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert len(names) == 12
    assert [n.split(".")[1] for n in names[::2]] == ["mp4"] * 2 + ["png"] * 4
    assert [n.split(".")[1] for n in names[1::2]] == ["json"] * 6
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}


def test_a_dataset_export_replaces_its_own_folder_never_someone_elses(
    finished: Finished, tmp_path: Path
) -> None:
    target = tmp_path / "shards"
    assert finished.export("--format", "webdataset", "-o", str(target)).returncode == 0
    assert finished.export("--format", "webdataset", "-o", str(target)).returncode == 0
    assert sorted(p.name for p in target.iterdir()) == [".genbatch-export", "shard-000000.tar"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers

    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    refused = finished.export("--format", "hf", "-o", str(mine))

    assert refused.returncode == 2
    assert refused.stderr == (
        f"genbatch: error: --output {mine} is a folder genbatch did not write; "
        "give a new or empty one\n"
    )
    assert [p.name for p in mine.iterdir()] == ["holiday.jpg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "hf"], "--format hf needs --output FOLDER"),
        (["--format", "parquet"], "--format parquet needs --output FILE"),
        (["--format", "csv", "--embed"], "--embed goes with --format parquet"),
        (
            ["--format", "webdataset", "-o", "x", "--all-states"],
            "--all-states: jobs that are not done have no file to put in a --format "
            "webdataset export; use --format parquet, jsonl or csv",
        ),
        (
            ["--format", "webdataset", "-o", "x", "--shard-size", "big"],
            "--shard-size: 'big' is not a size like 2GiB, 500MB or 1048576",
        ),
    ],
)
def test_dataset_options_that_do_not_fit_are_one_line_usage_errors(
    finished: Finished, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(finished.folder)
    # In-process: these are decided before the ledger is opened, and a process each is slow.
    done = CliRunner().invoke(app, ["export", str(finished.manifest), *args], env=finished.env)

    assert done.exit_code == 2
    assert done.stderr == f"genbatch: error: {message}\n"
    assert not (finished.folder / "x").exists()


# --- one type per column ----------------------------------------------------------------------


def test_a_column_keeps_its_type_when_all_its_values_share_one() -> None:
    plan = ColumnPlan.of([{"seed": 1, "fast": True, "name": "a"}, {"seed": None, "fast": False}])

    assert [plan.kind(c) for c in plan.columns] == [
        ColumnKind.INT,
        ColumnKind.BOOL,
        ColumnKind.STRING,
    ]
    assert plan.normalise({"seed": 2}) == {"seed": 2, "fast": None, "name": None}


def test_integers_and_floats_become_floats_and_any_other_mix_json_text() -> None:
    plan = ColumnPlan.of(
        [
            {"scale": 1, "duration": 5, "inputs": {"a": 1}, "empty": None},
            {"scale": 1.5, "duration": "5", "inputs": {"b": "x"}, "empty": None},
        ]
    )

    assert plan.kind("scale") == ColumnKind.FLOAT
    assert plan.kind("empty") == ColumnKind.NULL
    assert plan.normalise({"scale": 1, "duration": "5", "inputs": {"b": "x"}}) == {
        "scale": 1.0,
        "duration": '"5"',
        "inputs": '{"b": "x"}',
        "empty": None,
    }
    assert plan.normalise({"duration": True})["duration"] == "true"
