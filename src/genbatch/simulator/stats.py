"""What the simulator saw, live: calls, submissions, duplicates, faults, bytes, concurrency."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class SimulatorStats:
    """Live counters of one simulator run; read them directly or take a ``snapshot()``.

    Fields:
        submissions: submits accepted (a request was created), lost answers included.
        duplicate_submissions: accepted submits whose model and canonical JSON body had been
            accepted before (what a client that pays twice causes).
        rejected_submissions: submits answered 4xx (400001, 400002, 422).
        calls: calls per route: submit, status, result, cancel, catalog, file, other.
        auth_failures: calls refused for a missing or wrong token.
        not_found: calls answered 404 (unknown or expired request id, missing file).
        peak_active: most requests queued + in progress at once.
        peak_in_progress: most requests in progress at once.
        faults: injected faults by kind (see FaultKind), failed generations under ``fail``.
        cancellations: queued requests cancelled (and refunded).
        completed / failed / expired: requests that finished so, or whose record expired.
        billed_usd: what the account paid, net of refunds (cancelled, failed).
        bytes_served: body bytes of output files sent (truncated and ranged ones included).
        files_served: output file answers sent complete (200 or 206).
        file_requests_with_token: file requests that carried an Authorization header (a client
            must never send its API token to a file host).
        file_redirects: file requests the API's host redirected to the file host.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.submissions = 0
        self.duplicate_submissions = 0
        self.rejected_submissions = 0
        self.calls: Counter[str] = Counter()
        self.auth_failures = 0
        self.not_found = 0
        self.peak_active = 0
        self.peak_in_progress = 0
        self.faults: Counter[str] = Counter()
        self.cancellations = 0
        self.completed = 0
        self.failed = 0
        self.expired = 0
        self.billed_usd = 0.0
        self.bytes_served = 0
        self.files_served = 0
        self.file_requests_with_token = 0
        self.file_redirects = 0
        self._seen_bodies: set[str] = set()

    def add(self, name: str, amount: int | float = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def count_call(self, route: str) -> None:
        """Count one call of ``route``."""
        with self._lock:
            self.calls[str(route)] += 1

    def count_fault(self, kind: str) -> None:
        """Count one injected fault of ``kind``."""
        with self._lock:
            self.faults[str(kind)] += 1

    def count_submission(self, canonical: str) -> None:
        """Count an accepted submit, and a duplicate if ``canonical`` was accepted before."""
        with self._lock:
            self.submissions += 1
            if canonical in self._seen_bodies:
                self.duplicate_submissions += 1
            else:
                self._seen_bodies.add(canonical)

    def see_concurrency(self, active: int, in_progress: int) -> None:
        """Raise the peaks to the current counts if they are higher."""
        with self._lock:
            self.peak_active = max(self.peak_active, active)
            self.peak_in_progress = max(self.peak_in_progress, in_progress)

    @property
    def faults_total(self) -> int:
        """Every injected fault, all kinds together."""
        with self._lock:
            return sum(self.faults.values())

    def snapshot(self) -> dict[str, Any]:
        """Every counter as plain data (dicts, ints, floats), consistent at one instant."""
        with self._lock:
            return {
                "submissions": self.submissions,
                "duplicate_submissions": self.duplicate_submissions,
                "rejected_submissions": self.rejected_submissions,
                "calls": dict(self.calls),
                "auth_failures": self.auth_failures,
                "not_found": self.not_found,
                "peak_active": self.peak_active,
                "peak_in_progress": self.peak_in_progress,
                "faults": dict(self.faults),
                "cancellations": self.cancellations,
                "completed": self.completed,
                "failed": self.failed,
                "expired": self.expired,
                "billed_usd": round(self.billed_usd, 6),
                "bytes_served": self.bytes_served,
                "files_served": self.files_served,
                "file_requests_with_token": self.file_requests_with_token,
                "file_redirects": self.file_redirects,
            }

    def __repr__(self) -> str:
        return f"SimulatorStats({self.snapshot()!r})"
