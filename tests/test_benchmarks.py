"""The benchmark suite runs end to end at its --quick sizes (no timing is asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def test_every_single_machine_benchmark_runs_at_quick_sizes(tmp_path: Path) -> None:
    saved = tmp_path / "rows.json"
    figures = [arg for n in (1, 2, 3, 4, 5, 11, 12) for arg in ("--only", str(n))]
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", *figures, "--json", str(saved)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(saved.read_text(encoding="utf-8"))
    assert {row["figure"] for row in rows} == {1, 2, 3, 4, 5, 6, 11, 12}
    assert all(row["value"] >= 0 for row in rows)
    # Figure 6 times the ledger's transactions: a timer that no longer hooks them reads zero.
    assert all(row["value"] > 0 for row in rows if row["figure"] == 6)
    assert "not judged at --quick sizes" in done.stdout


def test_one_figure_can_be_run_alone(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--only", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3. genbatch plan" in done.stdout
    assert "\n1:" not in done.stdout


@pytest.mark.postgres
def test_the_scale_out_benchmark_runs_at_quick_sizes(postgres_server: str) -> None:
    done = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--only", "7"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "GENBATCH_TEST_POSTGRES_URL": postgres_server},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "7:" in done.stdout
