"""Ratings: what a person decided about one output file (keep or reject, 1-5 stars, a note).

A rating belongs to the file's content, not to a row of the ledger: it is keyed by the job's
key (a hash of its model, inputs and repeat index) and the file's position among the job's
outputs. So it survives re-runs, resumes and edits of the manifest (even a renamed one), and
the same job in another run (whose files are the same files, reused) shows the same rating.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from genbatch.errors import UsageError

STARS = range(1, 6)
NOTE_LIMIT = 2000
"""Characters of a note: a short remark, not a document."""


class Verdict(StrEnum):
    """Keep or reject: the values ``verdict`` takes in exports and ``metadata.jsonl``."""

    KEPT = "kept"
    REJECTED = "rejected"


@dataclass(frozen=True, kw_only=True)
class Rating:
    """One output file's rating as the ledger keeps it."""

    job_key: str
    position: int
    verdict: Verdict | None = None
    stars: int | None = None
    note: str | None = None
    rated_at: datetime | None = None
    rated_by: str | None = None
    """PostgreSQL: the database user; SQLite: the OS user (None when it cannot be told)."""

    @property
    def empty(self) -> bool:
        """Nothing decided: no verdict, no stars, no note (storing it deletes the rating)."""
        return self.verdict is None and self.stars is None and not self.note


@dataclass(frozen=True, kw_only=True)
class RatingCounts:
    """Output files of a run's done jobs by verdict, as ``genbatch status`` shows them."""

    files: int = 0
    kept: int = 0
    rejected: int = 0
    starred: int = 0
    """Files with stars, whatever their verdict."""

    @property
    def unrated(self) -> int:
        """Files neither kept nor rejected yet."""
        return self.files - self.kept - self.rejected


def checked_rating(
    job_key: str,
    position: int,
    *,
    verdict: str | None,
    stars: int | None,
    note: str | None,
) -> Rating:
    """A rating from user input, or ``UsageError`` saying which field is wrong."""
    # The values come from a JSON body: any type may arrive, whatever the annotations say.
    if verdict is not None and (not isinstance(verdict, str) or verdict not in set(Verdict)):
        raise UsageError(f"verdict: {verdict!r} is not one of kept, rejected (or none)")
    if stars is not None and (type(stars) is not int or stars not in STARS):
        raise UsageError(f"stars: {stars!r} is not a whole number from 1 to 5 (or none)")
    if note is not None and not isinstance(note, str):
        raise UsageError(f"note: {note!r} is not text")
    if note is not None and len(note) > NOTE_LIMIT:
        raise UsageError(f"note: {len(note)} characters, at most {NOTE_LIMIT}")
    return Rating(
        job_key=job_key,
        position=position,
        verdict=None if verdict is None else Verdict(verdict),
        stars=stars,
        note=note.strip() or None if note is not None else None,
    )
