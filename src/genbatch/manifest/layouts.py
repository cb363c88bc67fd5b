"""Canonical JSON of a block's jobs, assembled from parts encoded once per block.

Every job of a block has the same input and variable names; only some values change from job to
job (the rendered templates, the grid and zip values). A ``JsonLayout`` is the canonical JSON of
such a dict with the constant values already encoded and a positional slot for each changing
one, so a job's text is one ``%`` formatting instead of a walk of the dict. The text is
byte-identical to ``genbatch.jobs.canonical_json`` of the dict (a test holds it to that): keys
sorted, no spaces, values encoded by ``canonical_json`` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from operator import itemgetter
from typing import Any

from genbatch.jobs import canonical_json

__all__ = ["Constant", "JsonLayout", "Slot", "encode_value"]


@dataclass(frozen=True, slots=True)
class Constant:
    """A value the same for every job of the block."""

    value: Any


@dataclass(frozen=True, slots=True)
class Slot:
    """A value given per job, as its already encoded JSON, at this position."""

    index: int


def encode_value(value: Any) -> str:
    """The canonical JSON of one value; strings (the common case) skip the encoder."""
    if type(value) is str:
        # What the encoder does for a string when ensure_ascii is off, minus its setup.
        return encode_basestring(value)
    return canonical_json(value)


class JsonLayout:
    """The canonical JSON of a dict with fixed keys; ``render`` fills in the slots."""

    def __init__(self, parts: Mapping[str, Constant | Slot]) -> None:
        pieces: list[str] = []
        slots: list[int] = []
        for position, name in enumerate(sorted(parts)):
            # sort_keys orders the items by key; every key here is a str (the schema says so).
            pieces.append(_escape(("{" if position == 0 else ",") + encode_value(name) + ":"))
            part = parts[name]
            if isinstance(part, Slot):
                pieces.append("%s")
                slots.append(part.index)
            else:
                pieces.append(_escape(encode_value(part.value)))
        pieces.append("}" if parts else "{}")
        # printf-style formatting: a third quicker than str.format for these few short values.
        self._format = "".join(pieces)
        self._pick: Callable[[Sequence[str]], tuple[str, ...]] = (
            itemgetter(*slots) if len(slots) > 1 else _one_or_none(slots)
        )

    def render(self, slots: Sequence[str]) -> str:
        """The JSON text, with ``slots[i]`` (encoded JSON) at each ``Slot(i)``."""
        return self._format % self._pick(slots)

    def __repr__(self) -> str:
        return f"JsonLayout({self._format!r})"


def _one_or_none(slots: list[int]) -> Callable[[Sequence[str]], tuple[str, ...]]:
    """The picker of a layout with one slot or none (``itemgetter`` of one index gives no tuple)."""
    if not slots:
        return lambda _values: ()
    index = slots[0]
    return lambda values: (values[index],)


def _escape(text: str) -> str:
    return text.replace("%", "%%")
