"""The list of ledgers (ledger_registry) and the rehearsal's ledger kept apart, on the paths a
real user takes: a manifest moved into another project, a rehearsal of a moved manifest, runs
starting at once, a retry after a rehearsal, a real run pointed at a rehearsal's ledger."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch import ledger_registry
from genbatch.simulator import Simulator, SimulatorConfig

from support import cli_env, genbatch, kling_manifest, run_args

FAST = 0.0005


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=FAST, capacity=8, seed=13)) as simulator:
        yield simulator


def default_ledger_env(sim: Simulator) -> dict[str, str]:
    env = cli_env(sim, Path("unused"))
    del env["GENBATCH_LEDGER"]
    return env


def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    return first, second


def test_a_manifest_moved_into_another_project_with_its_own_ledger_is_not_paid_again(
    tmp_path: Path, sim: Simulator
) -> None:
    # The guard runs only when the ledger found is new: a project that has a ledger already
    # (another manifest ran there) takes the moved manifest's jobs as new and pays again.
    first, second = two_folders(tmp_path)
    env = default_ledger_env(sim)
    assert genbatch(run_args(kling_manifest(first, 2)), env=env, cwd=first).returncode == 0
    other = kling_manifest(second, 1, name="other.yaml", prefix="other")
    assert genbatch(run_args(other), env=env, cwd=second).returncode == 0
    assert sim.stats.submissions == 3
    moved = second / "sweep.yaml"
    (first / "sweep.yaml").rename(moved)

    again = genbatch(run_args(moved), env=env, cwd=second)

    assert sim.stats.submissions == 3, again.stderr  # not both jobs paid again
    assert again.returncode == 4


def test_a_rehearsal_of_a_moved_manifest_is_not_refused_as_if_it_would_pay(
    tmp_path: Path, sim: Simulator
) -> None:
    # A --simulate rehearsal pays nothing and keeps its own ledger: not "a run ... would
    # submit and pay for them again".
    first, second = two_folders(tmp_path)
    env = default_ledger_env(sim)
    assert genbatch(run_args(kling_manifest(first, 2)), env=env, cwd=first).returncode == 0
    copied = second / "sweep.yaml"
    copied.write_text((first / "sweep.yaml").read_text(encoding="utf-8"), encoding="utf-8")

    rehearsal = genbatch(run_args(copied, "--simulate"), env=env, cwd=second)

    assert rehearsal.returncode == 0, rehearsal.stderr


def test_a_real_run_on_the_rehearsals_ledger_does_not_take_its_placeholders_for_outputs(
    tmp_path: Path, sim: Simulator
) -> None:
    # The rehearsal's last line prints `--ledger .../ledger.simulated.db`; a real run given it
    # (or GENBATCH_LEDGER set to it) submits nothing and reports the placeholder files as done,
    # the very mix-up the rehearsal ledger was made to prevent.
    first, _ = two_folders(tmp_path)
    env = default_ledger_env(sim)
    manifest = kling_manifest(first, 2)
    assert genbatch(run_args(manifest, "--simulate"), env=env, cwd=first).returncode == 0
    rehearsal_ledger = first / ".genbatch" / "ledger.simulated.db"
    assert rehearsal_ledger.is_file()

    real = genbatch(run_args(manifest, "--ledger", str(rehearsal_ledger)), env=env, cwd=first)

    assert real.returncode != 0 or sim.stats.submissions == 2, real.stderr


def _remember(ledger: str) -> None:
    ledger_registry.remember(Path(ledger))


def test_ledgers_remembered_by_runs_at_once_are_all_listed(tmp_path: Path) -> None:
    # remember() reads the list, adds one and replaces the file: two runs at once (a script
    # starting several projects) keep only the last writer's list.
    ledgers = []
    for i in range(12):
        ledger = tmp_path / f"p{i}" / ".genbatch" / "ledger.db"
        ledger.parent.mkdir(parents=True)
        ledger.touch()
        ledgers.append(str(ledger))
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_remember, args=(ledger,)) for ledger in ledgers]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sorted(str(p) for p in ledger_registry.known_ledgers()) == sorted(ledgers)


def test_retry_after_a_rehearsal_does_not_start_a_paid_run_of_every_job(
    tmp_path: Path, sim: Simulator
) -> None:
    # Since the rehearsal keeps its own ledger, `genbatch retry` without --simulate finds no
    # real run: it says "0 job(s) to run again", then creates a real ledger and submits every job.
    first, _ = two_folders(tmp_path)
    env = default_ledger_env(sim)
    manifest = kling_manifest(first, 2)
    assert genbatch(run_args(manifest, "--simulate"), env=env, cwd=first).returncode == 0

    retried = genbatch(["retry", str(manifest), "--poll-interval", "0.01"], env=env, cwd=first)

    assert sim.stats.submissions == 0, retried.stderr
