"""The ``genbatch`` command's entry point: its signal handlers first, then everything else.

Loading the command takes a good part of a second (typer, httpx, SQLAlchemy...). A Ctrl-C or a
SIGTERM in that time must end the command like any interruption (exit 130, one line), not with
a traceback or killed by the signal: so the handler is set before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn

EXIT_INTERRUPTED = 130
COLLECTOR_PAUSE_SECONDS = 1.0
"""How long a command runs with Python's cyclic garbage collector off: it loads its modules
in that time, and the collector would walk every object loaded so far again and again (about
0.1 s of a `genbatch status` that takes 0.5 s). A command that lives longer gets it back."""


def main() -> None:
    """Entry point of the ``genbatch`` console script and of ``python -m genbatch``."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)  # the terminal closed: as a Ctrl-C
    _pause_collector()
    try:
        from genbatch.cli import main as run_command

        run_command()  # it reports its own interruptions; this catches one in its first lines
    except Exception as exc:
        if not caused_by_interrupt(exc):
            raise
        print("genbatch: error: interrupted", file=sys.stderr)
        _exit_interrupted()
    except KeyboardInterrupt:
        print("genbatch: error: interrupted", file=sys.stderr)
        _exit_interrupted()
    except SystemExit as exit_:
        if exit_.code == EXIT_INTERRUPTED:
            _exit_interrupted()
        if isinstance(exit_.code, int) or exit_.code is None:
            _exit_now(exit_.code or 0)
        raise
    _exit_now(0)


def _pause_collector() -> None:
    gc.disable()
    resume = threading.Timer(COLLECTOR_PAUSE_SECONDS, _resume_collector)
    resume.daemon = True
    resume.start()


def _resume_collector() -> None:
    # What the start-up loaded (modules, classes, schemas) lives until the exit: frozen, the
    # collections of a long run no longer walk it.
    gc.freeze()
    gc.enable()


def caused_by_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is a Ctrl-C (or SIGTERM) in disguise: Python wraps one that lands while
    a class is being created (``__set_name__``, a dataclass field) in a ``RuntimeError``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _exit_now(code: int) -> NoReturn:
    """Exit with ``code`` once the output is flushed, skipping the interpreter's teardown:
    freeing every object of a command that loaded the API client, the ledger and the schemas
    took 0.3 to 0.8 s after its last line (measured on ``genbatch run``). The command's ``with``
    blocks have all ended by now: every file is closed and the ledger committed; no thread of
    genbatch's is left running."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing can reach it
            stream.flush()
    os._exit(code)


def _exit_interrupted() -> NoReturn:
    """Exit 130, the line already printed. Not by ``SystemExit``: a Ctrl-C caught while the
    command was still loading was seen (about one start in eight, interrupted 0.15 s in) to end
    the process by SIGINT after all, CPython taking the interrupt for unhandled at exit."""
    _exit_now(EXIT_INTERRUPTED)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


def exit_interrupted_now(_signum: int, _frame: FrameType | None) -> NoReturn:
    """A signal handler: one line, then exit 130 at once (output flushed)."""
    with contextlib.suppress(OSError, ValueError):  # the terminal may be gone with the signal
        print("genbatch: error: interrupted", file=sys.stderr)
    _exit_interrupted()
