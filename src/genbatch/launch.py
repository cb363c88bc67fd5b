"""The ``genbatch`` command's entry point: its signal handlers first, then everything else.

Loading the command takes a good part of a second (typer, httpx, SQLAlchemy...). A Ctrl-C or a
SIGTERM in that time must end the command like any interruption (exit 130, one line), not with
a traceback or killed by the signal: so the handler is set before anything heavy is imported.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import NoReturn

EXIT_INTERRUPTED = 130


def main() -> None:
    """Entry point of the ``genbatch`` console script and of ``python -m genbatch``."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        from genbatch.cli import main as run_command
    except KeyboardInterrupt:
        print("genbatch: error: interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    run_command()


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt
