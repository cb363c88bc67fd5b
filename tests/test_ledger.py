"""The ledger's contract, through its public API, on SQLite and PostgreSQL alike.

Every test runs on both backends (the PostgreSQL ones are marked ``postgres``). Where the two
must differ (several processes at once, which only a PostgreSQL ledger allows) the test says so.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, inspect, text

from genbatch.errors import (
    BudgetReached,
    CommitInDoubt,
    LedgerError,
    StopRequested,
    TransitionRefused,
)
from genbatch.jobs import JobSpec
from genbatch.ledger import (
    CachedModel,
    JobRecord,
    Ledger,
    OutputRecord,
    StoredFile,
    resolve_location,
)
from genbatch.ledger.async_ledger import AsyncLedger
from genbatch.ledger.engine import STALLED_TRANSACTION_SECONDS
from genbatch.ledger.migrations import MIGRATIONS
from genbatch.ledger.tables import SCHEMA_VERSION
from genbatch.lifecycle import Actor, Move
from genbatch.ratings import Rating, Verdict
from genbatch.states import JobState
from genbatch.workers import WorkerIdentity

KLING = "kling/kling-2-6/pro/text-to-video"
LEASE = 60.0

OpenLedger = Callable[[], Ledger]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the ledger lives: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def open_ledger(backend: str) -> Iterator[OpenLedger]:
    """Open the test's ledger (again and again: each call is a new handle, as a new process)."""
    opened: list[Ledger] = []

    def open_one() -> Ledger:
        ledger = Ledger.open(resolve_location(backend))
        opened.append(ledger)
        return ledger

    yield open_one
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(open_ledger: OpenLedger) -> Ledger:
    return open_ledger()


def specs(count: int, *, start: int = 0) -> list[JobSpec]:
    return [
        JobSpec(
            key=f"job-{i:04d}",
            ordinal=i,
            block="main",
            model_id=KLING,
            inputs={"prompt": f"clip {i}"},
            file_stem=f"{i:04d}",
            output_dir="/out",
        )
        for i in range(start, start + count)
    ]


def identity(worker_id: str, host: str = "h", pid: int = 1) -> WorkerIdentity:
    return WorkerIdentity(id=worker_id, host=host, pid=pid)


def new_run(ledger: Ledger, jobs: int, *, cost: float | None = None) -> int:
    run, _ = ledger.sync_run("sweep", "sweep.yaml", specs(jobs), cost=lambda _spec: cost)
    return run.id


def claim(ledger: Ledger, run_id: int, worker: str = "w1", **kwargs: Any) -> JobRecord | None:
    kwargs.setdefault("lease_seconds", LEASE)
    jobs = ledger.claim_jobs(run_id, 1, worker=worker, **kwargs)
    return jobs[0] if jobs else None


def move(ledger: Ledger, job: JobRecord, to: Move, **details: Any) -> JobRecord:
    """``Ledger.try_move``, raising ``TransitionRefused`` (as ``AsyncLedger.move`` does) when
    the job was not where expected."""
    moved = ledger.try_move(job, to, **details)
    if moved is None:
        raise ledger.refusal(job, to)
    return moved


def accepted(ledger: Ledger, run_id: int, worker: str, request_id: str, **kwargs: Any) -> JobRecord:
    job = claim(ledger, run_id, worker, **kwargs)
    assert job is not None
    return move(ledger, job, Move.ACCEPT, worker=worker, request_id=request_id)


def succeeded(ledger: Ledger, job: JobRecord, worker: str, url: str) -> OutputRecord:
    moved = move(ledger, job, Move.SUCCEED, worker=worker, urls=[url])
    (output,) = ledger.outputs(moved.id)
    return output


# -- schema -----------------------------------------------------------------------------------


def test_a_new_ledger_gets_the_current_schema_and_reopening_keeps_its_data(
    open_ledger: OpenLedger,
) -> None:
    first = open_ledger()
    run_id = new_run(first, 3)
    first.close()

    again = open_ledger()

    assert again.counts(run_id)[JobState.PENDING] == 3
    assert _version(again) == SCHEMA_VERSION


def test_a_version_1_ledger_is_upgraded_step_by_step_keeping_its_jobs(
    open_ledger: OpenLedger,
) -> None:
    assert set(MIGRATIONS) == set(range(1, SCHEMA_VERSION))
    old = open_ledger()
    run_id = new_run(old, 2)
    _downgrade_to_version_1(old)
    old.close()

    upgraded = open_ledger()

    assert _version(upgraded) == SCHEMA_VERSION
    assert upgraded.counts(run_id)[JobState.PENDING] == 2
    upgraded.register_worker(run_id, identity("h:1:a"), concurrency=2, lease_seconds=9)
    assert [w.id for w in upgraded.workers(run_id)] == ["h:1:a"]


def test_a_version_2_ledger_is_upgraded_and_its_runs_sync_again(open_ledger: OpenLedger) -> None:
    old = open_ledger()
    run_id = new_run(old, 2)
    _downgrade_to_version_2(old)
    old.close()

    upgraded = open_ledger()
    _, report = upgraded.sync_run("sweep", "sweep.yaml", specs(3), fingerprint="f1")
    _, again = upgraded.sync_run("sweep", "sweep.yaml", specs(3), fingerprint="f1")

    assert _version(upgraded) == SCHEMA_VERSION
    assert (report.unchanged, report.new) == (False, 1)  # nothing was trusted from version 2
    assert again.unchanged and again.total == 3
    assert upgraded.counts(run_id)[JobState.PENDING] == 3


def test_a_version_3_ledger_is_upgraded_and_records_generation_times_from_then_on(
    open_ledger: OpenLedger,
) -> None:
    old = open_ledger()
    run_id = new_run(old, 2)
    succeeded(old, accepted(old, run_id, "w1", "req-1"), "w1", "https://f.runcomfy.net/1.mp4")
    _downgrade_to_version_3(old)
    old.close()

    upgraded = open_ledger()
    before = upgraded.generation_times(KLING, 10)
    second = accepted(upgraded, run_id, "w1", "req-2")
    move(upgraded, second, Move.SUCCEED, worker="w1", urls=["u"], generation_seconds=42.5)

    assert _version(upgraded) == SCHEMA_VERSION
    assert before == []  # version 3 did not record them
    assert upgraded.generation_times(KLING, 10) == [42.5]
    assert upgraded.counts(run_id)[JobState.FETCHING] == 2


def test_a_models_generation_times_come_newest_first_from_every_run(ledger: Ledger) -> None:
    other = "google/nano-banana-2/text-to-image"
    first = new_run(ledger, 3)
    images, _ = ledger.sync_run(
        "images", "images.yaml", [replace(spec, model_id=other) for spec in specs(1)]
    )
    for index, seconds in enumerate((30.0, 20.0)):
        job = accepted(ledger, first, "w1", f"req-{index}")
        move(ledger, job, Move.SUCCEED, worker="w1", urls=["u"], generation_seconds=seconds)
    image = accepted(ledger, images.id, "w1", "req-image")
    move(ledger, image, Move.SUCCEED, worker="w1", urls=["u"], generation_seconds=5.0)
    unmeasured = accepted(ledger, first, "w1", "req-queued")  # seen queued: no time recorded
    move(ledger, unmeasured, Move.SUCCEED, worker="w1", urls=["u"])

    assert ledger.generation_times(KLING, 10) == [20.0, 30.0]
    assert ledger.generation_times(KLING, 1) == [20.0]
    assert ledger.generation_times(other, 10) == [5.0]


def test_a_version_4_ledger_is_upgraded_with_an_empty_catalog_cache_that_then_keeps_entries(
    open_ledger: OpenLedger,
) -> None:
    old = open_ledger()
    run_id = new_run(old, 2)
    _downgrade_to_version_4(old)
    old.close()

    upgraded = open_ledger()
    assert _version(upgraded) == SCHEMA_VERSION
    assert upgraded.counts(run_id)[JobState.PENDING] == 2
    assert upgraded.cached_models() == {}
    upgraded.cache_models([_entry(KLING, 0.07)])
    assert upgraded.cached_models([KLING])[KLING].document["base_price_usd"] == 0.07


def test_a_version_5_ledger_is_upgraded_with_indexes_of_keys_and_output_file_names(
    open_ledger: OpenLedger,
) -> None:
    old = open_ledger()
    run_id = new_run(old, 2)
    _downgrade_to_version_5(old)
    old.close()

    upgraded = open_ledger()
    assert _version(upgraded) == SCHEMA_VERSION
    assert upgraded.counts(run_id)[JobState.PENDING] == 2
    indexes = {i["name"] for i in inspect(upgraded.engine).get_indexes("jobs")}
    assert {"ix_jobs_key", "ix_jobs_output_file"} <= indexes
    assert upgraded.output_clashes(run_id) == upgraded.same_jobs_elsewhere(run_id) == []


def finished(ledger: Ledger, run_id: int, request_id: str) -> JobRecord:
    job = accepted(ledger, run_id, "w1", request_id)
    output = succeeded(ledger, job, "w1", f"https://x.runcomfy.net/{request_id}.mp4")
    stored = StoredFile(output_id=output.id, path=f"/out/{request_id}.mp4", size=3, sha256="ab")
    return move(ledger, job, Move.FINISH, worker="w1", files=[stored])


def _done_ranks(ledger: Ledger) -> dict[str, int | None]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(text("SELECT request_id, done_seq FROM jobs WHERE state = 'done'"))
        return {request_id: rank for request_id, rank in rows}


def test_a_version_6_ledger_is_upgraded_with_ranks_for_its_done_jobs_below_later_ones(
    open_ledger: OpenLedger,
) -> None:
    old = open_ledger()
    run_id = new_run(old, 3)
    finished(old, run_id, "r1")
    finished(old, run_id, "r2")
    _downgrade_to_version_6(old)
    old.close()

    upgraded = open_ledger()
    finished(upgraded, run_id, "r3")

    ranks = _done_ranks(upgraded)
    assert _version(upgraded) == SCHEMA_VERSION
    assert None not in ranks.values()
    assert ranks["r3"] > max(ranks["r1"], ranks["r2"])
    assert upgraded.metadata_watermark().through == ranks["r3"]
    indexes = {i["name"] for i in inspect(upgraded.engine).get_indexes("jobs")}
    assert {"ix_jobs_done_seq", "ix_jobs_run_state", "ix_jobs_run_dir"} <= indexes


def test_a_runs_output_dirs_are_its_jobs_folders_and_no_other_runs(ledger: Ledger) -> None:
    folders = ["/out/b", "/out/a", "/out/a/b", "/out/b"]
    jobs = [replace(spec, output_dir=folders[spec.ordinal % 4]) for spec in specs(8)]
    first, _ = ledger.sync_run("first", "first.yaml", jobs)
    second, _ = ledger.sync_run("second", "second.yaml", [replace(jobs[0], output_dir="/else")])

    assert ledger.output_dirs(first.id) == ["/out/a", "/out/a/b", "/out/b"]
    assert ledger.output_dirs(second.id) == ["/else"]
    assert ledger.output_dirs([first.id, second.id]) == ["/else", "/out/a", "/out/a/b", "/out/b"]
    assert ledger.output_dirs() == ["/else", "/out/a", "/out/a/b", "/out/b"]


def test_jobs_are_ranked_in_the_order_they_become_done(ledger: Ledger) -> None:
    run_id = new_run(ledger, 3)
    jobs = [accepted(ledger, run_id, "w1", f"r{i}") for i in range(3)]
    for job in reversed(jobs):  # done in the opposite order of their claims
        output = succeeded(ledger, job, "w1", f"https://x.runcomfy.net/{job.request_id}.mp4")
        stored = StoredFile(output_id=output.id, path=f"/o/{job.id}", size=1, sha256="ab")
        move(ledger, job, Move.FINISH, worker="w1", files=[stored])

    ranks = _done_ranks(ledger)

    assert ranks["r2"] < ranks["r1"] < ranks["r0"]


def test_a_version_7_ledger_is_upgraded_with_an_empty_ratings_table_that_then_keeps_ratings(
    open_ledger: OpenLedger,
) -> None:
    old = open_ledger()
    run_id = new_run(old, 2)
    _downgrade_to_version_7(old)
    old.close()

    upgraded = open_ledger()
    assert _version(upgraded) == SCHEMA_VERSION
    assert upgraded.counts(run_id)[JobState.PENDING] == 2
    assert upgraded.ratings() == {} and not upgraded.rated()
    upgraded.rate(Rating(job_key="job-0000", position=0, verdict=Verdict.KEPT))
    assert upgraded.ratings()[("job-0000", 0)].verdict == Verdict.KEPT


def test_a_cached_catalog_entry_is_kept_with_its_fetch_time_until_replaced(
    ledger: Ledger,
) -> None:
    first = _entry(KLING, 0.07, fetched_at="2026-01-02T03:04:05+00:00")
    assert ledger.cache_models([first, _entry("acme/dream/v1", 0.01)]) == 2

    assert ledger.cache_models([_entry(KLING, 0.09)]) == 0  # a run keeps what it started with
    assert ledger.cached_models([KLING]) == {KLING: first}
    assert ledger.cache_models([_entry(KLING, 0.09)], replace=True) == 1  # a refresh
    assert ledger.cached_models([KLING])[KLING].document["base_price_usd"] == 0.09
    assert sorted(ledger.cached_models()) == ["acme/dream/v1", KLING]


def _entry(
    model_id: str, price: float, fetched_at: str = "2026-05-06T07:08:09+00:00"
) -> CachedModel:
    return CachedModel(
        model_id=model_id,
        document={"model_id": model_id, "base_price_usd": price, "price_unit": "second"},
        fetched_at=datetime.fromisoformat(fetched_at),
    )


def test_sync_run_skips_the_jobs_only_for_the_fingerprint_it_last_synced(ledger: Ledger) -> None:
    def unexpanded() -> Iterator[JobSpec]:
        raise AssertionError("an unchanged run must not be expanded")
        yield  # a generator

    ledger.sync_run("sweep", "sweep.yaml", specs(3), fingerprint="f1")
    _, same = ledger.sync_run("sweep", "sweep.yaml", unexpanded(), fingerprint="f1")
    _, other = ledger.sync_run("sweep", "sweep.yaml", specs(4), fingerprint="f2")
    _, unknown = ledger.sync_run("sweep", "sweep.yaml", specs(4), fingerprint=None)
    _, after_none = ledger.sync_run("sweep", "sweep.yaml", specs(5), fingerprint="f2")

    assert same.unchanged and same.counts[JobState.PENDING] == 3
    assert not other.unchanged and other.new == 1
    assert not unknown.unchanged
    assert not after_none.unchanged and after_none.new == 1


def test_a_job_back_to_pending_makes_the_next_start_sync_for_real(ledger: Ledger) -> None:
    run, _ = ledger.sync_run("sweep", "sweep.yaml", specs(2), fingerprint="f1")
    job = claim(ledger, run.id)
    assert job is not None
    move(ledger, job, Move.REFUSE, worker="w1", error="rate limited")

    _, report = ledger.sync_run("sweep", "sweep.yaml", specs(2), fingerprint="f1")

    assert not report.unchanged


def test_a_manifest_failing_halfway_through_its_sync_leaves_no_run(ledger: Ledger) -> None:
    def failing() -> Iterator[JobSpec]:
        yield from specs(2)
        raise RuntimeError("bad job")

    with pytest.raises(RuntimeError):
        ledger.sync_run("sweep", "sweep.yaml", failing(), fingerprint="f1")

    assert ledger.find_run("sweep") is None


def test_a_ledger_written_by_a_newer_genbatch_is_refused(open_ledger: OpenLedger) -> None:
    newer = open_ledger()
    with newer.engine.begin() as conn:
        conn.execute(
            text("UPDATE genbatch_meta SET value = :v WHERE key = 'schema_version'"),
            {"v": str(SCHEMA_VERSION + 1)},
        )
    newer.close()

    with pytest.raises(LedgerError, match="newer genbatch"):
        open_ledger()


def test_workers_opening_an_empty_database_at_once_create_the_schema_once(
    open_ledger: OpenLedger,
) -> None:
    with ThreadPoolExecutor(4) as pool:
        opened = list(pool.map(lambda _: open_ledger(), range(4)))

    assert all(_version(ledger) == SCHEMA_VERSION for ledger in opened)


# -- runs and jobs ----------------------------------------------------------------------------


def test_ensure_run_and_sync_are_idempotent_even_from_several_workers_at_once(
    open_ledger: OpenLedger,
) -> None:
    ledgers = [open_ledger() for _ in range(4)]

    def join(ledger: Ledger) -> int:
        run, _ = ledger.sync_run("sweep", "sweep.yaml", specs(50))
        return run.id

    with ThreadPoolExecutor(4) as pool:
        run_ids = set(pool.map(join, ledgers))

    assert len(run_ids) == 1
    assert ledgers[0].counts(run_ids.pop())[JobState.PENDING] == 50


def test_claims_follow_manifest_order_and_stop_when_nothing_is_pending(ledger: Ledger) -> None:
    run_id = new_run(ledger, 3)

    keys = [job.key for job in iter(lambda: claim(ledger, run_id), None)]

    assert keys == ["job-0000", "job-0001", "job-0002"]
    assert ledger.counts(run_id)[JobState.SUBMITTING] == 3


def test_a_claim_commits_the_intent_with_the_worker_and_its_lease(ledger: Ledger) -> None:
    run_id = new_run(ledger, 1)
    ledger.register_worker(run_id, identity("w1"), concurrency=1, lease_seconds=LEASE)

    job = claim(ledger, run_id, "w1")

    assert job is not None and job.state == JobState.SUBMITTING and job.attempt_id is not None
    assert ledger.attempts(job.id)[0].outcome == "sending"
    (worker,) = ledger.workers(run_id)
    assert worker.jobs_held == 1
    assert worker.lease_left is not None and LEASE - 5 < worker.lease_left <= LEASE


def test_the_run_wide_limit_counts_every_workers_jobs_in_flight(ledger: Ledger) -> None:
    run_id = new_run(ledger, 5)
    accepted(ledger, run_id, "w1", "r1")
    assert claim(ledger, run_id, "w2") is not None

    assert claim(ledger, run_id, "w3", run_limit=2) is None
    assert claim(ledger, run_id, "w3", run_limit=3) is not None


def test_the_budget_stops_claims_before_the_spending_would_pass_it(ledger: Ledger) -> None:
    run_id = new_run(ledger, 5, cost=1.0)
    for _ in range(3):
        assert claim(ledger, run_id, budget_usd=3.5) is not None

    with pytest.raises(BudgetReached):
        claim(ledger, run_id, budget_usd=3.5)


def test_a_job_put_back_to_pending_keeps_its_possible_cost_in_the_budget(ledger: Ledger) -> None:
    run_id = new_run(ledger, 3, cost=1.0)
    lost = claim(ledger, run_id, "w1", lease_seconds=0.0)  # its submit's answer never came
    assert lost is not None
    ledger.take_over(run_id, "w2", lease_seconds=LEASE)  # caught submitting: unknown
    ledger.reset_to_pending(run_id, [JobState.UNKNOWN])  # the user sends it again

    assert sum(ledger.spend(run_id).values()) - ledger.spend(run_id)[JobState.PENDING] == 1.0
    assert claim(ledger, run_id, "w2", budget_usd=2.5) is not None  # $1 maybe paid + $1
    with pytest.raises(BudgetReached, match=r"\$2.00 of \$2.50"):
        claim(ledger, run_id, "w2", budget_usd=2.5)  # the third dollar would pass it


def test_a_batch_claim_takes_jobs_in_order_up_to_the_limit_and_the_budget(ledger: Ledger) -> None:
    run_id = new_run(ledger, 10, cost=1.0)

    first = ledger.claim_jobs(run_id, 4, worker="w1", run_limit=3, lease_seconds=LEASE)
    assert [job.ordinal for job in first] == [0, 1, 2]
    assert all(job.state == JobState.SUBMITTING and job.attempt_id for job in first)

    second = ledger.claim_jobs(run_id, 5, worker="w1", budget_usd=5.5, lease_seconds=LEASE)
    assert [job.ordinal for job in second] == [3, 4]  # the sixth dollar would cross the budget
    with pytest.raises(BudgetReached):
        ledger.claim_jobs(run_id, 5, worker="w1", budget_usd=5.5, lease_seconds=LEASE)
    assert ledger.counts(run_id)[JobState.SUBMITTING] == 5


def test_concurrent_claims_never_take_a_job_twice_nor_pass_the_limit_or_the_budget(
    open_ledger: OpenLedger,
) -> None:
    """On PostgreSQL these are separate connections racing; on SQLite, its single writer."""
    run_id = new_run(open_ledger(), 40, cost=1.0)
    ledgers = [open_ledger() for _ in range(8)]
    claimed: list[JobRecord] = []
    lock = threading.Lock()

    def worker(ledger: Ledger, name: str) -> None:
        while True:
            try:
                job = claim(ledger, run_id, name, run_limit=12, budget_usd=30.0)
            except BudgetReached:
                return
            if job is None:
                return
            with lock:
                claimed.append(job)

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(worker, ledger, f"w{i}") for i, ledger in enumerate(ledgers)]:
            future.result()

    assert len({job.id for job in claimed}) == len(claimed) == 12


# -- leases and takeover ----------------------------------------------------------------------


def test_a_heartbeat_renews_the_leases_of_the_jobs_its_worker_holds(ledger: Ledger) -> None:
    run_id = new_run(ledger, 3)
    ledger.register_worker(run_id, identity("w1"), concurrency=2, lease_seconds=LEASE)
    accepted(ledger, run_id, "w1", "r1")
    claim(ledger, run_id, "w1", lease_seconds=0.0)

    assert ledger.heartbeat(run_id, "w1", lease_seconds=LEASE) == 2
    assert ledger.take_over(run_id, "w2", lease_seconds=LEASE).attached == []


def test_expired_leases_are_taken_over_reattached_and_submitting_jobs_become_unknown(
    ledger: Ledger,
) -> None:
    run_id = new_run(ledger, 3)
    job = accepted(ledger, run_id, "dead", "req-1", lease_seconds=0.0)
    caught = claim(ledger, run_id, "dead", lease_seconds=0.0)
    assert caught is not None

    takeover = ledger.take_over(run_id, "w2", lease_seconds=LEASE)

    assert [(j.key, j.request_id, j.attempt_id) for j in takeover.attached] == [
        (job.key, "req-1", job.attempt_id)
    ]
    assert len(takeover.interrupted) == 1
    assert ledger.states_by_key(run_id)[caught.key] == JobState.UNKNOWN
    assert ledger.attempts(caught.id)[0].outcome == "unknown"
    assert ledger.take_over(run_id, "w3", lease_seconds=LEASE).attached == []  # w2 holds it now


def test_live_leases_and_a_workers_own_jobs_are_never_taken_over(ledger: Ledger) -> None:
    run_id = new_run(ledger, 2)
    accepted(ledger, run_id, "w1", "r1")
    mine = claim(ledger, run_id, "w2", lease_seconds=0.0)
    assert mine is not None

    assert ledger.take_over(run_id, "w2", lease_seconds=LEASE).attached == []
    assert ledger.counts(run_id)[JobState.SUBMITTING] == 1


def test_a_worker_that_exits_hands_its_jobs_over_at_once(ledger: Ledger) -> None:
    run_id = new_run(ledger, 1)
    ledger.register_worker(run_id, identity("w1"), concurrency=1, lease_seconds=LEASE)
    accepted(ledger, run_id, "w1", "r1")

    ledger.release_worker(run_id, "w1")

    assert [j.request_id for j in ledger.take_over(run_id, "w2", lease_seconds=LEASE).attached] == [
        "r1"
    ]
    assert ledger.workers(run_id)[0].status == "stopped"


def test_a_parked_job_waits_for_the_next_worker_to_start(ledger: Ledger) -> None:
    run_id = new_run(ledger, 1)
    job = accepted(ledger, run_id, "w1", "r1")
    succeeded(ledger, job, "w1", "https://x.runcomfy.net/a.mp4")

    ledger.park_job(job, "w1")

    assert ledger.others_in_flight(run_id, "w2") == 0
    assert ledger.take_over(run_id, "w2", lease_seconds=LEASE).attached == []
    adopted = ledger.take_over(run_id, "w3", lease_seconds=LEASE, starting=True).attached
    assert [(j.key, j.state) for j in adopted] == [(job.key, JobState.FETCHING)]


def test_a_starting_worker_adopts_jobs_in_flight_as_only_its_backend_allows(ledger: Ledger) -> None:
    """SQLite: the file lock proves nobody else drives anything, so every job in flight is an
    orphan. PostgreSQL: jobs under a live lease belong to a running worker."""
    run_id = new_run(ledger, 1)
    accepted(ledger, run_id, "w1", "r1")

    adopted = ledger.take_over(run_id, "w2", lease_seconds=LEASE, starting=True).attached

    assert len(adopted) == (0 if ledger.shared else 1)


def test_others_in_flight_counts_the_jobs_other_workers_hold(ledger: Ledger) -> None:
    run_id = new_run(ledger, 3)
    accepted(ledger, run_id, "w1", "r1")
    accepted(ledger, run_id, "w2", "r2")
    claim(ledger, run_id, "w2")

    assert ledger.others_in_flight(run_id, "w1") == 2
    assert ledger.others_in_flight(run_id, "w2") == 1


# -- workers, outputs -------------------------------------------------------------------------


def test_workers_report_status_jobs_done_and_throughput(ledger: Ledger) -> None:
    run_id = new_run(ledger, 2)
    ledger.register_worker(run_id, identity("w1", "h1", 1), concurrency=2, lease_seconds=LEASE)
    ledger.register_worker(run_id, identity("lost", "h2", 2), concurrency=2, lease_seconds=0.05)
    job = accepted(ledger, run_id, "w1", "r1")
    output = succeeded(ledger, job, "w1", "https://x.runcomfy.net/a.mp4")
    stored = StoredFile(output_id=output.id, path="/out/a.mp4", size=3, sha256="abc", host="h1")
    move(ledger, job, Move.FINISH, worker="w1", files=[stored])
    time.sleep(0.1)

    by_id = {w.id: w for w in ledger.workers(run_id)}

    assert by_id["w1"].status == "running" and by_id["w1"].jobs_done == 1
    assert by_id["w1"].done_per_minute > 0
    assert by_id["lost"].status == "lost" and by_id["lost"].jobs_done == 0
    assert ledger.outputs(job.id)[0].host == "h1"


# -- ratings ----------------------------------------------------------------------------------


def done_job(ledger: Ledger, run_id: int, request_id: str, files: int = 1) -> JobRecord:
    """Claim the next pending job and take it to done with ``files`` output files."""
    job = accepted(ledger, run_id, "w1", request_id)
    urls = [f"https://x.runcomfy.net/{request_id}-{n}.mp4" for n in range(files)]
    moved = move(ledger, job, Move.SUCCEED, worker="w1", urls=urls)
    stored = [
        StoredFile(output_id=o.id, path=f"/out/{request_id}-{o.position}.mp4", size=3, sha256="a")
        for o in ledger.outputs(moved.id)
    ]
    return move(ledger, moved, Move.FINISH, worker="w1", files=stored)


def test_a_rating_is_stored_replaced_and_cleared_with_its_time_and_author(
    ledger: Ledger, backend: str
) -> None:
    first = ledger.rate(Rating(job_key="k", position=0, verdict=Verdict.KEPT, stars=4, note="ok"))
    assert first is not None and first.rated_at is not None
    assert (first.verdict, first.stars, first.note) == (Verdict.KEPT, 4, "ok")
    if backend.startswith("postgresql"):
        assert first.rated_by == "postgres"  # current_user of the test database

    ledger.rate(Rating(job_key="k", position=0, verdict=Verdict.REJECTED))
    (again,) = ledger.ratings([("k", 0)]).values()
    assert (again.verdict, again.stars, again.note) == (Verdict.REJECTED, None, None)

    assert ledger.rate(Rating(job_key="k", position=0)) is None
    assert ledger.ratings() == {}


def test_ratings_follow_the_jobs_content_across_runs_and_reach_their_outputs(
    ledger: Ledger,
) -> None:
    run_id = new_run(ledger, 2)
    job = done_job(ledger, run_id, "r1", files=2)
    ledger.rate(Rating(job_key=job.key, position=1, stars=5))
    # The same jobs in another run (another manifest, a renamed one): same keys, new rows.
    other, _ = ledger.sync_run("renamed", "renamed.yaml", specs(2), cost=lambda _spec: None)

    (item,) = ledger.job_outputs(job_id=job.id)
    assert set(item.ratings) == {1} and item.ratings[1].stars == 5
    assert ledger.ratings([(job.key, 1), (job.key, 0)]).keys() == {(job.key, 1)}
    assert other.id != run_id and ledger.ratings([("job-0000", 1)])


def test_rating_counts_count_the_files_of_done_jobs_by_verdict(ledger: Ledger) -> None:
    run_id = new_run(ledger, 4)
    jobs = [done_job(ledger, run_id, f"r{n}", files=2) for n in range(2)]
    ledger.rate(Rating(job_key=jobs[0].key, position=0, verdict=Verdict.KEPT, stars=3))
    ledger.rate(Rating(job_key=jobs[0].key, position=1, verdict=Verdict.REJECTED))
    ledger.rate(Rating(job_key=jobs[1].key, position=0, stars=2))
    ledger.rate(Rating(job_key="job-0003", position=0, verdict=Verdict.KEPT))  # not done: no file

    counts = ledger.rating_counts(run_id)

    assert (counts.files, counts.kept, counts.rejected, counts.unrated) == (4, 1, 1, 2)
    assert counts.starred == 2 and ledger.rated()


# -- the guarded move -------------------------------------------------------------------------


def test_a_move_the_table_does_not_allow_from_the_jobs_state_changes_nothing(
    ledger: Ledger,
) -> None:
    run_id = new_run(ledger, 1)
    job = accepted(ledger, run_id, "w1", "r1")

    with pytest.raises(TransitionRefused, match="queued"):
        move(ledger, job, Move.FINISH, worker="w1")

    assert ledger.states_by_key(run_id) == {job.key: JobState.QUEUED}


def test_a_moved_job_is_the_job_as_recorded_and_a_success_carries_the_outputs_it_recorded(
    ledger: Ledger,
) -> None:
    run_id = new_run(ledger, 1)
    job = accepted(ledger, run_id, "w1", "r1")
    urls = ["https://files.example/a.mp4", "https://files.example/b.png"]

    fetching = move(ledger, job, Move.SUCCEED, worker="w1", urls=urls)

    assert fetching.outputs == tuple(ledger.outputs(job.id))
    assert [output.url for output in fetching.outputs] == urls
    done = move(ledger, fetching, Move.FINISH, worker="w1")
    assert done.outputs == ()  # only the move that records outputs carries them
    (recorded,) = ledger.job_outputs(run_id=run_id)
    assert replace(done, attempt_id=None) == recorded.job


def test_a_cancel_and_the_runner_racing_on_a_job_never_overwrite_each_other(
    ledger: Ledger,
) -> None:
    run_id = new_run(ledger, 1)
    job = accepted(ledger, run_id, "w1", "r1")

    move(ledger, job, Move.CANCELLED, actor=Actor.CANCEL, error="cancelled with genbatch cancel")

    # The runner's answer arrives late, from the state it last knew.
    assert ledger.try_move(job, Move.START, worker="w1") is None
    assert ledger.try_move(job, Move.SUCCEED, worker="w1", urls=["https://x/a.mp4"]) is None
    assert ledger.states_by_key(run_id) == {job.key: JobState.CANCELLED}
    assert ledger.outputs(job.id) == []


def test_a_worker_whose_job_was_taken_over_learns_it_at_its_next_move(ledger: Ledger) -> None:
    run_id = new_run(ledger, 1)
    frozen = accepted(ledger, run_id, "w1", "r1", lease_seconds=0.0)
    (taken,) = ledger.take_over(run_id, "w2", lease_seconds=LEASE).attached

    with pytest.raises(TransitionRefused, match="held by w2"):
        move(ledger, frozen, Move.START, worker="w1")
    move(ledger, taken, Move.START, worker="w2")

    assert ledger.states_by_key(run_id) == {frozen.key: JobState.RUNNING}


def test_an_answer_arriving_after_a_takeover_marked_its_submit_unknown_is_recorded(
    ledger: Ledger,
) -> None:
    run_id = new_run(ledger, 1)
    frozen = claim(ledger, run_id, "w1", lease_seconds=0.0)
    assert frozen is not None
    assert len(ledger.take_over(run_id, "w2", lease_seconds=LEASE).interrupted) == 1

    late = move(ledger, frozen, Move.ACCEPT, worker="w1", request_id="req-late")

    assert (late.state, late.request_id) == (JobState.QUEUED, "req-late")
    assert ledger.attempts(frozen.id)[0].request_id == "req-late"
    # Still leased: its worker's heartbeat keeps it, or another worker takes it over.
    assert ledger.heartbeat(run_id, "w1", lease_seconds=LEASE) == 1


def test_a_late_answer_for_a_job_resubmitted_since_keeps_its_request_id_on_its_attempt(
    ledger: Ledger,
) -> None:
    run_id = new_run(ledger, 1)
    frozen = claim(ledger, run_id, "w1", lease_seconds=0.0)
    assert frozen is not None
    ledger.take_over(run_id, "w2", lease_seconds=LEASE)
    ledger.reset_to_pending(run_id, [JobState.UNKNOWN])  # the user chose to send it again
    again = claim(ledger, run_id, "w2")
    assert again is not None

    with pytest.raises(TransitionRefused):
        move(ledger, frozen, Move.ACCEPT, worker="w1", request_id="req-late")

    assert ledger.states_by_key(run_id) == {frozen.key: JobState.SUBMITTING}
    assert [a.request_id for a in ledger.attempts(frozen.id)] == ["req-late", None]


def test_only_the_actors_of_a_move_may_make_it(ledger: Ledger) -> None:
    run_id = new_run(ledger, 1)
    job = accepted(ledger, run_id, "w1", "r1")

    with pytest.raises(ValueError, match="cancel may not"):
        move(ledger, job, Move.FINISH, actor=Actor.CANCEL)


# -- the ledger from an event loop ------------------------------------------------------------


def test_moves_made_together_from_the_loop_share_commits_and_each_returns_after_its_own(
    ledger: Ledger,
) -> None:
    run_id = new_run(ledger, 4)
    jobs = [claim(ledger, run_id) for _ in range(4)]
    commits = _count_commits(ledger)
    seen: list[tuple[JobState, int]] = []

    async def scenario() -> None:
        store = AsyncLedger(ledger)

        async def accept(job: JobRecord | None) -> None:
            assert job is not None
            moved = await store.move(job, Move.ACCEPT, worker="w1", request_id=f"req-{job.id}")
            seen.append((moved.state, commits[0]))

        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(accept, job)

    anyio.run(scenario)
    # The four writes made in the same turn of the loop shared one commit, and each caller
    # went on only once it was made.
    assert seen == [(JobState.QUEUED, 1)] * 4
    assert set(ledger.states_by_key(run_id).values()) == {JobState.QUEUED}


def test_a_failing_write_among_others_fails_alone_and_the_others_are_committed(
    ledger: Ledger,
) -> None:
    run_id = new_run(ledger, 3)
    first, middle, last = (accepted(ledger, run_id, "w1", f"req-{i}") for i in range(3))
    ghost = replace(middle, attempt_id=10_000)  # no such attempt: its outputs are refused
    outcomes: dict[str, object] = {}

    async def scenario() -> None:
        store = AsyncLedger(ledger)

        async def call(name: str, job: JobRecord, move: Move, urls: tuple[str, ...] = ()) -> None:
            try:
                outcomes[name] = (await store.move(job, move, worker="w1", urls=urls)).state
            except LedgerError as exc:
                outcomes[name] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "first", first, Move.START)
            tg.start_soon(call, "ghost", ghost, Move.SUCCEED, ("https://x.runcomfy.net/a",))
            tg.start_soon(call, "last", last, Move.START)
            tg.start_soon(call, "first again", first, Move.QUEUE)

    anyio.run(scenario)
    error = outcomes["ghost"]
    assert isinstance(error, LedgerError)
    assert "inconsistent data" in str(error) and "\n" not in str(error)
    assert outcomes["last"] == JobState.RUNNING and outcomes["first again"] == JobState.QUEUED
    assert ledger.states_by_key(run_id)[middle.key] == JobState.QUEUED


def test_a_caller_cancelled_while_its_write_waits_still_gets_it_committed(ledger: Ledger) -> None:
    run_id = new_run(ledger, 2)
    first, second = claim(ledger, run_id), claim(ledger, run_id)
    assert first is not None and second is not None

    async def scenario() -> None:
        store = AsyncLedger(ledger)
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                functools.partial(store.move, first, Move.ACCEPT, worker="w1", request_id="req-1")
            )
            await anyio.sleep(0)
            with anyio.CancelScope() as scope:
                scope.cancel()  # cancelled before its turn: the write still happens
                await store.move(second, Move.ACCEPT, worker="w1", request_id="req-2")

    anyio.run(scenario)
    assert set(ledger.states_by_key(run_id).values()) == {JobState.QUEUED}


@pytest.mark.postgres
def test_a_worker_frozen_inside_a_transaction_holds_the_others_up_for_seconds_only(
    postgres_url: str,
) -> None:
    # Only a PostgreSQL ledger is shared by several processes.
    frozen, other = (Ledger.open(resolve_location(postgres_url)) for _ in range(2))
    run_id = new_run(frozen, 1)
    job = accepted(frozen, run_id, "w1", "req-1", lease_seconds=0.0)  # its lease has lapsed
    inside = threading.Event()

    def freeze_after_the_first_update(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE jobs") and not inside.is_set():
            inside.set()  # the job's row is locked by this transaction, now left open
            time.sleep(STALLED_TRANSACTION_SECONDS + 1.5)

    event.listen(frozen.engine, "after_cursor_execute", freeze_after_the_first_update)
    outcome: dict[str, Any] = {}

    async def scenario() -> None:
        async def frozen_worker_moves() -> None:
            try:
                await AsyncLedger(frozen).move(job, Move.START, worker="w1")
            except TransitionRefused as exc:
                outcome["frozen"] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(frozen_worker_moves)
            await anyio.to_thread.run_sync(inside.wait)
            started = time.monotonic()
            attached: list[JobRecord] = []
            while not attached and time.monotonic() - started < 30:
                # The heartbeat of the other worker: locked rows are skipped, not waited for.
                takeover = await anyio.to_thread.run_sync(
                    functools.partial(other.take_over, run_id, "w2", lease_seconds=LEASE)
                )
                attached = takeover.attached
                await anyio.sleep(0.2)
            outcome["waited"] = time.monotonic() - started
            outcome["attached"] = [j.request_id for j in attached]

    anyio.run(scenario)
    # PostgreSQL ended the frozen transaction: its locks gone, the job was taken over.
    assert outcome["attached"] == ["req-1"]
    assert outcome["waited"] < STALLED_TRANSACTION_SECONDS + 1.5
    # Woken, the frozen worker ran its move again and learnt the job is no longer its own.
    assert isinstance(outcome["frozen"], TransitionRefused)
    assert other.states_by_key(run_id)[job.key] == JobState.QUEUED
    frozen.close()
    other.close()


def _losing_commit_answers(ledger: Ledger, postgres_url: str) -> threading.Event:
    """Set the event: the ledger's next commit is written, then its connection is lost before
    the answer comes back (the event is cleared then)."""
    dialect = ledger.engine.dialect
    commit = dialect.do_commit
    lose_the_answer = threading.Event()

    def commit_then_lose_the_connection(dbapi_connection: Any) -> None:
        commit(dbapi_connection)
        if lose_the_answer.is_set():
            lose_the_answer.clear()
            _end_session(postgres_url, dbapi_connection.driver_connection)
            dbapi_connection.driver_connection.execute("SELECT 1")  # sees it closed

    dialect.do_commit = commit_then_lose_the_connection  # type: ignore[method-assign]
    return lose_the_answer


def _end_session(postgres_url: str, driver_connection: Any) -> None:
    """End a session of the test PostgreSQL as an administrator (or a restart) would."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (driver_connection.info.backend_pid,))


@pytest.mark.postgres
@pytest.mark.parametrize("ended_before", ["a statement", "the commit"])
def test_a_transaction_whose_session_the_server_ended_runs_once_more(
    postgres_url: str, ended_before: str
) -> None:
    # PostgreSQL closes a session it ends (an idle-in-transaction timeout, an administrator, a
    # restart): the client may see the closed connection before, or instead of, the reason.
    ledger = Ledger.open(resolve_location(postgres_url))
    run_id = new_run(ledger, 1)
    job = accepted(ledger, run_id, "w1", "req-1")
    ended = threading.Event()

    def end_the_session_before_the_update(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE jobs") and not ended.is_set():
            ended.set()
            _end_session(postgres_url, cursor.connection)

    def end_the_session_before_the_commit(dbapi_connection: Any) -> None:
        if not ended.is_set():
            ended.set()
            _end_session(postgres_url, dbapi_connection.driver_connection)
        commit(dbapi_connection)

    if ended_before == "a statement":
        event.listen(ledger.engine, "before_cursor_execute", end_the_session_before_the_update)
    else:
        commit = ledger.engine.dialect.do_commit
        ledger.engine.dialect.do_commit = end_the_session_before_the_commit  # type: ignore[method-assign]

    moved = anyio.run(functools.partial(AsyncLedger(ledger).move, job, Move.START, worker="w1"))

    assert ended.is_set()
    assert moved.state == JobState.RUNNING
    assert ledger.states_by_key(run_id) == {job.key: JobState.RUNNING}
    ledger.close()


@pytest.mark.postgres
def test_a_commit_whose_answer_was_lost_is_never_run_again(postgres_url: str) -> None:
    # The server wrote the claim, then the connection broke before its answer came back: run
    # again, the claim would hold a second job and leave the first one held by nobody's task.
    ledger = Ledger.open(resolve_location(postgres_url))
    run_id = new_run(ledger, 4)
    lose_the_answer = _losing_commit_answers(ledger, postgres_url)
    store = AsyncLedger(ledger)
    claim_one = functools.partial(
        store.claim_jobs, run_id, 1, worker="w1", lease_seconds=LEASE, run_limit=2
    )

    lose_the_answer.set()
    with pytest.raises(CommitInDoubt, match="may or may not have been written"):
        anyio.run(claim_one)
    assert sorted(ledger.states_by_key(run_id).values()) == [JobState.PENDING] * 3 + [
        JobState.SUBMITTING
    ]

    (job,) = anyio.run(claim_one)
    lose_the_answer.set()
    with pytest.raises(CommitInDoubt):
        anyio.run(functools.partial(store.move, job, Move.ACCEPT, worker="w1", request_id="r-1"))
    assert ledger.attempts(job.id)[-1].request_id == "r-1"  # written, and said to be in doubt
    ledger.close()


@pytest.mark.postgres
def test_a_call_done_twice_as_once_is_run_again_when_its_commit_is_in_doubt(
    postgres_url: str,
) -> None:
    # A worker's exit (its leases end, its counts read) lost its commit's answer: doing it again
    # does no harm, and the run's outcome is kept rather than replaced by a ledger error.
    ledger = Ledger.open(resolve_location(postgres_url))
    run_id = new_run(ledger, 2)
    _start(ledger, run_id, "w1")
    assert claim(ledger, run_id, "w1") is not None
    lose_the_answer = _losing_commit_answers(ledger, postgres_url)
    store = AsyncLedger(ledger)

    lose_the_answer.set()
    counts = anyio.run(functools.partial(store.stop_worker, run_id, "w1", stop_reason=None))

    assert not lose_the_answer.is_set()  # the first commit's answer was lost
    assert counts[JobState.SUBMITTING] == 1 and counts[JobState.PENDING] == 1
    (worker,) = ledger.workers(run_id)
    assert worker.stopped_at is not None
    ledger.close()


# -- helpers ----------------------------------------------------------------------------------


def _count_commits(ledger: Ledger) -> list[int]:
    commits = [0]
    event.listen(ledger.engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1))
    return commits


def _version(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT value FROM genbatch_meta WHERE key = 'schema_version'")
            ).scalar_one()
        )


def _downgrade_to_version_7(ledger: Ledger) -> None:
    """Make the ledger what genbatch's schema version 7 wrote: no ratings."""
    with ledger.engine.begin() as conn:
        conn.execute(text("DROP TABLE ratings"))
        conn.execute(text("UPDATE genbatch_meta SET value = '7' WHERE key = 'schema_version'"))


def _downgrade_to_version_6(ledger: Ledger) -> None:
    """Make the ledger what genbatch's schema version 6 wrote: no rank of done jobs."""
    _downgrade_to_version_7(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_jobs_done_seq"))
        conn.execute(text("DROP INDEX ix_jobs_run_state"))
        conn.execute(text("DROP INDEX ix_jobs_run_dir"))
        conn.execute(
            text("CREATE INDEX ix_jobs_run_state_ordinal ON jobs (run_id, state, ordinal)")
        )
        conn.execute(text("ALTER TABLE jobs DROP COLUMN done_seq"))
        conn.execute(text("UPDATE genbatch_meta SET value = '6' WHERE key = 'schema_version'"))


def _downgrade_to_version_5(ledger: Ledger) -> None:
    """Make the ledger what genbatch's schema version 5 wrote: no index of keys or file names."""
    _downgrade_to_version_6(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_jobs_key"))
        conn.execute(text("DROP INDEX ix_jobs_output_file"))
        conn.execute(text("UPDATE genbatch_meta SET value = '5' WHERE key = 'schema_version'"))


def _downgrade_to_version_4(ledger: Ledger) -> None:
    """Make the ledger what genbatch's schema version 4 wrote: no catalog cache."""
    _downgrade_to_version_5(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("DROP TABLE catalog_models"))
        conn.execute(text("UPDATE genbatch_meta SET value = '4' WHERE key = 'schema_version'"))


def _downgrade_to_version_3(ledger: Ledger) -> None:
    """Make the ledger what genbatch's schema version 3 wrote: no generation times."""
    _downgrade_to_version_4(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("ALTER TABLE attempts DROP COLUMN generation_seconds"))
        conn.execute(text("UPDATE genbatch_meta SET value = '3' WHERE key = 'schema_version'"))


def _downgrade_to_version_2(ledger: Ledger) -> None:
    """Make the ledger what genbatch's schema version 2 wrote: no run fingerprints."""
    _downgrade_to_version_3(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("ALTER TABLE runs DROP COLUMN jobs_fingerprint"))
        conn.execute(text("UPDATE genbatch_meta SET value = '2' WHERE key = 'schema_version'"))


def _downgrade_to_version_1(ledger: Ledger) -> None:
    """Make the ledger what genbatch's schema version 1 wrote: no workers, no output hosts."""
    _downgrade_to_version_2(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(text("DROP TABLE workers"))
        conn.execute(text("ALTER TABLE outputs DROP COLUMN host"))
        conn.execute(text("UPDATE genbatch_meta SET value = '1' WHERE key = 'schema_version'"))


# -- the guarded move follows the table, whatever the sequence ---------------------------------

_MOVES = [m for m in Move if m not in (Move.CLAIM, Move.REUSE)]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(_MOVES), st.sampled_from(list(Actor)), st.booleans()),
        max_size=12,
    )
)
def test_any_sequence_of_moves_changes_the_state_exactly_as_the_table_says(
    ledger: Ledger, steps: list[tuple[Move, Actor, bool]]
) -> None:
    run, _ = ledger.sync_run(f"prop-{secrets.token_hex(4)}", "p.yaml", specs(1))
    job = claim(ledger, run.id, "w1")
    assert job is not None
    state = JobState.SUBMITTING
    for move, actor, as_holder in steps:
        worker = "w1" if as_holder else "w2"
        allowed = move.allows(state, actor)
        holder_ok = as_holder or not move.needs_holder(actor)
        if actor not in move.transition.actors:
            with pytest.raises(ValueError):
                ledger.try_move(job, move, actor=actor, worker=worker)
            continue
        request_id = "req-1" if move is Move.ACCEPT else None
        moved = ledger.try_move(job, move, actor=actor, worker=worker, request_id=request_id)
        if allowed and holder_ok:
            assert moved is not None and moved.state is move.transition.target
            state = moved.state
        else:
            assert moved is None
        assert ledger.states_by_key(run.id) == {job.key: state}


def _start(ledger: Ledger, run_id: int, worker: str) -> None:
    ledger.start_worker(
        run_id, identity(worker), concurrency=2, lease_seconds=LEASE, resubmit_unknown=False
    )


@pytest.mark.postgres
def test_a_worker_joining_a_run_its_cancel_is_still_stopping_stops_too(postgres_url: str) -> None:
    ledger = Ledger.open(resolve_location(postgres_url))
    try:
        run_id = new_run(ledger, 4)
        _start(ledger, run_id, "w1")
        assert len(ledger.claim_jobs(run_id, 2, worker="w1", lease_seconds=LEASE)) == 2
        ledger.request_stop(run_id, "cancelled with `genbatch cancel`")

        # w1 holds its two jobs and has not claimed since (its slots are busy): it has not seen
        # the stop yet. A worker joining now must not clear it for w1.
        _start(ledger, run_id, "w2")
        with pytest.raises(StopRequested, match="cancelled"):
            claim(ledger, run_id, "w2")
        with pytest.raises(StopRequested):
            claim(ledger, run_id, "w1")

        # Once the stopped workers let go of their jobs, a new run starts the run again.
        ledger.stop_worker(run_id, "w1", stop_reason="cancelled")
        _start(ledger, run_id, "w3")
        assert claim(ledger, run_id, "w3") is not None
    finally:
        ledger.close()


def test_on_sqlite_a_new_run_starts_a_cancelled_run_again_whatever_a_crash_left(
    tmp_path: Path,
) -> None:
    ledger = Ledger.open(resolve_location(str(tmp_path / "ledger.db")))
    try:
        run_id = new_run(ledger, 4)
        _start(ledger, run_id, "w1")
        assert claim(ledger, run_id, "w1") is not None  # then the process is killed: a live lease
        ledger.request_stop(run_id, "cancelled with `genbatch cancel`")

        _start(ledger, run_id, "w2")  # one process at a time on SQLite: nobody else is stopping

        assert claim(ledger, run_id, "w2") is not None
    finally:
        ledger.close()
