"""A ledger as earlier runs leave it, built fast for the benchmarks of big ledgers (figures 4
and 11): the manifest synced as `genbatch run` syncs it, then jobs marked done in SQL with the
attempt each one's request had."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from genbatch import batch
from genbatch.ledger import Ledger, resolve_location

ADD_ATTEMPTS = """INSERT INTO attempts (job_id, number, request_id, outcome, remote_status,
    intent_at, accepted_at, finished_at) SELECT id, 1, request_id, 'succeeded', 'succeeded',
    created_at, created_at, created_at FROM jobs WHERE run_id = :run AND state = 'done'"""


def synced(params: dict[str, Any]) -> tuple[Ledger, int]:
    """The ledger ``params["ledger"]`` with ``params["manifest"]`` synced into it, and the run's
    id. Loaded as `genbatch run` loads it (no --max-jobs, the catalog read from the simulator):
    the options and the schemas are part of the fingerprint a resume compares."""
    connection = batch.Connection(api_base=params["api_base"], token=params["token"])
    loaded = batch.load_with_catalog(
        params["manifest"], ledger=params["ledger"], connection=connection
    )
    ledger = Ledger.open(resolve_location(params["ledger"]))
    return ledger, batch.prepare(loaded.manifest, ledger).run.id


def mark_done(ledger: Ledger, run_id: int, mark: str, values: dict[str, Any], outputs: str) -> None:
    """Run ``mark`` (an UPDATE making jobs done), give each done job its attempt, then run
    ``outputs`` (an INSERT of their output rows), in one transaction."""
    with ledger.engine.begin() as conn:
        conn.execute(text(mark), {"run": run_id, **values})
        conn.execute(text(ADD_ATTEMPTS), {"run": run_id})
        conn.execute(text(outputs))
