"""What every benchmark shares: the simulator process, child processes measured with
``wait4``, manifests of any size, percentiles and the result rows ``run.py`` prints."""

from __future__ import annotations

import atexit
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
KLING = "kling/kling-2-6/pro/text-to-video"
CHILD_TIMEOUT = 900.0


@dataclass(frozen=True, kw_only=True)
class Row:
    """One figure as printed: the measured value next to its baseline from the same run."""

    figure: int
    label: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None
    """None when the row has no target of its own (context for another row)."""

    @property
    def ratio(self) -> float | None:
        """value / baseline."""
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline


@dataclass(frozen=True, kw_only=True)
class Usage:
    """What a child process cost: wall seconds, CPU seconds, peak resident memory."""

    wall: float
    cpu: float
    peak_mb: float


# -- child processes ------------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child: ours, minus anything that would point genbatch elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNCOMFY_", "GENBATCH_"))}
    env.update(NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
    # A list of ledgers of its own (ledger_registry): the same manifest run fresh in another
    # folder, pair after pair, is what a benchmark does on purpose.
    state = tempfile.mkdtemp(prefix="genbatch-bench-state-")
    atexit.register(shutil.rmtree, state, ignore_errors=True)
    env["XDG_STATE_HOME"] = state
    env.update(extra)
    return env


def wait_measured(
    process: subprocess.Popen[Any], started: float, timeout: float = CHILD_TIMEOUT
) -> Usage:
    """Reap ``process`` with ``wait4``: its own rusage, not the sum of every child's."""
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.005)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return Usage(
        wall=wall, cpu=usage.ru_utime + usage.ru_stime, peak_mb=usage.ru_maxrss / 1024
    )  # Linux reports kilobytes


def run_child(
    args: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[str, Usage]:
    """Run ``python ARGS`` to completion; its stdout and what it cost. Fails loudly."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, *args],
        env=env or child_env(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The pipes are read after exit: every child here prints little.
    usage = wait_measured(process, started)
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {process.returncode}: {err[-2000:]}")
    return out, usage


def median_wall(args: Sequence[str], runs: int, **env_extra: str) -> float:
    """Median wall seconds of ``python ARGS`` run ``runs`` times, after one warm-up run, with
    bytecode caching on, as on a user's machine (pip compiles a package when it installs it)."""
    env = {k: v for k, v in child_env(**env_extra).items() if k != "PYTHONDONTWRITEBYTECODE"}
    run_child(args, env=env)  # warm-up: bytecode caches written
    walls = []
    for _ in range(runs):
        started = time.monotonic()
        run_child(args, env=env)
        walls.append(time.monotonic() - started)
    return statistics.median(walls)


def run_worker(script: str, task: str, params: dict[str, Any]) -> tuple[dict[str, Any], Usage]:
    """Run ``benchmarks/SCRIPT worker TASK PARAMS`` and return its JSON answer and its cost."""
    out, usage = run_child([str(BENCH_DIR / script), "worker", task, json.dumps(params)])
    answer: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return answer, usage


def worker_main(tasks: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """Entry point of a benchmark script run as ``SCRIPT worker TASK PARAMS``."""
    _, _, task, params = sys.argv
    print(json.dumps(tasks[task](json.loads(params))), flush=True)


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the simulator --------------------------------------------------------------------------------


class SimProcess:
    """``benchmarks/simserver.py`` in a child process (its CPU never counts as genbatch's)."""

    def __init__(self, **config: Any) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "simserver.py"), json.dumps(config)],
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = self._read()
        self.base_url: str = hello["base_url"]
        self.token: str = hello["token"]

    def _read(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process ended unexpectedly")
        return json.loads(line)

    def ask(self, command: str) -> Any:
        """Send one command (``stats``, ``records``) and return its JSON answer."""
        assert self._process.stdin is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        return self._read()

    def api_calls(self) -> int:
        """Submit, status and result calls so far (file downloads excluded)."""
        calls = self.ask("stats")["calls"]
        return int(sum(calls.get(route, 0) for route in ("submit", "status", "result")))

    def close(self) -> None:
        """Stop the simulator and reap its process."""
        if self._process.poll() is None:
            assert self._process.stdin is not None
            try:
                self._process.stdin.write("quit\n")
                self._process.stdin.close()
                self._process.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def env(self, ledger: Path) -> dict[str, str]:
        """The environment for ``genbatch run`` against this simulator and ``ledger``."""
        return child_env(
            RUNCOMFY_API_BASE=self.base_url, RUNCOMFY_TOKEN=self.token, GENBATCH_LEDGER=str(ledger)
        )

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- manifests ------------------------------------------------------------------------------------


def prompt_text(index: int) -> str:
    """The prompt of job ``index`` (the same for genbatch and for the baselines)."""
    return f"benchmark clip number {index}"


def kling_body(index: int) -> dict[str, Any]:
    """Exactly the body genbatch POSTs for job ``index`` of ``write_manifest``'s manifest."""
    return {"prompt": prompt_text(index), "duration": 5, "generate_audio": False}


def write_manifest(
    directory: Path, jobs: int, *, name: str = "bench", concurrency: int | None = 64
) -> Path:
    """A manifest of ``jobs`` Kling jobs, one prompt each from a prompt file, output in out/."""
    directory.mkdir(parents=True, exist_ok=True)
    prompts = directory / f"{name}-prompts.txt"
    prompts.write_text("".join(prompt_text(i) + "\n" for i in range(jobs)), encoding="utf-8")
    path = directory / f"{name}.yaml"
    path.write_text(
        f"model: {KLING}\nname: {name}\n"
        + ("" if concurrency is None else f"concurrency: {concurrency}\n")
        + f"max_jobs: {max(jobs, 1)}\n"
        f"inputs: {{duration: 5, generate_audio: false}}\n"
        f"prompts: {{file: {prompts.name}}}\n"
        f'output: {{dir: out-{name}, name: "{{index:07d}}-{{key}}"}}\n',
        encoding="utf-8",
    )
    return path


def write_grid_manifest(directory: Path, side: int, *, name: str = "grid") -> Path:
    """A manifest of ``side`` x ``side`` jobs from one prompt template and a two-axis grid."""
    directory.mkdir(parents=True, exist_ok=True)
    axis = ", ".join(str(i) for i in range(side))
    path = directory / f"{name}.yaml"
    path.write_text(
        f"model: {KLING}\nname: {name}\nmax_jobs: {side * side}\n"
        f"inputs: {{duration: 5, generate_audio: false}}\n"
        f'prompts: ["a red fox, take {{a}} of scene {{b}}"]\n'
        f"grid:\n  a: [{axis}]\n  b: [{axis}]\n"
        f'output: {{dir: out-{name}, name: "{{index:07d}}"}}\n',
        encoding="utf-8",
    )
    return path


# -- statistics -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
