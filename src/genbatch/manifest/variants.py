"""Prompt variants and wildcards: ``{red|green|blue}``, ``{2::red|1::green}``, ``__animals__``.

A prompt is parsed into a *choice tree*: a sequence of parts, each either template text (which
may still hold ``{field}`` placeholders and ``{{``/``}}`` escapes, rendered later by
``templates``) or a ``Pick`` between options, each option a sequence of its own. A wildcard is a
pick whose options are the lines of a file (``wildcards.py`` reads them); a variant is a pick
written inline.

Combinations are numbered without being listed: a sequence has the product of its picks' counts,
a pick the sum of its options' counts, so combination ``i`` is decoded in time proportional to
the depth of the tree (picks in written order, the last varying fastest).

What is a variant and what is a template field: a ``{...}`` group holding a ``|`` at its top
level is a variant, unless it reads as a field with a format spec (``{take:|>8}``, a name then
``:``); a group without ``|`` is a template field, as before. ``{{`` and ``}}`` stay literal
braces everywhere, inside options too.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from math import prod

from genbatch.manifest.locations import Source
from genbatch.manifest.templates import Template, compile_template

__all__ = [
    "Option",
    "Part",
    "Pick",
    "WildcardLookup",
    "compose",
    "count_of",
    "decode",
    "parse_choices",
    "picks_of",
    "positive",
    "split_weight",
    "text_fields_of",
]

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(![rsa])?(:.*)?", re.DOTALL)
_NAMED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_WEIGHT = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)::")
_SPECIAL = re.compile(r"[{}|]")
_WILDCARD = re.compile(r"__([A-Za-z0-9](?:[A-Za-z0-9_/-]*[A-Za-z0-9])?)__")


@dataclass(frozen=True, slots=True)
class Option:
    """One option of a pick: its weight under ``sample:`` and what it expands to."""

    parts: tuple[Part, ...]
    weight: float = 1.0
    text_fields: frozenset[str] = frozenset()
    """The template variables its own text uses (``{animal}``), nested picks' not included."""
    count: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "count", count_of(self.parts))


@dataclass(frozen=True, slots=True)
class Pick:
    """A choice between options: a variant ``{a|b}`` or a wildcard ``__name__``."""

    name: str
    """The variable it sets: ``color`` for ``{color=a|b}``, ``variant_1`` unnamed, or the
    wildcard's name."""
    options: tuple[Option, ...]
    count: int = field(init=False)
    starts: tuple[int, ...] = field(init=False, repr=False)
    """The first combination of each option."""
    cumulative_weights: tuple[float, ...] = field(init=False, repr=False)
    names: tuple[str, ...] = field(init=False, repr=False)
    """The variables it and its nested picks set, in written order."""
    fields: frozenset[str] = field(init=False, repr=False)
    """The template variables its options' texts use, nested ones included."""
    weighted: bool = field(init=False, repr=False)
    """Whether an option (or a nested one) carries a weight other than 1."""

    def __post_init__(self) -> None:
        counts = [option.count for option in self.options]
        object.__setattr__(self, "count", sum(counts))
        object.__setattr__(self, "starts", (0, *accumulate(counts))[:-1])
        weights = accumulate(option.weight for option in self.options)
        object.__setattr__(self, "cumulative_weights", tuple(weights))
        # Computed once per pick from its options' (already computed) facts: a wildcard file
        # used by many prompts is walked once.
        nested = {
            id(part): part
            for option in self.options
            for part in option.parts
            if isinstance(part, Pick)
        }.values()
        names = dict.fromkeys((self.name, *(n for pick in nested for n in pick.names)))
        object.__setattr__(self, "names", tuple(names))
        fields = {f for option in self.options for f in option.text_fields}
        object.__setattr__(self, "fields", frozenset(fields.union(*(p.fields for p in nested))))
        weighted = any(o.weight != 1.0 for o in self.options) or any(p.weighted for p in nested)
        object.__setattr__(self, "weighted", weighted)

    def option_at(self, index: int) -> tuple[Option, int]:
        """The option holding combination ``index``, and the index within it."""
        position = bisect_right(self.starts, index) - 1
        return self.options[position], index - self.starts[position]


Part = str | Pick
WildcardLookup = Callable[[str, Source], Pick]
"""The pick of the wildcard ``name`` written at a source (``wildcards.py`` reads the file)."""


def count_of(parts: tuple[Part, ...]) -> int:
    """How many combinations ``parts`` makes."""
    return prod(part.count for part in parts if isinstance(part, Pick))


def picks_of(parts: tuple[Part, ...]) -> Iterator[Pick]:
    """The picks of a sequence, in written order (not the nested ones)."""
    return (part for part in parts if isinstance(part, Pick))


def decode(parts: tuple[Part, ...], index: int, variables: dict[str, str]) -> str:
    """The text of combination ``index`` of ``parts``; each pick's choice into ``variables``."""
    picks = [part for part in parts if isinstance(part, Pick)]
    digits = [0] * len(picks)
    for position in range(len(picks) - 1, -1, -1):
        index, digits[position] = divmod(index, picks[position].count)
    chosen = iter(digits)
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
            continue
        option, within = part.option_at(next(chosen))
        name = _free_name(part.name, variables)
        variables[name] = ""  # reserved first: the variables keep the written order
        text = decode(option.parts, within, variables)
        variables[name] = text
        pieces.append(text)
    return "".join(pieces)


def positive(parts: tuple[Part, ...], index: int) -> bool:
    """Whether combination ``index`` of ``parts`` goes only through options of weight > 0."""
    picks = [part for part in parts if isinstance(part, Pick)]
    for pick in reversed(picks):
        index, digit = divmod(index, pick.count)
        option, within = pick.option_at(digit)
        if option.weight <= 0 or not positive(option.parts, within):
            return False
    return True


def compose(parts: tuple[Part, ...], digits: list[int]) -> int:
    """The combination index of ``parts`` whose picks take ``digits`` (inverse of ``decode``'s
    first step)."""
    index = 0
    for pick, digit in zip(picks_of(parts), digits, strict=True):
        index = index * pick.count + digit
    return index


def text_fields_of(parts: tuple[Part, ...], source: Source, label: str) -> frozenset[str]:
    """The template variables the text parts of ``parts`` use (not its picks'); a malformed
    text raises ``ManifestError`` at ``source``."""
    fields: set[str] = set()
    for part in parts:
        if isinstance(part, str):
            compiled = compile_template(part, source=source, label=label)
            if isinstance(compiled, Template):
                fields.update(compiled.fields)
    return frozenset(fields)


def split_weight(text: str) -> tuple[float, str]:
    """``"2::red"`` as ``(2.0, "red")``; text without a weight has weight 1."""
    weighted = _WEIGHT.match(text)
    if weighted is None:
        return 1.0, text
    return float(weighted.group(1)), text[weighted.end() :]


def _free_name(name: str, variables: dict[str, str]) -> str:
    """``name``, or ``name_2``... when the same wildcard appears twice in one prompt."""
    if name not in variables:
        return name
    number = 2
    while f"{name}_{number}" in variables:
        number += 1
    return f"{name}_{number}"


class _Parser:
    """A recursive-descent reader of one text; ``counter`` numbers its unnamed variants."""

    def __init__(
        self, text: str, source: Source, wildcard: WildcardLookup, prefix: str, label: str
    ) -> None:
        self.text = text
        self.source = source
        self.wildcard = wildcard
        self.prefix = prefix
        self.label = label
        self.variants = 0

    def fields_of(self, parts: tuple[Part, ...]) -> frozenset[str]:
        """The template variables the text parts use; a malformed one raises here."""
        return text_fields_of(parts, self.source, self.label)

    def error(self, message: str) -> Exception:
        return self.source.error(
            f"{message} (write {{{{ and }}}} for literal braces)", field=self.label
        )

    def sequence(self, position: int, stop: int | None) -> tuple[tuple[Part, ...], int]:
        """Parts from ``position`` up to a top-level ``|`` or ``stop`` (a group's closing brace),
        or the end of the text outside groups."""
        parts: list[Part] = []
        literal: list[str] = []
        text = self.text
        inside = stop is not None
        end = len(text) if stop is None else stop
        while position < end:
            char = text[position]
            if text.startswith(("{{", "}}"), position) and position + 2 <= end:
                literal.append(text[position : position + 2])
                position += 2
            elif char == "{":
                group, position = self.group(position)
                if isinstance(group, str):
                    literal.append(group)
                else:
                    parts.extend(self._flush(literal))
                    parts.append(group)
            elif inside and char == "|":
                break
            elif char == "}":
                raise self.error("a lone } closes nothing")
            else:
                position = self._text(position, literal, parts)
        parts.extend(self._flush(literal))
        return tuple(parts), position

    def _text(self, position: int, literal: list[str], parts: list[Part]) -> int:
        """Plain text up to the next brace or bar, with its wildcards as picks."""
        special = _SPECIAL.search(self.text, position)
        end = special.start() if special else len(self.text)
        end = max(end, position + 1)  # a bar at the top level is plain text
        chunk = self.text[position:end]
        last = 0
        for match in _WILDCARD.finditer(chunk):
            literal.append(chunk[last : match.start()])
            parts.extend(self._flush(literal))
            parts.append(self.wildcard(match.group(1), self.source))
            last = match.end()
        literal.append(chunk[last:])
        return end

    @staticmethod
    def _flush(literal: list[str]) -> list[Part]:
        text = "".join(literal)
        literal.clear()
        return [text] if text else []

    def group(self, start: int) -> tuple[str | Pick, int]:
        """The ``{...}`` group at ``start``: a template field (its text) or a variant."""
        close = _group_end(self.text, start)
        if close is None:
            raise self.error("a { is never closed")
        content = self.text[start + 1 : close]
        if _FIELD.fullmatch(content) or not _top_level_bar(content):
            return self.text[start : close + 1], close + 1
        return self.variant(start + 1, close), close + 1

    def variant(self, position: int, close: int) -> Pick:
        """The variant whose options run from ``position`` (just after its ``{``) to ``close``."""
        # Every variant takes a number, named or not: naming one renames no other.
        self.variants += 1
        name = f"{self.prefix}variant_{self.variants}"
        named = _NAMED.match(self.text, position)
        if named:
            name = named.group(1)
            position = named.end()
        options: list[Option] = []
        while True:
            weight = 1.0
            weighted = _WEIGHT.match(self.text, position)
            if weighted:
                weight = float(weighted.group(1))
                position = weighted.end()
            parts, position = self.sequence(position, close)
            options.append(Option(parts, weight, self.fields_of(parts)))
            if position >= close:
                break
            position += 1  # the bar
        if all(option.weight == 0 for option in options):
            raise self.error(f"every option of variant {{{name}}} has weight 0")
        return Pick(name, tuple(options))


_SIMPLE = re.compile(r"\{([^{}]*)\}")


def _group_end(text: str, start: int) -> int | None:
    """The index of the ``}`` closing the group opened at ``start``, or None.

    A group with no brace inside ends at its first ``}`` (a field, or a plain variant); in a
    variant's options ``{{`` and ``}}`` are literal braces and ``{...}`` a nested group.
    """
    simple = _SIMPLE.match(text, start)
    if simple is not None:
        return simple.end() - 1
    position = start + 1
    while position < len(text):
        if text.startswith(("{{", "}}"), position):
            position += 2
        elif text[position] == "{":
            end = _group_end(text, position)
            if end is None:
                return None
            position = end + 1
        elif text[position] == "}":
            return position
        else:
            position += 1
    return None


def _top_level_bar(content: str) -> bool:
    """Whether ``content`` (a group's inside) has a ``|`` outside its nested groups."""
    position = 0
    while position < len(content):
        if content.startswith(("{{", "}}"), position):
            position += 2
        elif content[position] == "{":
            end = _group_end(content, position)
            position = len(content) if end is None else end + 1
        elif content[position] == "|":
            return True
        else:
            position += 1
    return False


def parse_choices(
    text: str,
    *,
    source: Source,
    wildcard: WildcardLookup,
    label: str = "prompt",
    prefix: str = "",
) -> tuple[Part, ...]:
    """``text`` as a choice tree; one string part when it holds no variant nor wildcard.

    ``prefix`` starts the names of unnamed variants (a wildcard file's variants are named after
    it). A malformed group raises ``ManifestError`` at ``source``.
    """
    if not _SPECIAL.search(text) and "__" not in text:
        return (text,) if text else ()
    parser = _Parser(text, source, wildcard, prefix, label)
    parts, _end = parser.sequence(0, None)
    return parts
