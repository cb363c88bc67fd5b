"""Output file names: templates rendered per job, and sanitising so no name escapes its folder.

The manifest loader renders every job's file stem with ``render_file_stem``; the downloader
sanitises anything it derives from a remote answer with ``sanitize_file_stem``. Both guarantee a
stem that is a single, portable path component: no separators, no ``..``, no control characters,
no leading dots or spaces, no Windows device names, bounded length, never empty.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genbatch.errors import ManifestError

__all__ = [
    "DEFAULT_FILE_NAME_TEMPLATE",
    "FileNameTemplate",
    "compile_file_name_template",
    "render_file_stem",
    "sanitize_file_stem",
    "slugify",
]

DEFAULT_FILE_NAME_TEMPLATE = "{index:05d}-{key}"
"""File-name template used when the manifest sets no ``output.name``."""

PROMPT_SLUG_LENGTH = 40

# Filesystems count bytes (255 on most); leave room for an extension and suffixes like ".part".
_MAX_BYTES = 200
_HASH_LENGTH = 8
_MIN_LENGTH = _HASH_LENGTH + 4
_EMPTY_STEM = "unnamed"

# Path separators, ASCII control characters and the characters Windows forbids in names.
_UNSAFE_ASCII = re.compile(r'[\x00-\x1f\x7f/\\<>:"|?*]')
_SAFE_FAST = re.compile(r"[A-Za-z0-9_\-]+")
_WHITESPACE = re.compile(r"\s+")
_DOTS = re.compile(r"\.{2,}")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{n}" for n in "123456789¹²³"]
    + [f"LPT{n}" for n in "123456789¹²³"]
)
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SLUG_WORD = re.compile(r"[^\W_]+")


def sanitize_file_stem(text: str, *, max_length: int = 120) -> str:
    """``text`` made into a safe, portable file name stem (no extension).

    Separators, control and Windows-forbidden characters become ``_``, runs of whitespace one
    ``-`` (a name needs no quoting in a shell), runs of dots one dot; leading and trailing dots
    and spaces go; Windows device names (``CON``, ``nul.txt``...) get a ``_`` prefix. A stem
    longer than ``max_length`` characters (or 200 UTF-8 bytes) is cut and given a short hash of
    the whole text, so distinct long names stay distinct. The result is never empty.
    """
    if max_length < _MIN_LENGTH:
        raise ValueError(f"max_length must be at least {_MIN_LENGTH}, not {max_length}")
    if _SAFE_FAST.fullmatch(text) and len(text) <= max_length:
        return _neutralise_reserved(text)
    stem = _neutralise_reserved(_strip_edges(_clean_fragment(text)) or _EMPTY_STEM)
    if len(stem) > max_length or len(stem.encode("utf-8")) > _MAX_BYTES:
        stem = _truncate(stem, text, max_length)
    return stem


def slugify(text: str, *, max_length: int = PROMPT_SLUG_LENGTH) -> str:
    """Lowercase words of ``text`` joined by ``-``, cut at a word boundary within ``max_length``.

    Used for the ``{prompt}`` and ``{model}`` fields of file names; may be empty.
    """
    slug = ""
    for word in _SLUG_WORD.findall(text.lower()):
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > max_length:
            return slug or word[:max_length]
        slug = candidate
    return slug


@dataclass(frozen=True, slots=True)
class FileNameTemplate:
    """A parsed file-name template such as ``{index:05d}-{animal}-{key}``."""

    text: str
    fields: tuple[str, ...]
    """Names of the fields the template uses, in order of first use."""
    file: str | None = None
    line: int | None = None
    _positional: str | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_positional", _positional_format(self.text, self.fields))

    def render(self, values: Mapping[str, Any], *, max_length: int = 120) -> str:
        """The sanitised stem for ``values``; each substituted value is sanitised on its own."""
        parts: list[str] = []
        for literal, name, spec, conversion in _parse(self.text):
            parts.append(literal)
            if name is None:
                continue
            if name not in values:
                raise self._error(f"unknown field {{{name}}}; fields: {', '.join(sorted(values))}")
            parts.append(self._format(name, values[name], spec or "", conversion))
        return sanitize_file_stem("".join(parts), max_length=max_length)

    def render_fields(self, values: Sequence[Any], *, max_length: int = 120) -> str:
        """``render`` with the value of each of ``fields`` given in that order.

        One ``str.format`` call when the whole stem comes out a safe name: every substituted
        value is then safe on its own too, so ``render`` would give the same text.
        """
        if self._positional is not None and max_length >= _MIN_LENGTH:
            try:
                text = self._positional.format(*values)
            except (ValueError, TypeError):
                pass  # render raises the error that names the field
            else:
                if len(text) <= max_length and _SAFE_FAST.fullmatch(text):
                    # No dot nor space in it: only a name of 3 or 4 letters can be a device's.
                    return text if len(text) > 4 else _neutralise_reserved(text)
        return self.render(dict(zip(self.fields, values, strict=True)), max_length=max_length)

    def _format(self, name: str, value: Any, spec: str, conversion: str | None) -> str:
        if conversion == "r":
            value = repr(value)
        elif conversion is not None:
            value = str(value)
        try:
            text = format(value, spec)
        except (ValueError, TypeError) as error:
            raise self._error(
                f"cannot format {{{name}}} = {value!r} with ':{spec}' ({error})"
            ) from None
        if _SAFE_FAST.fullmatch(text):
            return text
        return _strip_edges(_clean_fragment(text))

    def _error(self, message: str) -> ManifestError:
        return ManifestError(message, file=self.file, line=self.line, field="output.name")


def compile_file_name_template(
    template: str, *, file: str | None = None, line: int | None = None
) -> FileNameTemplate:
    """Parse ``template``; a malformed one raises ``ManifestError`` at ``file:line``."""
    try:
        parsed = _parse(template)
    except ValueError as error:
        raise ManifestError(
            f"bad template {template!r}: {_one_line(error)}; write {{{{ and }}}} for literal "
            "braces",
            file=file,
            line=line,
            field="output.name",
        ) from None
    fields: list[str] = []
    for _literal, name, spec, _conversion in parsed:
        if name is None:
            continue
        if not _FIELD_NAME.fullmatch(name):
            raise ManifestError(
                f"field {{{name}}} must be a plain name such as {{index}}",
                file=file,
                line=line,
                field="output.name",
            )
        if spec and "{" in spec:
            raise ManifestError(
                f"field {{{name}}} has a nested field in its format spec",
                file=file,
                line=line,
                field="output.name",
            )
        if name not in fields:
            fields.append(name)
    return FileNameTemplate(text=template, fields=tuple(fields), file=file, line=line)


def render_file_stem(
    template: str,
    values: Mapping[str, Any],
    *,
    max_length: int = 120,
    file: str | None = None,
    line: int | None = None,
) -> str:
    """Render ``template`` with ``values`` into a sanitised stem.

    Each substituted value is sanitised, then the whole stem. An unknown field or a format spec
    that does not fit its value raises ``ManifestError`` at ``file:line`` (``output.name``).
    """
    compiled = compile_file_name_template(template, file=file, line=line)
    return compiled.render(values, max_length=max_length)


@functools.lru_cache(maxsize=256)
def _parse(template: str) -> tuple[tuple[str, str | None, str | None, str | None], ...]:
    return tuple(string.Formatter().parse(template))


def _positional_format(template: str, fields: tuple[str, ...]) -> str | None:
    """``template`` with its fields numbered in ``fields`` order, for ``str.format``; None when
    a field has a conversion (``!a`` formats differently from ``render``) or it does not parse."""
    try:
        parsed = _parse(template)
    except ValueError:
        return None
    pieces: list[str] = []
    for literal, name, spec, conversion in parsed:
        pieces.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is None:
            continue
        if conversion is not None or name not in fields:
            return None
        pieces.append(f"{{{fields.index(name)}:{spec}}}" if spec else f"{{{fields.index(name)}}}")
    return "".join(pieces)


def _clean_fragment(text: str) -> str:
    """Unsafe characters replaced, whitespace and dots collapsed; edges left alone."""
    text = unicodedata.normalize("NFC", text)
    text = _UNSAFE_ASCII.sub("_", text)
    if not text.isascii():
        text = "".join(_safe_char(c) for c in text)
    text = _WHITESPACE.sub("-", text.strip())  # a name with no spaces needs no quoting in a shell
    return _DOTS.sub(".", text)


def _safe_char(char: str) -> str:
    # Unicode controls, format characters (e.g. right-to-left overrides that disguise a name),
    # surrogates and private-use characters have no place in a file name.
    if char.isascii():
        return char
    category = unicodedata.category(char)
    if category.startswith("C") or category in ("Zl", "Zp"):
        return "_"
    return char


def _strip_edges(text: str) -> str:
    return text.strip(" .")


def _truncate(stem: str, original: str, max_length: int) -> str:
    suffix = (
        "-" + hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LENGTH]
    )
    head = stem[: max_length - len(suffix)]
    head = head.encode("utf-8")[: _MAX_BYTES - len(suffix)].decode("utf-8", "ignore")
    return (_strip_edges(head) or "_") + suffix


def _neutralise_reserved(stem: str) -> str:
    # Windows treats "CON", "con.txt" and "CON .x" alike: compare the part before the first dot.
    base = stem.split(".", 1)[0].rstrip(" ").upper()
    return "_" + stem if base in _WINDOWS_RESERVED else stem


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def output_stem(file_stem: str, position: int, count: int) -> str:
    """The name (before sanitising and the extension) of the output at ``position`` of a job
    named ``file_stem`` whose result has ``count`` files: the job's own name for a single
    file, ``{file_stem}_{position}`` for each of several."""
    return file_stem if count == 1 else f"{file_stem}_{position}"
