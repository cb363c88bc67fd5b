"""Reading a model's document tolerantly: a catalog entry of ``GET /v1/models/{id}``, a file
pasted from a model's API page, or one of genbatch's bundled snapshots.

The catalog's key for the input schema is not documented, so any of these is read: a JSON
Schema object (with ``properties``) under ``input_schema``, ``schema`` (or ``schema.input``) or
``inputs``, or the document itself when it is the schema; a ``required_inputs`` list adds to
``required``. Anything else means "no schema here": never a crash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genbatch.catalog.model import ModelSchema, OutputShape, SchemaSource
from genbatch.catalog.price import Price

__all__ = ["input_schema_of", "model_from_document", "price_of", "read_model_file"]


def input_schema_of(document: Mapping[str, Any]) -> dict[str, Any] | None:
    """The input JSON Schema inside ``document``, or None when it holds none."""
    schema: Any = None
    for candidate in (
        document.get("input_schema"),
        _nested(document.get("schema"), "input"),
        document.get("schema"),
        document.get("inputs"),
        document,
    ):
        if isinstance(candidate, Mapping) and isinstance(candidate.get("properties"), Mapping):
            schema = dict(candidate)
            break
    if schema is None:
        return None
    extra = document.get("required_inputs")
    if isinstance(extra, list):
        required = list(schema.get("required") or [])
        schema["required"] = required + [
            n for n in extra if isinstance(n, str) and n not in required
        ]
    schema.setdefault("type", "object")
    found: dict[str, Any] = schema
    return found


def _nested(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, Mapping) else None


def price_of(document: Mapping[str, Any], audio_multiplier: float = 1.0) -> Price | None:
    """``base_price_usd`` per ``price_unit`` from ``document``, or None when it has no price."""
    base = document.get("base_price_usd")
    if not isinstance(base, int | float) or isinstance(base, bool) or base < 0:
        return None
    unit = str(document.get("price_unit") or "request").lower()
    return Price(base_price_usd=float(base), price_unit=unit, audio_multiplier=audio_multiplier)


def model_from_document(
    model_id: str,
    document: Mapping[str, Any],
    *,
    source: SchemaSource,
    origin: str,
    fetched_at: str | None = None,
    shape: OutputShape | None = None,
) -> ModelSchema | None:
    """The model ``document`` describes, or None when it holds no input schema."""
    schema = input_schema_of(document)
    if schema is None:
        return None
    shape = shape or _shape(document.get("genbatch")) or OutputShape.guess(model_id)
    categories = document.get("categories")
    name = document.get("display_name")
    return ModelSchema(
        model_id=model_id,
        input_schema=schema,
        source=source,
        origin=origin,
        price=price_of(document, shape.audio_multiplier),
        output=shape,
        complete=document.get("complete_schema") is not False,
        fetched_at=fetched_at,
        display_name=name if isinstance(name, str) else None,
        categories=tuple(str(c) for c in categories) if isinstance(categories, list) else (),
    )


def _shape(value: Any) -> OutputShape | None:
    """genbatch's own notes in a bundled document (output key, file kind, typical time)."""
    if not isinstance(value, Mapping):
        return None
    return OutputShape(
        output_key=str(value.get("output_key", "images")),
        kind=str(value.get("kind", "image")),
        extension=str(value.get("extension", ".png")),
        typical_seconds=float(value.get("typical_seconds", 30.0)),
        audio_multiplier=float(value.get("audio_multiplier", 1.0)),
    )


def read_model_file(given: str) -> ModelSchema:
    """The model in the JSON file ``given`` as ``FILE`` (the document names its ``model_id``)
    or ``MODEL_ID=FILE``; ``ValueError`` with a one-line reason otherwise."""
    from genbatch.catalog.validation import check_schema

    model_id, _, file = given.rpartition("=") if "=" in given else ("", "", given)
    try:
        document = json.loads(Path(file).read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"cannot read {file}: {error.strerror or error}") from None
    except ValueError as error:
        raise ValueError(f"{file} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError(f"{file} must hold a JSON object")
    model_id = model_id or str(document.get("model_id") or "")
    if not model_id:
        raise ValueError(f"{file} names no model_id: give it as MODEL_ID={file}")
    model = model_from_document(
        model_id, document, source=SchemaSource.MANIFEST, origin=f"schema file {file}"
    )
    if model is None:
        raise ValueError(f"{file} holds no input schema (a JSON Schema with properties)")
    check_schema(model.input_schema)
    return model
