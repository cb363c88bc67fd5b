"""Who this process is among the workers of a run: several genbatch processes, on one machine or
many, may drive one run through a shared (PostgreSQL) ledger."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

DEFAULT_LEASE_SECONDS = 30.0
"""How long a worker's hold on a job outlives its last heartbeat (renewed every third of it)."""
LEASE_ENV = "GENBATCH_LEASE_SECONDS"


@dataclass(frozen=True, kw_only=True)
class WorkerIdentity:
    """One worker: ``host:pid:random`` (the random part keeps a reused pid distinct)."""

    id: str
    host: str
    pid: int

    @classmethod
    def of_this_process(cls) -> WorkerIdentity:
        """This process as a worker: ``host:pid:random``, unique even when a pid is reused."""
        host, pid = socket.gethostname(), os.getpid()
        return cls(id=f"{host}:{pid}:{secrets.token_hex(3)}", host=host, pid=pid)
