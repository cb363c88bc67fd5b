"""Where the ledger lives (issue 13, paths 1 and 6): found from the manifest, never taken afresh.

The default ledger is ``.genbatch/ledger.db`` in the nearest folder, from the manifest's up, that
has a ``.genbatch/``; a run creates it beside the manifest when there is none. So a manifest finds
its ledger from any working directory, reading commands never create one, and a ledger file
that is empty or truncated is refused instead of being taken for a new one (which would submit
every job again).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from genbatch import ledger_registry
from genbatch.ledger import Ledger, resolve_location
from genbatch.simulator import Simulator, SimulatorConfig

from support import cli_env, genbatch, kling_manifest, output_files, run_args, sha256_of

FAST = 0.0005


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(time_scale=FAST, capacity=8, seed=13)) as simulator:
        yield simulator


def default_ledger_env(sim: Simulator) -> dict[str, str]:
    """The CLI's environment with no ledger named: the default one is found (or made)."""
    env = cli_env(sim, Path("unused"))
    del env["GENBATCH_LEDGER"]
    return env


def hashes(folder: Path) -> dict[str, str]:
    return {path.name: sha256_of(path) for path in output_files(folder)}


def one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    """The single stderr line of a command that failed with ``code``, no traceback."""
    assert done.returncode == code, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


# -- path 1: the same manifest, the same ledger, from any working directory -------------------


def test_a_manifest_finds_its_ledger_from_any_working_directory_and_is_paid_once(
    tmp_path: Path, sim: Simulator
) -> None:
    project = tmp_path / "project"
    manifests = project / "manifests"
    manifests.mkdir(parents=True)
    manifest = kling_manifest(manifests, 4)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = default_ledger_env(sim)

    first = genbatch(run_args(Path("manifests") / "sweep.yaml"), env=env, cwd=project)
    assert first.returncode == 0, first.stderr
    files = hashes(manifests / "out")
    from_its_folder = genbatch(run_args(Path("sweep.yaml")), env=env, cwd=manifests)
    from_elsewhere = genbatch(run_args(manifest), env=env, cwd=elsewhere)

    assert from_its_folder.returncode == 0, from_its_folder.stderr
    assert from_elsewhere.returncode == 0, from_elsewhere.stderr
    assert sim.stats.submissions == 4
    assert sim.stats.duplicate_submissions == 0
    assert len(files) == 4
    assert hashes(manifests / "out") == files
    ledger = manifests / ".genbatch" / "ledger.db"
    assert f"ledger {ledger}" in from_elsewhere.stderr
    assert not (project / ".genbatch").exists()
    assert not (elsewhere / ".genbatch").exists()


def test_a_genbatch_folder_above_the_manifest_is_found_from_its_subfolders(
    tmp_path: Path, sim: Simulator
) -> None:
    # What genbatch did by default before: the ledger in the working directory, here the
    # project's root, for a manifest in a subfolder of it.
    nested = tmp_path / "manifests" / "june"
    nested.mkdir(parents=True)
    kling_manifest(nested, 3)
    env = default_ledger_env(sim)
    relative = Path("manifests") / "june" / "sweep.yaml"
    first = genbatch(
        run_args(relative, "--ledger", str(Path(".genbatch") / "ledger.db")),
        env=env,
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    files = hashes(nested / "out")

    again = genbatch(run_args(Path("sweep.yaml")), env=env, cwd=nested)
    listed = genbatch(["status", "sweep.yaml", "--json"], env=env, cwd=nested)

    assert again.returncode == 0, again.stderr
    assert sim.stats.submissions == 3
    assert hashes(nested / "out") == files
    assert not (nested / ".genbatch").exists()
    assert listed.returncode == 0, listed.stderr
    assert '"done": 3' in listed.stdout


def test_reading_commands_never_create_a_ledger_and_say_where_they_looked(
    tmp_path: Path, sim: Simulator
) -> None:
    manifest = kling_manifest(tmp_path, 2)
    env = default_ledger_env(sim)
    commands = {
        "status": ["status", str(manifest)],
        "export": ["export", str(manifest)],
        "gallery": ["gallery", str(manifest)],
        "show": ["show", "#0", str(manifest)],
        "runs": ["runs"],
        "cancel": ["cancel", str(manifest)],
    }

    for name, args in commands.items():
        line = one_line_error(genbatch(args, env=env, cwd=tmp_path), 4)
        assert f"no .genbatch/ in {tmp_path} or any folder above it" in line, (name, line)
    named = one_line_error(genbatch(["status", "--ledger", "missing.db"], env=env, cwd=tmp_path), 4)
    planned = genbatch(["plan", str(manifest)], env=env, cwd=tmp_path)

    assert f"no ledger at {tmp_path / 'missing.db'}" in named
    assert planned.returncode == 0, planned.stderr
    assert f"no ledger yet at {tmp_path / '.genbatch' / 'ledger.db'}" in planned.stderr
    assert "2 new" in planned.stdout
    assert not (tmp_path / ".genbatch").exists()
    assert not (tmp_path / "missing.db").exists()
    assert sim.stats.calls["submit"] == 0


@pytest.mark.postgres
def test_a_reading_command_creates_no_tables_in_an_empty_postgresql_database(
    tmp_path: Path, sim: Simulator, postgres_url: str
) -> None:
    import psycopg

    env = cli_env(sim, tmp_path / "unused.db", GENBATCH_LEDGER=postgres_url)

    line = one_line_error(genbatch(["status"], env=env, cwd=tmp_path), 4)

    assert "no ledger in postgresql" in line
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchone()
    assert tables == (0,)


def test_a_ledger_left_in_the_working_directory_by_the_old_default_is_not_silently_forked(
    tmp_path: Path, sim: Simulator
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    manifest = kling_manifest(manifests, 2)
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    env = default_ledger_env(sim)
    old_default = Path(".genbatch") / "ledger.db"
    first = genbatch(run_args(manifest, "--ledger", str(old_default)), env=env, cwd=workdir)
    assert first.returncode == 0, first.stderr

    refused = genbatch(run_args(manifest), env=env, cwd=workdir)
    named = genbatch(run_args(manifest, "--ledger", str(old_default)), env=env, cwd=workdir)

    line = one_line_error(refused, 4)
    assert str(workdir / old_default) in line and "has a run 'sweep'" in line
    assert not (manifests / ".genbatch").exists()
    assert named.returncode == 0, named.stderr
    assert sim.stats.submissions == 2


def test_a_link_to_a_manifest_finds_the_ledger_and_files_of_the_manifest_it_points_to(
    tmp_path: Path, sim: Simulator
) -> None:
    real, links = tmp_path / "real", tmp_path / "links"
    real.mkdir()
    links.mkdir()
    kling_manifest(real, 2)
    (links / "sweep.yaml").symlink_to(Path("..") / "real" / "sweep.yaml")
    env = default_ledger_env(sim)
    first = genbatch(run_args(real / "sweep.yaml"), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    files = hashes(real / "out")

    through_the_link = genbatch(run_args(links / "sweep.yaml"), env=env, cwd=links)
    listed = genbatch(["status", str(links / "sweep.yaml"), "--json"], env=env, cwd=tmp_path)

    assert through_the_link.returncode == 0, through_the_link.stderr
    assert sim.stats.submissions == 2
    assert not (links / ".genbatch").exists() and not (links / "out").exists()
    assert hashes(real / "out") == files
    assert '"done": 2' in listed.stdout


def test_two_manifests_of_one_name_under_one_ledger_are_not_taken_for_one_run(
    tmp_path: Path, sim: Simulator
) -> None:
    # One .genbatch/ above several projects, as docs/reliability.md suggests; each has its
    # sweep.yaml with no name: (the run's name is the file's stem).
    (tmp_path / ".genbatch").mkdir()
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    kling_manifest(first, 2)
    kling_manifest(second, 3)
    (second / "sweep.yaml").write_text(
        (second / "sweep.yaml").read_text().replace("clip number", "another clip")
    )
    env = default_ledger_env(sim)
    assert genbatch(run_args(first / "sweep.yaml"), env=env, cwd=tmp_path).returncode == 0

    refused = genbatch(run_args(second / "sweep.yaml"), env=env, cwd=tmp_path)

    line = one_line_error(refused, 2)
    assert f"belongs to {first / 'sweep.yaml'}" in line and "name:" in line
    # Nor do the commands that read or cancel a manifest's run take the other's for its own.
    for command in ("status", "export", "cancel"):
        other = genbatch([command, str(second / "sweep.yaml")], env=env, cwd=tmp_path)
        assert f"belongs to {first / 'sweep.yaml'}" in one_line_error(other, 2)
    assert sim.stats.submissions == 2
    assert sim.stats.cancellations == 0
    # Named apart, it is a run of its own; and a manifest moved away is the same run, moved.
    text = (second / "sweep.yaml").read_text()
    (second / "sweep.yaml").write_text("name: sweep-b\n" + text)
    assert genbatch(run_args(second / "sweep.yaml"), env=env, cwd=tmp_path).returncode == 0
    moved = tmp_path / "c"
    moved.mkdir()
    (first / "sweep.yaml").rename(moved / "sweep.yaml")
    again = genbatch(run_args(moved / "sweep.yaml"), env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert sim.stats.submissions == 5
    assert sim.stats.duplicate_submissions == 0


# -- path 6: an empty or truncated ledger file is refused ---------------------------------------


def finished_run(tmp_path: Path, sim: Simulator, jobs: int) -> tuple[Path, dict[str, str]]:
    """A manifest run to the end with the default ledger; returns that ledger's path."""
    manifest = kling_manifest(tmp_path, jobs)
    env = default_ledger_env(sim)
    done = genbatch(run_args(manifest), env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ledger = tmp_path / ".genbatch" / "ledger.db"
    assert ledger.is_file()
    # The last connection's close checkpoints the write-ahead log into the file.
    assert not ledger.with_name("ledger.db-wal").exists()
    return ledger, env


def test_an_emptied_ledger_file_is_refused_and_nothing_is_submitted_again(
    tmp_path: Path, sim: Simulator
) -> None:
    ledger, env = finished_run(tmp_path, sim, 3)
    files = hashes(tmp_path / "out")
    os.truncate(ledger, 0)

    again = genbatch(run_args(tmp_path / "sweep.yaml"), env=env, cwd=tmp_path)
    status = genbatch(["status"], env=env, cwd=tmp_path)

    assert "is empty (0 bytes)" in one_line_error(again, 4)
    assert "is empty (0 bytes)" in one_line_error(status, 4)
    assert sim.stats.submissions == 3
    assert ledger.stat().st_size == 0
    assert hashes(tmp_path / "out") == files


def test_a_truncated_ledger_file_is_refused_and_nothing_is_submitted_again(
    tmp_path: Path, sim: Simulator
) -> None:
    ledger, env = finished_run(tmp_path, sim, 3)
    size = ledger.stat().st_size
    os.truncate(ledger, size // 2)

    again = genbatch(run_args(tmp_path / "sweep.yaml"), env=env, cwd=tmp_path)

    line = one_line_error(again, 4)
    assert f"is truncated ({size // 2} bytes where its header announces {size})" in line
    assert sim.stats.submissions == 3
    assert ledger.stat().st_size == size // 2


def test_a_ledger_with_pages_overwritten_fails_its_integrity_check_and_nothing_is_submitted(
    tmp_path: Path, sim: Simulator
) -> None:
    ledger, env = finished_run(tmp_path, sim, 3)
    files = hashes(tmp_path / "out")
    size = ledger.stat().st_size
    page = int.from_bytes(ledger.read_bytes()[16:18], "big")
    # Seed 0 hits pages a run that has nothing left to do never reads: unnoticed without a check.
    noise = random.Random(0)
    with ledger.open("r+b") as handle:  # page 1 (the header) is left alone: SQLite opens it
        for number in noise.sample(range(1, size // page), 3):
            handle.seek(number * page)
            handle.write(noise.randbytes(page))

    again = genbatch(run_args(tmp_path / "sweep.yaml"), env=env, cwd=tmp_path)
    status = genbatch(["status"], env=env, cwd=tmp_path)

    for done in (again, status):
        line = one_line_error(done, 4)
        assert f"the ledger {ledger} is corrupt (SQLite's quick_check: " in line
        assert "restore it from a backup" in line
    assert sim.stats.submissions == 3
    assert ledger.stat().st_size == size
    assert hashes(tmp_path / "out") == files


def test_a_command_run_while_a_run_holds_the_ledger_does_not_check_it_again(
    tmp_path: Path, sim: Simulator
) -> None:
    # The run holding the ledger checked it when it opened it; a `status` during that run (often
    # in a loop) need not read the whole file again, nor may it mark the file sound when it
    # ends. Once no run holds it, the check is back. (The holder has not closed the ledger when
    # the lock goes, as a run killed there leaves it; a holder's clean close would vouch for the
    # file as it then is: see the test below.)
    ledger, env = finished_run(tmp_path, sim, 3)
    holder = Ledger.open(resolve_location(str(ledger), may_create=False))
    try:
        with holder.exclusive():
            _overwrite_pages_of(ledger, "ix_jobs_output_file")  # an index `status` never reads
            during = genbatch(["status", "--json"], env=env, cwd=tmp_path)
        after = genbatch(["status", "--json"], env=env, cwd=tmp_path)
    finally:
        holder.close()

    assert during.returncode == 0, during.stderr
    assert json.loads(during.stdout)["counts"]["done"] == 3
    line = one_line_error(after, 4)
    assert f"the ledger {ledger} is corrupt (SQLite's quick_check: " in line


def _overwrite_pages_of(ledger: Path, name: str) -> None:
    """The pages of table or index ``name`` in ``ledger`` overwritten with noise."""
    with contextlib.closing(sqlite3.connect(ledger)) as conn:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        numbers = [n for (n,) in conn.execute("SELECT pageno FROM dbstat WHERE name = ?", (name,))]
    assert numbers
    noise = random.Random(0)
    with ledger.open("r+b") as handle:
        for number in numbers:  # numbered from 1
            handle.seek((number - 1) * page)
            handle.write(noise.randbytes(page))


def test_a_new_ledger_file_is_never_empty_and_only_its_owner_reads_it(
    tmp_path: Path, sim: Simulator
) -> None:
    ledger, _env = finished_run(tmp_path, sim, 1)

    assert ledger.read_bytes().startswith(b"SQLite format 3\x00")
    assert ledger.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in ledger.parent.iterdir() if p.name.endswith(".new")] == []


def test_a_ledger_its_run_closed_a_moment_ago_is_not_checked_again_by_status(
    tmp_path: Path, sim: Simulator
) -> None:
    # The run's close marks the ledger once the filesystem's clock is past its last write, so
    # the `status` right after trusts the mark instead of reading the whole file. Shown by
    # damage hidden from the mark (the mtime put back): a check would refuse the ledger.
    ledger, env = finished_run(tmp_path, sim, 3)
    closed = ledger.stat()
    _overwrite_pages_of(ledger, "ix_jobs_output_file")  # an index `status` never reads
    os.utime(ledger, ns=(closed.st_atime_ns, closed.st_mtime_ns))

    status = genbatch(["status", "--json"], env=env, cwd=tmp_path)

    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"]["done"] == 3
    with contextlib.closing(sqlite3.connect(ledger)) as conn:
        assert conn.execute("PRAGMA quick_check").fetchall() != [("ok",)]


def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    """Two folders with no ``.genbatch/`` above them."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    return first, second


def two_projects_the_first_run(tmp_path: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """``two_folders``, a run of two jobs done in the first."""
    first, second = two_folders(tmp_path)
    assert genbatch(run_args(kling_manifest(first, 2)), env=env, cwd=first).returncode == 0
    return first, second


def test_a_manifest_moved_out_of_its_project_is_not_paid_for_again_in_a_new_ledger(
    tmp_path: Path, sim: Simulator
) -> None:
    env = default_ledger_env(sim)
    first, second = two_projects_the_first_run(tmp_path, env)
    moved = second / "sweep.yaml"
    (first / "sweep.yaml").rename(moved)  # no .genbatch/ from its new folder up

    refused = genbatch(run_args(moved), env=env, cwd=second)

    message = one_line_error(refused, 4)
    paid = "2 of the first 200 jobs of sweep.yaml were paid for already, recorded in the ledger"
    assert f"{paid} {first}" in message
    assert sim.stats.submissions == 2  # nothing sent again
    assert not (second / ".genbatch" / "ledger.db").exists()
    # Either way out works: on with the earlier ledger, or a new one asked for by name.
    earlier = first / ".genbatch" / "ledger.db"
    assert genbatch(run_args(moved, "--ledger", str(earlier)), env=env, cwd=second).returncode == 0
    assert sim.stats.submissions == 2
    anew = genbatch(run_args(moved, "--ledger", str(second / "new.db")), env=env, cwd=second)
    assert anew.returncode == 0, anew.stderr
    assert sim.stats.submissions == 4  # paid again, on purpose


def test_another_manifest_in_a_new_folder_starts_its_ledger_as_ever(
    tmp_path: Path, sim: Simulator
) -> None:
    env = default_ledger_env(sim)
    _, second = two_projects_the_first_run(tmp_path, env)

    other = genbatch(run_args(kling_manifest(second, 2, prefix="other")), env=env, cwd=second)

    assert other.returncode == 0, other.stderr
    assert (second / ".genbatch" / "ledger.db").is_file()
    assert sim.stats.submissions == 4


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


def rehearsed(tmp_path: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A folder whose manifest of two jobs was rehearsed (``--simulate``): it, the manifest."""
    first, _ = two_folders(tmp_path)
    manifest = kling_manifest(first, 2)
    assert genbatch(run_args(manifest, "--simulate"), env=env, cwd=first).returncode == 0
    return first, manifest


def test_a_real_run_on_the_rehearsals_ledger_does_not_take_its_placeholders_for_outputs(
    tmp_path: Path, sim: Simulator
) -> None:
    # The rehearsal's last line prints `--ledger .../ledger.simulated.db`; a real run given it
    # (or GENBATCH_LEDGER set to it) would report the placeholder files as done, the very
    # mix-up the rehearsal's ledger is kept apart for.
    env = default_ledger_env(sim)
    first, manifest = rehearsed(tmp_path, env)
    rehearsal_ledger = first / ".genbatch" / "ledger.simulated.db"
    assert rehearsal_ledger.is_file()

    real = genbatch(run_args(manifest, "--ledger", str(rehearsal_ledger)), env=env, cwd=first)

    assert "is a rehearsal's ledger" in one_line_error(real, 4)
    assert sim.stats.submissions == 0


def _remember(ledger: str) -> None:
    ledger_registry.remember(Path(ledger))


def test_ledgers_remembered_by_runs_at_once_are_all_listed(tmp_path: Path) -> None:
    # Runs starting at once (a script starting several projects) each add their ledger.
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
    # The rehearsal keeps its own ledger, so `genbatch retry` without --simulate finds no real
    # run: it must not make one and submit every job.
    env = default_ledger_env(sim)
    first, manifest = rehearsed(tmp_path, env)

    retried = genbatch(["retry", str(manifest), "--poll-interval", "0.01"], env=env, cwd=first)

    assert sim.stats.submissions == 0, retried.stderr
    assert "nothing to retry: no run 'sweep'" in retried.stderr
    assert "(a rehearsal's is retried with --simulate)" in retried.stderr
    assert retried.returncode == 2 and not (first / ".genbatch" / "ledger.db").exists()
