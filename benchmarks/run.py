"""genbatch's benchmarks: one command, every figure next to a baseline measured in the same run.

    python benchmarks/run.py            # every figure at full size (about 10 minutes)
    python benchmarks/run.py --only 2   # one figure (1 and 6 come from the same run)
    python benchmarks/run.py --quick    # tiny sizes: checks that everything runs (seconds)

Each figure runs its processes one after the other (the simulator in its own process on
loopback); see docs/benchmarks.md for what each measures and the figures of the last run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_capacity  # benchmarks/ is put on the path just above
import bench_engine
import bench_exit
import bench_plan
import bench_polling
import bench_process
import bench_resume
import bench_sample
import bench_startup
import scale_out
from common import Row

FIGURES: dict[int, tuple[str, Callable[[bool], list[Row]]]] = {
    1: ("engine overhead (and 6: the ledger's write path)", bench_engine.run),
    2: ("polling economy", bench_polling.run),
    3: ("planning at scale", bench_plan.run),
    4: ("resume at scale", bench_resume.run_resume),
    5: ("memory stays flat", bench_resume.run_memory),
    7: ("scale-out across workers (PostgreSQL)", scale_out.run),
    8: ("whole process, `genbatch run` as users meet it (issues 12 and 16)", bench_process.run),
    9: ("start-up: --version, --help, shell completion (issue 16)", bench_startup.run),
    10: ("sampling a 10^9 space (issue 19)", bench_sample.run),
    11: ("exit in a big ledger: metadata.jsonl appended (issue 16)", bench_exit.run),
    12: ("the account's capacity is the limit (issue 16, target 4)", bench_capacity.run),
}


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value != 0 and abs(value) < 0.01:
        return f"{value:.4f}"
    return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"


def _verdict(row: Row, quick: bool) -> str:
    if row.met is None:
        return ""
    if quick:
        return f"[{row.target}; not judged at --quick sizes]"
    return f"[{'met' if row.met else 'MISSED'}: {row.target}]"


def format_row(row: Row, quick: bool) -> str:
    """One printed line: figure, label, value, baseline, ratio, verdict."""
    value = f"{_number(row.value)} {row.unit}".strip()
    base = ""
    if row.baseline is not None:
        base = f"  vs {_number(row.baseline)} ({row.baseline_label})  ratio {_number(row.ratio)}"
    return f"  {row.figure}. {row.label}: {value}{base}  {_verdict(row, quick)}".rstrip()


def main(argv: list[str] | None = None) -> int:
    """Run the chosen figures and print them; ``--json FILE`` also saves them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument(
        "--only",
        type=int,
        action="append",
        choices=sorted(FIGURES),
        help="run only this figure (repeatable; 6 comes with 1)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows here")
    args = parser.parse_args(argv)
    chosen = args.only or sorted(FIGURES)
    print(
        f"genbatch benchmarks ({'quick' if args.quick else 'full'} sizes) on "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}",
        flush=True,
    )
    rows: list[Row] = []
    for number in chosen:
        title, bench = FIGURES[number]
        started = time.monotonic()
        print(f"\n{number}: {title}", flush=True)
        figure_rows = bench(args.quick)
        for row in figure_rows:
            print(format_row(row, args.quick), flush=True)
        print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
        rows.extend(figure_rows)
    if args.json:
        args.json.write_text(
            json.dumps([asdict(r) | {"ratio": r.ratio} for r in rows], indent=1), encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
