"""Prompt lists: written in the manifest, or read from a .txt, .csv or .jsonl file.

Every prompt keeps where it came from (the manifest line, or the prompt file and its line), so
an error about a prompt points at the line to fix.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from genbatch.errors import ManifestError
from genbatch.manifest.locations import Source
from genbatch.manifest.packed import PackedTexts
from genbatch.manifest.reading import (
    MAX_PROMPT_FILE_BYTES,
    outside_of,
    read_named_file,
)
from genbatch.manifest.schema import PromptFileSpec
from genbatch.manifest.yaml_loader import decode_text, refuse_control_characters

__all__ = [
    "LIST_SEPARATOR",
    "PROMPT_FILE_KINDS",
    "PromptEntries",
    "PromptEntry",
    "inline_prompts",
    "read_prompt_file",
]

PROMPT_FILE_KINDS = {
    ".txt": "text",
    ".text": "text",
    ".prompts": "text",
    "": "text",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
DEFAULT_COLUMN = "prompt"


LIST_SEPARATOR = "|"
"""Splits a CSV cell into the items of a list input (``image_urls``): ``a.png|b.png``."""


@dataclass(frozen=True, slots=True)
class PromptEntry:
    """One prompt (a template) and where it was written, with the inputs its row of a prompt
    file sets (``prompts: {file: ..., inputs: [img_url]}``), in the order they were named."""

    text: str
    file: str
    line: int | None
    inputs: tuple[tuple[str, Any], ...] = ()

    @property
    def source(self) -> Source:
        """Where the prompt was written. Made on demand: a prompt file of 200,000 lines would
        otherwise hold 200,000 ``Source`` objects (11 MB) while the manifest loads."""
        return Source(self.file, self.line)


class PromptEntries(Sequence[PromptEntry]):
    """The prompts of one file (a prompt file, or the manifest's own list), each made a
    ``PromptEntry`` on demand: their texts are packed (``texts``), their lines in an array, and
    only the rows of a file that sets inputs keep a tuple each."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.texts = PackedTexts()
        self._lines = array("Q")  # 0 for no line
        self._inputs: list[tuple[tuple[str, Any], ...]] = []  # empty when no row sets inputs

    def append(self, entry: PromptEntry) -> None:
        """Add ``entry``, a prompt of this file."""
        self.texts.append(entry.text)
        self._lines.append(entry.line or 0)
        if entry.inputs:
            self._inputs.append(entry.inputs)

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, index: int) -> PromptEntry: ...

    @overload
    def __getitem__(self, index: slice) -> list[PromptEntry]: ...

    def __getitem__(self, index: int | slice) -> PromptEntry | list[PromptEntry]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        text = self.texts[index]  # IndexError first
        return self._entry(text, index)

    def __iter__(self) -> Iterator[PromptEntry]:
        for index, text in enumerate(self.texts):
            yield self._entry(text, index)

    def inputs(self, index: int) -> tuple[tuple[str, Any], ...]:
        """The inputs the row of prompt ``index`` sets, in the order they were named."""
        return self._inputs[index] if self._inputs else ()

    def _entry(self, text: str, index: int) -> PromptEntry:
        line = self._lines[index] or None
        return PromptEntry(text=text, file=self.file, line=line, inputs=self.inputs(index))


def inline_prompts(texts: Sequence[str], file: str, lines: Sequence[int]) -> PromptEntries:
    """Prompts written in the manifest ``file``, each with the line of its list item."""
    entries = PromptEntries(file)
    for text, line in zip(texts, lines, strict=True):
        entries.append(PromptEntry(text=text, file=file, line=line))
    return entries


def read_prompt_file(
    spec: PromptFileSpec,
    *,
    base_dir: Path,
    display_dir: str,
    where: Source,
    allow_outside: bool = False,
    input_specs: Mapping[str, Any] | None = None,
) -> PromptEntries:
    """The prompts of the file ``spec`` names, relative to ``base_dir`` (the manifest's folder).

    Blank entries are skipped, and in text files lines starting with ``#``. ``where`` is the
    manifest line naming the file, for errors about the file as a whole. Only a regular file of
    at most ``MAX_PROMPT_FILE_BYTES`` inside ``base_dir``'s tree is read; ``allow_outside``
    (the manifest's ``allow_outside_prompt_files``) lifts the last condition.

    ``spec.inputs`` names the columns (fields) whose values each row adds to its job's inputs;
    a CSV cell is read as the input's schema type says (``input_specs``, the schema's
    ``properties``): a number, a boolean, or for a list a ``|``-separated cell. JSONL values are
    taken as they are.
    """
    kind = _kind(spec, where)
    path = base_dir / os.path.expanduser(spec.file)
    display = os.path.normpath(os.path.join(display_dir, spec.file))
    refused = outside_of(path, base_dir, allowed=allow_outside)
    if refused is not None:
        raise where.error(f"prompt file '{spec.file}' {refused}", field="prompts.file")
    text = decode_text(_read(path, spec.file, where), display)  # the bytes freed at once
    refuse_control_characters(text, display, what="a prompt file")
    columns = _input_columns(spec)
    if kind == "text":
        found = _text_prompts(text, display)
    elif kind == "jsonl":
        found = _jsonl_prompts(text, display, spec.field or DEFAULT_COLUMN, columns)
    else:
        delimiter = "\t" if kind == "tsv" else ","
        column = spec.column or DEFAULT_COLUMN
        cells = _CsvCells(input_specs or {})
        found = _csv_prompts(text, display, column, delimiter, columns, cells)
    entries = PromptEntries(display)
    for entry in found:
        entries.append(entry)
    if not entries:
        raise where.error(f"prompt file '{spec.file}' has no prompts", field="prompts.file")
    return entries


def _kind(spec: PromptFileSpec, where: Source) -> str:
    suffix = Path(spec.file).suffix.lower()
    kind = PROMPT_FILE_KINDS.get(suffix)
    if kind is None:
        raise where.error(
            f"cannot read prompts from a '{suffix}' file; use .txt (one per line), .csv or .jsonl",
            field="prompts.file",
        )
    if spec.column is not None and kind not in ("csv", "tsv"):
        raise where.error("'column' applies to .csv files only", field="prompts.column")
    if spec.field is not None and kind != "jsonl":
        raise where.error("'field' applies to .jsonl files only", field="prompts.field")
    if spec.inputs and kind == "text":
        raise where.error(
            "'inputs' needs columns: use a .csv or .jsonl prompt file", field="prompts.inputs"
        )
    return kind


def _input_columns(spec: PromptFileSpec) -> dict[str, str]:
    """Input name -> the column (field) that fills it."""
    if isinstance(spec.inputs, dict):
        return dict(spec.inputs)
    return {name: name for name in spec.inputs or ()}


def _read(path: Path, written: str, where: Source) -> bytes:
    return read_named_file(
        path, written, where, limit=MAX_PROMPT_FILE_BYTES, kind="prompt", field="prompts.file"
    )


def _lines(text: str) -> Iterator[str]:
    """``text.splitlines()``, a chunk of about ``_CHUNK`` characters at a time: the lines of a
    big prompt file are never all held at once. A chunk ends just after a ``\n``, so no line
    break (``\r\n`` either) is cut in two."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + _CHUNK)
        end = len(text) if end < 0 else end + 1
        yield from text[start:end].splitlines()
        start = end


_CHUNK = 1 << 16


def _text_prompts(text: str, display: str) -> Iterator[PromptEntry]:
    for number, line in enumerate(_lines(text), start=1):
        prompt = line.strip()
        if prompt and not prompt.startswith("#"):
            yield PromptEntry(text=prompt, file=display, line=number)


def _jsonl_prompts(
    text: str, display: str, field: str, columns: Mapping[str, str]
) -> Iterator[PromptEntry]:
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            row: Any = json.loads(line)
        except ValueError as error:
            raise ManifestError(f"not valid JSON: {error}", file=display, line=number) from None
        if not isinstance(row, dict):
            raise ManifestError("each line must be a JSON object", file=display, line=number)
        _refuse_surrogates(row, display, number)
        if field not in row:
            raise ManifestError(
                f"no field '{field}' (fields: {', '.join(map(str, row))})",
                file=display,
                line=number,
                field=field,
            )
        inputs = tuple(
            (name, _row_value(row, key, display, number)) for name, key in columns.items()
        )
        yield from _entry(row[field], display, number, field, inputs)


def _refuse_surrogates(row: Mapping[str, Any], display: str, number: int) -> None:
    """A lone ``\\udXXX`` escape is valid JSON but no character: nothing could send or hash it."""
    for key, value in row.items():
        try:
            json.dumps({key: value}, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ManifestError(
                "holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), "
                "not a character: remove it",
                file=display,
                line=number,
                field=str(key).encode("utf-8", "backslashreplace").decode(),
            ) from None


def _row_value(row: Mapping[str, Any], key: str, display: str, number: int) -> Any:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ManifestError(
            "has no value; every row with a prompt needs one", file=display, line=number, field=key
        )
    return value


class _CsvCells:
    """A CSV cell read as its input's schema type says; text when it says nothing."""

    def __init__(self, input_specs: Mapping[str, Any]) -> None:
        self.input_specs = input_specs

    def value(self, name: str, cell: str) -> Any:
        """The value of input ``name`` written ``cell``."""
        spec = self.input_specs.get(name)
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        text = cell.strip()
        if kind == "array":
            return [item.strip() for item in text.split(LIST_SEPARATOR) if item.strip()]
        if kind == "integer" and _INTEGER.fullmatch(text):
            return int(text)
        if kind == "number" and _NUMBER.fullmatch(text):
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        return text


_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _csv_prompts(
    text: str,
    display: str,
    column: str,
    delimiter: str,
    columns: Mapping[str, str],
    cells: _CsvCells,
) -> Iterator[PromptEntry]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = reader.fieldnames or []
        for wanted in (column, *columns.values()):
            if wanted not in header:
                raise ManifestError(
                    f"no column '{wanted}' (columns: {', '.join(header) or 'none'})",
                    file=display,
                    line=1,
                    field=wanted,
                )
        for row in reader:
            # line_num is the line the row ends on: right for one-line rows.
            number = reader.line_num
            if not (row.get(column) or "").strip():
                continue  # a blank prompt: the row is skipped, its other cells too
            inputs = tuple(
                (name, cells.value(name, _row_value(row, key, display, number)))
                for name, key in columns.items()
            )
            yield from _entry(row.get(column), display, number, column, inputs)
    except csv.Error as error:
        raise ManifestError(f"not valid CSV: {error}", file=display, line=reader.line_num) from None


def _entry(
    value: Any,
    display: str,
    number: int,
    field: str,
    inputs: tuple[tuple[str, Any], ...] = (),
) -> Iterator[PromptEntry]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return
    if not isinstance(value, str):
        raise ManifestError(
            f"must be text, not {json.dumps(value)}", file=display, line=number, field=field
        )
    yield PromptEntry(text=value.strip(), file=display, line=number, inputs=inputs)
