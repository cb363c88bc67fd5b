"""A metadata.jsonl genbatch did not write is never replaced: a run whose output folder holds
one is refused before anything is sent, and a write after the run leaves it as it is. One that
genbatch wrote (an earlier run, another ledger, a ledger since deleted) is always its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch.export import METADATA_FILE
from genbatch.metadata_guard import why_not_ours
from genbatch.simulator import Simulator

from support import cli_env, genbatch, kling_manifest, run_args, sha256_of

FAST = 0.0005
THEIRS = b'{"file_name": "cat.png", "text": "a cat on a mat"}\n'
"""A Hugging Face folder's own metadata.jsonl, as a user writes one."""


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(time_scale=FAST, capacity=8, seed=9) as simulator:
        yield simulator


def metadata(tmp_path: Path) -> Path:
    return tmp_path / "out" / METADATA_FILE


def put(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def run(tmp_path: Path, env: dict[str, str], jobs: int = 2) -> tuple[int, str]:
    done = genbatch(run_args(kling_manifest(tmp_path, jobs)), env=env, cwd=tmp_path)
    return done.returncode, done.stderr


def assert_rows_describe_the_files(tmp_path: Path, jobs: int) -> None:
    rows = [json.loads(line) for line in metadata(tmp_path).read_text("utf-8").splitlines()]
    assert sorted(str(row["prompt"]) for row in rows) == [f"clip number {i}" for i in range(jobs)]
    for row in rows:
        assert row["sha256"] == sha256_of(tmp_path / "out" / str(row["file_name"]))


@pytest.mark.parametrize("content", [THEIRS, b"notes about these clips\n", b"\x89PNG\r\n\x1a\n"])
def test_a_run_into_a_folder_holding_someone_elses_metadata_is_refused_before_any_submit(
    tmp_path: Path, sim: Simulator, content: bytes
) -> None:
    theirs = put(metadata(tmp_path), content)

    code, stderr = run(tmp_path, cli_env(sim, tmp_path / "ledger.db"))

    assert code == 4
    line = stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(f"genbatch: error: preflight: {theirs} is not one genbatch wrote")
    assert "move or rename that file, or set another output dir; no job was submitted" in line
    assert sim.stats.submissions == 0
    assert theirs.read_bytes() == content


def test_a_line_added_to_genbatchs_file_makes_it_not_genbatchs_to_replace(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    assert run(tmp_path, env)[0] == 0
    with metadata(tmp_path).open("ab") as file:
        file.write(THEIRS)
    kept = metadata(tmp_path).read_bytes()

    code, stderr = run(tmp_path, env, jobs=3)

    assert code == 4
    assert "(line 3 lacks inputs, model_id, job_key, request_id, sha256" in stderr
    assert metadata(tmp_path).read_bytes() == kept
    assert sim.stats.submissions == 2


def test_genbatchs_file_is_recognised_after_its_ledger_is_deleted_or_under_another_ledger(
    tmp_path: Path, sim: Simulator
) -> None:
    assert run(tmp_path, cli_env(sim, tmp_path / "first.db"))[0] == 0
    (tmp_path / "first.db").unlink()

    code, stderr = run(tmp_path, cli_env(sim, tmp_path / "first.db"), jobs=3)
    assert code == 0, stderr
    code, stderr = run(tmp_path, cli_env(sim, tmp_path / "second.db"), jobs=4)
    assert code == 0, stderr

    assert_rows_describe_the_files(tmp_path, 4)


def test_rows_an_older_genbatch_wrote_are_genbatchs(tmp_path: Path, sim: Simulator) -> None:
    assert run(tmp_path, cli_env(sim, tmp_path / "first.db"))[0] == 0
    # The first versions wrote no variables, block, verdict, stars or note.
    old = [json.loads(line) for line in metadata(tmp_path).read_text("utf-8").splitlines()]
    for row in old:
        for later in ("variables", "block", "verdict", "stars", "note"):
            row.pop(later)
    put(metadata(tmp_path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in old).encode())

    code, stderr = run(tmp_path, cli_env(sim, tmp_path / "second.db"), jobs=3)

    assert code == 0, stderr
    assert_rows_describe_the_files(tmp_path, 3)


def test_an_empty_metadata_file_holds_nothing_to_keep(tmp_path: Path, sim: Simulator) -> None:
    put(metadata(tmp_path), b"")

    code, stderr = run(tmp_path, cli_env(sim, tmp_path / "ledger.db"))

    assert code == 0, stderr
    assert_rows_describe_the_files(tmp_path, 2)


def test_export_leaves_a_file_put_there_after_the_run_and_still_exports(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    assert run(tmp_path, env)[0] == 0
    put(metadata(tmp_path), THEIRS)

    exported = genbatch(["export", "sweep.yaml"], env=env, cwd=tmp_path)

    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == 2
    assert exported.stderr.startswith(
        f"genbatch: warning: metadata.jsonl not updated: {metadata(tmp_path)} is not one "
        "genbatch wrote (line 1 lacks inputs, model_id, job_key, request_id, sha256"
    )
    assert metadata(tmp_path).read_bytes() == THEIRS


def test_a_folder_whose_files_are_gone_keeps_someone_elses_metadata(
    tmp_path: Path, sim: Simulator
) -> None:
    # A whole rewrite removes genbatch's file from a folder with no file left; never theirs.
    env = cli_env(sim, tmp_path / "ledger.db")
    assert run(tmp_path, env)[0] == 0
    for clip in (tmp_path / "out").glob("*.mp4"):
        clip.unlink()
    put(metadata(tmp_path), THEIRS)

    exported = genbatch(["export", "sweep.yaml"], env=env, cwd=tmp_path)

    assert exported.returncode == 0, exported.stderr
    assert metadata(tmp_path).read_bytes() == THEIRS


# -- the guard through its own interface ---------------------------------------------------------

ROW = (
    '{"file_name": "a.mp4", "prompt": "a fox", "inputs": {"prompt": "a fox"}, "model_id": "m", '
    '"job_key": "c323668a73b36915", "request_id": "r", "sha256": "ab", "size": 1}\n'
)


@pytest.mark.parametrize(
    "content",
    [
        "",
        ROW,
        ROW * 3,
        ROW + "\n" + ROW,
        (ROW * 2).replace("\n", "\r\n"),
        ROW + '{"file_name": "b.mp4", "inp',  # an append cut short
        ROW + "\x00\x00\x00",  # an append whose data never reached the disk
    ],
)
def test_files_of_genbatch_rows_are_genbatchs(tmp_path: Path, content: str) -> None:
    assert why_not_ours(put(tmp_path / METADATA_FILE, content.encode())) is None


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (THEIRS.decode(), "line 1 lacks inputs, model_id, job_key, request_id, sha256"),
        ('{"file_name": "cat.png"}', "line 1 lacks inputs"),  # no line end: not an append
        ("caption,file\n", "line 1 is not a JSON object starting with file_name"),
        (ROW + '["a list"]\n' + ROW, "line 2 is not a JSON object starting with file_name"),
        (ROW.replace('"job_key"', '"input_job_key"'), "line 1 lacks job_key"),
        ('{"file_name": "b.mp4", "inp', "line 1 is not a JSON object"),  # no row before it
    ],
)
def test_any_line_that_is_not_a_genbatch_row_makes_the_file_someone_elses(
    tmp_path: Path, content: str, why: str
) -> None:
    found = why_not_ours(put(tmp_path / METADATA_FILE, content.encode()))
    assert found is not None and found.startswith(why)


def test_a_folder_named_metadata_jsonl_is_not_genbatchs(tmp_path: Path) -> None:
    (tmp_path / METADATA_FILE).mkdir()
    assert why_not_ours(tmp_path / METADATA_FILE) == "it is not a regular file"
