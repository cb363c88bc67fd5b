"""A model's recent generation times, from every run the ledger holds: when to first poll.

Each success records ``attempts.generation_seconds``, the API's own ``finished_at - created_at``
(not when genbatch noticed, which depends on the polling itself). ``genbatch.polling`` aims a
job's first poll at a low percentile of these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, select
from sqlalchemy.exc import SQLAlchemyError

from genbatch.errors import LedgerError
from genbatch.ledger.tables import ATTEMPTS, JOBS

if TYPE_CHECKING:
    from genbatch.ledger.ledger import Ledger


def recent_generation_times_query(model_id: str, limit: int) -> Select[Any]:
    """The ``limit`` most recent generation times of ``model_id``, newest first."""
    return (
        select(ATTEMPTS.c.generation_seconds)
        .join(JOBS, JOBS.c.id == ATTEMPTS.c.job_id)
        .where(JOBS.c.model_id == model_id, ATTEMPTS.c.generation_seconds.is_not(None))
        .order_by(ATTEMPTS.c.id.desc())
        .limit(limit)
    )


def recent_generation_times(ledger: Ledger, model_id: str, limit: int) -> list[float]:
    """The ``limit`` most recent generation times of ``model_id``, in seconds, any run."""
    try:
        with ledger.engine.connect() as conn:
            times = conn.execute(recent_generation_times_query(model_id, limit)).scalars()
            return [float(seconds) for seconds in times]
    except SQLAlchemyError as exc:
        raise LedgerError(
            f"cannot read the generation times of {model_id} from the ledger "
            f"{ledger.location.display}: {str(exc).splitlines()[0]}"
        ) from None
