"""Safe YAML with line numbers, YAML 1.2 scalars, no duplicate keys and no alias bombs.

PyYAML speaks YAML 1.1, where ``no`` is false, ``16:9`` is the number 969 and ``007`` is octal 7:
in a prompt or an aspect ratio that silently changes what is sent and paid for. This loader
resolves plain scalars by the YAML 1.2 core schema instead, minus the non-JSON ones (``.inf``,
``.nan``) and leading-zero numbers, which stay text. The document is composed into nodes and
converted by hand, which lets us record the line of every value, refuse duplicate keys and
count what aliases expand to before memory blows up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import yaml  # type: ignore[import-untyped,unused-ignore]  # stubs may not be installed

from genbatch.errors import ManifestError
from genbatch.manifest.locations import Path_, render_path

__all__ = [
    "MAX_ALIAS_EXPANSION",
    "ManifestYamlLoader",
    "YamlDocument",
    "decode_text",
    "load_yaml",
    "refuse_control_characters",
]

MAX_ALIAS_EXPANSION = 10_000
"""How many values aliases (``*name``) may add to a document, all together."""

MAX_MANIFEST_BYTES = 16 * 1024 * 1024

MAX_NESTING = 100
"""How deep lists and mappings may nest (a manifest needs a handful of levels; PyYAML's
recursion would overflow Python's stack past a few hundred)."""

_SURROGATE_RE = re.compile("[\ud800-\udfff]")

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"

_NULL_RE = re.compile(r"~|null|Null|NULL|")
_BOOL_RE = re.compile(r"(?i:true|false)")
# Decimal without leading zeros (``007`` stays text), plus the core schema's 0o and 0x forms.
_INT_RE = re.compile(r"[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(r"[-+]?(?:\.[0-9]+|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")


class ManifestYamlLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]  # untyped base
    """A SafeLoader whose implicit types follow YAML 1.2's core schema, not YAML 1.1's.

    Only ``null``/``~``/empty, ``true``/``false`` (any case), decimal, ``0o`` and ``0x`` integers
    and plain decimal floats are typed; everything else, such as ``yes``, ``no``, ``on``,
    ``16:9``, ``007``, ``2024-01-01`` or ``1_000``, is a string.
    """

    # A fresh table: PyYAML's class methods add to it instead of the YAML 1.1 one.
    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {}

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """PyYAML's, refusing to nest deeper than ``MAX_NESTING``."""
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise _TooDeep(
                    None,
                    None,
                    f"lists and mappings nest more than {MAX_NESTING} levels deep",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooDeep(yaml.MarkedYAMLError):  # type: ignore[misc,unused-ignore]  # untyped base
    """The document nests deeper than ``MAX_NESTING``."""


def _add_resolver(tag: str, pattern: re.Pattern[str], first: list[str]) -> None:
    # PyYAML matches with ``regexp.match``: anchor the end so "12abc" is not an int.
    anchored = re.compile(f"(?:{pattern.pattern})\\Z")
    ManifestYamlLoader.add_implicit_resolver(tag, anchored, first)


_add_resolver(_NULL, _NULL_RE, ["~", "n", "N", ""])
_add_resolver(_BOOL, _BOOL_RE, list("tTfF"))
_add_resolver(_INT, _INT_RE, list("-+0123456789"))
_add_resolver(_FLOAT, _FLOAT_RE, list("-+.0123456789"))


@dataclass(frozen=True, kw_only=True)
class YamlDocument:
    """A loaded YAML document: plain data plus the line of every value."""

    data: Any
    lines: dict[Path_, int] = field(repr=False)
    """1-based line of each value by its path (keys and list indexes from the root)."""
    file: str

    def line_of(self, path: Path_) -> int:
        """Line of the value at ``path``, or of its nearest ancestor that exists."""
        for size in range(len(path), -1, -1):
            line = self.lines.get(path[:size])
            if line is not None:
                return line
        return 1


def decode_text(raw: bytes, file: str) -> str:
    """``raw`` as UTF-8 text (a BOM is dropped); other encodings raise ``ManifestError``."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ManifestError(
            f"not valid UTF-8 text (byte 0x{raw[error.start]:02x}); save the file as UTF-8",
            file=file,
            line=line,
        ) from None


_NOT_ALLOWED_IN_YAML: re.Pattern[str] = yaml.reader.Reader.NON_PRINTABLE
"""The characters YAML refuses written as they are (control characters but tab and line
breaks, U+FFFE, U+FFFF): the rule a manifest's own text follows."""


def refuse_control_characters(text: str, file: str, *, what: str) -> None:
    """Raise ``ManifestError`` at the line of the first character of ``text`` that a manifest
    could not hold written as it is (a NUL, an escape sequence...): a file the manifest names
    (``what``, "a prompt file") is held to the same rule as the manifest itself."""
    found = _NOT_ALLOWED_IN_YAML.search(text)
    if found is None:
        return
    raise ManifestError(
        f"character U+{ord(found.group()):04X} is not allowed in {what} "
        "(a control character?); remove it",
        file=file,
        # Lines counted as str.splitlines() counts them, like every other line of these files.
        line=len((text[: found.start()] + "x").splitlines()),
    )


def load_yaml(text: str, file: str) -> YamlDocument:
    """Parse ``text`` (one YAML document) safely, raising one-line ``ManifestError``s."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes; "
            "put long prompt lists in a prompt file",
            file=file,
        )
    try:
        node = _compose(text)
    except _TooDeep as error:
        raise ManifestError(error.problem, file=file, line=error.problem_mark.line + 1) from None
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, file) from None
    except yaml.YAMLError as error:  # ReaderError: a character YAML does not allow
        raise ManifestError(
            _reader_message(error), file=file, line=_reader_line(error, text)
        ) from None
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
        raise ManifestError(
            "the manifest is empty; it needs at least model and prompts", file=file, line=1
        )
    converter = _Converter(file)
    data = converter.convert(node, ())
    return YamlDocument(data=data, lines=converter.lines, file=file)


def _compose(text: str) -> Any:
    loader = ManifestYamlLoader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


class _Converter:
    """Turns composed nodes into plain data, recording lines and policing aliases."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Path_, int] = {}
        self._seen: set[int] = set()
        self._expanded = 0
        self._alias_depth = 0
        self._active: set[int] = set()

    def convert(self, node: Any, path: Path_) -> Any:
        """The value of ``node`` at ``path``."""
        if id(node) in self._active:
            raise self._error("a YAML alias refers to its own parent (recursive alias)", node, path)
        self.lines.setdefault(path, node.start_mark.line + 1)
        aliased = id(node) in self._seen
        if aliased and not self._alias_depth:
            self._count_alias_expansion(node, path)
        self._seen.add(id(node))
        self._alias_depth += aliased
        self._active.add(id(node))
        try:
            return self._value(node, path)
        finally:
            self._active.discard(id(node))
            self._alias_depth -= aliased

    def _value(self, node: Any, path: Path_) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, yaml.SequenceNode):
            self._check_tag(node, _SEQ, path)
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        self._check_tag(node, _MAP, path)
        return self._mapping(node, path)

    def _count_alias_expansion(self, node: Any, path: Path_) -> None:
        # A node met a second time comes from an alias: everything under it is a copy. Copies
        # inside a copy are already counted by the outer one.
        self._expanded += _size(node)
        if self._expanded > MAX_ALIAS_EXPANSION:
            raise self._error(
                f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION} values (an alias bomb?);"
                " write the values out instead",
                node,
                path,
            )

    def _mapping(self, node: Any, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            line = key_node.start_mark.line + 1
            if key in key_lines:
                raise ManifestError(
                    f"duplicate key '{key}' (first at line {key_lines[key]})",
                    file=self.file,
                    line=line,
                    field=render_path((*path, key)),
                )
            key_lines[key] = line
            child = (*path, key)
            # Point at the key for collections: their own first line is the first item.
            if not isinstance(value_node, yaml.ScalarNode):
                self.lines[child] = line
            result[key] = self.convert(value_node, child)
        return result

    def _key(self, node: Any, path: Path_) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise self._error("a key must be plain text, not a list or mapping", node, path)
        if node.value == "<<" and node.style is None:
            raise self._error(
                "YAML merge keys (<<) are not supported; blocks under jobs: "
                "inherit the top-level keys already",
                node,
                path,
            )
        # Keys are names: keep their text as written ("1", "on", "16:9").
        return self._text(node, path)

    def _scalar(self, node: Any, path: Path_) -> Any:
        tag, text = node.tag, node.value
        if tag == _STR:
            return self._text(node, path)
        if tag == _NULL and _NULL_RE.fullmatch(text):
            return None
        if tag == _BOOL and _BOOL_RE.fullmatch(text):
            return text.lower() == "true"
        if tag == _INT and _INT_RE.fullmatch(text):
            return _int(text)
        if tag == _FLOAT and (_FLOAT_RE.fullmatch(text) or _INT_RE.fullmatch(text)):
            number = float(text) if not text.startswith(("0o", "0x")) else float(_int(text))
            if not math.isfinite(number):
                raise self._error(
                    f"{text} is too large for a number (quote it for text)", node, path
                )
            return number
        if tag in (_NULL, _BOOL, _INT, _FLOAT):
            raise self._error(f"{text!r} is not a valid {tag.rsplit(':', 1)[1]}", node, path)
        raise self._error(
            f"unsupported YAML tag {_short_tag(tag)}; only text, numbers, "
            "true/false, lists and mappings are allowed",
            node,
            path,
        )

    def _text(self, node: Any, path: Path_) -> str:
        """A scalar's text, refusing UTF-16 surrogates: a ``"\\ud83d"`` escape gives one, which
        no UTF-8 text (a request, the ledger, a file name) can hold."""
        text = str(node.value)
        found = _SURROGATE_RE.search(text)
        if found is None:
            return text
        high, low = ord(found.group()), ord(text[found.end()]) if found.end() < len(text) else 0
        escape = f"\\u{high:04x}"
        if 0xD800 <= high < 0xDC00 and 0xDC00 <= low < 0xE000:
            char = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            hint = f"write the character itself or \\U{char:08X}"
            escape += f"\\u{low:04x}"
        else:
            hint = "remove it"
        raise self._error(
            f"the escape {escape} is a UTF-16 surrogate, not a character: {hint}", node, path
        )

    def _check_tag(self, node: Any, expected: str, path: Path_) -> None:
        if node.tag != expected:
            raise self._error(
                f"unsupported YAML tag {_short_tag(node.tag)}; only text, numbers,"
                " true/false, lists and mappings are allowed",
                node,
                path,
            )

    def _error(self, message: str, node: Any, path: Path_) -> ManifestError:
        return ManifestError(
            message, file=self.file, line=node.start_mark.line + 1, field=render_path(path) or None
        )


def _int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


def _size(node: Any) -> int:
    """Number of values under ``node``, counted without building them (iteratively)."""
    total = 0
    stack = [node]
    while stack:
        current = stack.pop()
        total += 1
        if total > MAX_ALIAS_EXPANSION:
            return total
        if isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            stack.extend(value for _key, value in current.value)
    return total


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _reader_message(error: Any) -> str:
    character = getattr(error, "character", None)
    if isinstance(character, int):
        return (
            f"character U+{character:04X} is not allowed in YAML (a control character?); "
            "remove it or write it as an escape inside double quotes"
        )
    return _one_line(error)


def _syntax_error(error: Any, file: str) -> ManifestError:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = _one_line(error.problem or "invalid YAML")
    context = _one_line(error.context or "")
    if "expected a single document" in context:
        message = "a manifest must be one YAML document (remove the '---' separator)"
    else:
        message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    if "'\\t'" in problem:
        message += "; YAML does not allow tabs for indentation, use spaces"
    return ManifestError(message, file=file, line=line)


def _reader_line(error: Any, text: str) -> int | None:
    position = getattr(error, "position", None)
    if not isinstance(position, int):
        return None
    return text.count("\n", 0, position) + 1


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml") else tag
