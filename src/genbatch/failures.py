"""Noticing systemic failure: when recent jobs keep failing the same way, stop the run early.

A wrong model id, a sustained outage or a policy that rejects every prompt would otherwise burn
through the whole batch one job at a time. ``--max-failures N`` stops after N consecutive jobs
failed the same way; ``--max-failures P%`` stops when P% of the last jobs failed, whatever the way.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from genbatch.errors import UsageError

DEFAULT_MAX_FAILURES = "10"
WINDOW = 20
MAX_CONSECUTIVE_UNKNOWN = 3
"""Submits in a row whose answer was lost before the run stops: each one may be paid twice."""


@dataclass(frozen=True, kw_only=True)
class FailureLimit:
    """When to stop: after ``count`` consecutive same failures, or ``fraction`` of a window."""

    count: int | None = 10
    fraction: float | None = None
    window: int = WINDOW

    @classmethod
    def parse(cls, text: str) -> FailureLimit:
        """``10``, ``50%``, or ``off``."""
        value = text.strip().lower()
        if value in ("off", "none", "0"):
            return cls(count=None, fraction=None)
        try:
            if value.endswith("%"):
                fraction = float(value[:-1]) / 100
                if not 0 < fraction <= 1:
                    raise ValueError
                return cls(count=None, fraction=fraction)
            count = int(value)
            if count < 1:
                raise ValueError
            return cls(count=count)
        except ValueError:
            raise UsageError(
                f"--max-failures: expected a count (10), a percentage (50%) or off, not {text!r}"
            ) from None

    @property
    def unreachable_patience(self) -> int | None:
        """API calls in a row with no answer before the run stops: the count (a percentage
        counts as the window's size; ``off``: never, back off and retry forever)."""
        if self.count is not None:
            return self.count
        return self.window if self.fraction is not None else None


class FailureWatch:
    """Follows how jobs end and says when the run should stop."""

    def __init__(self, limit: FailureLimit) -> None:
        self._limit = limit
        self._recent: deque[str | None] = deque(maxlen=limit.window)
        self._streak_kind: str | None = None
        self._streak = 0

    def succeeded(self) -> None:
        """A job succeeded: any streak of failures is broken."""
        self._recent.append(None)
        self._streak_kind, self._streak = None, 0

    def failed(self, kind: str) -> str | None:
        """A job failed in the way ``kind``; returns why the run should stop, if it should."""
        self._recent.append(kind)
        if kind == self._streak_kind:
            self._streak += 1
        else:
            self._streak_kind, self._streak = kind, 1
        if self._limit.count is not None and self._streak >= self._limit.count:
            return f"{self._streak} jobs in a row failed the same way ({kind})"
        if self._limit.fraction is not None and len(self._recent) == self._limit.window:
            failed = sum(1 for k in self._recent if k is not None)
            if failed / len(self._recent) >= self._limit.fraction:
                return f"{failed} of the last {len(self._recent)} jobs failed (latest: {kind})"
        return None
