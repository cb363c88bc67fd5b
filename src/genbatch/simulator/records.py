"""The requests the simulator created: the engine's mutable record and the read-only views."""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from genbatch.catalog import ModelSchema
from genbatch.simulator.media import MediaFile

ResultStatus = Literal["in_queue", "in_progress", "succeeded", "failed", "cancelled"]
"""A request's state as the result endpoint names it."""

StatusStatus = Literal["in_queue", "in_progress", "completed", "cancelled"]
"""A request's state as the status endpoint names it (a failure reads ``completed``)."""


@dataclass(eq=False, kw_only=True)
class RequestRecord:
    """One request as the engine keeps it; times are ``time.monotonic`` seconds."""

    request_id: str
    model: ModelSchema
    body: dict[str, Any]
    cost_usd: float
    duration: float
    """Scaled generation time, drawn at submit."""
    error: Any
    """The error JSON when this generation is doomed to fail, else None."""
    submitted_at: float
    queue_seq: int
    started_at: float | None = None
    finished_at: float | None = None
    cancelled: bool = False
    expired: bool = False
    answer_lost: bool = False
    files: tuple[MediaFile, ...] | None = field(default=None, repr=False)

    @property
    def result_status(self) -> ResultStatus:
        """The state on the result endpoint, as of the engine's last advance."""
        if self.cancelled:
            return "cancelled"
        if self.finished_at is not None:
            return "failed" if self.error is not None else "succeeded"
        return "in_progress" if self.started_at is not None else "in_queue"

    @property
    def status(self) -> StatusStatus:
        """The state on the status endpoint."""
        result = self.result_status
        if result == "succeeded" or result == "failed":
            return "completed"
        return result


@dataclass(frozen=True, kw_only=True)
class OutputInfo:
    """One output file of a succeeded request, as a test can verify it after downloading."""

    url: str
    name: str
    content_type: str
    sha256: str
    size: int


@dataclass(frozen=True, kw_only=True)
class RequestInfo:
    """A read-only snapshot of one request the simulator created."""

    request_id: str
    model_id: str
    body: Mapping[str, Any]
    status: ResultStatus
    """As the result endpoint names it (kept after expiry)."""
    cost_usd: float
    generation_seconds: float
    """The (scaled) generation time drawn at submit."""
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: Any
    outputs: tuple[OutputInfo, ...]
    """Empty unless succeeded; still listed after expiry (but then no longer served)."""
    expired: bool
    answer_lost: bool
    """Whether a ``lost_answer`` fault swallowed the answer to its submit."""


class RecordSource(Protocol):
    """What a RecordsView reads from (the engine, bound to the server's base URL)."""

    def request_ids(self) -> list[str]: ...

    def info(self, request_id: str) -> RequestInfo: ...


class RecordsView(Mapping[str, RequestInfo]):
    """Every request the simulator created, by request id, in submit order (a live view)."""

    def __init__(self, source: RecordSource) -> None:
        self._source = source

    def __getitem__(self, request_id: str) -> RequestInfo:
        return self._source.info(request_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._source.request_ids())

    def __len__(self) -> int:
        return len(self._source.request_ids())

    def list(self) -> builtins.list[RequestInfo]:
        """Every request, in submit order."""
        return [self._source.info(request_id) for request_id in self._source.request_ids()]

    def for_model(self, model_id: str) -> builtins.list[RequestInfo]:
        """The requests of one model, in submit order."""
        return [info for info in self.list() if info.model_id == model_id]
