"""Prompt and input templates: ``"a {animal} at {time_of_day}"``, Python ``str.format`` style.

Fields must be plain variable names (no ``{x.attr}``, ``{x[0]}`` or positional ``{}``), so a
template can only read the manifest's own variables. ``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genbatch.manifest.locations import Source

__all__ = ["Template", "compile_template"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACES_HINT = "write {{ and }} for literal braces"


@dataclass(frozen=True, slots=True)
class Template:
    """A string with at least one ``{field}``, rendered per job."""

    text: str
    fields: frozenset[str]
    source: Source
    label: str
    """What the template is, for messages: ``prompt`` or the input's name."""

    def render(self, variables: Mapping[str, Any]) -> str:
        """The text with ``variables`` filled in; a field missing from them is a bug upstream."""
        try:
            return self.text.format_map(variables)
        except (ValueError, TypeError) as error:
            raise self.source.error(
                f"cannot render {self.text!r}: {error}", field=self.label
            ) from None


def compile_template(text: str, *, source: Source, label: str) -> Template | str:
    """``text`` as a ``Template``, or as the literal string it means when it has no fields.

    A malformed template raises ``ManifestError`` at ``source``.
    """
    if "{" not in text and "}" not in text:
        return text
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as error:
        raise source.error(f"bad template: {error}; {_BRACES_HINT}", field=label) from None
    fields: set[str] = set()
    for _literal, name, spec, _conversion in parsed:
        if name is None:
            continue
        if not _NAME.fullmatch(name):
            shown = "{" + name + "}"
            raise source.error(
                f"template field {shown} must be a variable name such as "
                f"{{animal}}; {_BRACES_HINT}",
                field=label,
            )
        if spec and ("{" in spec or "}" in spec):
            raise source.error(
                f"template field {{{name}}} has a nested field in its format spec", field=label
            )
        fields.add(name)
    if not fields:
        return "".join(literal for literal, *_rest in parsed)
    return Template(text=text, fields=frozenset(fields), source=source, label=label)
