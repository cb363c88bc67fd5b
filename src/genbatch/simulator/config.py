"""How a simulator run behaves: its account, its timing and the faults it injects."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, get_args

from genbatch.catalog import ModelSchema, bundled_models

RouteClass = Literal["submit", "poll", "cancel", "file"]
"""The classes of calls random faults apply to (``poll`` is status and result together)."""

ROUTE_CLASSES: frozenset[RouteClass] = frozenset(get_args(RouteClass))

DEFAULT_SIGMA = 0.25
"""Spread of the lognormal generation time when a model has no explicit override."""


@dataclass(frozen=True, kw_only=True)
class FaultConfig:
    """Probabilities (per call, drawn from the run's seed) of the faults a busy service shows.

    Each call of a route class listed in ``routes`` suffers at most one fault. The
    probabilities that apply to one route must add up to at most 1.
    """

    rate_limit: float = 0.0
    """429; a share ``retry_after_share`` of them carry ``Retry-After: retry_after``."""
    retry_after: float = 1.0
    retry_after_share: float = 0.5
    server_error: float = 0.0
    """5xx, split evenly between 500 (JSON 500001), 502 and 503 (HTML, as a CDN sends)."""
    drop: float = 0.0
    """Connection closed before any byte of the answer (a submit is then NOT created)."""
    partial: float = 0.0
    """Status line, headers and part of the body, then closed (side effects did happen)."""
    slow: float = 0.0
    """Answer delayed by ``slow_seconds`` (a file is streamed over that time instead)."""
    slow_seconds: float = 2.0
    truncate: float = 0.0
    """Files only: full ``Content-Length`` announced, about half the bytes sent, closed."""
    lost_answer: float = 0.0
    """Submits only: the request is created, runs and is billed, but the answer is lost."""
    malformed: float = 0.0
    """API routes: a 200 whose body is not valid JSON (the call's side effects did happen)."""
    routes: frozenset[RouteClass] = ROUTE_CLASSES

    def __post_init__(self) -> None:
        for name in (
            "rate_limit",
            "server_error",
            "drop",
            "partial",
            "slow",
            "truncate",
            "lost_answer",
            "malformed",
            "retry_after_share",
        ):
            _check_probability(name, getattr(self, name))
        if self.retry_after < 0 or self.slow_seconds < 0:
            raise ValueError("retry_after and slow_seconds must not be negative")
        unknown = set(self.routes) - ROUTE_CLASSES
        if unknown:
            raise ValueError(
                f"unknown route classes {sorted(unknown)}; known: {sorted(ROUTE_CLASSES)}"
            )
        for route in ROUTE_CLASSES:
            total = sum(self.probabilities(route).values())
            if total > 1.0 + 1e-9:
                raise ValueError(f"fault probabilities for {route} add up to {total:.3f} > 1")

    def probabilities(self, route: RouteClass) -> dict[str, float]:
        """The fault groups that can hit ``route`` and their probabilities (zero ones left out)."""
        if route not in self.routes:
            return {}
        groups = {
            "rate_limit": self.rate_limit,
            "server_error": self.server_error,
            "drop": self.drop,
            "partial": self.partial,
            "slow": self.slow,
        }
        if route == "file":
            groups["truncate"] = self.truncate
        if route == "submit":
            groups["lost_answer"] = self.lost_answer
        if route != "file":
            groups["malformed"] = self.malformed
        return {name: p for name, p in groups.items() if p > 0}

    @property
    def any(self) -> bool:
        """Whether any random fault can happen at all."""
        return any(self.probabilities(route) for route in ROUTE_CLASSES)


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """Everything a simulator run is made of; every field has a sensible default."""

    token: str = "sim-token"
    """The only bearer token the API accepts."""
    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""
    time_scale: float = 0.001
    """Multiplies generation times: at 0.001 a 240 s clip is ready in 0.24 s."""
    capacity: int = 4
    """Requests in progress at once for the account; the others queue FIFO."""
    seed: int = 0
    """Seeds generation times, failures and random faults."""
    balance_usd: float | None = None
    """None is unlimited; otherwise each submit costs its price and 400002 once it runs out."""
    expire_after: float = 3600.0
    """Real seconds (not scaled) after a request finishes before its record and files go."""
    fail_rate: float = 0.0
    """Probability that a generation fails."""
    faults: FaultConfig = field(default_factory=FaultConfig)
    durations: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """model_id -> (median seconds, lognormal sigma) before scaling; catalog times otherwise."""
    file_host: str | None = None
    """Serve output files from a second server, on its own port, addressed by this host name
    (as RunComfy serves them from a CDN): output URLs then name it instead of the API's host.
    It must resolve to the address the simulator listens on (``localhost`` for 127.0.0.1)."""
    file_port: int = 0
    """The file host's port (0 picks a free one)."""
    redirect_files: bool = False
    """With ``file_host``: output URLs name the API's host, whose file route answers a 307
    redirect to the file host, as a CDN front does."""
    duplicate_outputs: bool = False
    """Each succeeded result names its first output file twice: a list of URLs gets it
    appended again; a single URL (``video``) gets a list beside it (``videos``) holding it."""
    extra_models: tuple[ModelSchema, ...] = ()
    """Models served beside the bundled ones (``genbatch simulate --model-schema FILE``), so a
    model genbatch does not bundle can be rehearsed; one with a bundled id replaces it."""

    @cached_property
    def models(self) -> Mapping[str, ModelSchema]:
        """Every model the simulated catalog serves, by id."""
        return {**bundled_models(), **{m.model_id: m for m in self.extra_models}}

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("token must not be empty")
        if self.time_scale < 0 or not math.isfinite(self.time_scale):
            raise ValueError("time_scale must be a finite number >= 0")
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        if self.expire_after < 0:
            raise ValueError("expire_after must not be negative")
        _check_probability("fail_rate", self.fail_rate)
        if self.redirect_files and not self.file_host:
            raise ValueError("redirect_files needs a file_host to redirect to")
        if not 0 <= self.file_port <= 65535:
            raise ValueError("file_port must be between 0 and 65535")
        for model_id, (median, sigma) in self.durations.items():
            if median < 0 or sigma < 0:
                raise ValueError(f"durations[{model_id!r}] must be (median >= 0, sigma >= 0)")


def parse_routes(text: str) -> frozenset[RouteClass]:
    """Route classes from a comma-separated list such as ``"submit,poll"`` (ValueError if bad)."""
    routes: set[RouteClass] = set()
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        if name not in ROUTE_CLASSES:
            raise ValueError(f"unknown route class {name!r}; known: {sorted(ROUTE_CLASSES)}")
        routes.add(name)  # mypy narrows ``name`` through the ``in`` check
    return frozenset(routes)


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, not {value}")
