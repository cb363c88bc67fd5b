"""``Simulator``: the simulated API served over real HTTP on loopback, from a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from genbatch.simulator.app import SimulatorApp
from genbatch.simulator.config import SimulatorConfig
from genbatch.simulator.connection import SimulatorProtocol
from genbatch.simulator.engine import Engine
from genbatch.simulator.faults import FaultInjector, check_injection
from genbatch.simulator.records import RecordsView, RequestInfo
from genbatch.simulator.stats import SimulatorStats

_START_TIMEOUT = 10.0


class Simulator:
    """RunComfy's Model API, simulated, on ``127.0.0.1`` (by default) and a free port.

    Use it as a context manager, or call ``start()`` and ``stop()``; every method may be
    called from any thread. State (records, stats, balance) survives a stop and a restart.

        with Simulator(SimulatorConfig(time_scale=0.001)) as sim:
            httpx.post(f"{sim.base_url}/v1/models/...", headers={"Authorization": ...})
    """

    def __init__(self, config: SimulatorConfig | None = None, **overrides: Any) -> None:
        """``overrides`` replace fields of ``config`` (or of the defaults), by name."""
        base = config or SimulatorConfig()
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        self.stats = SimulatorStats()
        self.engine = Engine(self.config, self.stats)
        self.faults = FaultInjector(self.config.faults, self.config.seed)
        self.app = SimulatorApp(self.config, self.engine, self.faults, self.stats)
        self.records = RecordsView(_BoundRecords(self))
        """Every request created so far, by request id (a live, read-only mapping)."""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._port = self.config.port

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind the port and serve in a background thread; returns once it answers."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        sock = _bind(self.config.host, self._port)
        self._port = sock.getsockname()[1]
        self.app.closing = asyncio.Event()
        server = uvicorn.Server(uvicorn.Config(
            self.app, http=SimulatorProtocol, lifespan="off", log_config=None,
            access_log=False, proxy_headers=False, server_header=False, ws="none",
            timeout_graceful_shutdown=1, timeout_keep_alive=30, backlog=2048))
        ready = threading.Event()
        thread = threading.Thread(target=self._serve, args=(server, sock, ready),
                                  name=f"genbatch-simulator:{self._port}", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            ready.wait(0.005)
        if not server.started:
            self.stop()
            raise RuntimeError("the simulator did not start")
        return self

    def _serve(self, server: uvicorn.Server, sock: socket.socket, ready: threading.Event
               ) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        try:
            asyncio.run(serve())
        finally:
            sock.close()
            ready.set()

    def stop(self) -> None:
        """Stop serving (in-flight slow answers are cut) and wait for the thread to end."""
        server, thread, loop = self._server, self._thread, self._loop
        if server is None or thread is None:
            return
        if loop is not None and not loop.is_closed():
            # Wakes answers sleeping in a slow fault, so shutdown does not wait for them.
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(self.app.closing.set)
        server.should_exit = True
        thread.join(timeout=_START_TIMEOUT)
        self._server = self._thread = self._loop = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._thread is not None and self._thread.is_alive()

    # -- where and how to reach it ----------------------------------------------------------

    @property
    def port(self) -> int:
        """The port served (known once started; kept for a restart)."""
        return self._port

    @property
    def base_url(self) -> str:
        """The API base, e.g. ``http://127.0.0.1:40123``; output files are served there too."""
        return f"http://{_url_host(self.config.host)}:{self._port}"

    @property
    def token(self) -> str:
        """The only bearer token the API accepts."""
        return self.config.token

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header that the API accepts."""
        return {"Authorization": f"Bearer {self.config.token}"}

    # -- steering it from a test ------------------------------------------------------------

    def inject(self, route: str = "any", fault: str = "drop", count: int = 1, **params: Any
               ) -> None:
        """Apply ``fault`` to the next ``count`` calls of ``route``, before any random fault.

        route: submit, status, result, poll (status or result), cancel, catalog, file, any.
        fault: a FaultKind value (rate_limit, slow, lost_answer, ...); params as it documents
        (``retry_after``, ``delay``, ``keep``, ``error``). ValueError for a bad combination.
        """
        planned = check_injection(route, fault, count, params)
        self.faults.inject(route, planned, count)

    def clear_faults(self) -> None:
        """Forget the scripted faults not applied yet."""
        self.faults.clear()

    @property
    def pending_faults(self) -> int:
        """Scripted fault applications still to come."""
        return self.faults.pending

    @property
    def balance_usd(self) -> float | None:
        """What the account has left (None: unlimited)."""
        return self.engine.balance_usd

    def set_balance(self, usd: float | None) -> None:
        """Set what the account has left (None: unlimited)."""
        self.engine.set_balance(usd)

    @property
    def capacity(self) -> int:
        """Requests in progress at once."""
        return self.engine.capacity

    def set_capacity(self, capacity: int) -> None:
        """Change how many requests run at once (queued ones start if it grows)."""
        self.engine.set_capacity(capacity)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Simulator({self.base_url}, {state}, {len(self.records)} requests)"


class _BoundRecords:
    """The engine's records, with output URLs on this simulator's base URL."""

    def __init__(self, simulator: Simulator) -> None:
        self._simulator = simulator

    def request_ids(self) -> list[str]:
        return self._simulator.engine.request_ids()

    def info(self, request_id: str) -> RequestInfo:
        return self._simulator.engine.info(request_id, self._simulator.base_url)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
