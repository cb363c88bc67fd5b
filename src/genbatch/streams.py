"""Writing to the standard streams when their reader may be gone (a closed pipe).

Kept apart from ``ui`` (which loads rich) so that the command line's error handling, which every
command loads, stays light.
"""

from __future__ import annotations

import os
from typing import TextIO


def write_line(stream: TextIO, line: str) -> None:
    """Write one line and flush; a stream whose reader is gone is silenced, then the error
    raised (the runner stops on it)."""
    try:
        print(line, file=stream, flush=True)
    except OSError:
        silence(stream)
        raise


def silence(stream: TextIO) -> None:
    """Point a closed stream's descriptor at the null device, so later writes (the summary,
    Python's flush at exit) cannot fail (the Python docs' "Note on SIGPIPE")."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return  # not backed by a descriptor: nothing to redirect
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
