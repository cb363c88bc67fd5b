"""``ModelSchema``: one model as genbatch knows it, its input schema (a JSON Schema document,
the one the model's API page shows), its price, the shape of its output, and where all that
came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator

from genbatch.catalog.price import Price, estimate_cost
from genbatch.catalog.validation import InputProblem, problems_of, validator_for
from genbatch.jobs import canonical_json

__all__ = ["ModelSchema", "OutputShape", "SchemaSource"]

TEXT_FIELDS = ("prompt", "text")
"""The inputs ``prompts:`` fills, in order of preference, when the schema has them."""


class SchemaSource(StrEnum):
    """Where a model's schema came from; the first that has it wins, in this order."""

    MANIFEST = "manifest"
    """A ``schema:`` file named in the manifest."""
    CATALOG = "catalog"
    """RunComfy's catalog endpoint, as cached in the ledger."""
    BUNDLED = "bundled"
    """The snapshot bundled with genbatch."""


@dataclass(frozen=True, kw_only=True)
class OutputShape:
    """What a success yields: the key of ``output``, the kind of file, a typical time."""

    output_key: str = "images"
    kind: str = "image"
    extension: str = ".png"
    typical_seconds: float = 30.0
    audio_multiplier: float = 1.0
    """Price factor when the job asks for audio (``generate_audio`` true)."""

    @classmethod
    def guess(cls, model_id: str) -> OutputShape:
        """The shape of a model genbatch has no record of, guessed from its id."""
        if "video" in model_id:
            return cls(output_key="video", kind="video", extension=".mp4", typical_seconds=180.0)
        return cls()


@dataclass(frozen=True, kw_only=True, eq=False)
class ModelSchema:
    """One model: its input schema and price, with where they came from (``origin``)."""

    model_id: str
    input_schema: Mapping[str, Any] = field(repr=False)
    source: SchemaSource
    origin: str
    """Where the schema came from, for people: ``bundled with genbatch``, ``schema file x.json``."""
    price: Price | None = None
    output: OutputShape = field(default_factory=OutputShape)
    complete: bool = True
    """Inputs not in the schema are refused (a bundled schema copied in part says False)."""
    fetched_at: str | None = None
    """When the catalog answered (ISO-8601), for a schema from the catalog."""
    display_name: str | None = None
    categories: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # Part of a manifest's digest: a different schema or price is a different manifest. The
        # schema as canonical JSON: the catalog's answer and the ledger's cached copy of it (keys
        # sorted) are one schema, or the first resume after a run would expand it all again.
        return (
            f"ModelSchema({self.model_id!r}, {self.source.value}, "
            f"{canonical_json(dict(self.input_schema))}, {self.price!r}, complete={self.complete})"
        )

    @cached_property
    def fields(self) -> Mapping[str, Mapping[str, Any]]:
        """The inputs the schema describes (``properties``), in schema order."""
        properties = self.input_schema.get("properties")
        return properties if isinstance(properties, Mapping) else {}

    @cached_property
    def required(self) -> tuple[str, ...]:
        """The inputs a job must have."""
        names = self.input_schema.get("required")
        return tuple(str(n) for n in names) if isinstance(names, list) else ()

    @cached_property
    def defaults(self) -> dict[str, Any]:
        """Each input's ``default``, where the schema gives one."""
        return {
            name: spec["default"]
            for name, spec in self.fields.items()
            if isinstance(spec, Mapping) and spec.get("default") is not None
        }

    @property
    def text_field(self) -> str:
        """The input ``prompts:`` fills: ``prompt``, else ``text``, when the schema has one."""
        return next((name for name in TEXT_FIELDS if name in self.fields), TEXT_FIELDS[0])

    @cached_property
    def _validator(self) -> Draft202012Validator:
        return validator_for(self.input_schema)

    @cached_property
    def _field_validators(self) -> dict[str, Draft202012Validator]:
        return {
            name: validator_for(spec)
            for name, spec in self.fields.items()
            if isinstance(spec, Mapping)
        }

    def accepts_name(self, name: str) -> bool:
        """Whether ``name`` may be sent: an input of the schema, or any name if it is partial."""
        return name in self.fields or not self.complete or self._open

    @cached_property
    def _open(self) -> bool:
        # A schema that says additional inputs are fine is taken at its word.
        return self.input_schema.get("additionalProperties") is True

    def value_problem(self, name: str, value: Any) -> InputProblem | None:
        """The first reason ``value`` does not fit the input ``name``, or None."""
        validator = self._field_validators.get(name)
        if validator is None:
            return None
        found = problems_of(validator, value, prefix=name)
        return found[0] if found else None

    def problems(self, inputs: Mapping[str, Any]) -> list[InputProblem]:
        """Every way ``inputs`` break this schema, then the inputs it does not know."""
        found = problems_of(self._validator, dict(inputs))
        known = ", ".join(self.fields)
        found += [
            InputProblem(
                field=name,
                message=f"is not an input of {self.model_id} (known: {known})",
                kind="unknown",
            )
            for name in inputs
            if not self.accepts_name(name)
        ]
        return found

    def with_defaults(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """``inputs`` completed with the schema's defaults (used for job identity and prices)."""
        return {**self.defaults, **inputs}

    def cost_usd(self, inputs: Mapping[str, Any], price: Price | None = None) -> float | None:
        """What one job with ``inputs`` costs at ``price`` (else this model's own), or None."""
        price = price or self.price
        if price is None:
            return None
        return estimate_cost(price, self.with_defaults(inputs), self.output.output_key)
