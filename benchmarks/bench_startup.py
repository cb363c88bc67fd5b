"""Figure 9: how long the commands a user types without thinking take, start to exit.

``genbatch --version``, ``genbatch run --help`` and a TAB of bash completion, each a whole
process, median of several, against the bare interpreter started the same way in the same run
(the floor no command can go under). Bytecode caching is left on, as on a user's machine (pip
compiles the package when it installs it): one warm-up run of each writes the caches first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from common import Row, median_wall

RUNS = 7
QUICK_RUNS = 2
TARGET_SECONDS = 0.25

GENBATCH = str(Path(sys.executable).with_name("genbatch"))
"""The console script pip installed, as a shell runs it (its name is what completion keys on)."""

COMMANDS: dict[str, tuple[list[str], dict[str, str]]] = {
    "genbatch --version": ([GENBATCH, "--version"], {}),
    "genbatch run --help": ([GENBATCH, "run", "--help"], {}),
    "shell completion (TAB)": (
        [GENBATCH],
        {"_GENBATCH_COMPLETE": "complete_bash", "COMP_WORDS": "genbatch gal", "COMP_CWORD": "1"},
    ),
}


def run(quick: bool) -> list[Row]:
    """Figure 9."""
    runs = QUICK_RUNS if quick else RUNS
    floor = median_wall(["-c", "pass"], runs)
    rows = []
    for label, (args, extra) in COMMANDS.items():
        seconds = median_wall(args, runs, **extra)
        rows.append(
            Row(
                figure=9,
                label=f"{label} (median of {runs}, {os.cpu_count()} CPUs)",
                value=seconds,
                unit="s",
                baseline=floor,
                baseline_label="python -c pass",
                target=f"under {TARGET_SECONDS} s",
                met=seconds < TARGET_SECONDS,
            )
        )
    return rows
