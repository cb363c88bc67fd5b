"""A local RunComfy Model API: real HTTP on loopback, a busy account, real media, faults.

    from genbatch.simulator import Simulator, SimulatorConfig, FaultConfig

    with Simulator(SimulatorConfig(time_scale=0.001, capacity=4)) as sim:
        ...  # talk to sim.base_url with "Authorization: Bearer " + sim.token
        sim.inject(route="submit", fault="lost_answer")
        sim.stats.snapshot(), sim.records.list()

See docs/simulator.md for every option, fault and counter.
"""

from __future__ import annotations

from genbatch.simulator.config import (
    ROUTE_CLASSES,
    FaultConfig,
    RouteClass,
    SimulatorConfig,
    parse_routes,
)
from genbatch.simulator.engine import output_count, price_usd
from genbatch.simulator.faults import INJECT_ROUTES, FaultKind
from genbatch.simulator.media import IMAGE_TYPE, PNG_SIGNATURE, VIDEO_TYPE, MediaFile
from genbatch.simulator.records import OutputInfo, RecordsView, RequestInfo
from genbatch.simulator.server import Simulator
from genbatch.simulator.stats import SimulatorStats

__all__ = [
    "IMAGE_TYPE",
    "INJECT_ROUTES",
    "PNG_SIGNATURE",
    "ROUTE_CLASSES",
    "VIDEO_TYPE",
    "FaultConfig",
    "FaultKind",
    "MediaFile",
    "OutputInfo",
    "RecordsView",
    "RequestInfo",
    "RouteClass",
    "Simulator",
    "SimulatorConfig",
    "SimulatorStats",
    "output_count",
    "parse_routes",
    "price_usd",
]
