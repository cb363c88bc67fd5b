"""Inputs checked against a model's input schema (JSON Schema, draft 2020-12) with ``jsonschema``,
its errors turned into genbatch's short reasons ("7 is not one of 5, 10").

``format: uri`` (and RunComfy's ``image_uri``) is checked, not just annotated: a media input
must be a public ``https://`` URL, since the API fetches it itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.exceptions import SchemaError

__all__ = [
    "InputProblem",
    "SchemaInvalid",
    "check_schema",
    "problems_of",
    "show_value",
    "validator_for",
]

_URL_FORMATS = ("uri", "image_uri", "video_uri", "audio_uri", "uri-reference", "iri")
_BOOLS = ("true", "false")
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


@dataclass(frozen=True, kw_only=True)
class InputProblem:
    """One reason a job's inputs do not fit the model's schema."""

    field: str
    """The input's name, with the index of a list item: ``image_urls[1]``."""
    message: str
    kind: Literal["missing", "unknown", "invalid"]

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SchemaInvalid(ValueError):
    """The document is not a JSON Schema ``jsonschema`` can check against."""


def _public_https_url(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the type keyword reports a non-string
    parts = urlsplit(value)
    return parts.scheme == "https" and bool(parts.hostname) and not any(c.isspace() for c in value)


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name in _URL_FORMATS:
        checker.checks(name)(_public_https_url)
    return checker


FORMATS = _format_checker()


def check_schema(schema: Mapping[str, Any]) -> None:
    """Raise ``SchemaInvalid`` (one line) unless ``schema`` is a valid draft 2020-12 schema."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        where = "/".join(str(p) for p in error.path)
        raise SchemaInvalid(f"{error.message}" + (f" (at {where})" if where else "")) from None


def validator_for(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A validator of ``schema`` that also checks URL formats."""
    return Draft202012Validator(schema, format_checker=FORMATS)


def problems_of(
    validator: Draft202012Validator, instance: Any, *, prefix: str = ""
) -> list[InputProblem]:
    """Every problem ``validator`` finds in ``instance``, in a stable order; ``prefix`` names the
    input when ``instance`` is one input's value rather than the whole body."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.path])
    found: dict[str, InputProblem] = {}
    for error in errors:
        for problem in _problems(error, prefix):
            found.setdefault(problem.field, problem)  # one per field: "10" is no int, no 5 or 10
    return list(found.values())


def _problems(error: ValidationError, prefix: str) -> Iterable[InputProblem]:
    field = _field(prefix, error.path)
    rule: Any = error.validator_value
    if error.validator == "required" and isinstance(error.instance, dict):
        for name in rule:
            if name not in error.instance:
                yield InputProblem(
                    field=_field(field, [name]), message="is required", kind="missing"
                )
        return
    yield InputProblem(field=field or "body", message=_reason(error), kind="invalid")


def _field(prefix: str, path: Iterable[Any]) -> str:
    text = prefix
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _reason(error: ValidationError) -> str:
    # Unset only before jsonschema fills an error in; every error it yields is filled.
    value: Any = error.instance
    rule: Any = error.validator_value
    kind = error.validator
    shown = show_value(value)
    if kind == "enum":
        return f"{shown} is not one of {', '.join(show_value(c) for c in rule)}"
    if kind == "const":
        return f"{shown} is not {show_value(rule)}"
    if kind == "type":
        return _type_reason(value, [rule] if isinstance(rule, str) else list(rule))
    if kind in ("minimum", "exclusiveMinimum"):
        return f"{shown} is less than the minimum {show_value(rule)}"
    if kind in ("maximum", "exclusiveMaximum"):
        return f"{shown} is more than the maximum {show_value(rule)}"
    if kind == "maxLength":
        return f"is {len(value)} characters long, more than {rule}"
    if kind == "minLength":
        return "must not be empty" if rule == 1 else f"is shorter than {rule} characters"
    if kind == "minItems":
        return f"has {len(value)} item(s), fewer than {rule}"
    if kind == "maxItems":
        return f"has {len(value)} items, more than {rule}"
    if kind == "format" and rule in _URL_FORMATS:
        return f"{shown} is not a public https:// URL (the API fetches inputs itself)"
    return error.message


def _type_reason(value: Any, names: list[str]) -> str:
    """``'5' is not an integer (write 5 without quotes)``: text is always shown quoted here, since
    the message is about its type, with a hint when unquoting it would give the wanted type."""
    shown = _quoted(value) if isinstance(value, str) else show_value(value)
    reason = f"{shown} is not {' or '.join(_TYPE_NAMES.get(n, n) for n in names)}"
    unquoted = _as_json_scalar(value) if isinstance(value, str) else None
    if unquoted is not None and any(_is_of_type(unquoted, n) for n in names):
        return f"{reason} (write {value.strip()} without quotes)"
    if isinstance(value, str) and names == ["boolean"]:
        return f"{reason} (write true or false)"
    return reason


def _as_json_scalar(text: str) -> int | float | bool | None:
    """The number or boolean ``text`` spells (``"5"``, ``"2.5"``, ``"true"``), or None."""
    word = text.strip().lower()
    try:
        value = _strict_json(word if word in _BOOLS else text)
    except ValueError:
        return None
    return value if isinstance(value, int | float) else None


def _strict_json(text: str) -> Any:
    """``json.loads`` without its non-JSON ``NaN`` and ``Infinity``, which YAML reads as text."""
    return json.loads(text, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def _is_of_type(value: int | float | bool, name: str) -> bool:
    # "5.0" gets no hint for an integer: a CSV cell so written stays text, quotes or none.
    if name == "boolean" or isinstance(value, bool):
        return name == "boolean" and isinstance(value, bool)
    return name == "number" or (name == "integer" and isinstance(value, int))


def _reads_as_non_text(text: str) -> bool:
    """True when ``text`` unquoted would be a number, boolean or null (``5``, ``true``): such
    text is shown quoted so ``'5' is not one of 5, 10`` does not read as a contradiction."""
    try:
        return not isinstance(_strict_json(text), str)
    except ValueError:
        return False


def _quoted(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:76] + "...'"


def show_value(value: Any) -> str:
    """A value as a message shows it: ``true``, ``16:9``, ``' padded '``, ``'5'`` (text that
    would otherwise read as a number)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        plain = value != "" and value.strip() == value and not _reads_as_non_text(value)
        text = value if plain else repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "a mapping"
    return str(value)
