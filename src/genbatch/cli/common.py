"""What every command shares: one-line errors with the right exit code, common options."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import typer

from genbatch.errors import EXIT_INTERRUPTED, GenbatchError

P = ParamSpec("P")
R = TypeVar("R")

LEDGER_OPTION = typer.Option(
    None,
    "--ledger",
    "-l",
    metavar="PATH_OR_URL",
    help="Ledger file or postgresql:// URL [default: $GENBATCH_LEDGER, else .genbatch/ledger.db "
    "in the nearest folder, from the manifest's up, that has a .genbatch/ (a run creates it "
    "beside the manifest)]",
)


def fail(message: str, code: int) -> typer.Exit:
    """Print ``genbatch: error: message`` on stderr and return the Exit to raise."""
    print(f"genbatch: error: {message}", file=sys.stderr)
    return typer.Exit(code)


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn genbatch's errors into one line on stderr and their exit code: never a traceback."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except GenbatchError as exc:
            raise fail(str(exc), exc.exit_code) from None  # one line already
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None

    return wrapper
