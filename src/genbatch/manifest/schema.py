"""The shape of a manifest as pydantic models, and pydantic's errors turned into one-liners.

Only the structure is checked here (which keys, which types); what the values mean (model
schemas, templates, prompt files) is checked when the blocks are compiled.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from genbatch.errors import ManifestError
from genbatch.manifest.locations import Path_, did_you_mean, render_path
from genbatch.manifest.settings import parse_size
from genbatch.manifest.yaml_loader import YamlDocument

__all__ = [
    "BlockSpec",
    "ManifestSpec",
    "OutputSpec",
    "PromptFileSpec",
    "SampleSpec",
    "attribute_of",
    "manifest_keys",
    "parse_manifest_spec",
]

# A host name, or a domain and its subdomains: ``*.example.com`` (documented) or ``.example.com``.
_HOST = re.compile(r"(\*?\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


class _Strict(BaseModel):
    # strict: "5" is not 5 and 1 is not true; YAML already typed every value.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


_Name = Annotated[str, Field(min_length=1)]


def _inputs_shape(value: Any) -> str | None:
    if isinstance(value, list):
        return "input-list"
    if isinstance(value, dict):
        return "input-map"
    return None


PromptFileInputs = Annotated[
    Annotated[list[_Name], Tag("input-list")] | Annotated[dict[str, _Name], Tag("input-map")],
    Discriminator(
        _inputs_shape,
        custom_error_type="inputs_shape",
        custom_error_message="must be a list of input names or a mapping like {img_url: image}",
    ),
]


class PromptFileSpec(_Strict):
    """``prompts: {file: prompts.csv, column: prompt}``."""

    file: Annotated[str, Field(min_length=1)]
    column: Annotated[str, Field(min_length=1)] | None = None
    field: Annotated[str, Field(min_length=1)] | None = None
    inputs: PromptFileInputs | None = None
    """Columns (CSV) or fields (JSONL) that fill inputs per row: ``[img_url]`` (the column is
    named as the input) or ``{img_url: image}`` (input: column)."""


def _prompts_shape(value: Any) -> str | None:
    if isinstance(value, list):
        return "prompt-list"
    if isinstance(value, dict | PromptFileSpec):
        return "prompt-file"
    return None


Prompts = Annotated[
    Annotated[list[str], Tag("prompt-list")] | Annotated[PromptFileSpec, Tag("prompt-file")],
    Discriminator(
        _prompts_shape,
        custom_error_type="prompts_shape",
        custom_error_message="must be a list of prompts or a mapping like {file: prompts.txt}",
    ),
]
_UNION_TAGS = frozenset({"prompt-list", "prompt-file", "input-list", "input-map"})


class OutputSpec(_Strict):
    """``output: {dir: out/night, name: "{index:05d}-{key}"}``."""

    dir: Annotated[str, Field(min_length=1)] | None = None
    name: Annotated[str, Field(min_length=1)] | None = None


PositiveInt = Annotated[int, Field(ge=1)]
Values = dict[str, list[Any]]
Weight = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class SampleSpec(_Strict):
    """``sample: {n: 1000, seed: 7, strategy: latin, weights: {animal: [3, 1]}}``."""

    n: PositiveInt
    seed: int = 0
    strategy: Literal["random", "latin"] = "random"
    weights: dict[str, list[Weight]] | None = None
    """Per grid key (or zip key, or ``prompt``), a weight for each of its values, in order."""


def _sample_shorthand(value: Any) -> Any:
    """``sample: 1000`` is ``sample: {n: 1000}``."""
    return {"n": value} if isinstance(value, int) and not isinstance(value, bool) else value


class BlockSpec(_Strict):
    """One block of jobs (an item of ``jobs:``); the top level is a block too."""

    name: Annotated[str, Field(min_length=1)] | None = None
    model: str | None = None
    inputs: dict[str, Any] | None = None
    vars: dict[str, Any] | None = None
    prompts: Prompts | None = None
    grid: Values | None = None
    zip: Values | None = None
    repeat: PositiveInt | None = None
    output: OutputSpec | None = None
    schema_: Annotated[str, Field(min_length=1)] | None = Field(default=None, alias="schema")
    """A JSON file with the model's input schema (pasted from its API page)."""
    validate_: bool | None = Field(default=None, alias="validate")
    """``false``: send the inputs unchecked (a model with no schema anywhere)."""
    prompt_field: Annotated[str, Field(min_length=1)] | None = None
    """The input ``prompts:`` fills (default: ``prompt``, else ``text``, per the schema)."""
    sample: Annotated[SampleSpec, BeforeValidator(_sample_shorthand)] | None = None
    """Draw this many jobs from the block's full space instead of making them all."""
    max_jobs: PositiveInt | None = None
    """In a block: the most jobs it may make; at the top level: the whole manifest's."""


def _size(value: Any) -> Any:
    return parse_size(value) if isinstance(value, str) else value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class PriceSpec(_Strict):
    """``prices: {model_id: {...}}``: what a model costs, overriding built-in and API prices."""

    base_price_usd: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    price_unit: Literal["second", "image", "request"] = "request"
    audio_multiplier: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 1.0


class ManifestSpec(BlockSpec):
    """The whole manifest: a block plus run-wide settings and optional ``jobs:`` blocks."""

    concurrency: PositiveInt | None = None
    jobs: Annotated[list[BlockSpec], Field(min_length=1)] | None = None
    strict: bool = False
    allowed_hosts: list[str] | None = None
    max_file_size: Annotated[PositiveInt, BeforeValidator(_size)] | None = None
    max_attempts: PositiveInt = 1
    budget_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    prices: dict[str, PriceSpec] | None = None
    allow_outside_prompt_files: bool = False

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, hosts: list[str] | None) -> list[str] | None:
        if hosts is None:
            return None
        cleaned = [host.strip().lower() for host in hosts]
        for host in cleaned:
            if not _HOST.fullmatch(host):
                raise ValueError(
                    f"{host!r} is not a host name like files.example.com or *.example.com "
                    "(no scheme, port or path)"
                )
        return cleaned


TOP_LEVEL_ONLY = frozenset(set(ManifestSpec.model_fields) - set(BlockSpec.model_fields))


def parse_manifest_spec(document: YamlDocument) -> ManifestSpec:
    """Validate the structure of ``document``; the first problem raises ``ManifestError``."""
    if not isinstance(document.data, dict):
        kind = "a list" if isinstance(document.data, list) else "a single value"
        raise ManifestError(
            f"the manifest must be a mapping of keys (model, prompts, ...), not {kind}",
            file=document.file,
            line=document.line_of(()),
        )
    try:
        return ManifestSpec.model_validate(document.data)
    except ValidationError as error:
        raise _translate(error.errors(include_url=False)[0], document) from None


def _translate(error: ErrorDetails, document: YamlDocument) -> ManifestError:
    path: Path_ = tuple(part for part in error["loc"] if part not in _UNION_TAGS)
    line = document.line_of(path)
    if error["type"] == "extra_forbidden":
        return ManifestError(
            _unknown_key(path), file=document.file, line=line, field=render_path(path)
        )
    return ManifestError(
        _message(error), file=document.file, line=line, field=render_path(path) or None
    )


def _unknown_key(path: Path_) -> str:
    key, parent = str(path[-1]), path[:-1]
    if parent and parent[0] == "jobs" and len(parent) == 2 and key in TOP_LEVEL_ONLY:
        return f"'{key}' is only allowed at the top level, not in a block"
    candidates = _keys_at(parent)
    suggestion = did_you_mean(key, candidates)
    return (
        f"unknown key{suggestion}"
        if suggestion
        else (f"unknown key; expected one of {', '.join(candidates)}")
    )


def _keys_at(parent: Path_) -> list[str]:
    if not parent:
        return manifest_keys(ManifestSpec)
    if parent[-1] == "output":
        return manifest_keys(OutputSpec)
    if parent[-1] == "prompts":
        return manifest_keys(PromptFileSpec)
    if parent[-1] == "sample":
        return manifest_keys(SampleSpec)
    if len(parent) == 2 and parent[0] == "prices":
        return manifest_keys(PriceSpec)
    return manifest_keys(BlockSpec)


def manifest_keys(spec: type[BaseModel]) -> list[str]:
    """The keys ``spec`` reads, as written in a manifest (``schema``, not ``schema_``)."""
    return [info.alias or name for name, info in spec.model_fields.items()]


def attribute_of(key: str) -> str:
    """The attribute of a spec holding the manifest key ``key`` (``schema`` is ``schema_``)."""
    return f"{key}_" if key in ("schema", "validate") else key


_MESSAGES = {
    "missing": "is required",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be text (quote it)",
    "list_type": "must be a list such as [a, b]",
    "dict_type": "must be a mapping of names to values",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "finite_number": "must be a finite number",
    "too_short": "must not be empty",
    "string_too_short": "must not be empty",
}


def _message(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        word = "at least" if kind == "greater_than_equal" else "more than"
        return f"must be {word} {bound}, not {_short(error['input'])}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind in _MESSAGES:
        message = _MESSAGES[kind]
        if kind.endswith("_type"):
            message += f", not {_short(error['input'])}"
        return message
    return error["msg"][:1].lower() + error["msg"][1:]


def _short(value: Any) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
