"""The simulator in its own process, steered over stdin, for the benchmarks.

``genbatch simulate`` serves and prints its counters only when it stops; the benchmarks also need
the simulator's records (when each request finished) and per-model generation times, so they
start this script instead:

    python benchmarks/simserver.py '{"time_scale": 0, "capacity": 64}'

It prints one JSON line ``{"base_url", "token"}`` once it answers, then answers one JSON line per
command read on stdin: ``stats`` (the counters), ``records`` (every request's times, as Unix
seconds), ``quit``. End of input stops it too.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from genbatch.simulator import RequestInfo, Simulator, SimulatorConfig


def _epoch(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def _record(info: RequestInfo) -> dict[str, Any]:
    return {
        "request_id": info.request_id,
        "status": info.status,
        "generation_seconds": info.generation_seconds,
        "created_at": _epoch(info.created_at),
        "started_at": _epoch(info.started_at),
        "finished_at": _epoch(info.finished_at),
    }


def _answer(simulator: Simulator, command: str) -> Any:
    if command == "stats":
        return simulator.stats.snapshot()
    if command == "records":
        return [_record(info) for info in simulator.records.list()]
    return {"error": f"unknown command {command!r}"}


def _config(text: str) -> SimulatorConfig:
    fields: dict[str, Any] = json.loads(text) if text else {}
    durations = fields.pop("durations", {})
    return SimulatorConfig(
        durations={
            model: (float(median), float(sigma)) for model, (median, sigma) in durations.items()
        },
        **fields,
    )


def main(argv: list[str]) -> None:
    """Serve until ``quit`` or the end of stdin."""
    with Simulator(_config(argv[1] if len(argv) > 1 else "")) as simulator:
        print(json.dumps({"base_url": simulator.base_url, "token": simulator.token}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            print(json.dumps(_answer(simulator, command), default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv)
