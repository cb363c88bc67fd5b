"""The baseline the engine is measured against: a bare anyio + httpx loop.

It makes the calls a batch needs and nothing else: submit, poll the result (at once, or every
``poll_interval`` seconds like the official CLI), download the file, write it. No ledger, no
validation, no retries, no UI, no fsync. Its connection pools are sized as genbatch's (one client
for the API carrying the token, one for files), the size that is fastest for both: the caller
passes genbatch's ``DEFAULT_MAX_CONNECTIONS``, so that this module never imports genbatch (0.4 s
of imports a whole-process baseline must not pay).

Run alone, it is the bare loop as a whole process, against the API named as genbatch's is:

    RUNCOMFY_API_BASE=URL RUNCOMFY_TOKEN=T python benchmarks/baseline.py --jobs 800 \
        --concurrency 64 --max-connections 16 --out out
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
from common import KLING, kling_body


@dataclass(kw_only=True)
class BaselineRun:
    """What the loop saw: when each request was noticed finished, by request id."""

    noticed: dict[str, float] = field(default_factory=dict)
    """Unix time at which the result first read ``succeeded``."""


async def run_baseline(
    *,
    base_url: str,
    token: str,
    jobs: int,
    concurrency: int,
    out_dir: Path,
    max_connections: int,
    poll_interval: float = 0.0,
) -> BaselineRun:
    """Run ``jobs`` jobs, ``concurrency`` at a time; each worker takes the next job."""
    out_dir.mkdir(parents=True, exist_ok=True)
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=3.0,
    )
    run = BaselineRun()
    indexes = iter(range(jobs))
    async with (
        httpx.AsyncClient(
            base_url=base_url,
            limits=limits,
            timeout=60.0,
            headers={"Authorization": f"Bearer {token}"},
        ) as api,
        httpx.AsyncClient(limits=limits, timeout=60.0) as files,
    ):

        async def worker() -> None:
            for index in indexes:  # the iterator is shared: each worker takes the next job
                await _one_job(api, files, index, out_dir, poll_interval, run)

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
    return run


async def _one_job(
    api: httpx.AsyncClient,
    files: httpx.AsyncClient,
    index: int,
    out_dir: Path,
    poll_interval: float,
    run: BaselineRun,
) -> None:
    answer = await api.post(f"/v1/models/{KLING}", json=kling_body(index))
    request_id = answer.raise_for_status().json()["request_id"]
    while True:
        if poll_interval:
            await anyio.sleep(poll_interval)
        result: dict[str, Any] = (
            (await api.get(f"/v1/requests/{request_id}/result")).raise_for_status().json()
        )
        if result["status"] == "succeeded":
            run.noticed[request_id] = time.time()
            break
    url = result["output"]["video"]
    async with files.stream("GET", url) as response:
        response.raise_for_status()
        with (out_dir / f"{index:07d}.mp4").open("wb") as handle:
            async for chunk in response.aiter_bytes():
                handle.write(chunk)


def main(argv: list[str] | None = None) -> None:
    """The bare loop as a whole process; the API from ``RUNCOMFY_API_BASE``/``RUNCOMFY_TOKEN``."""
    parser = argparse.ArgumentParser(description="The bare anyio + httpx loop, as a process.")
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--max-connections", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--poll-interval", type=float, default=0.0, help="sleep before each poll (0: none)"
    )
    args = parser.parse_args(argv)
    run = anyio.run(
        lambda: run_baseline(
            base_url=os.environ["RUNCOMFY_API_BASE"],
            token=os.environ["RUNCOMFY_TOKEN"],
            jobs=args.jobs,
            concurrency=args.concurrency,
            out_dir=args.out,
            max_connections=args.max_connections,
            poll_interval=args.poll_interval,
        )
    )
    print(f"{len(run.noticed)} jobs done")


if __name__ == "__main__":
    main()
