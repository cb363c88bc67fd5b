"""``Simulator``: the simulated API served over real HTTP on loopback, from a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
import time
from email.utils import formatdate
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.server import ServerState

from genbatch.simulator.app import SimulatorApp
from genbatch.simulator.config import SimulatorConfig
from genbatch.simulator.connection import SimulatorProtocol
from genbatch.simulator.engine import Engine
from genbatch.simulator.faults import FaultInjector, check_injection
from genbatch.simulator.records import RecordsView, RequestInfo
from genbatch.simulator.stats import SimulatorStats

_START_TIMEOUT = 10.0
_STOP_GRACE = 1.0


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
        self._stopping = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._port = self.config.port
        self._file_port = self.config.file_port

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Bind the port and serve in a background thread; returns once it answers."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        sockets = self._bind_sockets()
        self.app.closing = asyncio.Event()
        self._stopping = asyncio.Event()
        ready = threading.Event()
        thread = threading.Thread(
            target=self._serve,
            args=(sockets, ready),
            name=f"genbatch-simulator:{self._port}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        if not ready.wait(_START_TIMEOUT) or self._loop is None:
            self.stop()
            raise RuntimeError("the simulator did not start")
        return self

    def _bind_sockets(self) -> list[tuple[socket.socket, ASGIApp]]:
        """The API's socket, and the file host's when there is one (ports kept for a restart)."""
        sock = _bind(self.config.host, self._port)
        self._port = sock.getsockname()[1]
        served: list[tuple[socket.socket, ASGIApp]] = [(sock, self.app)]
        if self.config.file_host:
            try:
                files = _bind(self.config.host, self._file_port)
            except OSError:
                sock.close()
                raise
            self._file_port = files.getsockname()[1]
            self.app.files_base = self.files_url
            served.append((files, self.app.file_host()))
        return served

    def _serve(self, sockets: list[tuple[socket.socket, ASGIApp]], ready: threading.Event) -> None:
        try:
            asyncio.run(self._serve_until_stopped(sockets, ready))
        finally:
            for sock, _ in sockets:
                sock.close()
            ready.set()

    async def _serve_until_stopped(
        self, sockets: list[tuple[socket.socket, ASGIApp]], ready: threading.Event
    ) -> None:
        state = ServerState()
        servers = [await _serve_socket(sock, app, state) for sock, app in sockets]
        clock = asyncio.ensure_future(_keep_date_header(state))
        self._loop = asyncio.get_running_loop()
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            clock.cancel()
            for server in servers:
                server.close()
            await _close_connections(state)

    def stop(self) -> None:
        """Stop serving (in-flight slow answers are cut) and wait for the thread to end."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                # ``closing`` wakes answers sleeping in a slow fault, so none holds the stop.
                loop.call_soon_threadsafe(self.app.closing.set)
                loop.call_soon_threadsafe(self._stopping.set)
        thread.join(timeout=_START_TIMEOUT)
        self._thread = self._loop = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
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
        """The API base, e.g. ``http://127.0.0.1:40123``; output files are served there too,
        unless the config names a ``file_host``."""
        return f"http://{_url_host(self.config.host)}:{self._port}"

    @property
    def files_url(self) -> str:
        """The base of the URLs output files are fetched from: the file host's (e.g.
        ``http://localhost:40124``) when the config names one, else ``base_url``."""
        if not self.config.file_host:
            return self.base_url
        return f"http://{_url_host(self.config.file_host)}:{self._file_port}"

    @property
    def file_port(self) -> int | None:
        """The file host's port (None without a file host)."""
        return self._file_port if self.config.file_host else None

    @property
    def token(self) -> str:
        """The only bearer token the API accepts."""
        return self.config.token

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header that the API accepts."""
        return {"Authorization": f"Bearer {self.config.token}"}

    # -- steering it from a test ------------------------------------------------------------

    def inject(self, route: str, fault: str, count: int = 1, **params: Any) -> None:
        """Apply ``fault`` to the next ``count`` calls of ``route``, before any random fault.

        route: submit, status, result, poll (status or result), cancel, catalog, file, any.
        fault: a FaultKind value (rate_limit, slow, lost_answer, ...); params as it documents
        (``retry_after``, ``delay``, ``keep``, ``error``). ValueError for a bad combination.
        """
        planned = check_injection(route, fault, count, params)
        self.faults.inject(route, planned, count)

    def adopt(
        self, request_id: str, model_id: str, body: dict[str, Any], *, generated: bool = False
    ) -> bool:
        """Take on a request another simulator created (see ``Engine.adopt``)."""
        return self.engine.adopt(request_id, model_id, body, generated=generated)

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
        base = self._simulator.app.output_base(self._simulator.base_url)
        return self._simulator.engine.info(request_id, base)


async def _serve_socket(sock: socket.socket, app: ASGIApp, state: ServerState) -> asyncio.Server:
    # uvicorn's protocol on a plain asyncio server: uvicorn.Server would add a 0.1 s
    # tick to notice a stop and a fixed 0.1 s pause to shut down, on every test.
    config = uvicorn.Config(
        app,
        http=SimulatorProtocol,
        lifespan="off",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        ws="none",
        timeout_keep_alive=30,
    )
    config.load()
    return await asyncio.get_running_loop().create_server(
        lambda: SimulatorProtocol(config=config, server_state=state, app_state={}),
        sock=sock,
        backlog=2048,
    )


async def _keep_date_header(state: ServerState) -> None:
    while True:
        state.default_headers = [(b"date", formatdate(usegmt=True).encode())]
        await asyncio.sleep(1.0)


async def _close_connections(state: ServerState) -> None:
    # Idle keep-alive connections close at once; busy ones after their answer, within a bound.
    for connection in list(state.connections):
        connection.shutdown()
    deadline = time.monotonic() + _STOP_GRACE
    while (state.connections or state.tasks) and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    for task in list(state.tasks):
        task.cancel()
    if state.tasks:
        await asyncio.gather(*state.tasks, return_exceptions=True)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only sets TCP_NODELAY on such sockets, and without it every
    # answer (headers and body written apart) waits 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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
