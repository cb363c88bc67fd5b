"""What every command shares: one-line errors with the right exit code, common options."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, wraps
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import typer

from genbatch.errors import EXIT_INTERRUPTED, EXIT_OUTPUT_CLOSED, GenbatchError
from genbatch.launch import caused_by_interrupt
from genbatch.streams import silence

if TYPE_CHECKING:
    from rich.console import Console

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

LEDGER_ENVIRONMENT = "Environment: GENBATCH_LEDGER (the ledger, as --ledger), NO_COLOR."
"""The environment variables of the commands that read the ledger, for their epilogs."""


def interrupt_on_sigterm() -> None:
    """Make SIGTERM and SIGHUP (the terminal closed) interrupt like Ctrl-C (a
    ``KeyboardInterrupt``: exit 130, one line) until a run installs its own handler."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)


def exit_on_signals() -> None:
    """Once a run is over and recorded, a Ctrl-C, SIGTERM or SIGHUP ends the command at once
    (exit 130, one line): what is left is its report and closing the ledger, where an
    interrupt raised would surface as a library's logged traceback."""
    from genbatch.launch import exit_interrupted_now

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, exit_interrupted_now)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def fail(message: str, code: int) -> typer.Exit:
    """Print ``genbatch: error: message`` on stderr and return the Exit to raise."""
    try:
        print(f"genbatch: error: {message}", file=sys.stderr, flush=True)
    except OSError:
        silence(sys.stderr)  # stderr is gone too: the exit code is all that is left
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
        except BrokenPipeError:
            # The reader left (``genbatch status | head -1``): it has what it wanted, so exit
            # in silence with the code of SIGPIPE, as ``git log | head`` does. (A run that loses
            # its reader stops itself and says so: ``OutputClosed`` above.)
            silence(sys.stdout)
            raise typer.Exit(EXIT_OUTPUT_CLOSED) from None
        except RuntimeError as exc:
            if caused_by_interrupt(exc):  # a Ctrl-C while a lazily imported class was made
                raise fail("interrupted", EXIT_INTERRUPTED) from None
            raise

    return wrapper


def console(**options: Any) -> Console:
    """A rich console for a command's output (``rich.console.Console(**options)``) that ends
    the command like any other when its reader leaves (``genbatch status | head -1``): the
    ``BrokenPipeError`` reaches ``one_line_errors`` (exit 141, one line), where rich's own
    console would exit 1 in silence, the code that says "some jobs are not done"."""
    return _console_class()(**options)


@cache
def _console_class() -> type[Console]:
    """The console class, made on first use: rich loads only with the commands that draw."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True  # nothing more to write: the reader is gone
            raise BrokenPipeError

    return PipeConsole


@contextmanager
def stop_requested() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs (a server's way to stop: it
    then closes cleanly instead of being interrupted wherever it was)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
