"""Shared fixtures. Each part belongs to one area of genbatch; keep to your own section."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from genbatch.simulator import Simulator, SimulatorConfig

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
