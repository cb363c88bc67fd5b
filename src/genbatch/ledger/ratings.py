"""Ratings of output files in the ledger (``ratings``): stored, cleared, read, counted.

Storing is one ``INSERT ... ON CONFLICT DO UPDATE`` (SQLite and PostgreSQL both speak it), so
two reviewers rating the same file at once end with one of the two, never an error. Who rated
is ``current_user`` on PostgreSQL (the database knows who connected) and the OS user on SQLite
(a file on one machine).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, func, select, tuple_

from genbatch.ledger import metadata_marks
from genbatch.ledger.leases import aware
from genbatch.ledger.statements import insert_on_conflict
from genbatch.ledger.tables import JOBS, OUTPUTS, RATINGS, utcnow
from genbatch.ratings import Rating, RatingCounts, Verdict
from genbatch.states import JobState

__all__ = ["any_rating", "count_ratings", "rating_of_row", "read_ratings", "store_rating"]

CHUNK = 500
"""(key, position) pairs per query: well under SQLite's limit of bound parameters."""


def store_rating(conn: Connection, rating: Rating) -> Rating | None:
    """Store ``rating`` (replacing any earlier one of the same file); an empty one deletes it.
    The rating as stored, with its time and author (None when deleted).

    A row already in some ``metadata.jsonl`` changes with it (verdict, stars, note), so the
    next write of every metadata file is whole, not an append (``metadata_marks``)."""
    where = (RATINGS.c.job_key == rating.job_key) & (RATINGS.c.position == rating.position)
    metadata_marks.bump_generation(conn)
    if rating.empty:
        conn.execute(delete(RATINGS).where(where))
        return None
    values = {
        "job_key": rating.job_key,
        "position": rating.position,
        "verdict": None if rating.verdict is None else rating.verdict.value,
        "stars": rating.stars,
        "note": rating.note,
        "rated_at": utcnow(),
        "rated_by": _author(conn),
    }
    statement = insert_on_conflict(conn, RATINGS).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[RATINGS.c.job_key, RATINGS.c.position],
        set_={name: statement.excluded[name] for name in values if name not in _KEY},
    )
    conn.execute(statement)
    stored = conn.execute(select(RATINGS).where(where)).one()
    return rating_of_row(stored)


_KEY = ("job_key", "position")


def read_ratings(
    conn: Connection, files: Iterable[tuple[str, int]] | None = None
) -> dict[tuple[str, int], Rating]:
    """The ratings of ``files`` ((job key, position) pairs; every rating when None)."""
    if files is None:
        return {(r.job_key, r.position): rating_of_row(r) for r in conn.execute(select(RATINGS))}
    wanted = sorted(set(files))
    found: dict[tuple[str, int], Rating] = {}
    for start in range(0, len(wanted), CHUNK):
        pairs = wanted[start : start + CHUNK]
        query = select(RATINGS).where(tuple_(RATINGS.c.job_key, RATINGS.c.position).in_(pairs))
        found.update({(r.job_key, r.position): rating_of_row(r) for r in conn.execute(query)})
    return found


def any_rating(conn: Connection) -> bool:
    """Whether the ledger holds a rating at all."""
    return conn.execute(select(RATINGS.c.job_key).limit(1)).first() is not None


def count_ratings(conn: Connection, run_id: int) -> RatingCounts:
    """The output files of the run's done jobs (of the current manifest), by verdict."""
    joined = OUTPUTS.join(JOBS, JOBS.c.id == OUTPUTS.c.job_id).outerjoin(
        RATINGS, (RATINGS.c.job_key == JOBS.c.key) & (RATINGS.c.position == OUTPUTS.c.position)
    )
    query = (
        select(RATINGS.c.verdict, RATINGS.c.stars.is_not(None), func.count())
        .select_from(joined)
        .where(
            JOBS.c.run_id == run_id,
            JOBS.c.in_manifest.is_(True),
            JOBS.c.state == JobState.DONE.value,
        )
        .group_by(RATINGS.c.verdict, RATINGS.c.stars.is_not(None))
    )
    counts: dict[str, int] = {"files": 0, "kept": 0, "rejected": 0, "starred": 0}
    for verdict, starred, n in conn.execute(query):
        counts["files"] += n
        counts["starred"] += n if starred else 0
        if verdict in set(Verdict):
            counts[str(verdict)] += n
    return RatingCounts(**counts)


def rating_of_row(row: Any, prefix: str = "") -> Rating:
    """The rating held by a ``ratings`` row (its columns named ``prefix`` + name)."""

    def column(name: str) -> Any:
        return getattr(row, prefix + name)

    verdict = column("verdict")
    return Rating(
        job_key=column("job_key"),
        position=column("position"),
        verdict=Verdict(verdict) if verdict in set(Verdict) else None,
        stars=column("stars"),
        note=column("note"),
        rated_at=aware(column("rated_at")),
        rated_by=column("rated_by"),
    )


def _author(conn: Connection) -> str | None:
    if conn.dialect.name == "postgresql":
        author: str | None = conn.execute(select(func.current_user())).scalar()
        return author
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return None
