"""A model's recent generation times, from every run the ledger holds: when to first poll.

Each success records ``attempts.generation_seconds``, the API's own ``finished_at - created_at``
(not when genbatch noticed, which depends on the polling itself). ``genbatch.polling`` aims a
job's first poll at a low percentile of these.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from genbatch.ledger.tables import ATTEMPTS, JOBS


def recent_generation_times(conn: Connection, model_id: str, limit: int) -> list[float]:
    """The ``limit`` most recent generation times of ``model_id``, in seconds, newest first,
    from every run."""
    query = (
        select(ATTEMPTS.c.generation_seconds)
        .join(JOBS, JOBS.c.id == ATTEMPTS.c.job_id)
        .where(JOBS.c.model_id == model_id, ATTEMPTS.c.generation_seconds.is_not(None))
        .order_by(ATTEMPTS.c.id.desc())
        .limit(limit)
    )
    return [float(seconds) for seconds in conn.execute(query).scalars()]
