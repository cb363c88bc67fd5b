"""A PostgreSQL ledger ends a transaction left idle for ``STALLED_TRANSACTION_SECONDS`` (a
frozen worker must not hold row locks forever); the transactions that do Python work while
open must not look idle: the sync's walk of a manifest, and a stream read by a slow consumer.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from genbatch.errors import LedgerError, ManifestError, TransactionEnded
from genbatch.jobs import JobSpec
from genbatch.ledger import Ledger, resolve_location
from genbatch.ledger.engine import STALLED_TRANSACTION_SECONDS
from genbatch.states import JobState

pytestmark = pytest.mark.postgres

KLING = "kling/kling-2-6/pro/text-to-video"


def specs(count: int) -> list[JobSpec]:
    return [
        JobSpec(
            key=f"job-{i:05d}",
            ordinal=i,
            block="main",
            model_id=KLING,
            inputs={"prompt": f"clip {i}"},
            file_stem=f"{i:05d}",
            output_dir="/out",
        )
        for i in range(count)
    ]


class Session:
    """The ledger's PostgreSQL sessions, seen from an administrator's connection: they are
    found by the application name the test gives them in the ledger's URL."""

    def __init__(self, postgres_url: str) -> None:
        import psycopg

        self.name = f"genbatch_idle_{secrets.token_hex(4)}"
        self.ledger_url = f"{postgres_url}&application_name={self.name}"
        self.admin = psycopg.connect(postgres_url, autocommit=True)

    def longest_idle_in_transaction(self) -> float:
        """Seconds since the ledger's transaction last sent a statement (0 when none is idle)."""
        row = self.admin.execute(
            "SELECT max(extract(epoch FROM clock_timestamp() - state_change)) "
            "FROM pg_stat_activity WHERE application_name = %s "
            "AND state = 'idle in transaction'",
            (self.name,),
        ).fetchone()
        return float(row[0]) if row is not None and row[0] is not None else 0.0

    def end(self) -> None:
        """End the ledger's sessions, as an administrator (or a restart) would."""
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (self.name,),
        )

    def close(self) -> None:
        self.admin.close()


@pytest.fixture
def session(postgres_url: str) -> Iterator[Session]:
    found = Session(postgres_url)
    yield found
    found.close()


def slowly(jobs: Iterable[JobSpec], session: Session, idle: list[float]) -> Iterator[JobSpec]:
    """``jobs``, one every 0.1 s (a manifest slow to expand and validate), noting how long the
    sync's transaction has been idle as each one is asked for."""
    for job in jobs:
        time.sleep(0.1)
        idle.append(session.longest_idle_in_transaction())
        yield job


def test_a_sync_walking_a_long_manifest_never_leaves_its_transaction_idle(
    session: Session,
) -> None:
    # A job back to pending (a 429, a retried generation) makes the next start walk every job
    # of the manifest again, inside the transaction that holds the run's row. 200,000 jobs
    # took 6.8 s: PostgreSQL ended the transaction, and no resume could start.
    ledger = Ledger.open(resolve_location(session.ledger_url))
    jobs = specs(30)
    ledger.sync_run("sweep", "sweep.yaml", jobs, fingerprint="first")
    idle: list[float] = []

    run, report = ledger.sync_run("sweep", "sweep.yaml", slowly(jobs, session, idle))

    assert (report.total, report.new, report.unchanged) == (30, 0, False)
    assert ledger.find_run("sweep") == run
    # A walk of 3 s: its transaction never idled more than about a second.
    assert len(idle) == 30
    assert 0 < max(idle) < 2.0 < STALLED_TRANSACTION_SECONDS
    ledger.close()


def test_a_sync_longer_than_the_idle_limit_adds_its_jobs(session: Session) -> None:
    ledger = Ledger.open(resolve_location(session.ledger_url))
    steps = int(STALLED_TRANSACTION_SECONDS / 0.1) + 10  # a walk 1 s longer than the limit
    idle: list[float] = []

    _run, report = ledger.sync_run("sweep", "sweep.yaml", slowly(specs(steps), session, idle))

    assert (report.total, report.new, report.counts[JobState.PENDING]) == (steps, steps, steps)
    assert max(idle) < 2.0
    ledger.close()


def test_a_consumer_may_take_its_time_over_a_streamed_job(session: Session) -> None:
    # Exports copy a file per row (dataset formats), to a slow disk or a slow pipe: the read
    # transaction sits idle between two fetches while the consumer works.
    ledger = Ledger.open(resolve_location(session.ledger_url))
    run, _ = ledger.sync_run("sweep", "sweep.yaml", specs(2500))
    seen = 0
    with ledger.stream_job_outputs(run_id=run.id) as items:
        for item in items:
            if seen == 0:
                time.sleep(STALLED_TRANSACTION_SECONDS + 1)
            seen += 1
            assert item.job.ordinal == seen - 1
    assert seen == 2500
    ledger.close()


def test_a_streams_transaction_takes_no_row_lock(session: Session) -> None:
    # Spared the idle limit, a stream must hold nothing another worker waits for: a ledger call
    # inside it joins its transaction, which is read-only.
    ledger = Ledger.open(resolve_location(session.ledger_url))
    run, _ = ledger.sync_run("sweep", "sweep.yaml", specs(2))
    with (
        pytest.raises(LedgerError, match="read-only transaction"),
        ledger.stream_job_outputs(run_id=run.id) as items,
    ):
        ledger.note_error(next(items).job, "a note")
    assert [item.job.error for item in ledger.job_outputs(run_id=run.id)] == [None, None]
    ledger.close()


def test_a_session_ended_during_a_sync_is_one_error(
    session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    # The new jobs are sent at the end of the walk in pipeline mode; the driver found the
    # session gone and also logged "error ignored terminating <psycopg.Pipeline [BAD]>", which
    # the CLI printed under its own error.
    ledger = Ledger.open(resolve_location(session.ledger_url))

    def ended_before_the_last(jobs: list[JobSpec]) -> Iterator[JobSpec]:
        yield from jobs[:-1]
        session.end()
        time.sleep(0.3)  # the server closes the connection
        yield jobs[-1]

    with caplog.at_level(logging.DEBUG), pytest.raises(TransactionEnded) as ended:
        ledger.sync_run("sweep", "sweep.yaml", ended_before_the_last(specs(20)))

    assert "\n" not in str(ended.value)
    driver_said: list[Any] = [r for r in caplog.records if r.name.startswith("psycopg")]
    assert driver_said == []
    assert ledger.find_run("sweep") is None  # nothing of the sync was written
    ledger.close()


def test_a_manifest_found_bad_after_the_session_ended_says_what_is_wrong(
    session: Session,
) -> None:
    # An error in a manifest is found as the walk reaches it, and a duplicate job is then
    # looked for again from the first job, sending nothing meanwhile: 2.5 s for a pair 450 jobs
    # apart at the end of a 202,500-job grid, so more than the idle limit past about 400,000.
    # The rollback found the session gone, and that, not the manifest, was reported.
    ledger = Ledger.open(resolve_location(session.ledger_url))

    def found_bad(jobs: list[JobSpec]) -> Iterator[JobSpec]:
        yield from jobs
        session.end()
        time.sleep(0.3)
        raise ManifestError("sweep.yaml: jobs 3 and 7 are the same job")

    with pytest.raises(ManifestError, match="the same job"):
        ledger.sync_run("sweep", "sweep.yaml", found_bad(specs(10)))
    assert ledger.find_run("sweep") is None
    ledger.close()
