"""The whole process, this checkout against another commit: ``genbatch run`` of the same 800
jobs (``bench_process.measure_side``), the two sources alternating, CPU per 1,000 jobs.

The other commit's ``src`` is extracted from git into a temporary folder and put first on the
child's ``PYTHONPATH``; after one untimed warm-up each, ``--rounds`` pairs run back to back,
the side going first alternating. A ratio below 1: this checkout spends less CPU per job.

    python benchmarks/ab_process.py --base main [--jobs 800] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tarfile
import tempfile
from pathlib import Path

from bench_process import measure_side
from common import BENCH_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--jobs", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "archive", args.base, "src"], check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(Path(tmp) / "base", filter="data")
        sources = {"base": str(Path(tmp) / "base" / "src"), "this": str(BENCH_DIR.parent / "src")}
        cpu: dict[str, list[float]] = {side: [] for side in sources}
        for round_ in range(args.rounds + 1):
            order = list(sources) if round_ % 2 == 0 else list(reversed(sources))
            for side in order:
                os.environ["PYTHONPATH"] = sources[side]
                jobs = args.jobs if round_ else 40  # round 0 warms up (bytecode, caches)
                measured = measure_side("genbatch", jobs, Path(tmp) / f"{side}-{round_}")
                if round_:
                    cpu[side].append(measured.usage.cpu / jobs * 1000)
                    print(f"round {round_} {side}: {cpu[side][-1]:.2f} CPU s per 1,000 jobs")
    base, this = (statistics.median(cpu[side]) for side in ("base", "this"))
    print(f"median CPU s per 1,000 jobs: {args.base} {base:.2f}, this checkout {this:.2f}")
    print(f"ratio this/{args.base}: {this / base:.3f}, load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
