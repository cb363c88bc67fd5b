"""Shared fixtures. Each part belongs to one area of genbatch; keep to your own section."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import settings

from genbatch.simulator import Simulator, SimulatorConfig

import support

# ---------------------------------------------------------------------------------------------
# Background processes
# ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _leftover_processes() -> Iterator[None]:
    """genbatch processes a test started and left running are killed when it ends."""
    yield
    support.stop_leftover_processes()


@pytest.fixture(autouse=True)
def _own_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test lists the ledgers it uses in a state folder of its own (``ledger_registry``):
    the user's is never written, and one test's jobs never stop another's run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
        yield


# ---------------------------------------------------------------------------------------------
# Simulator fixtures (owner: simulator, issue #2)
# ---------------------------------------------------------------------------------------------

SIM_TIME_SCALE = 0.001
"""Fast enough that a 240 s clip takes 0.24 s, slow enough that states can be observed."""

MakeSimulator = Callable[..., Simulator]


@pytest.fixture
def make_simulator() -> Iterator[MakeSimulator]:
    """A factory of running simulators: ``make_simulator(capacity=2, fail_rate=0.5, ...)``.

    Keyword arguments are SimulatorConfig fields; ``time_scale`` defaults to SIM_TIME_SCALE.
    Every simulator made is stopped when the test ends.
    """
    started: list[Simulator] = []

    def make(**overrides: Any) -> Simulator:
        overrides.setdefault("time_scale", SIM_TIME_SCALE)
        simulator = Simulator(SimulatorConfig(**overrides)).start()
        started.append(simulator)
        return simulator

    yield make
    for simulator in started:
        simulator.stop()


@pytest.fixture
def simulator(make_simulator: MakeSimulator) -> Simulator:
    """A running simulator with the default config and a fast time scale."""
    return make_simulator()


@pytest.fixture
def sim_client(simulator: Simulator) -> Iterator[httpx.Client]:
    """An httpx client on ``simulator``'s base URL, carrying its token."""
    with httpx.Client(
        base_url=simulator.base_url, headers=simulator.headers, timeout=10.0
    ) as client:
        yield client


# ---------------------------------------------------------------------------------------------
# (end of the simulator section)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# PostgreSQL fixtures (owner: scale-out, issue #7)
# ---------------------------------------------------------------------------------------------

POSTGRES_URL_ENV = "GENBATCH_TEST_POSTGRES_URL"
POSTGRES_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
REQUIRE_POSTGRES_ENV = "GENBATCH_REQUIRE_POSTGRES"
_postgres_problem: list[str | None] = []
"""Why PostgreSQL is unreachable (None: it is reachable); probed once per session."""


def _probe_postgres(url: str) -> str | None:
    try:
        import psycopg  # only the PostgreSQL tests need the driver
    except ImportError:
        return "psycopg is not installed: pip install -e '.[test]'"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The test PostgreSQL's URL (``$GENBATCH_TEST_POSTGRES_URL`` or the local ``test``
    database). Skips the test when unreachable, or fails it with GENBATCH_REQUIRE_POSTGRES=1."""
    url = os.environ.get(POSTGRES_URL_ENV, POSTGRES_DEFAULT_URL)
    if not _postgres_problem:
        _postgres_problem.append(_probe_postgres(url))
    problem = _postgres_problem[0]
    if problem is not None:
        message = f"no PostgreSQL reachable at {url} ({problem}); set {POSTGRES_URL_ENV}"
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{message} ({REQUIRE_POSTGRES_ENV}=1 makes this an error)")
        pytest.skip(message)
    return url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A ledger URL in a fresh schema of the test PostgreSQL, dropped when the test ends."""
    import psycopg

    schema = f"genbatch_test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


# ---------------------------------------------------------------------------------------------
# (end of the PostgreSQL section)
# ---------------------------------------------------------------------------------------------


# -- hypothesis profiles ------------------------------------------------------------------------
# "default" keeps the suite quick; HYPOTHESIS_PROFILE=thorough runs thousands of examples each.
settings.register_profile("default", max_examples=350, deadline=None)
settings.register_profile("thorough", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
