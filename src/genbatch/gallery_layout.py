"""How a gallery lays a run out: its grids (one per job block), and each grid's rows and columns.

Every job is described by its *facets*: ``model``, ``block``, ``repeat``, its template variables
and grid axes, and its inputs (``prompt`` among them). A key whose value differs between the
jobs of a grid is one of that grid's swept keys; the page offers each as rows, columns or a
filter.

The default rows and columns are the two swept keys with the most values that are independent
of each other. A key that another one decides does not pair with it (with ``{animal}`` in the
prompt, ``animal`` next to ``prompt`` would leave most cells empty), and the prompt counts only
when the other keys do not already make it (a template filled by the sweep's variables is not
an axis of its own; a list of prompts is).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from genbatch.errors import UsageError
from genbatch.ledger import JobOutputs

MISSING = "—"
BLOCK = "block"
_RANK = {"repeat": 1, "model": 2, "block": 3}
"""Ties in the number of values go to the sweep's own keys first, then to its outer loops."""

Table = Sequence[dict[str, str]]


@dataclass(frozen=True, kw_only=True)
class Axes:
    """The keys laid out as rows and columns (None: a single row or column)."""

    rows: str | None
    cols: str | None


@dataclass(frozen=True, kw_only=True)
class Section:
    """One grid of the page: a job block, or the whole run."""

    name: str | None
    """The block's name; None when the page has one grid."""
    members: tuple[int, ...]
    """Indices of the grid's jobs in the page's list."""
    swept: dict[str, list[str]]
    """Keys that vary within the grid, each with its values in manifest order; the keys in the
    manifest's loop order (outermost first), derived ones last."""
    derived: frozenset[str]
    """Swept keys the others make (a prompt template filled by the variables)."""
    axes: Axes

    def cells(self, table: Table) -> int:
        """The cells of the initial layout (combinations of rows and columns that have jobs)."""
        return len({self.cell_of(table[index]) for index in self.members})

    def cell_of(self, values: dict[str, str]) -> tuple[str, str]:
        """The (row, column) values of a job in the initial layout."""
        return (_value(values, self.axes.rows), _value(values, self.axes.cols))


def _value(values: dict[str, str], axis: str | None) -> str:
    return values.get(axis, MISSING) if axis else ""


def facets(item: JobOutputs) -> dict[str, str]:
    """What a job can be arranged by, as display text: model, block, repeat, its variables
    (in the manifest's order), then its inputs (a variable wins on a shared name)."""
    job = item.job
    values = {"model": job.model_id, BLOCK: job.block, "repeat": str(job.repeat_index)}
    values.update({name: display(value) for name, value in job.variables.items()})
    for name, value in job.inputs.items():
        values.setdefault(name, display(value))
    return values


def display(value: Any) -> str:
    """A value as a person reads it: text as is, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def varying_keys(table: Table) -> dict[str, list[str]]:
    """Keys with at least two distinct values, each with its values in first-seen order."""
    names: dict[str, None] = {}
    for values in table:
        names.update(dict.fromkeys(values))
    found = {}
    for name in names:
        seen = list(dict.fromkeys(values.get(name, MISSING) for values in table))
        if len(seen) > 1:
            found[name] = seen
    return found


def sections(table: Table, *, rows: str | None = None, cols: str | None = None) -> list[Section]:
    """The page's grids: one per job block, or one for the run when ``block`` is an axis.

    ``rows`` and ``cols`` are the user's initial choice; a grid where that key does not vary
    falls back to its own default.
    """
    _check_choice(table, rows, cols)
    blocks: dict[str, list[int]] = {}
    for index, values in enumerate(table):
        blocks.setdefault(values.get(BLOCK, MISSING), []).append(index)
    if len(blocks) == 1 or BLOCK in (rows, cols):
        blocks = {"": list(range(len(table)))}
    named = len(blocks) > 1
    return [
        _section(table, name if named else None, members, rows, cols)
        for name, members in blocks.items()
    ]


def _section(
    table: Table, name: str | None, members: list[int], rows: str | None, cols: str | None
) -> Section:
    own = [table[index] for index in members]
    varying = varying_keys(own)
    derived = frozenset(key for key in varying if _is_derived(own, key, varying))
    loops = sorted(varying, key=lambda key: (key in derived, _changes(own, key)))
    return Section(
        name=name,
        members=tuple(members),
        swept={key: varying[key] for key in loops},
        derived=derived,
        axes=choose_axes(own, rows=rows, cols=cols),
    )


def _check_choice(table: Table, rows: str | None, cols: str | None) -> None:
    known = {name for values in table for name in values}
    for option, key in (("--rows", rows), ("--cols", cols)):
        if key is not None and key not in known:
            raise UsageError(
                f"{option}: no job has '{key}'; choose from {', '.join(sorted(known)) or 'nothing'}"
            )
    if rows is not None and rows == cols:
        raise UsageError(f"--rows and --cols both name '{rows}'; choose two different keys")


def choose_axes(table: Table, *, rows: str | None = None, cols: str | None = None) -> Axes:
    """The rows and columns of one grid: the user's choice where it varies, else the two
    independent swept keys with the most values (see the module's docstring)."""
    varying = varying_keys(table)
    rows = rows if rows in varying else None
    cols = cols if cols in varying else None
    ranked = _candidates(table, varying)
    if rows is None:
        rows = _first_unrelated(table, ranked, cols)
    if cols is None:
        cols = _first_unrelated(table, ranked, rows)
    return Axes(rows=rows, cols=cols)


def _candidates(table: Table, varying: dict[str, list[str]]) -> list[str]:
    """Swept keys that are axes of their own, most values first."""
    kept: list[str] = []
    for key in varying:
        if _is_derived(table, key, varying):
            continue
        if any(_decides(table, k, key) and _decides(table, key, k) for k in kept):
            continue  # the same axis under another name (zipped lists, a model per block)
        kept.append(key)
    changes = {key: _changes(table, key) for key in kept}
    return sorted(kept, key=lambda k: (-len(varying[k]), _RANK.get(k, 0), changes[k]))


def _changes(table: Table, key: str) -> int:
    """How often ``key`` changes from one job to the next: the manifest's outer loops (its
    first grid keys) change least, so ties go to the order the keys were written in."""
    return sum(
        before.get(key, MISSING) != after.get(key, MISSING) for before, after in pairwise(table)
    )


def _is_derived(table: Table, key: str, varying: dict[str, list[str]]) -> bool:
    """True for a prompt that the other swept keys make (a template, not a list of prompts)."""
    return key == "prompt" and _made_by_the_others(table, key, [k for k in varying if k != key])


def _first_unrelated(table: Table, ranked: list[str], other: str | None) -> str | None:
    for key in ranked:
        if other is None or (
            key != other and not _decides(table, key, other) and not _decides(table, other, key)
        ):
            return key
    return None


def _made_by_the_others(table: Table, key: str, others: list[str]) -> bool:
    """True when the values of ``others`` together decide ``key``."""
    mapping: dict[tuple[str, ...], str] = {}
    for values in table:
        known = tuple(values.get(k, MISSING) for k in others)
        if mapping.setdefault(known, values.get(key, MISSING)) != values.get(key, MISSING):
            return False
    return bool(others)


def _decides(table: Table, key: str, other: str) -> bool:
    """True when knowing ``key`` tells ``other`` (each value of one maps to one of the other)."""
    return _made_by_the_others(table, other, [key])
