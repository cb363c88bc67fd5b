"""Where a manifest value comes from (file and line), and how to name it in a message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from genbatch.errors import ManifestError

__all__ = ["Path_", "Source", "did_you_mean", "render_path"]

Path_ = tuple[str | int, ...]
"""Keys and list indexes from the document's root to a value, e.g. ``("grid", "seed", 2)``."""


@dataclass(frozen=True, slots=True)
class Source:
    """A file and 1-based line: the manifest itself, or a prompt file."""

    file: str
    line: int | None = None

    def error(self, message: str, field: str | None = None) -> ManifestError:
        """A ``ManifestError`` pointing here."""
        return ManifestError(message, file=self.file, line=self.line, field=field)

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


def render_path(path: Path_) -> str:
    """``("jobs", 0, "grid", "seed", 2)`` as ``jobs[0].grid.seed[2]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
