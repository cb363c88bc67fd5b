"""Wildcard files: ``__animals__`` in a prompt picks a line of ``wildcards/animals.txt``.

The folder is ``wildcards/`` beside the manifest; ``__people/names__`` reads
``wildcards/people/names.txt``. One entry per line; blank lines and lines starting with ``#``
are skipped; ``3::a red fox`` weighs an entry under ``sample:``. An entry may hold variants and
other wildcards; a wildcard that comes back to itself is refused, naming the chain. Files are read
as prompt files are: regular, bounded, UTF-8, inside the manifest's folder tree.
"""

from __future__ import annotations

import os
from pathlib import Path

from genbatch.manifest.locations import Source
from genbatch.manifest.reading import MAX_PROMPT_FILE_BYTES, outside_of, read_named_file
from genbatch.manifest.variants import (
    Option,
    Pick,
    parse_choices,
    split_weight,
    text_fields_of,
)
from genbatch.manifest.yaml_loader import decode_text, refuse_control_characters

__all__ = ["WILDCARD_FOLDER", "Wildcards"]

WILDCARD_FOLDER = "wildcards"


class Wildcards:
    """The wildcard files of one manifest, each read and parsed once."""

    def __init__(self, base_dir: Path, display_dir: str, *, allow_outside: bool) -> None:
        self.base_dir = base_dir
        self.display_dir = display_dir
        self.allow_outside = allow_outside
        self._picks: dict[str, Pick] = {}
        self._reading: list[str] = []
        self.texts: dict[str, str] = {}
        """Each file read, by wildcard name: what the jobs depend on."""

    def __call__(self, name: str, where: Source) -> Pick:
        """The pick of wildcard ``name``, written at ``where``."""
        if name in self._picks:
            return self._picks[name]
        if name in self._reading:
            chain = " -> ".join([*self._reading[self._reading.index(name) :], name])
            raise where.error(
                f"wildcard __{name}__ refers back to itself ({chain})", field="wildcard"
            )
        self._reading.append(name)
        try:
            pick = self._read(name, where)
        finally:
            self._reading.pop()
        self._picks[name] = pick
        return pick

    def _read(self, name: str, where: Source) -> Pick:
        written = f"{WILDCARD_FOLDER}/{name}.txt"
        path = self.base_dir / WILDCARD_FOLDER / f"{name}.txt"
        refused = outside_of(path, self.base_dir, allowed=self.allow_outside)
        if refused is not None:
            raise where.error(f"wildcard file '{written}' {refused}", field="wildcard")
        raw = read_named_file(
            path, written, where, limit=MAX_PROMPT_FILE_BYTES, kind="wildcard", field="wildcard"
        )
        display = os.path.normpath(os.path.join(self.display_dir, written))
        text = decode_text(raw, display)
        refuse_control_characters(text, display, what="a wildcard file")
        self.texts[name] = text
        options = []
        for number, line in enumerate(text.splitlines(), start=1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            weight, entry = split_weight(entry)
            source = Source(display, number)
            parts = parse_choices(
                entry, source=source, wildcard=self, label=name, prefix=f"{name}_"
            )
            options.append(Option(parts, weight, text_fields_of(parts, source, name)))
        if not options:
            raise where.error(f"wildcard file '{written}' has no entries", field="wildcard")
        if all(option.weight == 0 for option in options):
            raise where.error(f"every entry of '{written}' has weight 0", field="wildcard")
        return Pick(name, tuple(options))
