"""Soak: a faulty API, and a genbatch killed at random moments again and again.

The short version runs in the normal suite; the long one is ``pytest -m slow tests/test_soak.py``
(its figures are in docs/reliability.md). At the end every job is done, every file equals the
bytes the simulator served, the ledger is consistent, and the simulator's count of duplicate
submissions is no larger than the number of times genbatch reported a job ``unknown``. With
SIGINT/SIGTERM instead of SIGKILL there are no duplicates at all.
"""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from genbatch.ledger import Ledger, resolve_location
from genbatch.simulator import FaultConfig, Simulator, SimulatorConfig
from genbatch.states import JobState

from support import cli_env, genbatch, kill, kling_manifest, sha256_of, start_genbatch

FAULTS = FaultConfig(
    rate_limit=0.03,
    retry_after=0.05,
    server_error=0.03,
    drop=0.02,
    slow=0.02,
    slow_seconds=0.3,
    truncate=0.05,
    lost_answer=0.01,
    malformed=0.01,
)
# Faults that make a submit's fate unknown by themselves: left out where zero duplicates are due.
UNAMBIGUOUS_FAULTS = FaultConfig(
    rate_limit=0.03,
    retry_after=0.05,
    server_error=0.03,
    slow=0.02,
    slow_seconds=0.3,
    truncate=0.05,
    routes=frozenset({"poll", "file"}),
)


@dataclass(frozen=True)
class SoakResult:
    jobs: int
    interruptions: int
    unknown_reported: int
    duplicates: int
    submissions: int
    faults: int
    seconds: float


def soak(
    tmp_path: Path, *, jobs: int, interruptions: int, sig: int, faults: FaultConfig, seed: int
) -> SoakResult:
    """Run ``jobs`` jobs, interrupting genbatch ``interruptions`` times, then finish the run."""
    rng = random.Random(seed)
    started = time.monotonic()
    config = SimulatorConfig(time_scale=0.002, capacity=24, seed=seed, faults=faults)
    with Simulator(config) as sim:
        env = cli_env(sim, tmp_path / "ledger.db")
        manifest = kling_manifest(tmp_path, jobs)
        args = [
            "run",
            str(manifest),
            "--poll-interval",
            "0.02",
            "-c",
            "16",
            "--max-failures",
            "off",
        ]
        for _ in range(interruptions):
            process = start_genbatch(args, env=env, cwd=tmp_path)
            time.sleep(rng.uniform(0.4, 1.6))
            kill(process, sig)
        for _ in range(10):  # finish; unknown jobs are resubmitted, as a user would decide
            if (
                genbatch(
                    [*args, "--resubmit-unknown"], env=env, cwd=tmp_path, timeout=300
                ).returncode
                == 0
            ):
                break
        unknown = _check_ledger(tmp_path / "ledger.db", sim)
        return SoakResult(
            jobs=jobs,
            interruptions=interruptions,
            unknown_reported=unknown,
            duplicates=sim.stats.duplicate_submissions,
            submissions=sim.stats.submissions,
            faults=sim.stats.faults_total,
            seconds=time.monotonic() - started,
        )


def _check_ledger(path: Path, sim: Simulator) -> int:
    """Assert the ledger is complete and consistent; return how often a job went unknown."""
    served = {o.url: o.sha256 for info in sim.records.list() for o in info.outputs}
    ledger = Ledger.open(resolve_location(str(path)))
    try:
        run = ledger.runs()[0]
        assert set(ledger.counts(run.id).items()) >= {(JobState.SUBMITTING, 0)}
        unknown = 0
        for item in ledger.job_outputs(run_id=run.id, in_manifest_only=True):
            job = item.job
            assert job.state == JobState.DONE, (job.key, job.state, job.error)
            outputs = ledger.outputs(job.id)
            assert outputs and all(o.path and o.sha256 for o in outputs)
            for output in outputs:
                assert output.path is not None
                assert sha256_of(Path(output.path)) == output.sha256 == served[output.url]
            attempts = ledger.attempts(job.id)
            assert job.request_id in {a.request_id for a in attempts}
            unknown += sum(1 for a in attempts if a.outcome == "unknown")
        return unknown
    finally:
        ledger.close()


def test_soak_sigkill_short(tmp_path: Path) -> None:
    result = soak(tmp_path, jobs=60, interruptions=5, sig=signal.SIGKILL, faults=FAULTS, seed=41)
    assert result.faults > 0
    assert result.duplicates <= result.unknown_reported


def test_soak_sigint_short_never_duplicates(tmp_path: Path) -> None:
    result = soak(
        tmp_path, jobs=40, interruptions=4, sig=signal.SIGINT, faults=UNAMBIGUOUS_FAULTS, seed=42
    )
    assert result.duplicates == 0
    assert result.unknown_reported == 0


@pytest.mark.slow
def test_soak_sigkill_long(tmp_path: Path) -> None:
    result = soak(tmp_path, jobs=300, interruptions=30, sig=signal.SIGKILL, faults=FAULTS, seed=43)
    print(f"\nsoak SIGKILL: {result}")
    assert result.duplicates <= result.unknown_reported


@pytest.mark.slow
def test_soak_sigterm_long_never_duplicates(tmp_path: Path) -> None:
    result = soak(
        tmp_path, jobs=300, interruptions=30, sig=signal.SIGTERM, faults=UNAMBIGUOUS_FAULTS, seed=44
    )
    print(f"\nsoak SIGTERM: {result}")
    assert result.duplicates == 0
