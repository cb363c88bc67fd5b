"""Control over the raw connection, which ASGI does not give: close it mid-answer, or early.

uvicorn copies a protocol's ``app_state`` into each request's ``scope["state"]``; our protocol
puts its own transport there when the connection opens, so a fault can close exactly that
connection (before any byte, or after a partial body) and the client sees what a real
reset shows: ``httpx.RemoteProtocolError`` or ``httpx.ReadError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from starlette.types import Receive, Scope
from uvicorn.protocols.http.h11_impl import H11Protocol

TRANSPORT_KEY = "genbatch.simulator.transport"


class SimulatorProtocol(H11Protocol):
    """uvicorn's h11 protocol, exposing each connection's transport to the app."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # uvicorn's own signature is narrower than asyncio's, hence the ignore, as upstream.
        self.app_state = {**self.app_state, TRANSPORT_KEY: transport}
        super().connection_made(transport)


async def close_connection(scope: Scope, receive: Receive) -> None:
    """Close the client's connection now, whatever was sent so far, and wait until it is gone.

    Waiting for the disconnect matters: returning earlier makes uvicorn think the app
    forgot to answer, and it would send a 500 instead of leaving the client with nothing.
    """
    transport: asyncio.Transport | None = scope.get("state", {}).get(TRANSPORT_KEY)
    if transport is None:
        # Served by something else than our protocol: the next best thing is an exception,
        # which closes the connection once a response has started.
        raise ConnectionAbortedError("simulated dropped connection")
    transport.close()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2.0):
            await until_disconnected(receive)


async def until_disconnected(receive: Receive) -> None:
    """Return once the client has gone (consuming any request body still unread)."""
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            return


async def pause(receive: Receive, seconds: float, closing: asyncio.Event) -> bool:
    """Wait ``seconds``; True if the client left or the server is closing meanwhile."""
    if seconds <= 0:
        return False
    waiters = [
        asyncio.ensure_future(until_disconnected(receive)),
        asyncio.ensure_future(closing.wait()),
    ]
    done, pending = await asyncio.wait(
        waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
    )
    for waiter in pending:
        waiter.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return bool(done)
