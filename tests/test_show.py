"""`genbatch show` (one job, everything known about it) and `genbatch runs` (the ledger's runs)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from genbatch.simulator import Simulator

from support import cli_env, genbatch, kling_manifest, sha256_of

FAST = 0.0005


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(time_scale=FAST, capacity=8, seed=7) as simulator:
        yield simulator


@pytest.fixture
def ran(tmp_path: Path, sim: Simulator) -> tuple[Path, dict[str, str], list[dict[str, object]]]:
    """A run of 20 jobs, and its rows as `genbatch export` gives them."""
    env = cli_env(sim, tmp_path / "ledger.db")
    manifest = kling_manifest(tmp_path, 20)
    done = genbatch(["run", str(manifest), "--poll-interval", "0.01"], env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [
        json.loads(line) for line in genbatch(["export"], env=env, cwd=tmp_path).stdout.splitlines()
    ]
    return manifest, env, rows


def show(env: dict[str, str], cwd: Path, *args: str) -> dict[str, object]:
    done = genbatch(["show", *args, "--json"], env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_show_by_key_prefix_gives_inputs_attempts_and_verified_files(
    tmp_path: Path, sim: Simulator, ran: tuple[Path, dict[str, str], list[dict[str, object]]]
) -> None:
    _, env, rows = ran
    row = rows[4]

    job = show(env, tmp_path, str(row["job_key"])[:10])

    assert (job["key"], job["index"], job["state"], job["run"]) == (
        row["job_key"],
        4,
        "done",
        "sweep",
    )
    assert job["inputs"] == {"prompt": "clip number 4"}
    attempts = job["attempts"]
    assert isinstance(attempts, list) and len(attempts) == 1
    assert attempts[0]["outcome"] == "succeeded"
    assert attempts[0]["request_id"] in {info.request_id for info in sim.records.list()}
    assert datetime.fromisoformat(attempts[0]["accepted_at"]).tzinfo is not None
    outputs = job["outputs"]
    assert isinstance(outputs, list) and len(outputs) == 1
    assert outputs[0]["sha256"] == sha256_of(Path(outputs[0]["path"]))
    assert outputs[0]["url"].startswith(sim.base_url)


def test_show_by_index_in_text_names_every_part(
    tmp_path: Path, ran: tuple[Path, dict[str, str], list[dict[str, object]]]
) -> None:
    manifest, env, rows = ran

    done = genbatch(["show", "#3", str(manifest)], env=env, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"job {rows[3]['job_key']}  #3  run sweep")
    for part in (
        "inputs",
        "prompt: clip number 3",
        "attempts (1)",
        "1. succeeded",
        "outputs (1)",
        str(rows[3]["sha256"]),
    ):
        assert part in done.stdout


def test_an_ambiguous_or_unknown_job_is_a_one_line_usage_error(
    tmp_path: Path, ran: tuple[Path, dict[str, str], list[dict[str, object]]]
) -> None:
    _, env, rows = ran
    # 20 keys over 16 hex digits: at least two share their first digit.
    shared, sharing = next(
        (c, n) for c, n in Counter(str(r["job_key"])[0] for r in rows).items() if n > 1
    )

    ambiguous = genbatch(["show", shared], env=env, cwd=tmp_path)
    unknown = genbatch(["show", "zzzz"], env=env, cwd=tmp_path)
    no_index = genbatch(["show", "#99"], env=env, cwd=tmp_path)

    assert ambiguous.returncode == 2, ambiguous.stderr
    assert f"'{shared}' matches {sharing} jobs: " in ambiguous.stderr  # the count, exactly
    assert ambiguous.stderr.count(" (#") == min(sharing, 5)
    assert unknown.returncode == 2 and "no job's key starts with 'zzzz'" in unknown.stderr
    assert no_index.returncode == 2 and "has no job #99" in no_index.stderr
    for done in (ambiguous, unknown, no_index):
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr


def test_runs_lists_every_run_with_counts_times_and_stop_reason(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(sim, tmp_path / "ledger.db")
    for name, jobs in (("one.yaml", 1), ("two.yaml", 2)):
        manifest = kling_manifest(tmp_path, jobs, name=name, prefix=name)
        genbatch(["run", str(manifest), "--poll-interval", "0.01"], env=env, cwd=tmp_path)

    listed = json.loads(genbatch(["runs", "--json"], env=env, cwd=tmp_path).stdout)
    text = genbatch(["runs"], env=env, cwd=tmp_path)

    assert [(r["run"], r["total"], r["counts"]["done"]) for r in listed] == [
        ("one", 1, 1),
        ("two", 2, 2),
    ]
    assert all(r["stop_reason"] is None and r["created_at"] <= r["updated_at"] for r in listed)
    assert text.returncode == 0 and "two" in text.stdout and "2 done" in text.stdout
