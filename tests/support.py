"""Helpers for end-to-end tests: run the real ``genbatch`` CLI in a subprocess against a simulator.

Nothing here reaches into genbatch's internals: tests drive the CLI, read the ledger through
``genbatch status --json`` or the public Python API, and ask the simulator what it saw.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from genbatch.ledger import Ledger, resolve_location
from genbatch.simulator import Simulator
from genbatch.states import JobState

KLING = "kling/kling-2-6/pro/text-to-video"


def kling_manifest(
    directory: Path, jobs: int, *, name: str = "sweep.yaml", extra: str = "", prefix: str = "clip"
) -> Path:
    """A manifest of ``jobs`` distinct Kling jobs (one prompt per job) writing to ``out/``."""
    prompts = "\n".join(f'  - "{prefix} number {i}"' for i in range(jobs))
    path = directory / name
    path.write_text(
        f"model: {KLING}\nprompts:\n{prompts}\noutput:\n  dir: out\n{extra}", encoding="utf-8"
    )
    return path


def run_args(manifest: Path, *extra: str) -> list[str]:
    """``genbatch run MANIFEST`` with polls fast enough for a scaled simulator."""
    return ["run", str(manifest), "--poll-interval", "0.01", *extra]


def cli_env(simulator: Simulator, ledger: Path, **extra: str) -> dict[str, str]:
    """Environment for a CLI run against ``simulator`` with ``ledger``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCOMFY_", "GENBATCH_"))}
    env.update(
        RUNCOMFY_API_BASE=simulator.base_url,
        RUNCOMFY_TOKEN=simulator.token,
        GENBATCH_LEDGER=str(ledger),
        NO_COLOR="1",
        COLUMNS="200",
    )
    env.update(extra)
    return env


def genbatch(
    args: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``genbatch ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "genbatch", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


_STARTED: list[subprocess.Popen[str]] = []
"""Processes ``start_genbatch`` started during the current test (``stop_leftover_processes``)."""


def start_genbatch(args: Sequence[str], *, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """Start ``genbatch ARGS`` in the background (killed when the test ends, if still running)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "genbatch", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _STARTED.append(process)
    return process


def stop_leftover_processes() -> None:
    """Kill and reap what the test started and left running (a test failing halfway): left to
    the garbage collector, a running process warns in whichever test comes next."""
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a frozen one, too
            process.kill()
        process.communicate()


def status_json(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """``genbatch status --json``, run and parsed (workers included)."""
    done = genbatch(["status", "--json"], env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def status(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """The ledger's counts, shaped like ``genbatch status --json``.

    Read in-process through the public Ledger API: a CLI process costs most of a second, and
    tests poll this. ``genbatch status --json`` itself is tested in test_run.py.
    """
    ledger = Ledger.open(resolve_location(env["GENBATCH_LEDGER"], cwd=cwd))
    try:
        totals = {state.value: 0 for state in JobState}
        runs = []
        for run in ledger.runs():
            counts = {state.value: n for state, n in ledger.counts(run.id).items()}
            for name, n in counts.items():
                totals[name] += n
            runs.append({"run": run.name, "counts": counts, "total": sum(counts.values())})
        return {"counts": totals, "total": sum(totals.values()), "runs": runs}
    finally:
        ledger.close()


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def kill(
    process: subprocess.Popen[str], sig: int = signal.SIGKILL, timeout: float = 30
) -> tuple[int, str, str]:
    """Send ``sig`` and collect the exit code and output."""
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# What genbatch writes beside the outputs: not outputs themselves.
SIDE_FILES = frozenset({"metadata.jsonl", "gallery.html"})


def output_files(directory: Path) -> list[Path]:
    """Visible output files of an output directory (no .part leftovers, no metadata), sorted."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name not in SIDE_FILES
    )


class InProcessTransport(httpx.ASGITransport):
    """The simulator's app called in-process, a dropped connection reading as a reset.

    Served by uvicorn, the simulator drops a connection by closing its socket; with no socket it
    raises ``ConnectionAbortedError``, which ``ASGITransport`` lets through untranslated.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except ConnectionAbortedError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc


@contextlib.contextmanager
def mounted_tmpfs(mount_point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``64k``, ``1m``) mounted at ``mount_point`` for the block; the test
    is skipped where mounting needs a root this process lacks."""
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root: cannot fill a disk here")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
