"""One Arrow type per column: what Parquet and the Hugging Face folder loaders need of rows.

Export rows come from every block of a run, so one column may hold ``5`` in one block and
``"5"`` in another, and ``inputs``/``variables`` hold objects whose keys differ by block. Arrow
(pyarrow, ``datasets``) refuses a column of two types, so a first pass over the rows notes what
each column holds, and every row is then written with each column in one type:

- only booleans, only integers, only strings: kept as they are;
- integers and floats: floats;
- objects, lists, or a mix of the above: JSON text (``json.loads`` gives the value back).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

__all__ = ["ColumnKind", "ColumnPlan"]


class ColumnKind(StrEnum):
    """The one type a column is written in."""

    NULL = "null"
    """Every value is null (a rating column of a run nobody reviewed)."""
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    STRING = "string"
    JSON = "json"
    """JSON text: objects, lists, or values of several types."""


_SCALARS = (ColumnKind.BOOL, ColumnKind.INT, ColumnKind.FLOAT, ColumnKind.STRING)


class ColumnPlan:
    """The columns of a set of rows, in the order first seen, and the kind of each."""

    def __init__(self) -> None:
        self._seen: dict[str, set[ColumnKind]] = {}

    @classmethod
    def of(cls, rows: Iterable[dict[str, Any]]) -> ColumnPlan:
        """The plan of ``rows`` (read once)."""
        plan = cls()
        for row in rows:
            plan.observe(row)
        return plan

    def observe(self, row: dict[str, Any]) -> None:
        """Note the columns of ``row`` and the type of each value."""
        for name, value in row.items():
            kinds = self._seen.setdefault(name, set())
            if value is not None:
                kinds.add(_kind_of(value))

    @property
    def columns(self) -> list[str]:
        """Every column seen, in the order first seen."""
        return list(self._seen)

    def kind(self, column: str) -> ColumnKind:
        """The one type ``column`` is written in."""
        kinds = self._seen[column]
        if not kinds:
            return ColumnKind.NULL
        if kinds == {ColumnKind.INT, ColumnKind.FLOAT}:
            return ColumnKind.FLOAT
        if len(kinds) == 1 and next(iter(kinds)) in _SCALARS:
            return next(iter(kinds))
        return ColumnKind.JSON

    def normalise(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with every column of the plan (null where it has none), each in its kind."""
        return {name: _convert(row.get(name), self.kind(name)) for name in self._seen}


def _kind_of(value: Any) -> ColumnKind:
    # bool before int: True is an int to Python, not to Arrow.
    if isinstance(value, bool):
        return ColumnKind.BOOL
    if isinstance(value, int):
        return ColumnKind.INT
    if isinstance(value, float):
        return ColumnKind.FLOAT
    if isinstance(value, str):
        return ColumnKind.STRING
    return ColumnKind.JSON


def _convert(value: Any, kind: ColumnKind) -> Any:
    if value is None:
        return None
    if kind == ColumnKind.JSON:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if kind == ColumnKind.FLOAT:
        return float(value)
    return value
