"""Which fault, if any, hits the next call: scripted ones first, then seeded random draws."""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, get_args

from genbatch.simulator.config import FaultConfig, RouteClass

CallRoute = Literal["submit", "status", "result", "cancel", "catalog", "file"]
"""Every route the simulator counts calls of."""

InjectRoute = Literal["submit", "status", "result", "poll", "cancel", "catalog", "file", "any"]
"""What ``Simulator.inject(route=...)`` accepts: a route, ``poll`` (status or result), or any."""

INJECT_ROUTES: frozenset[str] = frozenset(get_args(InjectRoute))


class FaultKind(StrEnum):
    """Every fault the simulator can inject; the values are the names stats count them by."""

    RATE_LIMIT = "rate_limit"
    """429 with ``Retry-After`` (param ``retry_after``, seconds)."""
    RATE_LIMIT_BARE = "rate_limit_bare"
    """429 without ``Retry-After``."""
    SERVER_ERROR = "server_error"
    """500 with a JSON body, error_code 500001."""
    BAD_GATEWAY = "bad_gateway"
    """502 with an HTML body."""
    UNAVAILABLE = "unavailable"
    """503 with an HTML body."""
    DROP = "drop"
    """Connection closed before any byte of the answer; nothing happened server-side."""
    PARTIAL = "partial"
    """Headers and part of the body (param ``keep``, bytes), then closed; side effects done."""
    SLOW = "slow"
    """Answer delayed by param ``delay`` seconds (after a submit created its request); a
    file is streamed in small chunks spread over ``delay`` seconds."""
    TRUNCATE = "truncate"
    """Files: full Content-Length announced, only param ``keep`` bytes (default half) sent."""
    LOST_ANSWER = "lost_answer"
    """Submits: the request is created (runs, billed, in records); the connection drops."""
    MALFORMED = "malformed"
    """API routes: 200 whose body is not valid JSON (after the side effects, like partial)."""
    REDIRECT = "redirect"
    """Files: 302, API calls: 307, to param ``location`` (default: the same URL, asked again)."""
    FAIL = "fail"
    """Submits: the generation of the created request fails (param ``error``: its JSON)."""
    GZIP = "gzip"
    """Files: the whole file gzipped (``Content-Encoding: gzip``) when the request accepts gzip,
    as many CDNs do; sent as stored otherwise."""
    GZIP_ALWAYS = "gzip_always"
    """Files: the whole file gzipped (``Content-Encoding: gzip``) whatever the request accepts."""
    HTML_200 = "html_200"
    """Files: 200 with a CDN's HTML error page (``text/html``) instead of the file."""
    EMPTY_200 = "empty_200"
    """Files: 200 with the file's content type and an empty body."""
    SHORT_200 = "short_200"
    """Files: 200 with the first param ``keep`` bytes (default half) and a Content-Length that
    matches them: a file cut short that looks whole."""
    ECHO_AUTH = "echo_auth"
    """API routes: 400 from a misbehaving proxy whose message quotes the request's headers,
    the ``Authorization`` header (the token) included; nothing happened server-side."""
    NOT_FOUND_PAGE = "not_found_page"
    """404 with a gateway's (or a CDN's) HTML page, not the API's own error; nothing happened
    server-side. On a file: a CDN missing the file for a moment."""
    FORBIDDEN_PAGE = "forbidden_page"
    """403 with a gateway's (a web firewall's) HTML page; nothing happened server-side."""
    NO_ROUTE = "no_route"
    """404 ``{"error_code": 404000, "error_message": "No route ..."}``: JSON, but not the code
    of a request that is gone (a gateway routing the call nowhere); nothing happened."""
    OTHER_ACCOUNT = "other_account"
    """Status, result, cancel: 403 ``{"error_code": 403001}``, the API's own answer for a
    request of another account (as if the token were another account's); nothing happened."""


_EVERYWHERE = frozenset({"submit", "status", "result", "cancel", "catalog", "file"})
_VALID_ROUTES: Mapping[FaultKind, frozenset[str]] = {
    **{kind: _EVERYWHERE for kind in FaultKind},
    FaultKind.TRUNCATE: frozenset({"file"}),
    FaultKind.MALFORMED: frozenset({"submit", "status", "result", "cancel", "catalog"}),
    FaultKind.REDIRECT: _EVERYWHERE,
    FaultKind.LOST_ANSWER: frozenset({"submit"}),
    FaultKind.FAIL: frozenset({"submit"}),
    **dict.fromkeys(
        (
            FaultKind.GZIP,
            FaultKind.GZIP_ALWAYS,
            FaultKind.HTML_200,
            FaultKind.EMPTY_200,
            FaultKind.SHORT_200,
        ),
        frozenset({"file"}),
    ),
    FaultKind.ECHO_AUTH: frozenset({"submit", "status", "result", "cancel", "catalog"}),
    FaultKind.OTHER_ACCOUNT: frozenset({"status", "result", "cancel"}),
}
_PARAMS: Mapping[FaultKind, frozenset[str]] = {
    **{kind: frozenset() for kind in FaultKind},
    FaultKind.RATE_LIMIT: frozenset({"retry_after"}),
    FaultKind.SLOW: frozenset({"delay"}),
    FaultKind.PARTIAL: frozenset({"keep"}),
    FaultKind.TRUNCATE: frozenset({"keep"}),
    FaultKind.SHORT_200: frozenset({"keep"}),
    FaultKind.FAIL: frozenset({"error"}),
    FaultKind.REDIRECT: frozenset({"location"}),
}
_ROUTE_CLASS: Mapping[str, RouteClass] = {
    "submit": "submit",
    "status": "poll",
    "result": "poll",
    "cancel": "cancel",
    "file": "file",
}


@dataclass(frozen=True)
class Fault:
    """One fault to apply to one call."""

    kind: FaultKind
    params: Mapping[str, Any] = field(default_factory=dict)

    def number(self, name: str, default: float) -> float:
        """The numeric parameter ``name``, or ``default`` when it was not given."""
        value = self.params.get(name)
        return default if value is None else float(value)


@dataclass
class _Scripted:
    route: str
    fault: Fault
    remaining: int


def _matches(scripted_route: str, route: CallRoute) -> bool:
    if scripted_route in ("any", route):
        return True
    return scripted_route == "poll" and route in ("status", "result")


def check_injection(route: str, fault: str, count: int, params: Mapping[str, Any]) -> Fault:
    """The fault ``Simulator.inject`` describes, or ValueError saying what is wrong with it."""
    if route not in INJECT_ROUTES:
        raise ValueError(f"unknown route {route!r}; known: {sorted(INJECT_ROUTES)}")
    try:
        kind = FaultKind(fault)
    except ValueError:
        known = [k.value for k in FaultKind]
        raise ValueError(f"unknown fault {fault!r}; known: {known}") from None
    targets = (
        _EVERYWHERE if route == "any" else ({"status", "result"} if route == "poll" else {route})
    )
    if not targets <= _VALID_ROUTES[kind]:
        raise ValueError(f"fault {kind} only applies to {sorted(_VALID_ROUTES[kind])}")
    unknown = set(params) - _PARAMS[kind]
    if unknown:
        raise ValueError(
            f"fault {kind} takes {sorted(_PARAMS[kind]) or 'no'} parameters, not {sorted(unknown)}"
        )
    if count < 1:
        raise ValueError("count must be at least 1")
    return Fault(kind, dict(params))


class FaultInjector:
    """Decides the fault of each call; safe to use from any thread."""

    def __init__(self, config: FaultConfig, seed: int) -> None:
        self._config = config
        # A string seed is hashed deterministically (unlike hash() of other objects).
        self._rng = random.Random(f"genbatch-simulator-faults:{seed}")
        self._lock = threading.Lock()
        self._scripted: list[_Scripted] = []

    def inject(self, route: str, fault: Fault, count: int) -> None:
        """Apply ``fault`` to the next ``count`` calls matching ``route``."""
        with self._lock:
            self._scripted.append(_Scripted(route, fault, count))

    def clear(self) -> None:
        """Forget the scripted faults not used yet."""
        with self._lock:
            self._scripted.clear()

    @property
    def pending(self) -> int:
        """How many scripted fault applications are still to come."""
        with self._lock:
            return sum(s.remaining for s in self._scripted)

    def draw(self, route: CallRoute) -> Fault | None:
        """The fault for this call of ``route``: the oldest matching scripted one, else random."""
        with self._lock:
            for scripted in self._scripted:
                if _matches(scripted.route, route):
                    scripted.remaining -= 1
                    if scripted.remaining == 0:
                        self._scripted.remove(scripted)
                    return scripted.fault
            route_class = _ROUTE_CLASS.get(route)
            return None if route_class is None else self._random(route_class)

    def _random(self, route: RouteClass) -> Fault | None:
        probabilities = self._config.probabilities(route)
        if not probabilities:
            return None
        draw = self._rng.random()
        for group, probability in probabilities.items():
            if draw < probability:
                return Fault(self._concrete(group))
            draw -= probability
        return None

    def _concrete(self, group: str) -> FaultKind:
        if group == "rate_limit":
            with_header = self._rng.random() < self._config.retry_after_share
            return FaultKind.RATE_LIMIT if with_header else FaultKind.RATE_LIMIT_BARE
        if group == "server_error":
            return self._rng.choice(
                (FaultKind.SERVER_ERROR, FaultKind.BAD_GATEWAY, FaultKind.UNAVAILABLE)
            )
        return FaultKind(group)
