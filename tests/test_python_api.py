"""The Python API a notebook uses: load a manifest, run it, read what it produced."""

from __future__ import annotations

from pathlib import Path

import pytest

import genbatch

from support import kling_manifest


def test_a_notebook_loads_runs_and_reads_the_results_without_the_cli(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = kling_manifest(tmp_path, 3)

    manifest = genbatch.load_manifest(path)
    summary = genbatch.run_manifest(path, simulate=True)
    rows = genbatch.results(path)

    assert manifest.job_count == 3
    assert summary.all_done and summary.counts[genbatch.JobState.DONE] == 3
    assert len(rows) == 3
    assert {row["prompt"] for row in rows} == {f"clip number {i}" for i in range(3)}
    assert all((tmp_path / "out" / row["file_name"]).is_file() for row in rows)
    assert all(len(row["sha256"]) == 64 and row["request_id"] for row in rows)


def test_a_bad_manifest_raises_one_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model: kling/kling-2-6/pro/text-to-video\nprompts: [a]\n"
                    "inputs: {duration: 7}\n")

    with pytest.raises(genbatch.ManifestError, match=r"bad.yaml:3: duration: 7 is not one of"):
        genbatch.run_manifest(path, simulate=True)
