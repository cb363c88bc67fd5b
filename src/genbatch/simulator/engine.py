"""The account behind the simulated API: requests, queue, capacity, balance, expiry.

Nothing runs on a timer. Each request draws its generation time at submit; whenever anyone
looks, ``_advance(now)`` replays the events due since the last look (finishes free slots,
slots start the oldest queued request at the exact instant they freed), so thousands of
requests cost a heap and a deque, and every timestamp is exact whatever the polling rhythm.
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from genbatch.catalog import InputProblem, ModelSchema
from genbatch.simulator.config import DEFAULT_SIGMA, SimulatorConfig
from genbatch.simulator.media import MediaFile, render
from genbatch.simulator.records import (
    OutputInfo,
    RequestInfo,
    RequestRecord,
    ResultStatus,
    StatusStatus,
)
from genbatch.simulator.stats import SimulatorStats

_EPSILON_USD = 1e-9


@dataclass(frozen=True, kw_only=True)
class PollState:
    """One consistent reading of a request for the status and result endpoints."""

    request_id: str
    model: ModelSchema
    status: StatusStatus
    result_status: ResultStatus
    queue_position: int | None
    created_at: datetime
    finished_at: datetime | None
    error: Any
    output_names: tuple[str, ...]


class SimError(Exception):
    """An API error answer: HTTP status, RunComfy error_code and message."""

    def __init__(self, http_status: int, error_code: int, message: str) -> None:
        self.http_status = http_status
        self.error_code = error_code
        self.message = message
        super().__init__(message)


class InvalidInput(Exception):
    """The body breaks the model's schema (answered 422 with one detail per problem)."""

    def __init__(self, problems: list[InputProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def unknown_model(model_id: str) -> SimError:
    """400001 for ``model_id``."""
    return SimError(400, 400001, f"Model {model_id!r} does not exist.")


def request_gone(request_id: str) -> SimError:
    """404001 for ``request_id``."""
    return SimError(404, 404001, f"Request {request_id!r} not found (unknown or expired).")


def price_usd(model: ModelSchema, body: Mapping[str, Any]) -> float:
    """What one submit of ``body`` costs: the catalog's price (genbatch estimates the same);
    a model with no price is free here."""
    return model.cost_usd(body) or 0.0


def output_count(model: ModelSchema, body: Mapping[str, Any]) -> int:
    """How many files a success yields: ``num_images``/``num_videos`` for plural outputs."""
    if not model.output.output_key.endswith("s"):
        return 1
    count = body.get(f"num_{model.output.output_key}", 1)
    return max(1, int(_number(count, 1.0)))


def output_names(model: ModelSchema, body: Mapping[str, Any]) -> list[str]:
    """The file names of a success's outputs, in output order."""
    return [f"output-{index}{model.output.extension}" for index in range(output_count(model, body))]


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def canonical_submission(model_id: str, body: Mapping[str, Any]) -> str:
    """One string per distinct (model, body), whatever the key order: duplicates share it."""
    return model_id + " " + json.dumps(body, sort_keys=True, separators=(",", ":"))


class Engine:
    """The simulated account; every public method is thread-safe."""

    def __init__(
        self,
        config: SimulatorConfig,
        stats: SimulatorStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._stats = stats
        self._clock = clock
        self._wall_offset = time.time() - clock()
        self._lock = threading.RLock()
        self._rng = random.Random(f"genbatch-simulator-generations:{config.seed}")
        self._capacity = config.capacity
        self._balance = config.balance_usd
        self._records: dict[str, RequestRecord] = {}
        self._running: list[tuple[float, int, str]] = []  # heap of (finish, order, request_id)
        self._queue: deque[str] = deque()
        self._queued_total = 0
        self._started_from_queue = 0
        self._cancelled_seqs: list[int] = []  # sorted queue_seq of cancelled queued requests
        self._expiries: list[tuple[float, str]] = []  # heap of (expire_at, request_id)
        self._order = 0

    # -- account settings -------------------------------------------------------------------

    @property
    def balance_usd(self) -> float | None:
        """What is left to spend, or None when unlimited."""
        with self._lock:
            return self._balance

    def set_balance(self, usd: float | None) -> None:
        """Set what is left to spend (None: unlimited)."""
        with self._lock:
            self._balance = usd

    @property
    def capacity(self) -> int:
        """Requests in progress at once."""
        return self._capacity

    def set_capacity(self, capacity: int) -> None:
        """Change the account's capacity; a larger one starts queued requests at once."""
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        with self._lock:
            now = self._clock()
            self._advance(now)
            self._capacity = capacity
            self._fill_slots(now)

    # -- the API's verbs --------------------------------------------------------------------

    def submit(
        self, model_id: str, body: dict[str, Any], *, fail_with: Any = None
    ) -> RequestRecord:
        """Create a request, or raise SimError (400001, 400002) or InvalidInput.

        ``fail_with``: an error JSON that dooms this generation (a scripted ``fail`` fault).
        """
        model = self._config.models.get(model_id)
        if model is None:
            raise unknown_model(model_id)
        problems = model.problems(body)
        if problems:
            raise InvalidInput(problems)
        with self._lock:
            now = self._clock()
            self._advance(now)
            cost = price_usd(model, body)
            self._charge(cost)
            record = self._create(model, body, cost, now, fail_with)
            self._queue.append(record.request_id)
            self._fill_slots(now)
            self._stats.see_concurrency(self._active(), len(self._running))
        self._stats.count_submission(canonical_submission(model_id, body))
        return record

    def adopt(
        self, request_id: str, model_id: str, body: dict[str, Any], *, generated: bool
    ) -> bool:
        """Take on a request an earlier simulator created, as if submitted now (``genbatch run
        --simulate`` resumed: the ledger's request ids are of a simulator that is gone).
        ``generated``: its generation was over (the ledger was fetching its files), so it ends
        at once. Nothing is charged and no submission counted; False for a model not served."""
        model = self._config.models.get(model_id)
        if model is None:
            return False
        with self._lock:
            if request_id in self._records:
                return True
            now = self._clock()
            self._advance(now)
            record = self._create(model, body, 0.0, now, None, request_id=request_id)
            if generated:  # it succeeded: its files are the ones to fetch
                record.error = None
                record.duration = 0.0
            self._queue.append(record.request_id)
            self._fill_slots(now)
        return True

    def lookup(self, request_id: str) -> RequestRecord:
        """The live record of ``request_id`` as of now, or SimError 404001."""
        with self._lock:
            self._advance(self._clock())
            record = self._records.get(request_id)
            if record is None or record.expired:
                raise request_gone(request_id)
            return record

    def poll(self, request_id: str) -> PollState:
        """What the status and result endpoints tell of ``request_id`` now (or 404001)."""
        with self._lock:
            record = self.lookup(request_id)
            result = record.result_status
            return PollState(
                request_id=request_id,
                model=record.model,
                status=record.status,
                result_status=result,
                queue_position=self.queue_position(record) if result == "in_queue" else None,
                created_at=self.wall(record.submitted_at),
                finished_at=self.wall_or_none(record.finished_at),
                error=record.error if result == "failed" else None,
                output_names=tuple(output_names(record.model, record.body))
                if result == "succeeded"
                else (),
            )

    def cancel(self, request_id: str) -> tuple[StatusStatus, str]:
        """Cancel a queued request (refunded): returns its status after and the outcome."""
        with self._lock:
            record = self.lookup(request_id)
            if record.cancelled:
                return record.status, "cancelled"
            if record.started_at is not None:
                return record.status, "not_cancellable"
            record.cancelled = True
            record.finished_at = self._clock()
            bisect.insort(self._cancelled_seqs, record.queue_seq)
            self._refund(record)
            self._expire_later(record)
            self._stats.add("cancellations")
            return record.status, "cancelled"

    def queue_position(self, record: RequestRecord) -> int:
        """1-based place of a queued request among the requests queued now."""
        with self._lock:
            cancelled_before = bisect.bisect_left(self._cancelled_seqs, record.queue_seq)
            return record.queue_seq - self._started_from_queue - cancelled_before + 1

    def files(self, request_id: str) -> tuple[MediaFile, ...]:
        """The output files of a succeeded, unexpired request (SimError 404001 otherwise)."""
        with self._lock:
            record = self.lookup(request_id)
            if record.result_status != "succeeded":
                raise request_gone(request_id)
            return self._render(record)

    def mark_answer_lost(self, record: RequestRecord) -> None:
        """Note that the answer to this request's submit never reached the client."""
        with self._lock:
            record.answer_lost = True

    # -- read access for tests --------------------------------------------------------------

    def request_ids(self) -> list[str]:
        """Every request id ever created, in submit order."""
        with self._lock:
            self._advance(self._clock())
            return list(self._records)

    def info(self, request_id: str, base_url: str) -> RequestInfo:
        """A snapshot of one request, expired or not (KeyError if never created)."""
        with self._lock:
            self._advance(self._clock())
            record = self._records[request_id]
            outputs: tuple[OutputInfo, ...] = ()
            if record.result_status == "succeeded":
                outputs = tuple(
                    OutputInfo(
                        url=file_url(base_url, request_id, f.name),
                        name=f.name,
                        content_type=f.content_type,
                        sha256=f.sha256,
                        size=f.size,
                    )
                    for f in self._render(record, keep=not record.expired)
                )
            return RequestInfo(
                request_id=request_id,
                model_id=record.model.model_id,
                body=dict(record.body),
                status=record.result_status,
                cost_usd=record.cost_usd,
                generation_seconds=record.duration,
                created_at=self.wall(record.submitted_at),
                started_at=self.wall_or_none(record.started_at),
                finished_at=self.wall_or_none(record.finished_at),
                error=record.error if record.result_status == "failed" else None,
                outputs=outputs,
                expired=record.expired,
                answer_lost=record.answer_lost,
            )

    def wall(self, instant: float) -> datetime:
        """The wall-clock time (UTC) of a monotonic ``instant``."""
        return datetime.fromtimestamp(instant + self._wall_offset, tz=UTC)

    def wall_or_none(self, instant: float | None) -> datetime | None:
        """``wall(instant)``, or None for None."""
        return None if instant is None else self.wall(instant)

    # -- internals (called with the lock held) ----------------------------------------------

    def _charge(self, cost: float) -> None:
        if self._balance is None:
            self._stats.add("billed_usd", cost)
            return
        if self._balance + _EPSILON_USD < cost:
            raise SimError(
                400,
                400002,
                f"Insufficient balance: ${self._balance:.4f} left, this request costs ${cost:.4f}.",
            )
        self._balance -= cost
        self._stats.add("billed_usd", cost)

    def _refund(self, record: RequestRecord) -> None:
        if self._balance is not None:
            self._balance += record.cost_usd
        self._stats.add("billed_usd", -record.cost_usd)

    def _create(
        self,
        model: ModelSchema,
        body: dict[str, Any],
        cost: float,
        now: float,
        fail_with: Any,
        *,
        request_id: str | None = None,
    ) -> RequestRecord:
        # Always the same draws in the same order, so a seed fixes every request's fate.
        duration = self._draw_duration(model) * self._config.time_scale
        fails = self._rng.random() < self._config.fail_rate
        error = (
            fail_with
            if fail_with is not None
            else (_generation_error(self._rng.randrange(3)) if fails else None)
        )
        if error is not None:
            self._stats.count_fault("fail")
        record = RequestRecord(
            request_id=request_id or str(uuid.uuid4()),
            model=model,
            body=dict(body),
            cost_usd=cost,
            duration=duration,
            error=error,
            submitted_at=now,
            queue_seq=self._queued_total,
        )
        self._queued_total += 1
        self._records[record.request_id] = record
        return record

    def _draw_duration(self, model: ModelSchema) -> float:
        median, sigma = self._config.durations.get(
            model.model_id, (model.output.typical_seconds, DEFAULT_SIGMA)
        )
        if median <= 0:
            return 0.0
        return self._rng.lognormvariate(math.log(median), sigma) if sigma > 0 else median

    def _advance(self, now: float) -> None:
        while self._running and self._running[0][0] <= now:
            finished_at, _, request_id = heapq.heappop(self._running)
            self._finish(self._records[request_id], finished_at)
            self._fill_slots(finished_at)
        self._purge(now)

    def _fill_slots(self, instant: float) -> None:
        while self._queue and len(self._running) < self._capacity:
            record = self._records[self._queue.popleft()]
            if record.cancelled:
                continue
            self._started_from_queue += 1
            record.started_at = max(instant, record.submitted_at)
            self._order += 1
            heapq.heappush(
                self._running, (record.started_at + record.duration, self._order, record.request_id)
            )
            self._stats.see_concurrency(self._active(), len(self._running))

    def _finish(self, record: RequestRecord, instant: float) -> None:
        record.finished_at = instant
        if record.error is not None:
            self._refund(record)
            self._stats.add("failed")
        else:
            self._stats.add("completed")
        self._expire_later(record)

    def _expire_later(self, record: RequestRecord) -> None:
        assert record.finished_at is not None  # only finished requests expire
        heapq.heappush(
            self._expiries, (record.finished_at + self._config.expire_after, record.request_id)
        )

    def _purge(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            _, request_id = heapq.heappop(self._expiries)
            record = self._records[request_id]
            record.expired = True
            record.files = None
            self._stats.add("expired")

    def _active(self) -> int:
        queued = self._queued_total - self._started_from_queue - len(self._cancelled_seqs)
        return queued + len(self._running)

    def _render(self, record: RequestRecord, keep: bool = True) -> tuple[MediaFile, ...]:
        if record.files is not None:
            return record.files
        aspect = record.body.get("aspect_ratio")
        files = tuple(
            render(
                record.model.output.kind,
                name,
                record.request_id,
                index,
                aspect if isinstance(aspect, str) else None,
            )
            for index, name in enumerate(output_names(record.model, record.body))
        )
        if keep:
            record.files = files
        return files


def file_url(base_url: str, request_id: str, name: str) -> str:
    """Where output file ``name`` of ``request_id`` is served."""
    return f"{base_url}/files/{request_id}/{name}"


def _generation_error(shape: int) -> Any:
    # The contract saw three shapes of ``error``; serve all three so clients survive each.
    message = "Generation failed: the model could not produce an output for this input."
    if shape == 0:
        return {"code": "generation_failed", "message": message}
    if shape == 1:
        return message
    return [{"errorCode": 500, "error": message, "debugInfo": "simulated failure"}]
